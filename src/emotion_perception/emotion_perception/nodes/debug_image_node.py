"""Annotated debug image: ``image`` + ``emotion`` -> ``debug_image`` (boxes, ids, labels, bars).

Images and emotions are paired by header stamp, so the drawing always matches its frame. View
it with rqt_image_view or RViz. With ``cam: true`` each face also shows the class activation
map of its estimated emotion (``core.cam``): where the classifier found the evidence.

Crop framing: the map must cover the crop the classifier saw, whose margin and offset are the
face detector's (``crop_margin``, ``crop_offset``; -1 = its calibrated framing, which depends
on the detector plugin). This node has no framing parameter of its own: a copy would have to
be kept equal to the detector's by hand, and went wrong whenever the detector or its
calibration changed. It reads the framing the detector announces on ``crop_framing``
(latched, so a late start still gets it; ``builders.framing_text``) and follows every runtime
change. Until one arrives (or in a graph without our detector, e.g. ``hri_input``) the map
covers the face box itself (margin 0, offset 0). Maps are drawn unrotated, also where the
detector turns crops upright (``crop_align``): the emotions carry no eye keypoints.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from emotion_msgs.msg import EmotionArray
from sensor_msgs.msg import Image
from rclpy.event_handler import PublisherEventCallbacks
from std_msgs.msg import String

from ..builders import parse_framing
from ..core.annotate import draw_annotations
from ..core.classes import CLASS_NAMES
from ..core.image_conversion import ImageConversionError, to_bgr8
from .base import (IMAGE_PUB_QOS, LATCHED_QOS, RESULT_QOS, PerceptionNode, image_sub_qos,
                   stamp_seconds)
from .convert import (array_to_image, emotion_problem, image_to_numpy,
                      msg_to_estimate)


def _key(header) -> tuple[int, int, str]:
    return int(header.stamp.sec), int(header.stamp.nanosec), header.frame_id


class DebugImageNode(PerceptionNode):
    """Draws each frame's emotions onto it.

    The callbacks only validate (images: fields, sizes, data length, ``max_image_pixels``;
    emotions: at most ``max_faces``, usable numbers) and pair image and emotions by stamp;
    a pair goes to the newest-wins worker, which converts, paints the class activation maps
    and draws. An exception there is counted as an error and the node goes on.
    """

    NODE_NAME = "emotion_debug_image"

    def setup(self, values: dict[str, Any]) -> None:
        """Prepare the pairing caches."""
        self.values = values
        self._pair_lock = threading.Lock()
        self._images: OrderedDict = OrderedDict()
        self._emotions: OrderedDict = OrderedDict()
        self._cam = load_cam_extractor(values["cam_model_path"]) if values["cam"] else None
        #: (crop margin, crop offset) of the detector's crops, from ``crop_framing``
        self.framing: tuple[float, float] = (0.0, 0.0)

    def teardown(self) -> None:
        """Release the CAM model."""
        self._cam = None

    def check_params(self, values: dict[str, Any], changed: set[str] | None) -> None:
        """Refuse a runtime change of a map parameter while no maps are drawn."""
        if changed is None or values["cam"]:
            return
        for key in sorted(changed & {"cam_alpha"}):
            raise ValueError(f"parameter '{key}' has no effect with cam: false (parameter "
                             "'cam' is read-only)")

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Trim the pairing caches to a smaller ``history``."""
        if "history" in changed:
            with self._pair_lock:
                for cache in (self._images, self._emotions):
                    self._trim(cache)

    def open_io(self) -> None:
        """Publish ``debug_image``; subscribe to ``crop_framing`` and, while viewed, the inputs.

        Drawing costs a frame's conversion, painting and a full-size image message per
        camera frame, for nobody when no one views it: ``image`` and ``emotion`` are
        subscribed only while ``debug_image`` has a subscriber (``lazy: false`` keeps them
        always). The publisher's matched event switches them at once; the diagnostics timer
        checks again, in case an event is missed.
        """
        self._inputs: list = []
        self._pub = self.create_publisher(
            Image, "debug_image", IMAGE_PUB_QOS,
            event_callbacks=PublisherEventCallbacks(matched=lambda _info: self.update_inputs()))
        self._io.append(self._pub)
        self._worker = self.add_worker(self._draw_pair)
        if self._cam is not None:
            self.add_subscription(String, "crop_framing", self._on_framing, LATCHED_QOS)
        self.update_inputs()

    def update_inputs(self) -> None:
        """Subscribe to the inputs while ``debug_image`` is viewed (always with lazy off)."""
        pub = self._pub
        if pub is None:
            return
        wanted = not self.values["lazy"] or pub.get_subscription_count() > 0
        if wanted and not self._inputs:
            self._inputs = [
                self.add_subscription(Image, "image", self._on_image,
                                      image_sub_qos(self.values["image_qos"])),
                self.add_subscription(EmotionArray, "emotion", self._on_emotion, RESULT_QOS)]
        elif not wanted and self._inputs:
            for sub in self._inputs:
                self._io.remove(sub)
                self.destroy_subscription(sub)
            self._inputs = []
            with self._pair_lock:  # what waits for a partner would pair with nothing now
                self._images.clear()
                self._emotions.clear()

    def publish_diagnostics(self) -> None:
        """Check the inputs against the viewers (see open_io), then publish diagnostics."""
        self.update_inputs()
        super().publish_diagnostics()

    def diagnostics_extra(self) -> dict[str, Any]:
        """Say whether the inputs are subscribed (something views ``debug_image``)."""
        return {"drawing": int(bool(getattr(self, "_inputs", [])))}

    def _on_framing(self, msg: String) -> None:
        """Take the detector's crop framing (a bad one is rejected, the old one kept)."""
        try:
            self.framing = parse_framing(msg.data)
        except ValueError as exc:
            self.reject("crop_framing", str(exc))

    def _trim(self, cache: OrderedDict) -> None:
        while len(cache) > self.values["history"]:
            cache.popitem(last=False)

    def _pair(self, key, mine: OrderedDict, theirs: OrderedDict, value) -> Any:
        """Return the partner waiting in ``theirs``, or remember ``value`` in ``mine``."""
        with self._pair_lock:
            partner = theirs.pop(key, None)
            if partner is None:
                mine[key] = value
                self._trim(mine)
            return partner

    def _submit(self, image: Image, emotions: EmotionArray) -> None:
        worker = self._worker
        if worker is not None:
            worker.submit((image, emotions))

    def _on_image(self, msg: Image) -> None:
        if not self.screen_image(msg):
            return
        emotions = self._pair(_key(msg.header), self._images, self._emotions, msg)
        if emotions is not None:
            self._submit(msg, emotions)

    def _on_emotion(self, msg: EmotionArray) -> None:
        good = []
        for e in self.limit_faces(list(msg.emotions)):
            problem = emotion_problem(e)
            if problem:
                self.reject("emotion", f"not drawing the emotion of face {e.face_id}: {problem}")
            else:
                good.append(e)
        msg.emotions = good
        image = self._pair(_key(msg.header), self._emotions, self._images, msg)
        if image is not None:
            self._submit(image, msg)

    def _draw_pair(self, pair: tuple[Image, EmotionArray]) -> None:
        self._draw(*pair)

    def _draw(self, image: Image, emotions: EmotionArray) -> None:
        t0 = time.monotonic()
        if not self.admit(image.header.stamp):
            return
        try:
            bgr = to_bgr8(image_to_numpy(image, self.values["max_image_pixels"]), image.encoding)
        except ImageConversionError as exc:
            self.reject("image", f"rejected image: {exc}")
            return
        stamp = stamp_seconds(image.header.stamp)
        estimates = [msg_to_estimate(e, stamp) for e in emotions.emotions]
        if self._cam is not None and estimates:
            from ..core.cam import draw_face_cams

            bgr = draw_face_cams(bgr, [e.box.as_tuple() for e in estimates],
                                 [e.label for e in estimates], self._cam,
                                 self.framing[0], self.values["cam_alpha"], self.framing[1])
        canvas = draw_annotations(bgr, estimates)
        self.publish_output(array_to_image(canvas, "bgr8", image.header))
        self.record(image.header.stamp, t0)


def load_cam_extractor(model_path: str):
    """Load the Keras model for class activation maps; raise naming the parameter if unusable."""
    from ..core.cam import cam_extractor
    from ..core.model_lookup import DEFAULT_KERAS_MODEL, find_model, load_keras_model

    try:
        import keras  # noqa: F401 (only checks that Keras is importable)
    except ImportError as exc:
        raise RuntimeError(f"parameter 'cam' needs Keras, which is not importable: {exc}") \
            from exc
    path = find_model(DEFAULT_KERAS_MODEL, model_path, "cam_model_path")
    model = load_keras_model(path, "cam_model_path")  # names a truncated/corrupt file
    classes = int(model.output_shape[-1])
    if classes != len(CLASS_NAMES):
        raise ValueError(f"cam_model_path {path} has {classes} outputs, expected "
                         f"{len(CLASS_NAMES)} classes")
    try:
        return cam_extractor(model)
    except ValueError as exc:
        raise ValueError(f"cam_model_path {path}: {exc}") from exc


def main(args: list[str] | None = None) -> None:
    """Run the debug image node."""
    from .runner import run_single
    run_single(DebugImageNode, args)

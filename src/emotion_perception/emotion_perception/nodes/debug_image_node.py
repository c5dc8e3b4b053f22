"""Annotated debug image: ``image`` + ``emotion`` -> ``debug_image`` (boxes, ids, labels, bars).

Images and emotions are paired by header stamp, so the drawing always matches its frame. View
it with rqt_image_view or RViz. With ``cam: true`` each face also shows the class activation
map of its estimated emotion (``core.cam``): where the classifier found the evidence.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from emotion_msgs.msg import EmotionArray
from sensor_msgs.msg import Image

from ..core.annotate import draw_annotations
from ..core.classes import CLASS_NAMES
from ..core.image_conversion import ImageConversionError, to_bgr8
from .base import IMAGE_PUB_QOS, RESULT_QOS, PerceptionNode, image_sub_qos, stamp_seconds
from .convert import array_to_image, image_to_numpy, msg_to_estimate


def _key(header) -> tuple[int, int, str]:
    return int(header.stamp.sec), int(header.stamp.nanosec), header.frame_id


class DebugImageNode(PerceptionNode):
    """Draws each frame's emotions onto it."""

    NODE_NAME = "emotion_debug_image"

    def setup(self, values: dict[str, Any]) -> None:
        """Prepare the pairing caches."""
        self.values = values
        self._images: OrderedDict = OrderedDict()
        self._emotions: OrderedDict = OrderedDict()
        self._cam = load_cam_extractor(values["cam_model_path"]) if values["cam"] else None

    def teardown(self) -> None:
        """Release the CAM model."""
        self._cam = None

    def open_io(self) -> None:
        """Subscribe to ``image`` and ``emotion``; publish ``debug_image``."""
        self._pub = self.add_publisher(Image, "debug_image", IMAGE_PUB_QOS)
        self.add_subscription(Image, "image", self._on_image,
                              image_sub_qos(self.values["image_qos"]))
        self.add_subscription(EmotionArray, "emotion", self._on_emotion, RESULT_QOS)

    def _remember(self, cache: OrderedDict, key, value) -> None:
        cache[key] = value
        while len(cache) > self.values["history"]:
            cache.popitem(last=False)

    def _on_image(self, msg: Image) -> None:
        self.stats.count("received")
        key = _key(msg.header)
        if key in self._emotions:
            self._draw(msg, self._emotions.pop(key))
        else:
            self._remember(self._images, key, msg)

    def _on_emotion(self, msg: EmotionArray) -> None:
        key = _key(msg.header)
        if key in self._images:
            self._draw(self._images.pop(key), msg)
        else:
            self._remember(self._emotions, key, msg)

    def _draw(self, image: Image, emotions: EmotionArray) -> None:
        t0 = time.monotonic()
        try:
            bgr = to_bgr8(image_to_numpy(image, self.values["max_image_pixels"]), image.encoding)
        except ImageConversionError as exc:
            self.stats.count("rejected")
            self.warn_limited("image", f"rejected image: {exc}")
            return
        stamp = stamp_seconds(image.header.stamp)
        estimates = [msg_to_estimate(e, stamp) for e in emotions.emotions]
        if self._cam is not None and estimates:
            from ..core.cam import draw_face_cams

            bgr = draw_face_cams(bgr, [e.box.as_tuple() for e in estimates],
                                 [e.label for e in estimates], self._cam,
                                 self.values["crop_margin"], self.values["cam_alpha"])
        canvas = draw_annotations(bgr, estimates)
        if self._pub is not None:
            self._pub.publish(array_to_image(canvas, "bgr8", image.header))
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.processed(now - stamp, time.monotonic() - t0)


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

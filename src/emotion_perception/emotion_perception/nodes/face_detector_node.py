"""Face detector node: ``image`` -> ``faces`` (emotion_msgs/FaceArray with tracked crops)."""

from __future__ import annotations

import json
import time
from typing import Any

from emotion_msgs.msg import FaceArray
from sensor_msgs.msg import Image

from ..core import plugins
from ..core.image_conversion import ImageConversionError, to_bgr8
from ..core.pipeline import FramePipeline
from ..core.tracking import FaceTracker
from .base import RESULT_QOS, LatestWorker, PerceptionNode, image_sub_qos, stamp_seconds
from .convert import faces_to_msg, image_to_numpy
from .params import prefixed

BUILTIN_DETECTOR_ARGS = {"haar": ("haar", True), "yunet": ("yunet", True)}


def detector_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments for the configured detector plugin."""
    name = values["detector"]
    try:
        extra = json.loads(values["plugin_params"] or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"parameter 'plugin_params' is not valid JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise ValueError("parameter 'plugin_params' must be a JSON object")
    if name in BUILTIN_DETECTOR_ARGS:
        kwargs = prefixed(values, name)
        kwargs["max_side"] = values["max_side"]
        kwargs.update(extra)
        return kwargs
    return extra


def build_pipeline(values: dict[str, Any]) -> FramePipeline:
    """Build detector + tracker from parameter values (raises naming the bad parameter)."""
    detector = plugins.create("detector", values["detector"], **detector_kwargs(values))
    tracker = FaceTracker(**prefixed(values, "tracking"))
    return FramePipeline(detector, None, tracker, crop_margin=values["crop_margin"],
                         max_faces=values["max_faces"])


class FaceDetectorNode(PerceptionNode):
    """Detects and tracks faces in the newest image; publishes boxes, ids and crops."""

    NODE_NAME = "face_detector"

    def setup(self, values: dict[str, Any]) -> None:
        """Create the detector plugin and the tracker."""
        self.pipeline = build_pipeline(values)
        self.values = values
        self.faces_published = 0

    def teardown(self) -> None:
        """Drop the detector."""
        self.pipeline = None

    def open_io(self) -> None:
        """Subscribe to ``image`` and publish ``faces``."""
        self._pub = self.create_publisher(FaceArray, "faces", RESULT_QOS)
        self._worker = LatestWorker(self._process, self.stats, "face_detector")
        self._sub = self.create_subscription(Image, "image", self._on_image,
                                             image_sub_qos(self.values["image_qos"]))

    def close_io(self) -> None:
        """Stop the worker and remove the I/O."""
        if getattr(self, "_sub", None) is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if getattr(self, "_worker", None) is not None:
            self._worker.stop()
            self._worker = None
        if getattr(self, "_pub", None) is not None:
            self.destroy_publisher(self._pub)
            self._pub = None

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the detector name and face count."""
        return {"detector": self.values["detector"], "faces_published": self.faces_published}

    def _on_image(self, msg: Image) -> None:
        self.stats.count("received")
        worker = self._worker
        if worker is not None:
            worker.submit(msg)

    def _process(self, msg: Image) -> None:
        t0 = time.monotonic()
        if self.params_changed.is_set():
            self.params_changed.clear()
            self.values = self.param_values()
            self.pipeline = build_pipeline(self.values)
        try:
            image = image_to_numpy(msg, self.values["max_image_pixels"])
            bgr = to_bgr8(image, msg.encoding)
        except ImageConversionError as exc:
            self.stats.count("rejected")
            self.stats.last_error = str(exc)
            self.warn_limited("image", f"rejected image: {exc}")
            return
        faces = self.pipeline.detect(bgr)
        crops = self.pipeline.crops(image, faces)
        out = faces_to_msg(msg.header, image, msg.encoding, faces, crops)
        pub = self._pub
        if pub is not None:
            pub.publish(out)
            self.faces_published += len(faces)
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.processed(now - stamp_seconds(msg.header.stamp), time.monotonic() - t0)


def main(args: list[str] | None = None) -> None:
    """Run the face detector node."""
    from .runner import run_single
    run_single(FaceDetectorNode, args)

"""Face detector node: ``image`` -> ``faces`` (emotion_msgs/FaceArray with tracked crops)."""

from __future__ import annotations

import time
from typing import Any

from emotion_msgs.msg import FaceArray
from sensor_msgs.msg import Image

from ..builders import build_pipeline
from ..core.image_conversion import ImageConversionError, to_bgr8
from .base import RESULT_QOS, PerceptionNode, image_sub_qos, stamp_seconds
from .convert import faces_to_msg, image_to_numpy


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
        self._pub = self.add_publisher(FaceArray, "faces", RESULT_QOS)
        self._worker = self.add_worker(self._process)
        self.add_subscription(Image, "image", self.enqueue,
                              image_sub_qos(self.values["image_qos"]))

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the detector name and face count."""
        return {"detector": self.values["detector"], "faces_published": self.faces_published}

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

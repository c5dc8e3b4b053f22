"""Emotion classifier node: ``faces`` -> ``emotion_raw`` (emotion_msgs/EmotionArray).

All faces of a frame go through one batched inference call. Rows the model returns as
non-finite are dropped (and counted), so NaN never reaches a consumer.
"""

from __future__ import annotations

import time
from typing import Any

from emotion_msgs.msg import EmotionArray, FaceArray

from ..builders import build_classifier
from ..core.image_conversion import ImageConversionError, to_bgr8
from ..core.pipeline import classify_crops
from ..core.types import TrackedFace
from .base import RESULT_QOS, PerceptionNode, stamp_seconds
from .convert import box_from_roi, estimates_to_msg, image_to_numpy


class EmotionClassifierNode(PerceptionNode):
    """Classifies the faces of the newest FaceArray."""

    NODE_NAME = "emotion_classifier"

    def setup(self, values: dict[str, Any]) -> None:
        """Load the model (configure fails with the file named when it cannot)."""
        self.values = values
        self.classifier = build_classifier(values)
        self.invalid = 0

    def teardown(self) -> None:
        """Release the model."""
        self.classifier = None

    def open_io(self) -> None:
        """Subscribe to ``faces``, publish ``emotion_raw``."""
        self._pub = self.add_publisher(EmotionArray, "emotion_raw", RESULT_QOS)
        self._worker = self.add_worker(self._process)
        self.add_subscription(FaceArray, "faces", self.enqueue, RESULT_QOS)

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the classifier name and the count of non-finite outputs."""
        return {"classifier": self.values["classifier"], "invalid_outputs": self.invalid}

    def _process(self, msg: FaceArray) -> None:
        t0 = time.monotonic()
        stamp = stamp_seconds(msg.header.stamp)
        crops, faces = [], []
        for face in msg.faces:
            try:
                crop = image_to_numpy(face.crop, self.values["max_image_pixels"])
                crops.append(to_bgr8(crop, face.crop.encoding))
                faces.append(face)
            except ImageConversionError as exc:
                self.stats.count("rejected")
                self.warn_limited("crop", f"rejected face crop {face.face_id}: {exc}")
        tracked = [TrackedFace(face_id=int(f.face_id), box=box_from_roi(f.roi),
                               score=float(f.detection_score), confirmed=True) for f in faces]
        estimates, invalid = classify_crops(self.classifier, crops, tracked, stamp)
        if invalid:
            self.invalid += invalid
            self.warn_limited("nan", f"classifier returned non-finite scores for {invalid} "
                              "face(s); dropped")
        pub = self._pub
        if pub is not None:
            pub.publish(estimates_to_msg(msg.header, estimates))
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.processed(now - stamp, time.monotonic() - t0)


def main(args: list[str] | None = None) -> None:
    """Run the emotion classifier node."""
    from .runner import run_single
    run_single(EmotionClassifierNode, args)

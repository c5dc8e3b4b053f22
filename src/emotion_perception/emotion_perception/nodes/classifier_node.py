"""Emotion classifier node: ``faces`` -> ``emotion_raw`` (emotion_msgs/EmotionArray).

The faces of a frame go through batched inference calls of at most ``INFERENCE_CHUNK`` crops.
Rows the model returns as non-finite are dropped (and counted), so NaN never reaches a
consumer. Every face is screened where it comes in, in the subscription callback (cheap checks
only, no pixel is read): at most ``max_faces`` per message (the rest dropped and counted), a
ROI inside the image (clipped to it), a finite detection score in [0, 1], a crop whose fields
are consistent; a face failing a check is rejected and counted, the others go on.
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
from .convert import (check_image_msg, check_score, checked_box, estimates_to_msg,
                      image_to_numpy)

#: crops per inference call: bounds the memory of one call whatever the face count
INFERENCE_CHUNK = 32


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
        self._worker = self.add_worker(self._classify)
        self.add_subscription(FaceArray, "faces", self._on_faces, RESULT_QOS)

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the classifier name and the count of non-finite outputs."""
        return {"classifier": self.values["classifier"], "invalid_outputs": self.invalid}

    def _on_faces(self, msg: FaceArray) -> None:
        self.stats.count("received")
        item = self._screen(msg)
        worker = self._worker
        if worker is not None:
            worker.submit(item)

    def _screen(self, msg: FaceArray) -> tuple[Any, list]:
        """Return (header, [(face, clipped box)]) of the faces that pass the cheap checks."""
        kept = []
        for face in self.limit_faces(list(msg.faces)):
            try:
                box = checked_box(face.roi, msg.image_width, msg.image_height)
                check_score(face.detection_score)
                check_image_msg(face.crop, self.values["max_image_pixels"])
            except ValueError as exc:  # ImageConversionError is a ValueError
                self.reject("face", f"rejected face {face.face_id}: {exc}")
                continue
            kept.append((face, box))
        return msg.header, kept

    def _process(self, msg: FaceArray) -> None:
        """Screen and classify one FaceArray at once (what the callback and worker do)."""
        self._classify(self._screen(msg))

    def _classify(self, item: tuple[Any, list]) -> None:
        t0 = time.monotonic()
        header, kept = item
        if not self.admit(header.stamp):
            return
        crops, tracked = [], []
        for face, box in kept:
            try:
                crop = image_to_numpy(face.crop, self.values["max_image_pixels"])
                crops.append(to_bgr8(crop, face.crop.encoding))
            except ImageConversionError as exc:
                self.reject("crop", f"rejected face crop {face.face_id}: {exc}")
                continue
            tracked.append(TrackedFace(face_id=int(face.face_id), box=box,
                                       score=float(face.detection_score), confirmed=True))
        estimates, invalid = classify_crops(self.classifier, crops, tracked,
                                            stamp_seconds(header.stamp), INFERENCE_CHUNK)
        if invalid:
            self.invalid += invalid
            self.warn_limited("nan", f"classifier returned non-finite scores for {invalid} "
                              "face(s); dropped")
        self.publish_output(estimates_to_msg(header, estimates))
        self.record(header.stamp, t0)


def main(args: list[str] | None = None) -> None:
    """Run the emotion classifier node."""
    from .runner import run_single
    run_single(EmotionClassifierNode, args)

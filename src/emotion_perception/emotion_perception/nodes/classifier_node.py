"""Emotion classifier node: ``faces`` -> ``emotion_raw`` (emotion_msgs/EmotionArray).

The faces of a frame go through batched inference calls of at most ``INFERENCE_CHUNK`` crops.
Rows the model returns as non-finite are dropped (and counted), so NaN never reaches a
consumer. Every face is screened where it comes in, in the subscription callback (cheap checks
only, no pixel is read): at most ``max_faces`` per message (the rest dropped and counted), a
ROI inside the image (clipped to it), a finite detection score in [0, 1], a crop whose fields
are consistent; a face failing a check is rejected and counted, the others go on.

Many cameras (parameter ``cameras``, e.g. ``front,back``): the node subscribes to
``<camera>/faces`` of each and keeps the newest FaceArray per camera (newest wins per camera,
never a queue; see nodes/multicam.py). When the worker is free it takes the messages of every
camera waiting at that moment, screens their age (``max_age``) one by one, and classifies the
faces of all of them in one inference call (``core.multicam.classify_groups``, chunked like a
single message); each camera's results go out on ``<camera>/emotion_raw`` with that camera's
own header (stamp, frame_id), also when it had no face. ``max_faces`` applies per message.
The batch is padded to the largest of the recent batch sizes (``core.multicam.BatchSizer``),
so the TFLite interpreter is not re-allocated for every new count of waiting faces.
Empty ``cameras`` is the single-camera node: ``faces`` -> ``emotion_raw``.
"""

from __future__ import annotations

import time
from typing import Any

from emotion_msgs.msg import FaceArray

from ..builders import build_classifier, build_over_time
from ..core.image_conversion import ImageConversionError, to_bgr8
from ..core.multicam import BatchSizer, classify_groups, parse_cameras
from ..core.pipeline import classify_crops
from ..core.types import TrackedFace
from .base import PerceptionNode, stamp_seconds
from .convert import (check_image_msg, check_score, checked_box, estimates_to_msg,
                      image_to_numpy)
from .multicam import CameraIO

#: crops per inference call: bounds the memory of one call whatever the face count
INFERENCE_CHUNK = 32


class EmotionClassifierNode(CameraIO, PerceptionNode):
    """Classifies the faces of the newest FaceArray."""

    NODE_NAME = "emotion_classifier"

    def setup(self, values: dict[str, Any]) -> None:
        """Load the model (configure fails with the file named when it cannot)."""
        self.values = values
        self.setup_cameras(values)
        self.classifier = build_classifier(values)
        #: mirror TTA spread over each tracked face's frames (tta_mirror_over_time), or None
        self.over_time = build_over_time(self.classifier, values)
        self.invalid = 0
        self.batch_sizer = BatchSizer(limit=INFERENCE_CHUNK)
        #: cross-camera batches classified, and the faces in them (padding not counted)
        self.batches = self.batched_faces = 0

    def check_params(self, values: dict[str, Any], changed: set[str] | None) -> None:
        """Refuse a malformed ``cameras`` list at configure (it is read-only)."""
        if changed is None:
            parse_cameras(values["cameras"])

    def teardown(self) -> None:
        """Release the model."""
        self.classifier = None

    def open_io(self) -> None:
        """Subscribe to ``faces``, publish ``emotion_raw`` (per camera with ``cameras``)."""
        self.open_camera_io(FaceArray, "faces", "emotion_raw", self._screen, self._classify,
                            self._classify_cameras)

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the classifier name, the count of non-finite outputs, per-camera counters."""
        out: dict[str, Any] = {"classifier": self.values["classifier"],
                               "invalid_outputs": self.invalid}
        if self.over_time is not None:  # 1.0: every face seen before, 2.0: all new
            ot = self.over_time
            out["views_per_face"] = round(ot.views / ot.faces, 3) if ot.faces else 0.0
        if self.cameras:
            out["batches"] = self.batches
            out["faces_per_batch"] = self.batched_faces / self.batches if self.batches else 0.0
            out.update(self.camera_diagnostics())
        return out

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
        crops, tracked = self._decode(kept)
        estimates, invalid = classify_crops(self.classifier, crops, tracked,
                                            stamp_seconds(header.stamp), INFERENCE_CHUNK,
                                            self.over_time)
        self._count_invalid(invalid)
        self.publish_output(estimates_to_msg(header, estimates))
        self.record(header.stamp, t0)

    def _classify_cameras(self, items: dict[str, tuple[Any, list]]) -> None:
        """Classify the waiting messages of several cameras in one inference call."""
        t0 = time.monotonic()
        ready = []
        for cam, (header, kept) in items.items():
            if not self.admit(header.stamp):
                self.camera_stats.count(cam, "stale")
                continue
            crops, tracked = self._decode(kept)
            ready.append((cam, header, crops, tracked))
        total = sum(len(crops) for _, _, crops, _ in ready)
        if total:
            self.batches += 1
            self.batched_faces += total
        results = classify_groups(self.classifier,
                                  [(crops, tracked, stamp_seconds(header.stamp))
                                   for _, header, crops, tracked in ready], INFERENCE_CHUNK,
                                  # padded to the recent sizes of the batch it runs: the
                                  # crops, or with spread mirror TTA the views
                                  self.batch_sizer.size, self.over_time,
                                  [cam for cam, _, _, _ in ready])
        for (cam, header, _, _), (estimates, invalid) in zip(ready, results):
            self._count_invalid(invalid)
            pub = self._camera_pubs.get(cam)
            if pub is None:  # closing
                return
            pub.publish(estimates_to_msg(header, estimates))
            self.stats.count("published")
            self.camera_stats.count(cam, "published")
            self.record(header.stamp, t0)

    def _count_invalid(self, invalid: int) -> None:
        if invalid:
            self.invalid += invalid
            self.warn_limited("nan", f"classifier returned non-finite scores for {invalid} "
                              "face(s); dropped")

    def _decode(self, kept: list) -> tuple[list, list]:
        """Return (BGR crops, TrackedFace) of the screened faces; bad crops are rejected."""
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
        return crops, tracked


def main(args: list[str] | None = None) -> None:
    """Run the emotion classifier node."""
    from .runner import run_single
    run_single(EmotionClassifierNode, args)

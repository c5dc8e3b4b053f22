"""Face detector node: ``image`` -> ``faces`` (emotion_msgs/FaceArray with tracked crops).

Images are validated cheaply in the subscription callback (fields, sizes, step, data length,
``max_image_pixels``) before they reach the newest-wins slot, so a flood of malformed images
never displaces a good frame. Detector parameters changed at runtime build a new detector
before the change is accepted (a value the detector refuses is refused with its reason, the
old one keeps running); the tracker is kept across every change, so face ids do not jump.
"""

from __future__ import annotations

import time
from typing import Any

from emotion_msgs.msg import FaceArray
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ..builders import (BUILTIN_DETECTORS, MAX_SIDE_DETECTORS, build_detector, build_pipeline,
                        crop_framing, framing_text, param_prefix)
from ..core.image_conversion import ImageConversionError, to_bgr8
from ..core.tracking import FaceTracker
from .base import LATCHED_QOS, RESULT_QOS, PerceptionNode, image_sub_qos
from .convert import faces_to_msg, image_to_numpy
from ..core.params import prefixed


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

    def check_params(self, values: dict[str, Any], changed: set[str] | None) -> None:
        """Refuse a runtime change of a parameter the running detector does not read."""
        if changed is None:
            return
        prefix = param_prefix(values["detector"], BUILTIN_DETECTORS)
        for key in sorted(changed):
            head = key.split(".", 1)[0]
            foreign = head in BUILTIN_DETECTORS and head != prefix
            if foreign or (key == "max_side" and values["detector"] not in MAX_SIDE_DETECTORS):
                raise ValueError(f"parameter '{key}' has no effect with detector "
                                 f"'{values['detector']}' (parameter 'detector' is read-only)")

    def prepare_params(self, values: dict[str, Any], changed: set[str]) -> Any:
        """Build the new detector (when one of its parameters changed); check the tracker's."""
        prefix = param_prefix(values["detector"], BUILTIN_DETECTORS)
        prepared: dict[str, Any] = {}
        if any(k == "max_side" or (prefix and k.startswith(prefix + ".")) for k in changed):
            prepared["detector"] = build_detector(values)
        if any(k.startswith("tracking.") for k in changed):
            FaceTracker(**prefixed(values, "tracking"))  # raises for a combination it refuses
        return prepared

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Swap the detector in; update crop margin, face limit and tracker in place."""
        pipeline = self.pipeline
        if pipeline is None:
            return
        if "detector" in prepared:
            pipeline.detector = prepared["detector"]
        # crop geometry (crop_margin -1: the detector's calibrated framing) and limit: in place
        pipeline.crop_margin, pipeline.crop_offset = crop_framing(pipeline.detector, values)
        pipeline.crop_align = bool(values["crop_align"])
        pipeline.max_faces = int(values["max_faces"])
        pipeline.full_scan_every = int(values["full_scan_every"])
        self._publish_framing()
        if pipeline.tracker is not None:  # the same tracker: its tracks and ids go on
            for key, value in prefixed(values, "tracking").items():
                setattr(pipeline.tracker, key, type(getattr(pipeline.tracker, key))(value))

    def open_io(self) -> None:
        """Subscribe to ``image``; publish ``faces`` and (latched) ``crop_framing``.

        ``crop_framing`` (std_msgs/String, JSON ``{crop_margin, crop_offset, crop_align}``,
        ``builders.framing_text``) is the framing the crops are cut with, the calibrated one
        resolved: the debug image node reads it, so no second parameter must match this one.
        """
        self._framing_pub = self.add_publisher(String, "crop_framing", LATCHED_QOS)
        self._publish_framing()
        self._pub = self.add_publisher(FaceArray, "faces", RESULT_QOS)
        self._worker = self.add_worker(self._process)
        self.add_subscription(Image, "image", self._on_image,
                              image_sub_qos(self.values["image_qos"]))

    def close_io(self) -> None:
        """Destroy the I/O; the framing is sent again by the next ``open_io``."""
        self._framing_pub = self._framing_sent = None
        super().close_io()

    def _publish_framing(self) -> None:
        pub = getattr(self, "_framing_pub", None)
        if pub is not None and self.pipeline is not None:
            text = framing_text(self.pipeline)
            if text != getattr(self, "_framing_sent", None):
                pub.publish(String(data=text))
                self._framing_sent = text

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the detector name, face count and the frames scanned whole / near tracks."""
        scans = self.pipeline.scans if self.pipeline is not None else {}
        return {"detector": self.values["detector"], "faces_published": self.faces_published,
                "full_scans": scans.get("full", 0), "region_scans": scans.get("regions", 0)}

    def _on_image(self, msg: Image) -> None:
        """Validate the image's fields, then hand it to the worker (newest wins)."""
        if not self.screen_image(msg):
            return
        worker = self._worker
        if worker is not None:
            worker.submit(msg)

    def _process(self, msg: Image) -> None:
        t0 = time.monotonic()
        if not self.admit(msg.header.stamp):
            return
        try:
            image = image_to_numpy(msg, self.values["max_image_pixels"])
            bgr = to_bgr8(image, msg.encoding)
        except ImageConversionError as exc:
            self.reject("image", f"rejected image: {exc}")
            return
        faces = self.pipeline.detect(bgr)
        crops = self.pipeline.crops(image, faces)
        out = faces_to_msg(msg.header, image, msg.encoding, faces, crops)
        if self.publish_output(out):
            self.faces_published += len(faces)
        self.record(msg.header.stamp, t0)


def main(args: list[str] | None = None) -> None:
    """Run the face detector node."""
    from .runner import run_single
    run_single(FaceDetectorNode, args)

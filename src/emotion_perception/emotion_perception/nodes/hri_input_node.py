"""ROS4HRI input: another detector's ``/humans/faces`` -> our ``faces`` (emotion_msgs/FaceArray).

A robot that already runs a ROS4HRI face detector (hri_face_detect or any REP-155 one) keeps
it and swaps only the recognizer: this node turns its faces into the FaceArray our classifier
(unchanged) reads, and, with ``publish_expression``, publishes the resulting ``emotion`` back as
``/humans/faces/<detector's id>/expression`` (hri_msgs/Expression), where ROS4HRI consumers
look for it.

* ``/humans/faces/tracked`` (hri_msgs/IdsList) says which faces exist: each listed id gets
  subscriptions to ``/humans/faces/<id>/<image>`` (``image``: ``cropped`` or ``aligned``,
  sensor_msgs/Image) and ``/humans/faces/<id>/roi`` (hri_msgs/NormalizedRegionOfInterest2D),
  removed as soon as the id leaves the list (the detector's list is the truth; it applies its
  own retention), or when no list came for ``tracked_timeout`` seconds. At most
  ``max_tracked`` faces; ids that are no topic-name token are refused (counted).
* Each id gets one of our integer face ids, stable while it is listed (core.hri
  .HriIdRegistry); an id that comes back after it left gets a new integer.
* One FaceArray per tracked list, with that list's header: the faces whose image of the same
  stamp arrived (core.hri.FrameAssembler: waits at most ``max_wait`` for every listed face's
  image and ROI of that stamp; a detector that publishes no ROIs costs ``max_wait`` of
  latency per frame), ROI scaled by ``image_width`` x ``image_height`` (the detector's image
  size, which its topics do not carry; a face without a ROI of that stamp takes its latest
  one, without any the whole image), detection score = the ROI's ``c``.
  Listed faces without an image of that stamp (the detector keeps a face listed a few frames
  after losing it) are counted as ``faces_missing``.

``hri_msgs`` is imported when the node configures: without it the node fails to configure
saying how to install it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from emotion_msgs.msg import EmotionArray, Face, FaceArray
from sensor_msgs.msg import Image

from ..core.hri import (FACES_NAMESPACE, TRACKED_TOPIC, FaceChannels, FrameAssembler,
                        HriIdRegistry, LiveFace, pixel_box, stamp_ns)
from ..core.image_conversion import ImageConversionError
from ..core.types import Box
from .base import RESULT_QOS, PerceptionNode, image_sub_qos
from .convert import check_image_msg, roi_from_box
from .hri_bridge_node import FACE_QOS, expression_msg, load_hri_msgs

#: seconds between the checks for frames that waited max_wait and a silent detector
FLUSH_PERIOD = 0.025


@dataclass
class _FaceIO:
    image: Any
    roi: Any
    expression: Any = None


class HriInputNode(PerceptionNode):
    """Feeds a ROS4HRI detector's faces to our classifier; publishes expressions back."""

    NODE_NAME = "hri_input"
    EXTRA_COUNTERS = ("faces_appeared", "faces_vanished", "faces_missing", "refused_ids",
                      "expressions", "unknown_faces", "no_roi")

    def setup(self, values: dict[str, Any]) -> None:
        """Import hri_msgs (fails configure with the install hint); make the bookkeeping."""
        self.msgs = load_hri_msgs()
        self.values = values
        self.registry = HriIdRegistry(grace=0.0, capacity=int(values["max_tracked"]))
        self.frames = FrameAssembler(float(values["max_wait"]), int(values["history"]),
                                     int(values["max_faces"]))
        self._lock = threading.Lock()
        self._channels: FaceChannels | None = None
        self._timer = None
        self._last_list = time.monotonic()

    def teardown(self) -> None:
        """Drop the bookkeeping."""
        self.registry = None
        self.frames = None

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Apply ``max_wait`` and ``max_faces`` to the frame grouping (the rest is read live)."""
        with self._lock:
            self.frames.max_wait = float(values["max_wait"])
            self.frames.max_faces = int(values["max_faces"])

    def open_io(self) -> None:
        """Publish ``faces``; subscribe to the tracked list (and ``emotion``); start the timer."""
        self._pub = self.add_publisher(FaceArray, "faces", RESULT_QOS)
        self._channels = FaceChannels(self._create_io, self._destroy_io)
        self.add_subscription(self.msgs.IdsList, TRACKED_TOPIC, self._on_tracked, RESULT_QOS)
        if self.values["publish_expression"]:
            self.add_subscription(EmotionArray, "emotion", self._on_emotion, RESULT_QOS)
        self._last_list = time.monotonic()
        tick = self.guarded(self._tick)  # guarded takes one argument: the timer has none
        self._timer = self.create_timer(FLUSH_PERIOD, lambda: tick(None))

    def close_io(self) -> None:
        """Remove the per-face subscriptions and publishers, then the rest."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        with self._lock:
            if self._channels is not None:
                self.registry.clear()
                self._channels.close()
            self._channels = None
        super().close_io()

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the live faces and the frame grouping's drop counts."""
        reg, frames = self.registry, self.frames
        return {"live_faces": len(reg) if reg else 0,
                "late": frames.late if frames else 0,
                "overflow": frames.overflow if frames else 0}

    # --- per-face I/O -----------------------------------------------------------------------
    def _create_io(self, face: LiveFace) -> _FaceIO:
        ns = f"{FACES_NAMESPACE}/{face.hri_id}"
        qos = image_sub_qos(self.values["image_qos"])
        hri_id = face.hri_id

        def on_face_image(msg: Image) -> None:
            self._on_image(hri_id, msg)

        def on_face_roi(msg: Any) -> None:
            self._on_roi(hri_id, msg)

        io = _FaceIO(
            self.create_subscription(Image, f"{ns}/{self.values['image']}",
                                     self.guarded(on_face_image), qos),
            self.create_subscription(self.msgs.NormalizedRegionOfInterest2D, f"{ns}/roi",
                                     self.guarded(on_face_roi), qos))
        if self.values["publish_expression"]:
            io.expression = self.create_publisher(self.msgs.Expression, f"{ns}/expression",
                                                  FACE_QOS)
        return io

    def _destroy_io(self, io: _FaceIO) -> None:
        self.destroy_subscription(io.image)
        self.destroy_subscription(io.roi)
        if io.expression is not None:
            self.destroy_publisher(io.expression)

    def _apply(self, changes) -> None:
        """Follow a registry change (lock held)."""
        self._channels.apply(changes)
        for face in changes.vanished:
            self.frames.forget(face.hri_id)
        self.stats.count("faces_appeared", len(changes.appeared))
        self.stats.count("faces_vanished", len(changes.vanished))

    # --- inputs -----------------------------------------------------------------------------
    def _on_tracked(self, msg: Any) -> None:
        self.stats.count("received")
        ids = self.limit_faces(list(msg.ids))
        now = time.monotonic()
        with self._lock:
            if self._channels is None:
                return
            self._last_list = now
            changes = self.registry.update(ids, now)
            if changes.refused:
                self.stats.count("refused_ids", len(changes.refused))
                self.reject("ids", f"ignored {len(changes.refused)} face id(s) of "
                            f"{TRACKED_TOPIC} that cannot name a topic or exceed max_tracked: "
                            f"{', '.join(repr(i) for i in changes.refused[:5])}",
                            len(changes.refused))
            self._apply(changes)
            live = [i for i in dict.fromkeys(ids) if self.registry.by_hri_id(i) is not None]
            self.frames.tracked(stamp_ns(msg.header.stamp), msg.header, live, now)
            self._flush(now)

    def _on_image(self, hri_id: str, msg: Image) -> None:
        try:
            check_image_msg(msg, self.values["max_image_pixels"])
        except ImageConversionError as exc:
            self.reject("image", f"rejected the {self.values['image']} image of face "
                        f"{hri_id}: {exc}")
            return
        with self._lock:
            if self._channels is None or self.registry.by_hri_id(hri_id) is None:
                return
            self.frames.image(hri_id, stamp_ns(msg.header.stamp), msg)
            self._flush(time.monotonic())

    def _on_roi(self, hri_id: str, msg: Any) -> None:
        with self._lock:
            if self._channels is not None and self.registry.by_hri_id(hri_id) is not None:
                self.frames.roi(hri_id, stamp_ns(msg.header.stamp), msg)
                self._flush(time.monotonic())

    def _tick(self, _unused: Any = None) -> None:
        now = time.monotonic()
        with self._lock:
            if self._channels is None:
                return
            if len(self.registry) and now - self._last_list > self.values["tracked_timeout"]:
                self.warn_limited("silent", f"no {TRACKED_TOPIC} for "
                                  f"{self.values['tracked_timeout']:g} s: forgetting "
                                  f"{len(self.registry)} face(s)")
                self._apply(self.registry.clear())
            self._flush(now)

    def _flush(self, now: float) -> None:
        """Publish the frames that are ready (lock held)."""
        for frame in self.frames.pop_ready(now):
            t0 = time.monotonic()
            self.publish_output(self._face_array(frame))
            self.stats.count("faces_missing", len(frame.missing))
            self.record(frame.header.stamp, t0)

    def _face_array(self, frame) -> FaceArray:
        width, height = int(self.values["image_width"]), int(self.values["image_height"])
        out = FaceArray(header=frame.header, image_width=width, image_height=height)
        for hri_id, image, roi in frame.faces:
            face = self.registry.by_hri_id(hri_id)
            if face is None:  # left the list since: its id means nothing any more
                continue
            box, score = Box(0, 0, width, height), 1.0
            if roi is None:
                self.stats.count("no_roi")
            else:
                try:
                    box = pixel_box(roi.xmin, roi.ymin, roi.xmax, roi.ymax, width, height)
                except ValueError as exc:
                    self.reject("roi", f"unusable roi of face {hri_id}: {exc}; using the "
                                "whole image")
                c = float(roi.c)
                score = min(1.0, max(0.0, c)) if math.isfinite(c) else 1.0
            out.faces.append(Face(face_id=face.face_id, roi=roi_from_box(box),
                                  detection_score=score, crop=image))
        return out

    def _on_emotion(self, msg: EmotionArray) -> None:
        emotions = self.limit_faces(list(msg.emotions))
        with self._lock:
            if self._channels is None:
                return
            for e in emotions:
                face = self.registry.by_face_id(int(e.face_id))
                io = self._channels.get(face.hri_id) if face else None
                if io is None or io.expression is None:
                    self.stats.count("unknown_faces")  # left the detector's list meanwhile
                    continue
                try:
                    out = expression_msg(self.msgs, msg.header, e)
                except ValueError as exc:
                    self.reject("emotion", f"no expression for face {face.hri_id}: {exc}")
                    continue
                io.expression.publish(out)
                self.stats.count("expressions")


def main(args: list[str] | None = None) -> None:
    """Run the ROS4HRI input node."""
    from .runner import run_single
    run_single(HriInputNode, args)

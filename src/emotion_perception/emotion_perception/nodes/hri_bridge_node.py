"""ROS4HRI output: ``faces`` + ``emotion`` -> REP-155 topics under ``/humans/faces``.

For robots whose software reasons about people through ROS4HRI (``hri_msgs``, pyhri/libhri):

* ``/humans/faces/tracked`` (hri_msgs/IdsList): the live faces, on every ``faces`` message
  (with its header) and whenever a face leaves;
* per face ``/humans/faces/<id>/expression`` (hri_msgs/Expression, from ``emotion``: our label
  mapped onto the message's constants, confidence, valence, arousal: see
  :mod:`emotion_perception.core.hri` for the mapping and what it cannot express),
  ``/humans/faces/<id>/roi`` (hri_msgs/NormalizedRegionOfInterest2D: the box over the image
  size, ``c`` = detection score) and ``/humans/faces/<id>/cropped`` (sensor_msgs/Image: the
  detector's crop, as it is).

``<id>`` is ``id_prefix`` + our stable track id (``f17``). The per-face publishers are created
when a track first appears and destroyed ``grace`` seconds after it was last seen (checked on
every message and on a 10 Hz timer, so faces also leave when the detector stops), at most
``max_tracked`` at once: the ids that pass by leave nothing behind (core.hri.TrackRegistry).
Faces with id 0 (untracked) have no ROS4HRI id and are skipped (counted as ``untracked``).
Times are this process's monotonic receive times, not the stamps: a replayed bag or a stamp of
another clock ages faces like live data. The per-face publishers are reliable with depth 1, as
hri_face_detect's are. ``hri_msgs`` is imported when the node configures: without it the node
fails to configure saying how to install it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from emotion_msgs.msg import EmotionArray, FaceArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..core.hri import (FACES_NAMESPACE, TRACKED_TOPIC, FaceChannels, LiveFace, TrackRegistry,
                        normalized_roi, to_expression)
from .base import RESULT_QOS, PerceptionNode
from .convert import box_from_roi

#: the per-face topics' QoS (hri_face_detect publishes them reliable with depth 1)
FACE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)
#: seconds between the checks for faces whose grace ran out
EXPIRE_PERIOD = 0.1

INSTALL_HINT = ("install it (apt install ros-$ROS_DISTRO-hri-msgs) or build "
                "https://github.com/ros4hri/hri_msgs (branch humble-devel, also for Jazzy) in "
                "a colcon workspace and source its install/setup.bash (README, ROS4HRI)")


def load_hri_msgs() -> Any:
    """Return the ``hri_msgs.msg`` module; raise RuntimeError saying how to get it."""
    try:
        from hri_msgs import msg
        for name in ("Expression", "IdsList", "NormalizedRegionOfInterest2D"):
            getattr(msg, name)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"the ROS4HRI nodes need hri_msgs, which is not importable "
                           f"({exc}): {INSTALL_HINT}") from exc
    return msg


def expression_msg(msgs: Any, header: Any, emotion: Any) -> Any:
    """Return the hri_msgs/Expression of one emotion_msgs/Emotion (ValueError if unusable)."""
    fields = to_expression(emotion.label_name, emotion.confidence, emotion.probabilities,
                           emotion.valence, emotion.arousal)
    return msgs.Expression(header=header, expression=fields.expression, valence=fields.valence,
                           arousal=fields.arousal, confidence=fields.confidence)


@dataclass
class _FacePubs:
    expression: Any
    roi: Any = None
    cropped: Any = None


class HriBridgeNode(PerceptionNode):
    """Publishes our tracked faces and their emotions as ROS4HRI faces."""

    NODE_NAME = "hri_bridge"
    EXTRA_COUNTERS = ("faces_appeared", "faces_vanished", "untracked", "expressions")

    def setup(self, values: dict[str, Any]) -> None:
        """Import hri_msgs (fails configure with the install hint) and make the registry."""
        self.msgs = load_hri_msgs()
        self.values = values
        self.registry = TrackRegistry(float(values["grace"]), int(values["max_tracked"]),
                                      values["id_prefix"])
        self._lock = threading.Lock()
        self._channels: FaceChannels | None = None
        self._timer = None
        self._frame_id = ""

    def teardown(self) -> None:
        """Drop the registry."""
        self.registry = None

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Apply a new ``grace`` (faces past it leave at the next check)."""
        if "grace" in changed:
            self.registry.grace = float(values["grace"])

    def open_io(self) -> None:
        """Publish the tracked list; subscribe to ``faces`` and ``emotion``; start the timer."""
        self._pub = self.add_publisher(self.msgs.IdsList, TRACKED_TOPIC, RESULT_QOS)
        self._channels = FaceChannels(self._create_pubs, self._destroy_pubs)
        self.add_subscription(FaceArray, "faces", self._on_faces, RESULT_QOS)
        self.add_subscription(EmotionArray, "emotion", self._on_emotion, RESULT_QOS)
        expire = self.guarded(self._expire)  # guarded takes one argument: the timer has none
        self._timer = self.create_timer(EXPIRE_PERIOD, lambda: expire(None))

    def close_io(self) -> None:
        """Say that every face left, destroy the per-face publishers, then the rest."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        with self._lock:
            if self._channels is not None and self.registry is not None:
                self._apply(self.registry.clear())
                try:
                    self._publish_tracked(None)
                except Exception:  # the context may already be shut down: nobody listens
                    pass
                self._channels.close()
            self._channels = None
        super().close_io()

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the number of live faces and of faces evicted by ``max_tracked``."""
        reg = self.registry
        return {"live_faces": len(reg) if reg else 0, "evicted": reg.evicted if reg else 0}

    # --- per-face publishers ----------------------------------------------------------------
    def _create_pubs(self, face: LiveFace) -> _FacePubs:
        ns = f"{FACES_NAMESPACE}/{face.hri_id}"
        pubs = _FacePubs(self.create_publisher(self.msgs.Expression, f"{ns}/expression",
                                               FACE_QOS))
        if self.values["publish_roi"]:
            pubs.roi = self.create_publisher(self.msgs.NormalizedRegionOfInterest2D,
                                             f"{ns}/roi", FACE_QOS)
        if self.values["publish_cropped"]:
            pubs.cropped = self.create_publisher(Image, f"{ns}/cropped", FACE_QOS)
        return pubs

    def _destroy_pubs(self, pubs: _FacePubs) -> None:
        for pub in (pubs.expression, pubs.roi, pubs.cropped):
            if pub is not None:
                self.destroy_publisher(pub)

    def _apply(self, changes) -> None:
        """Create/destroy publishers for a registry change (lock held)."""
        if self._channels is None:
            return
        self._channels.apply(changes)
        self.stats.count("faces_appeared", len(changes.appeared))
        self.stats.count("faces_vanished", len(changes.vanished))

    def _publish_tracked(self, header: Any) -> None:
        """Publish the live ids (lock held); ``header`` None: now, the last frame_id."""
        msg = self.msgs.IdsList(ids=self.registry.hri_ids())
        if header is None:
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self._frame_id
        else:
            msg.header = header
            self._frame_id = header.frame_id
        self.publish_output(msg)

    # --- inputs -----------------------------------------------------------------------------
    def _tracked_ids(self, ids: list[int]) -> list[int]:
        tracked = [i for i in ids if i > 0]
        if len(tracked) < len(ids):
            self.stats.count("untracked", len(ids) - len(tracked))
        return tracked

    def _on_faces(self, msg: FaceArray) -> None:
        t0 = time.monotonic()
        self.stats.count("received")
        faces = self.limit_faces(list(msg.faces))
        with self._lock:
            if self._channels is None:
                return
            changes = self.registry.update(self._tracked_ids([int(f.face_id) for f in faces]),
                                           time.monotonic())
            self._apply(changes)
            width, height = int(msg.image_width), int(msg.image_height)
            for face in faces:
                live = self.registry.get(int(face.face_id))
                pubs = self._channels.get(live.hri_id) if live else None
                if pubs is None:
                    continue
                if pubs.roi is not None and width > 0 and height > 0:
                    pubs.roi.publish(self._roi_msg(msg.header, face, width, height))
                if pubs.cropped is not None and face.crop.width > 0:
                    pubs.cropped.publish(face.crop)
            self._publish_tracked(msg.header)
        self.record(msg.header.stamp, t0)

    def _roi_msg(self, header: Any, face: Any, width: int, height: int) -> Any:
        xmin, ymin, xmax, ymax = normalized_roi(box_from_roi(face.roi), width, height)
        score = float(face.detection_score)
        score = min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0
        return self.msgs.NormalizedRegionOfInterest2D(header=header, xmin=xmin, ymin=ymin,
                                                      xmax=xmax, ymax=ymax, c=score)

    def _on_emotion(self, msg: EmotionArray) -> None:
        emotions = self.limit_faces(list(msg.emotions))
        with self._lock:
            if self._channels is None:
                return
            # a face with an emotion is live (also when 'faces' is not connected), but an
            # emotion list says nothing about the faces it lacks: nobody leaves here
            changes = self.registry.update(
                self._tracked_ids([int(e.face_id) for e in emotions]), time.monotonic(),
                expire=False)
            if changes:
                self._apply(changes)
                self._publish_tracked(msg.header)
            for e in emotions:
                live = self.registry.get(int(e.face_id)) if e.face_id > 0 else None
                pubs = self._channels.get(live.hri_id) if live else None
                if pubs is None:
                    continue
                try:
                    out = expression_msg(self.msgs, msg.header, e)
                except ValueError as exc:
                    self.reject("emotion", f"no expression for face {e.face_id}: {exc}")
                    continue
                pubs.expression.publish(out)
                self.stats.count("expressions")

    def _expire(self, _unused: Any = None) -> None:
        with self._lock:
            if self._channels is None:
                return
            changes = self.registry.expire(time.monotonic())
            if changes:
                self._apply(changes)
                self._publish_tracked(None)


def main(args: list[str] | None = None) -> None:
    """Run the ROS4HRI output node."""
    from .runner import run_single
    run_single(HriBridgeNode, args)

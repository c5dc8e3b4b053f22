"""Temporal smoother node: ``emotion_raw`` -> ``emotion``, smoothed per tracked face id.

Every output message says whether its values are smoothed (``smoothed``, ``smoother``); the
per-frame stream stays available on ``emotion_raw``. Smoothing uses header stamps, so replayed
bags smooth exactly like live data.

The subscription callback only screens a message (at most ``max_faces`` entries; entries with
NaN, negative or unnormalised probabilities, a bad score or ROI are rejected and counted) and
hands it to the newest-wins worker: the smoothing itself (for ``lstm`` a model forward pass)
never runs on the executor thread, so it cannot block the other nodes of an in-process graph.
A smoother parameter changed at runtime builds a new smoother before the change is accepted
(e.g. an ``lstm.window`` the model cannot take is refused with the reason; the running
smoother stays). The new smoother starts without history.

Many cameras (parameter ``cameras``, e.g. ``front,back``): ``<camera>/emotion_raw`` ->
``<camera>/emotion`` for each, with one smoother (and so one set of tracks) per camera, since
face ids are unique only within a camera: face 3 of ``front`` and face 3 of ``back`` never
share state. Each camera has its own newest-wins slot; ``max_tracks`` bounds each camera's
smoother. (With ``lstm`` each camera's smoother loads the model.)
"""

from __future__ import annotations

import time
from typing import Any

from emotion_msgs.msg import EmotionArray

from ..builders import BUILTIN_SMOOTHERS, build_smoother, param_prefix, smooth_estimates
from .base import PerceptionNode, stamp_seconds
from ..core.multicam import parse_cameras
from .convert import emotion_problem, estimate_to_msg, is_finite_emotion, msg_to_estimate
from .multicam import CameraIO


def smooth_array(smoother, name: str, msg: EmotionArray) -> EmotionArray:
    """Return the smoothed copy of one EmotionArray (non-finite entries are dropped)."""
    stamp = stamp_seconds(msg.header.stamp)
    good = [e for e in msg.emotions if is_finite_emotion(e)]
    smoothed = smooth_estimates(smoother, name, [msg_to_estimate(e, stamp) for e in good], stamp)
    out = EmotionArray(header=msg.header)
    for e, est in zip(good, smoothed):
        m = estimate_to_msg(e.header, est)
        if is_finite_emotion(m):
            out.emotions.append(m)
    return out


class EmotionSmootherNode(CameraIO, PerceptionNode):
    """Smooths each face's probabilities over time."""

    NODE_NAME = "emotion_smoother"
    EXTRA_COUNTERS = ("invalid_outputs",)

    def setup(self, values: dict[str, Any]) -> None:
        """Create the smoother (loads the LSTM model for ``lstm``)."""
        self.values = values
        self.setup_cameras(values)
        built = self._build(values)
        self.smoother, self.smoothers = built

    def _build(self, values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Return (the smoother, {camera: its own smoother}) for ``values``.

        Single-camera: one smoother and no per-camera ones. With ``cameras``: one per camera
        (``smoother`` is the first camera's, for what reads the node's smoother).
        """
        if not self.cameras:
            return build_smoother(values), {}
        per_camera = {cam: build_smoother(values) for cam in self.cameras}
        return per_camera[self.cameras[0]], per_camera

    def teardown(self) -> None:
        """Drop all state."""
        self.smoother = None
        self.smoothers = {}

    def _reads(self, values: dict[str, Any], key: str) -> bool:
        """Return True when the configured smoother is built with parameter ``key``."""
        if key in ("max_gap", "max_tracks"):
            return True
        prefix = param_prefix(values["smoother"], BUILTIN_SMOOTHERS)
        return bool(prefix) and key.startswith(prefix + ".")

    def check_params(self, values: dict[str, Any], changed: set[str] | None) -> None:
        """Refuse a runtime change of another smoother's parameter (it would do nothing)."""
        if changed is None:
            parse_cameras(values["cameras"])  # a malformed list fails configure
            return
        for key in sorted(changed):
            if key.split(".", 1)[0] in BUILTIN_SMOOTHERS and not self._reads(values, key):
                raise ValueError(f"parameter '{key}' has no effect with smoother "
                                 f"'{values['smoother']}' (parameter 'smoother' is read-only)")

    def prepare_params(self, values: dict[str, Any], changed: set[str]) -> Any:
        """Build the new smoother when one of its parameters changed (raises when refused)."""
        if any(self._reads(values, key) for key in changed):
            return self._build(values)
        return None

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Swap the new smoother(s) in."""
        if prepared is not None:
            self.smoother, self.smoothers = prepared

    def open_io(self) -> None:
        """Subscribe to ``emotion_raw``; publish ``emotion`` (per camera with ``cameras``)."""
        self.open_camera_io(EmotionArray, "emotion_raw", "emotion", self.screen, self._process,
                            self._process_cameras)

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the smoother name (and the per-camera counters)."""
        return {"smoother": self.values["smoother"], **self.camera_diagnostics()}

    def screen(self, msg: EmotionArray) -> EmotionArray:
        """Return ``msg`` with at most ``max_faces`` entries, the unusable ones rejected."""
        good = []
        for e in self.limit_faces(list(msg.emotions)):
            problem = emotion_problem(e)
            if problem:
                self.reject("emotion", f"rejected emotion of face {e.face_id}: {problem}")
            else:
                good.append(e)
        msg.emotions = good
        return msg

    def _process_cameras(self, items: dict[str, EmotionArray]) -> None:
        """Smooth the waiting message of each camera (the per-camera worker's function)."""
        for cam, msg in items.items():
            self._process(msg, cam)

    def _process(self, msg: EmotionArray, camera: str = "") -> None:
        """Smooth one message (of ``camera``'s smoother with ``cameras``) and publish it."""
        t0 = time.monotonic()
        if not self.admit(msg.header.stamp):
            if camera:
                self.camera_stats.count(camera, "stale")
            return
        smoother = self.smoothers[camera] if camera else self.smoother
        try:
            out = smooth_array(smoother, self.values["smoother"], msg)
        except Exception as exc:  # keep running; report
            self.stats.error(f"{type(exc).__name__}: {exc}")
            self.warn_limited("smooth", f"smoothing failed: {exc}")
            return
        lost = len(msg.emotions) - len(out.emotions)
        if lost:  # the smoother produced non-finite values for these: dropped, counted
            self.stats.count("invalid_outputs", lost)
            self.warn_limited("nan", f"smoother returned non-finite values for {lost} face(s)")
        if camera:
            pub = self._camera_pubs.get(camera)
            if pub is None:  # closing
                return
            pub.publish(out)
            self.stats.count("published")
            self.camera_stats.count(camera, "published")
        else:
            self.publish_output(out)
        self.record(msg.header.stamp, t0)


def main(args: list[str] | None = None) -> None:
    """Run the smoother node."""
    from .runner import run_single
    run_single(EmotionSmootherNode, args)

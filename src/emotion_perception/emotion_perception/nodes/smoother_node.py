"""Temporal smoother node: ``emotion_raw`` -> ``emotion``, smoothed per tracked face id.

Every output message says whether its values are smoothed (``smoothed``, ``smoother``); the
per-frame stream stays available on ``emotion_raw``. Smoothing uses header stamps, so replayed
bags smooth exactly like live data.
"""

from __future__ import annotations

import time
from typing import Any

from emotion_msgs.msg import EmotionArray

from ..builders import build_smoother, smooth_estimates
from .base import RESULT_QOS, PerceptionNode, stamp_seconds
from .convert import estimate_to_msg, is_finite_emotion, msg_to_estimate


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


class EmotionSmootherNode(PerceptionNode):
    """Smooths each face's probabilities over time."""

    NODE_NAME = "emotion_smoother"

    def setup(self, values: dict[str, Any]) -> None:
        """Create the smoother (loads the LSTM model for ``lstm``)."""
        self.values = values
        self.smoother = build_smoother(values)

    def teardown(self) -> None:
        """Drop all state."""
        self.smoother = None

    def open_io(self) -> None:
        """Subscribe to ``emotion_raw``; publish ``emotion``."""
        self._pub = self.add_publisher(EmotionArray, "emotion", RESULT_QOS)
        self.add_subscription(EmotionArray, "emotion_raw", self._on_raw, RESULT_QOS)

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add the smoother name."""
        return {"smoother": self.values["smoother"]}

    def _on_raw(self, msg: EmotionArray) -> None:
        t0 = time.monotonic()
        self.stats.count("received")
        if self.params_changed.is_set():
            self.params_changed.clear()
            self.values = self.param_values()
            self.smoother = build_smoother(self.values)
        try:
            out = smooth_array(self.smoother, self.values["smoother"], msg)
        except Exception as exc:  # keep running; report
            self.stats.error(f"{type(exc).__name__}: {exc}")
            self.warn_limited("smooth", f"smoothing failed: {exc}")
            return
        if self._pub is not None:
            self._pub.publish(out)
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.processed(now - stamp_seconds(msg.header.stamp), time.monotonic() - t0)


def main(args: list[str] | None = None) -> None:
    """Run the smoother node."""
    from .runner import run_single
    run_single(EmotionSmootherNode, args)

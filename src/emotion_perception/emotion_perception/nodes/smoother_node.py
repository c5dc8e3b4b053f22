"""Temporal smoother node: ``emotion_raw`` -> ``emotion``, smoothed per tracked face id.

Every output message says whether its values are smoothed (``smoothed``, ``smoother``); the
per-frame stream stays available on ``emotion_raw``. Smoothing uses header stamps, so replayed
bags smooth exactly like live data.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from emotion_msgs.msg import EmotionArray

from ..core import plugins
from .base import RESULT_QOS, PerceptionNode, stamp_seconds
from .convert import estimate_to_msg, is_finite_emotion, msg_to_estimate
from .params import prefixed


def build_smoother(values: dict[str, Any]):
    """Create the configured smoother plugin."""
    name = values["smoother"]
    kwargs: dict[str, Any] = {"max_gap": values["max_gap"], "max_tracks": values["max_tracks"]}
    if name in ("ema", "hysteresis", "lstm"):
        kwargs.update(prefixed(values, name))
    return plugins.create("smoother", name, **kwargs)


def smooth_array(smoother, name: str, msg: EmotionArray) -> EmotionArray:
    """Return the smoothed copy of one EmotionArray (non-finite entries are dropped)."""
    stamp = stamp_seconds(msg.header.stamp)
    good = [e for e in msg.emotions if is_finite_emotion(e)]
    items = [(int(e.face_id), stamp, np.asarray(e.probabilities, np.float32)) for e in good]
    if hasattr(smoother, "update_many"):
        smoothed = smoother.update_many(items)
    else:
        smoothed = [smoother.update(*item) for item in items]
    smoother.prune(stamp)
    out = EmotionArray(header=msg.header)
    for e, probs in zip(good, smoothed):
        est = msg_to_estimate(e, stamp)
        est.probabilities = np.asarray(probs, np.float32)
        est.smoothed = name != "none"
        est.smoother = name if name != "none" else ""
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
        self._pub = self.create_publisher(EmotionArray, "emotion", RESULT_QOS)
        self._sub = self.create_subscription(EmotionArray, "emotion_raw", self._on_raw,
                                             RESULT_QOS)

    def close_io(self) -> None:
        """Remove the I/O."""
        if getattr(self, "_sub", None) is not None:
            self.destroy_subscription(self._sub)
            self._sub = None
        if getattr(self, "_pub", None) is not None:
            self.destroy_publisher(self._pub)
            self._pub = None

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

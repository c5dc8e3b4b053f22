"""The smoother node over real DDS: a noisy sequence with one expression change switches once."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import graph_connected, wait_for
from test_smoothing import changes, noisy_sequence

pytestmark = pytest.mark.ros


def _stamp(t: float) -> tuple[int, int]:
    ns = int(round(t * 1e9))
    return 50 + ns // 1_000_000_000, ns % 1_000_000_000


def _key(stamp) -> tuple[int, int]:
    return stamp.sec, stamp.nanosec


@pytest.mark.parametrize("smoother", ["ema", "hysteresis"])
def test_noisy_sequence_switches_once_after_smoothing(rclpy_session, spinner, smoother):
    import rclpy
    from emotion_msgs.msg import Emotion, EmotionArray
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.base import RESULT_QOS
    from emotion_perception.nodes.smoother_node import EmotionSmootherNode

    ns = f"/smooth_{smoother}"
    node = EmotionSmootherNode(namespace=ns, parameter_overrides=[
        Parameter("smoother", value=smoother), Parameter("ema.tau", value=0.6),
        Parameter("hysteresis.window", value=9)])
    probe = rclpy.create_node(f"smooth_probe_{smoother}")
    pub = probe.create_publisher(EmotionArray, f"{ns}/emotion_raw", RESULT_QOS)
    got: dict[tuple[int, int], EmotionArray] = {}
    probe.create_subscription(EmotionArray, f"{ns}/emotion",
                              lambda m: got.__setitem__(_key(m.header.stamp), m), RESULT_QOS)
    spinner([node, probe])
    assert wait_for(lambda: graph_connected([node]) and node._pub is not None
                    and node._pub.get_subscription_count() >= 1, 30)

    stamps, probs, truth = noisy_sequence(seed=3, n=90, switch=45)
    raw_labels = probs.argmax(axis=1)
    assert changes(raw_labels) >= 10, "the input must flicker for the test to mean anything"
    for i, (t, p) in enumerate(zip(stamps, probs)):
        msg = EmotionArray()
        msg.header.stamp.sec, msg.header.stamp.nanosec = _stamp(t)
        msg.header.frame_id = "cam"
        msg.emotions = [Emotion(header=msg.header, face_id=4, label=int(p.argmax()),
                                probabilities=p.astype(np.float32).tolist())]
        pub.publish(msg)
        assert wait_for(lambda: _stamp(t) in got, 10), f"no smoothed output for frame {i}"

    out = [got[_stamp(t)] for t in stamps]
    labels = np.array([m.emotions[0].label for m in out])
    assert all(m.emotions[0].smoothed and m.emotions[0].smoother == smoother for m in out)
    assert all(m.emotions[0].face_id == 4 and m.header.frame_id == "cam" for m in out)
    assert all(abs(sum(m.emotions[0].probabilities) - 1) < 1e-4 for m in out)
    # after settling (a window's worth of frames), the label is a, then switches once to b
    settle = 12
    settled = labels[settle:]
    assert changes(settled) == 1, (changes(settled), labels.tolist())
    assert settled[0] == truth[0] and settled[-1] == truth[-1]
    switch_at = settle + int(np.flatnonzero(settled[1:] != settled[:-1])[0]) + 1
    assert 45 <= switch_at <= 45 + 12, f"switched at frame {switch_at}"

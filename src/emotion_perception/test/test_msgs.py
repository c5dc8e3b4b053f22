"""emotion_msgs: importable after the build, constants agree with the core, DDS round trip."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import wait_for

msg_mod = pytest.importorskip("emotion_msgs.msg")


def test_class_constants_match_core():
    from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES

    E = msg_mod.Emotion
    assert E.NUM_CLASSES == NUM_CLASSES
    assert tuple(E.CLASS_NAMES.split(",")) == CLASS_NAMES
    for i, name in enumerate(CLASS_NAMES):
        assert getattr(E, name.upper()) == i
    assert len(E().probabilities) == NUM_CLASSES


@pytest.mark.ros
def test_emotion_array_round_trip_over_dds(rclpy_session, spinner):
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_node = rclpy.create_node("msg_rt_pub")
    sub_node = rclpy.create_node("msg_rt_sub")
    got = []
    sub_node.create_subscription(msg_mod.EmotionArray, "/msg_rt/emotion", got.append, qos)
    pub = pub_node.create_publisher(msg_mod.EmotionArray, "/msg_rt/emotion", qos)
    spinner([pub_node, sub_node])
    assert wait_for(lambda: pub.get_subscription_count() >= 1), "subscriber never matched"

    probs = np.array([0.05, 0.05, 0.1, 0.5, 0.1, 0.1, 0.1], np.float32)
    sent = msg_mod.EmotionArray()
    sent.header.stamp.sec, sent.header.stamp.nanosec = 42, 123
    sent.header.frame_id = "cam"
    e = msg_mod.Emotion(face_id=7, label=3, label_name="happy", confidence=0.5,
                        probabilities=probs.tolist(), smoothed=True, smoother="ema",
                        valence=0.4, arousal=float("nan"))
    e.roi.x_offset, e.roi.y_offset, e.roi.width, e.roi.height = 10, 20, 30, 40
    sent.emotions = [e]
    pub.publish(sent)
    assert wait_for(lambda: len(got) >= 1), "message never arrived"
    r = got[0]
    assert (r.header.stamp.sec, r.header.stamp.nanosec, r.header.frame_id) == (42, 123, "cam")
    (re,) = r.emotions
    assert re.face_id == 7 and re.label_name == "happy" and re.smoothed and re.smoother == "ema"
    np.testing.assert_allclose(re.probabilities, probs)
    assert (re.roi.x_offset, re.roi.y_offset, re.roi.width, re.roi.height) == (10, 20, 30, 40)
    assert np.isnan(re.arousal)


def test_face_array_carries_crop():
    from emotion_perception.nodes.convert import faces_to_msg
    from emotion_perception.core.types import Box, TrackedFace
    from std_msgs.msg import Header

    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    crop = image[10:30, 20:40]
    msg = faces_to_msg(Header(frame_id="f"), image, "bgr8",
                       [TrackedFace(3, Box(20, 10, 20, 20), 0.9, True)], [crop])
    assert (msg.image_width, msg.image_height) == (80, 60)
    (face,) = msg.faces
    assert face.face_id == 3 and face.crop.encoding == "bgr8"
    assert (face.crop.width, face.crop.height, face.crop.step) == (20, 20, 60)
    assert bytes(face.crop.data) == crop.tobytes()

"""ROS4HRI nodes (issue #20): hri_bridge (our faces out) and hri_input (their faces in).

Run only where hri_msgs is importable (build ros4hri/hri_msgs outside the repository: README,
ROS4HRI); the label mapping and id bookkeeping are tested without it in test_hri_core.py.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from conftest import other_value, wait_for

pytestmark = pytest.mark.ros

#: the parameters settable at runtime whose effect a test below checks (test_live_params checks
#: that this is every settable parameter of the two nodes)
HRI_COVERED = {
    "hri_bridge": {"diagnostics_period", "max_faces", "grace"},
    "hri_input": {"diagnostics_period", "max_image_pixels", "max_faces", "image_width",
                  "image_height", "max_wait", "tracked_timeout"},
}


@pytest.fixture
def hri_msgs():
    """The hri_msgs.msg module, or skip."""
    return pytest.importorskip("hri_msgs.msg", reason="hri_msgs is not installed")


def _node(cls_name: str, **params):
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.hri_bridge_node import HriBridgeNode
    from emotion_perception.nodes.hri_input_node import HriInputNode

    cls = {"hri_bridge": HriBridgeNode, "hri_input": HriInputNode}[cls_name]
    params.setdefault("autostart", False)
    return cls(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def _activate(node):
    node.trigger_configure()
    assert not node.configure_error, node.configure_error
    node.trigger_activate()
    return node


def _close(node):
    node._close_all()
    node.destroy_node()


def _image(size=16, value=128, header=None):
    from emotion_perception.nodes.convert import array_to_image

    return array_to_image(np.full((size, size, 3), value, np.uint8), "bgr8", header)


def _header(sec=100, nanosec=0, frame_id="camera"):
    from std_msgs.msg import Header

    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def _faces(ids, header=None, width=640, height=480):
    from emotion_msgs.msg import Face, FaceArray
    from sensor_msgs.msg import RegionOfInterest

    msg = FaceArray(header=header or _header(), image_width=width, image_height=height)
    for i in ids:
        msg.faces.append(Face(face_id=i, roi=RegionOfInterest(x_offset=64, y_offset=48,
                                                              width=128, height=96),
                              detection_score=0.75, crop=_image(header=msg.header)))
    return msg


def _emotions(ids, label="happy", header=None):
    from emotion_msgs.msg import Emotion, EmotionArray

    from emotion_perception.core.classes import CLASS_NAMES, VALENCE_AROUSAL

    k = CLASS_NAMES.index(label)
    probs = [0.05] * 7
    probs[k] = 0.7
    msg = EmotionArray(header=header or _header())
    for i in ids:
        msg.emotions.append(Emotion(header=msg.header, face_id=i, label=k, label_name=label,
                                    confidence=0.7, probabilities=probs,
                                    valence=VALENCE_AROUSAL[k][0],
                                    arousal=VALENCE_AROUSAL[k][1]))
    return msg


def _topics(node, kind="publishers"):
    return sorted(x.topic_name for x in getattr(node, kind))


# --- the message package --------------------------------------------------------------------

def test_mapping_uses_the_installed_expression_constants(hri_msgs):
    from emotion_perception.core.hri import CONSTANT_OF_CLASS, EXPRESSION_OF_CLASS

    for ours, constant in CONSTANT_OF_CLASS.items():
        assert getattr(hri_msgs.Expression, constant) == EXPRESSION_OF_CLASS[ours], ours
    roi = hri_msgs.NormalizedRegionOfInterest2D()
    assert {"header", "xmin", "ymin", "xmax", "ymax", "c"} <= set(roi.get_fields_and_field_types())


def test_without_hri_msgs_configure_fails_saying_how_to_install(rclpy_session, monkeypatch):
    monkeypatch.setitem(sys.modules, "hri_msgs", None)  # import hri_msgs raises ImportError
    node = _node("hri_bridge")
    try:
        node.trigger_configure()
        assert "hri_msgs" in node.configure_error and "ros4hri/hri_msgs" in node.configure_error
    finally:
        node.destroy_node()


# --- hri_bridge -----------------------------------------------------------------------------

def test_bridge_publishes_per_face_topics_and_removes_them(rclpy_session, hri_msgs):
    node = _activate(_node("hri_bridge", grace=0.0))
    tracked: list = []
    node._pub.publish = tracked.append
    try:
        base = _topics(node)
        node._on_faces(_faces([3, 0, 5]))
        assert tracked[-1].ids == ["f3", "f5"] and tracked[-1].header.stamp.sec == 100
        assert {"/humans/faces/f3/expression", "/humans/faces/f3/roi",
                "/humans/faces/f3/cropped", "/humans/faces/f5/expression"} <= set(_topics(node))
        assert node.stats.counters["untracked"] == 1
        sent = []
        node._channels.get("f3").expression.publish = sent.append
        roi = []
        node._channels.get("f5").roi.publish = roi.append
        node._on_faces(_faces([3, 5]))
        assert roi[0].xmin == pytest.approx(0.1) and roi[0].ymax == pytest.approx(0.3)
        assert roi[0].c == pytest.approx(0.75) and roi[0].header.stamp.sec == 100
        node._on_emotion(_emotions([3], "disgust"))
        (e,) = sent
        assert e.expression == hri_msgs.Expression.DISGUSTED and e.confidence == pytest.approx(0.7)
        assert (e.valence, e.arousal) == pytest.approx((-0.7, 0.3))
        node._on_faces(_faces([5]))  # grace 0: f3 leaves with the next frame without it
        assert tracked[-1].ids == ["f5"]
        assert "/humans/faces/f3/expression" not in _topics(node)
        node._on_faces(_faces([]))
        assert tracked[-1].ids == [] and _topics(node) == base
    finally:
        _close(node)


def test_bridge_publishers_stay_bounded_over_many_ids(rclpy_session, hri_msgs):
    node = _activate(_node("hri_bridge", grace=0.0, max_tracked=4))
    node._pub.publish = lambda msg: None
    try:
        base = len(list(node.publishers))
        for first in range(1, 600, 3):
            node._on_faces(_faces([first, first + 1, first + 2]))
            assert len(list(node.publishers)) == base + 3 * 3
            assert len(node.registry) == 3
        node._on_faces(_faces([]))
        assert len(list(node.publishers)) == base and node.registry.sizes() == (0, 0, 0)
        assert node.stats.counters["faces_appeared"] == node.stats.counters["faces_vanished"]
    finally:
        _close(node)


def test_bridge_grace_is_applied_at_runtime_and_the_timer_expires(rclpy_session, hri_msgs):
    from rclpy.parameter import Parameter

    node = _activate(_node("hri_bridge", grace=60.0))
    tracked: list = []
    node._pub.publish = tracked.append
    try:
        node._on_faces(_faces([7]))
        node._expire()
        assert len(node.registry) == 1  # within its minute of grace
        assert node.set_parameters([Parameter("grace", value=0.0)])[0].successful
        assert wait_for(lambda: (node._expire() or True) and len(node.registry) == 0, 2.0)
        assert tracked[-1].ids == []
    finally:
        _close(node)


def test_stream_reaches_expression_subscribers_over_dds(rclpy_session, spinner, hri_msgs):
    """faces + emotion in; /humans/faces/f1/{expression,roi,cropped} and tracked out."""
    from emotion_msgs.msg import EmotionArray, FaceArray
    from sensor_msgs.msg import Image

    from emotion_perception.nodes.base import RESULT_QOS as FACE_QOS  # reliable, depth 10
    from emotion_perception.nodes.base import RESULT_QOS

    bridge = _node("hri_bridge", autostart=True, grace=0.3)
    peer = rclpy_session.create_node("hri_peer")
    got: dict[str, list] = {"tracked": [], "expression": [], "roi": [], "cropped": []}
    peer.create_subscription(hri_msgs.IdsList, "/humans/faces/tracked",
                             got["tracked"].append, RESULT_QOS)
    peer.create_subscription(hri_msgs.Expression, "/humans/faces/f1/expression",
                             got["expression"].append, FACE_QOS)
    peer.create_subscription(hri_msgs.NormalizedRegionOfInterest2D, "/humans/faces/f1/roi",
                             got["roi"].append, FACE_QOS)
    peer.create_subscription(Image, "/humans/faces/f1/cropped", got["cropped"].append,
                             FACE_QOS)
    faces_pub = peer.create_publisher(FaceArray, "faces", RESULT_QOS)
    emo_pub = peer.create_publisher(EmotionArray, "emotion", RESULT_QOS)
    spinner([bridge, peer])
    assert wait_for(lambda: faces_pub.get_subscription_count() > 0
                    and emo_pub.get_subscription_count() > 0)

    def face_pubs_matched():
        pubs = bridge._channels.get("f1") if bridge._channels else None
        return pubs is not None and all(p.get_subscription_count() > 0
                                        for p in (pubs.expression, pubs.roi, pubs.cropped))

    for sec in range(100, 200):
        faces_pub.publish(_faces([1], _header(sec)))
        if face_pubs_matched():
            break
        wait_for(lambda: False, 0.05)
    assert face_pubs_matched()
    for k, sec in enumerate(range(200, 205), 1):  # paced: the per-face topics keep 1 message
        faces_pub.publish(_faces([1], _header(sec)))
        emo_pub.publish(_emotions([1], "surprise", _header(sec)))
        assert wait_for(lambda: len(got["expression"]) == k)
    assert wait_for(lambda: len(got["cropped"]) >= 5)
    assert {e.expression for e in got["expression"]} == {"surprised"}
    assert [e.header.stamp.sec for e in got["expression"]] == list(range(200, 205))
    assert got["roi"][-1].xmin == pytest.approx(0.1)
    assert got["cropped"][-1].width == 16
    assert got["tracked"][-1].ids == ["f1"]
    # the detector stops: after the grace the face leaves and its publishers go
    assert wait_for(lambda: got["tracked"][-1].ids == [], 5.0)
    assert "/humans/faces/f1/expression" not in _topics(bridge)


# --- hri_input ------------------------------------------------------------------------------

def test_input_groups_a_frame_by_the_tracked_stamp(rclpy_session, hri_msgs):
    from rclpy.parameter import Parameter

    node = _activate(_node("hri_input", image_width=200, image_height=100, max_wait=10.0))
    out: list = []
    node._pub.publish = out.append
    try:
        base_subs = len(list(node.subscriptions))
        h = _header(50, 5)
        node._on_tracked(hri_msgs.IdsList(header=h, ids=["abcde", "9bad", "xyzzy"]))
        assert node.stats.counters["refused_ids"] == 1
        assert {"/humans/faces/abcde/cropped", "/humans/faces/abcde/roi",
                "/humans/faces/xyzzy/cropped"} <= set(_topics(node, "subscriptions"))
        assert "/humans/faces/abcde/expression" in _topics(node)
        node._on_roi("abcde", hri_msgs.NormalizedRegionOfInterest2D(
            header=h, xmin=0.25, ymin=0.5, xmax=0.5, ymax=1.0, c=0.6))
        node._on_image("abcde", _image(header=h))
        assert out == []  # xyzzy's image of this stamp is still missing
        node._on_image("xyzzy", _image(20, header=h))
        assert out == []  # and its roi
        assert node.set_parameters([Parameter("max_wait", value=0.0)])[0].successful
        node._tick()  # waited max_wait: published with the faces that came
        (msg,) = out
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (50, 5)
        assert (msg.image_width, msg.image_height) == (200, 100)
        a, x = msg.faces
        ints = {f.hri_id: f.face_id for f in node.registry.live()}
        assert (a.face_id, x.face_id) == (ints["abcde"], ints["xyzzy"]) and a.face_id != x.face_id
        assert (a.roi.x_offset, a.roi.y_offset, a.roi.width, a.roi.height) == (50, 50, 50, 50)
        assert a.detection_score == pytest.approx(0.6) and a.crop.width == 16
        assert (x.roi.width, x.roi.height) == (200, 100)  # no roi yet: the whole image
        # the next list drops xyzzy: its subscriptions go; abcde keeps its integer
        node._on_tracked(hri_msgs.IdsList(header=_header(51), ids=["abcde"]))
        assert "/humans/faces/xyzzy/cropped" not in _topics(node, "subscriptions")
        assert node.registry.by_hri_id("abcde").face_id == ints["abcde"]
        node._on_tracked(hri_msgs.IdsList(header=_header(52), ids=[]))
        assert len(list(node.subscriptions)) == base_subs
        assert out[-1].faces == [] and out[-1].header.stamp.sec == 52
    finally:
        _close(node)


def test_input_publishes_expressions_under_the_detectors_ids(rclpy_session, hri_msgs):
    node = _activate(_node("hri_input"))
    node._pub.publish = lambda msg: None
    try:
        node._on_tracked(hri_msgs.IdsList(header=_header(), ids=["qwert"]))
        face_id = node.registry.by_hri_id("qwert").face_id
        sent: list = []
        node._channels.get("qwert").expression.publish = sent.append
        node._on_emotion(_emotions([face_id, face_id + 99], "fear"))
        (e,) = sent
        assert e.expression == hri_msgs.Expression.SCARED and not math.isnan(e.valence)
        assert node.stats.counters["unknown_faces"] == 1
    finally:
        _close(node)


def test_input_waits_at_most_max_wait_and_forgets_a_silent_detector(rclpy_session,
                                                                    hri_msgs):
    from rclpy.parameter import Parameter

    node = _activate(_node("hri_input", max_wait=0.05, tracked_timeout=60.0))
    out: list = []
    node._pub.publish = out.append
    try:
        node._on_tracked(hri_msgs.IdsList(header=_header(), ids=["aa", "bb"]))
        node._on_image("aa", _image(header=_header()))
        assert wait_for(lambda: (node._tick() or True) and len(out) == 1, 2.0)
        assert [f.face_id for f in out[0].faces] == [node.registry.by_hri_id("aa").face_id]
        assert node.stats.counters["faces_missing"] == 1
        assert node.set_parameters([Parameter("tracked_timeout", value=0.1)])[0].successful
        assert wait_for(lambda: (node._tick() or True) and len(node.registry) == 0, 2.0)
        assert "/humans/faces/aa/cropped" not in _topics(node, "subscriptions")
    finally:
        _close(node)


def test_ros4hri_shaped_detector_feeds_faces_over_dds(rclpy_session, spinner, hri_msgs):
    """A publisher shaped like hri_face_detect: per-face roi + cropped, then the list."""
    from emotion_msgs.msg import FaceArray
    from sensor_msgs.msg import Image

    from emotion_perception.nodes.base import RESULT_QOS
    from emotion_perception.nodes.hri_bridge_node import FACE_QOS

    node = _node("hri_input", autostart=True, publish_expression=False)
    det = rclpy_session.create_node("fake_hri_detector")
    got: list = []
    det.create_subscription(FaceArray, "faces", got.append, RESULT_QOS)
    tracked = det.create_publisher(hri_msgs.IdsList, "/humans/faces/tracked", 1)
    crop = det.create_publisher(Image, "/humans/faces/hbkzi/cropped", FACE_QOS)
    roi = det.create_publisher(hri_msgs.NormalizedRegionOfInterest2D, "/humans/faces/hbkzi/roi",
                               FACE_QOS)
    spinner([node, det])
    assert wait_for(lambda: tracked.get_subscription_count() > 0)
    sec = 10
    while not (crop.get_subscription_count() and roi.get_subscription_count()) and sec < 200:
        tracked.publish(hri_msgs.IdsList(header=_header(sec), ids=["hbkzi"]))
        sec += 1
        wait_for(lambda: False, 0.05)
    assert crop.get_subscription_count() and roi.get_subscription_count()
    n0 = len(got)
    for k, s in enumerate(range(300, 305), 1):  # paced: depth-1 topics, as hri_face_detect's
        h = _header(s)
        roi.publish(hri_msgs.NormalizedRegionOfInterest2D(header=h, xmin=0.1, ymin=0.1,
                                                          xmax=0.3, ymax=0.3, c=0.9))
        crop.publish(_image(header=h))
        tracked.publish(hri_msgs.IdsList(header=h, ids=["hbkzi"]))
        assert wait_for(lambda: sum(1 for m in got[n0:] if m.faces) == k)
    with_faces = [m for m in got[n0:] if m.faces]
    assert [m.header.stamp.sec for m in with_faces] == list(range(300, 305))
    assert {m.faces[0].face_id for m in with_faces} == {node.registry.by_hri_id("hbkzi").face_id}
    assert with_faces[-1].faces[0].roi.x_offset == 64


# --- parameters at runtime ------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(HRI_COVERED))
def test_read_only_parameters_are_refused_and_diagnostics_period_applies(rclpy_session,
                                                                         hri_msgs, kind):
    from rclpy.parameter import Parameter

    from emotion_perception.core.params import NODE_PARAMS

    node = _activate(_node(kind))
    try:
        for p in NODE_PARAMS[kind]:
            if p.read_only:
                before = node.get_parameter(p.name).value
                res = node.set_parameters([Parameter(p.name, value=other_value(before))])[0]
                assert not res.successful and "read-only" in res.reason, (p.name, res.reason)
        assert node._diag_timer.timer_period_ns == 1_000_000_000
        assert node.set_parameters([Parameter("diagnostics_period", value=0.3)])[0].successful
        assert node._diag_timer.timer_period_ns == 300_000_000
    finally:
        _close(node)


def test_bridge_max_faces_applies(rclpy_session, hri_msgs):
    from rclpy.parameter import Parameter

    node = _activate(_node("hri_bridge", grace=0.0))
    tracked: list = []
    node._pub.publish = tracked.append
    try:
        assert node.set_parameters([Parameter("max_faces", value=2)])[0].successful
        node._on_faces(_faces([1, 2, 3]))
        assert tracked[-1].ids == ["f1", "f2"] and node.stats.counters["faces_dropped"] == 1
    finally:
        _close(node)


def test_input_size_pixels_and_face_limits_apply(rclpy_session, hri_msgs):
    from rclpy.parameter import Parameter

    node = _activate(_node("hri_input", max_wait=10.0))
    out: list = []
    node._pub.publish = out.append
    try:
        assert node.set_parameters([Parameter("image_width", value=100),
                                    Parameter("image_height", value=50),
                                    Parameter("max_faces", value=1),
                                    Parameter("max_image_pixels", value=100)])[0].successful
        h = _header(7)
        node._on_tracked(hri_msgs.IdsList(header=h, ids=["aa", "bb"]))
        assert node.registry.hri_ids() == ["aa"] and node.stats.counters["faces_dropped"] == 1
        node._on_image("aa", _image(16, header=h))  # 256 pixels > 100: rejected
        assert node.stats.counters["rejected"] == 1
        node._on_image("aa", _image(8, header=h))
        node._on_roi("aa", hri_msgs.NormalizedRegionOfInterest2D(header=h, xmin=0.5, ymin=0.5,
                                                                 xmax=1.0, ymax=1.0, c=1.0))
        msg = out[-1]
        assert (msg.image_width, msg.image_height) == (100, 50)
        assert (msg.faces[0].roi.x_offset, msg.faces[0].roi.width) == (50, 50)
    finally:
        _close(node)

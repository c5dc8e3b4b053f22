"""Many cameras on one classifier and smoother (issue #20): batching, routing, per-camera state.

ROS-free parts (camera lists, cross-camera batching, the graph spec, the launch's camera
sources) always run; the node tests need rclpy.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import graph_connected, wait_for


class _CountingClassifier:
    """Records each classify call's batch; row i's top class is crop i's mean pixel % 7."""

    def __init__(self):
        self.batches: list[int] = []

    def classify(self, crops):
        self.batches.append(len(crops))
        probs = np.full((len(crops), 7), 0.02, np.float32)
        for i, c in enumerate(crops):
            probs[i, int(np.mean(c)) % 7] = 0.88
        return probs, np.ones(len(crops), bool)


# --- ROS-free ----------------------------------------------------------------------------------
def test_parse_cameras_accepts_lists_and_refuses_bad_names():
    from emotion_perception.core.multicam import camera_frame_id, parse_cameras

    assert parse_cameras("") == [] and parse_cameras(" , ") == []
    assert parse_cameras("front, back,head/left") == ["front", "back", "head/left"]
    assert parse_cameras(["a", "b"]) == ["a", "b"]
    assert camera_frame_id("head/left") == "head_left_camera"
    for bad in ("/front", "front/", "1cam", "fr-ont", "a//b"):
        with pytest.raises(ValueError, match="camera namespace"):
            parse_cameras(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_cameras("front,front")


def _group(n: int, seed: int, stamp: float):
    from emotion_perception.core.types import Box, TrackedFace

    rng = np.random.default_rng(seed)
    crops = [np.full((8, 8, 3), int(v), np.uint8) for v in rng.integers(0, 255, n)]
    faces = [TrackedFace(face_id=i + 1, box=Box(i, i, 10, 10), score=0.9, confirmed=True)
             for i in range(n)]
    return crops, faces, stamp


def test_groups_are_classified_in_one_call_and_split_back():
    from emotion_perception.core.multicam import classify_groups
    from emotion_perception.core.pipeline import classify_crops

    groups = [_group(2, 1, 10.0), _group(0, 2, 11.0), _group(3, 3, 12.0)]
    counting = _CountingClassifier()
    out = classify_groups(counting, groups)
    assert counting.batches == [5]  # one call for the faces of all three cameras
    for (crops, faces, stamp), (estimates, invalid) in zip(groups, out):
        alone, _ = classify_crops(_CountingClassifier(), crops, faces, stamp)
        assert invalid == 0 and len(estimates) == len(faces)
        assert [e.face_id for e in estimates] == [f.face_id for f in faces]
        assert all(e.stamp == stamp for e in estimates)
        for a, b in zip(estimates, alone):
            np.testing.assert_array_equal(a.probabilities, b.probabilities)
    none = _CountingClassifier()
    assert classify_groups(none, [_group(0, 0, 1.0)]) == [([], 0)] and none.batches == []


def test_padded_batches_keep_a_steady_size_and_discard_the_padding():
    from emotion_perception.core.multicam import BatchSizer, classify_groups

    sizer = BatchSizer(window=3, limit=5)
    assert [sizer.size(n) for n in (2, 1, 3, 1, 1, 1, 9)] == [2, 2, 3, 3, 3, 1, 9]
    groups = [_group(1, 4, 1.0), _group(2, 5, 2.0)]
    counting = _CountingClassifier()
    padded = classify_groups(counting, groups, pad_to=6)
    assert counting.batches == [6]
    plain = classify_groups(_CountingClassifier(), groups)
    for (a, _), (b, _) in zip(padded, plain):
        assert [e.face_id for e in a] == [e.face_id for e in b]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.probabilities, y.probabilities)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 12), min_size=1, max_size=5), chunk=st.integers(0, 9))
def test_chunked_groups_give_each_camera_its_own_estimates(sizes, chunk):
    from emotion_perception.core.multicam import classify_groups

    groups = [_group(n, i, float(i)) for i, n in enumerate(sizes)]
    counting = _CountingClassifier()
    out = classify_groups(counting, groups, chunk)
    total = sum(sizes)
    assert sum(counting.batches) == total
    if total and chunk:
        assert max(counting.batches) <= chunk
    for (crops, faces, stamp), (estimates, _) in zip(groups, out):
        assert [int(e.probabilities.argmax()) for e in estimates] == \
            [int(np.mean(c)) % 7 for c in crops]
        assert all(e.stamp == stamp for e in estimates)


def test_multi_graph_spec_serves_every_camera_from_one_classifier():
    from emotion_perception.graph import join_namespace, multi_graph_spec

    specs = multi_graph_spec("front,back")
    by = [(s.name, s.namespace) for s in specs]
    assert by == [("camera", "front"), ("face_detector", "front"), ("camera", "back"),
                  ("face_detector", "back"), ("emotion_classifier", ""),
                  ("emotion_smoother", "")]
    assert specs[0].parameters == {"frame_id": "front_camera"}
    assert specs[1].remappings == {"image": "image_raw"}
    assert specs[4].parameters == {"cameras": "front,back"} and specs[4].remappings == {}
    assert specs[5].parameters == {"cameras": "front,back"}
    flat = multi_graph_spec(["a", "b"], smoothing=False)
    assert [s.name for s in flat][-1] == "emotion_classifier"
    assert flat[-1].remappings == {"a/emotion_raw": "a/emotion", "b/emotion_raw": "b/emotion"}
    probe = multi_graph_spec("a", image_topic="image", debug_image=True)
    assert [(s.name, s.remappings) for s in probe][:2] == [
        ("face_detector", {"image": "image"}), ("emotion_debug_image", {"image": "image"})]
    for bad in ("", "/abs"):
        with pytest.raises(ValueError):
            multi_graph_spec(bad)
    with pytest.raises(ValueError, match="relative"):
        multi_graph_spec("a", image_topic="/image")
    assert join_namespace("/robot1", "front") == "/robot1/front"
    assert join_namespace("", "front") == "/front" and join_namespace("", "") == ""


def test_camera_sources_from_list_pairs_and_yaml(tmp_path):
    from emotion_perception.graph import camera_sources

    assert camera_sources("front,back") == {"front": "demo", "back": "demo"}
    pairs = camera_sources("front,back", "back=/data/b.mp4")
    assert pairs == {"front": "demo", "back": "/data/b.mp4"}
    with pytest.raises(ValueError, match="not in the list"):
        camera_sources("front", "fronr=0")
    with pytest.raises(ValueError, match="name=source"):
        camera_sources("front", "front")
    mapping = tmp_path / "cams.yaml"
    mapping.write_text("cameras:\n  front: {source: '0'}\n  back: /data/b.mp4\n  side:\n")
    from_file = camera_sources(str(mapping), "front=1")
    assert from_file == {"front": "1", "back": "/data/b.mp4", "side": "demo"}
    listed = tmp_path / "list.yml"
    listed.write_text("- a\n- b\n")
    assert camera_sources(str(listed), default="auto") == {"a": "auto", "b": "auto"}
    with pytest.raises(ValueError, match="no such file"):
        camera_sources(str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="no camera"):
        camera_sources("")


# --- nodes -------------------------------------------------------------------------------------
def test_per_camera_worker_is_newest_wins_per_camera_and_takes_all_waiting():
    from emotion_perception.nodes.base import LatestWorker, StageStats
    from emotion_perception.nodes.multicam import CameraCounters, camera_slot

    stats, cams = StageStats(), CameraCounters(["a", "b", "c"])
    calls: list[dict] = []
    first, release = threading.Event(), threading.Event()

    def fn(items):
        calls.append(dict(items))
        first.set()
        release.wait(10)

    worker = LatestWorker(fn, stats, "test", camera_slot(cams))
    try:
        worker.submit(("a", 1))
        assert first.wait(10)  # the worker holds a's first item; the rest wait
        for item in (("a", 2), ("b", 1), ("a", 3), ("c", 1), ("b", 2)):
            worker.submit(item)
        assert worker.waiting() == ["a", "b", "c"]
        release.set()
        assert wait_for(worker.idle, 10)
    finally:
        worker.stop()
    assert calls == [{"a": 1}, {"a": 3, "b": 2, "c": 1}]
    assert stats.counters["dropped"] == 2  # a's 2, b's 1: each replaced by its own camera
    snap = cams.snapshot()
    assert snap["a.dropped"] == 1 and snap["b.dropped"] == 1 and snap["c.dropped"] == 0


def test_single_slot_worker_keeps_only_the_newest_waiting_item():
    from emotion_perception.nodes.base import LatestWorker, StageStats

    stats, calls = StageStats(), []
    first, release = threading.Event(), threading.Event()

    def fn(item):
        calls.append(item)
        first.set()
        release.wait(10)

    worker = LatestWorker(fn, stats, "test")
    try:
        worker.submit(1)
        assert first.wait(10)
        assert worker.waiting() == []
        for item in (2, 3, 4):
            worker.submit(item)
        assert worker.waiting() == [None] and not worker.idle()
        release.set()
        assert wait_for(worker.idle, 10)
    finally:
        worker.stop()
    assert calls == [1, 4]
    assert stats.counters["dropped"] == 2


def _faces_msg(n: int, frame_id: str, stamp, value: int):
    from test_reliability import _crop, _face, _face_array

    msg = _face_array([_face(i + 1, crop=_crop(8, value)) for i in range(n)], stamp)
    msg.header.frame_id = frame_id
    return msg


@pytest.mark.ros
def test_classifier_batches_cameras_and_routes_each_to_its_topic(rclpy_session, spinner,
                                                                 tiny_model_path):
    import rclpy
    from emotion_msgs.msg import EmotionArray, FaceArray

    from emotion_perception.nodes.base import RESULT_QOS
    from test_reliability import _node, _stamp

    ns, cams = "/multi_clf", ["front", "back", "side"]
    node = _node("emotion_classifier", namespace=ns, autostart=True,
                 model_path=str(tiny_model_path), cameras=",".join(cams), max_age=0.0)
    probe = rclpy.create_node("multi_clf_probe", namespace=ns)
    pubs = {c: probe.create_publisher(FaceArray, f"{c}/faces", RESULT_QOS) for c in cams}
    got: dict[str, list] = {c: [] for c in cams}
    for c in cams:
        probe.create_subscription(EmotionArray, f"{c}/emotion_raw", got[c].append, RESULT_QOS)
    spinner([node, probe])
    assert wait_for(lambda: graph_connected([node]) and len(node._camera_pubs) == 3
                    and all(p.get_subscription_count() >= 1
                            for p in node._camera_pubs.values()), 60)
    counting = _CountingClassifier()
    node.classifier = counting
    received = node.camera_stats.counts
    with node.state_lock:  # the worker takes front's first message, then waits for the lock
        pubs["front"].publish(_faces_msg(1, "front_cam", _stamp(node), 1))
        assert wait_for(lambda: received["front"]["received"] == 1
                        and node._worker.waiting() == [], 20)
        stamps = {c: _stamp(node) for c in cams}
        pubs["front"].publish(_faces_msg(3, "front_cam", _stamp(node), 2))  # replaced below
        for c, n, v in (("front", 2, 3), ("back", 3, 4), ("side", 1, 5)):
            pubs[c].publish(_faces_msg(n, f"{c}_cam", stamps[c], v))
        assert wait_for(lambda: received["front"]["received"] == 3
                        and received["back"]["received"] == 1
                        and received["side"]["received"] == 1, 20)
    assert wait_for(lambda: len(got["front"]) == 2 and got["back"] and got["side"], 30)
    # front's first alone, then the waiting cameras' faces together: 2 + 3 + 1 in ONE call
    assert counting.batches == [1, 6]
    assert node.stats.counters["dropped"] == 1 and received["front"]["dropped"] == 1
    for c, n, v in (("front", 2, 3), ("back", 3, 4), ("side", 1, 5)):
        msg = got[c][-1]
        assert msg.header.frame_id == f"{c}_cam"
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == \
            (stamps[c].sec, stamps[c].nanosec)
        assert [e.face_id for e in msg.emotions] == list(range(1, n + 1))
        assert all(e.label == v % 7 and e.header.frame_id == f"{c}_cam"
                   for e in msg.emotions)
    assert len(got["back"]) == 1 and len(got["side"]) == 1
    assert wait_for(lambda: received["side"]["published"] == 1, 5)


@pytest.mark.ros
def test_classifier_without_cameras_keeps_its_single_topics(rclpy_session, tiny_model_path):
    from test_reliability import _activate, _close, _node

    node = _node("emotion_classifier", model_path=str(tiny_model_path))
    try:
        _activate(node)
        topics = {t for t, _ in node.get_publisher_names_and_types_by_node(
            node.get_name(), node.get_namespace())}
        assert "/emotion_raw" in topics and node.cameras == []
        assert [s.topic_name for s in node.subscriptions] == ["/faces"]
    finally:
        _close(node)


@pytest.mark.ros
def test_bad_camera_list_fails_configure(rclpy_session):
    from test_reliability import _close, _node

    node = _node("emotion_smoother", cameras="front,1back")
    try:
        node.trigger_configure()
        assert "camera namespace '1back'" in node.configure_error
    finally:
        _close(node)


@pytest.mark.ros
def test_smoother_keeps_state_per_camera(rclpy_session):
    from test_reliability import _close, _emotion, _emotion_array, _node, _stamp

    node = _node("emotion_smoother", cameras="a,b", max_age=0.0, **{"ema.tau": 1.0})
    try:
        node.trigger_configure()
        node.trigger_activate()
        assert not node.configure_error, node.configure_error
        assert [s.topic_name for s in node.subscriptions] == ["/a/emotion_raw", "/b/emotion_raw"]
        out: dict[str, list] = {"a": [], "b": []}
        for cam in out:
            node._camera_pubs[cam].publish = out[cam].append
        happy, sad = np.full(7, 0.01), np.full(7, 0.01)
        happy[3], sad[4] = 0.94, 0.94
        for i in range(5):  # face 1 of a is happy, face 1 of b sad: same id, other cameras
            stamp = _stamp(node, age=1.0 - 0.2 * i)
            node._process(_emotion_array([_emotion(1, happy)], stamp), "a")
            node._process(_emotion_array([_emotion(1, sad)], stamp), "b")
        assert len(out["a"]) == 5 and len(out["b"]) == 5
        for cam, want, probs in (("a", 3, happy), ("b", 4, sad)):
            for msg in out[cam]:  # never blended with the other camera's face 1
                e = msg.emotions[0]
                assert e.label == want and e.smoothed
                np.testing.assert_allclose(e.probabilities, probs / probs.sum(), atol=1e-5)
        assert node.smoothers["a"] is not node.smoothers["b"]
        snap = node.camera_stats.snapshot()
        assert snap["a.published"] == 5 and snap["b.published"] == 5
    finally:
        _close(node)

"""ROS4HRI core (issue #20): label mapping, ids, the live-face lifecycle, frame grouping.

No ROS and no hri_msgs needed: this is what CI runs. The node tests (test_hri_nodes.py) run
only where hri_msgs is importable.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion_perception.core.classes import CLASS_NAMES, VALENCE_AROUSAL
from emotion_perception.core.hri import (CONSTANT_OF_CLASS, EXPRESSION_OF_CLASS, Changes,
                                         FaceChannels, FrameAssembler, HriIdRegistry,
                                         TrackRegistry, check_id_prefix, hri_face_id,
                                         is_valid_hri_id, normalized_roi, pixel_box, stamp_ns,
                                         to_expression)
from emotion_perception.core.types import Box

# The constants of hri_msgs 2.0.0 msg/Expression.msg that our mapping may use (names as
# written there, values their lower case): the node test checks them against the real message.
HRI_BASIC = {"NEUTRAL", "ANGRY", "SAD", "HAPPY", "SURPRISED", "DISGUSTED", "SCARED"}


# --- mapping --------------------------------------------------------------------------------

def test_every_class_maps_onto_a_distinct_expression_constant():
    assert set(EXPRESSION_OF_CLASS) == set(CLASS_NAMES)
    assert len(set(EXPRESSION_OF_CLASS.values())) == len(CLASS_NAMES)
    assert set(CONSTANT_OF_CLASS.values()) == HRI_BASIC
    assert EXPRESSION_OF_CLASS["disgust"] == "disgusted"
    assert EXPRESSION_OF_CLASS["fear"] == "scared"
    assert EXPRESSION_OF_CLASS["surprise"] == "surprised"


def test_expression_keeps_valence_arousal_and_confidence():
    e = to_expression("Happy", 0.8, valence=0.5, arousal=-0.25)
    assert (e.expression, e.valence, e.arousal) == ("happy", 0.5, -0.25)
    assert e.confidence == pytest.approx(0.8)


def test_unknown_valence_is_computed_from_the_probabilities():
    probs = np.zeros(7)
    probs[CLASS_NAMES.index("sad")] = 1.0
    e = to_expression("sad", 1.0, probs, math.nan, math.nan)
    assert (e.valence, e.arousal) == pytest.approx(VALENCE_AROUSAL[CLASS_NAMES.index("sad")])
    mixed = np.full(7, 1 / 7)
    e = to_expression("neutral", 1 / 7, mixed, math.nan, 0.1)
    assert e.valence == pytest.approx(np.mean([v for v, _ in VALENCE_AROUSAL]))
    assert e.arousal == pytest.approx(0.1)
    assert math.isnan(to_expression("angry", 0.5).valence)  # nothing to compute it from


def test_expression_clips_and_refuses():
    e = to_expression("angry", 1.5, valence=-3.0, arousal=2.0)
    assert (e.valence, e.arousal, e.confidence) == (-1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="contempt"):
        to_expression("contempt", 0.5)
    with pytest.raises(ValueError, match="finite"):
        to_expression("angry", math.nan)


# --- ids ------------------------------------------------------------------------------------

def test_track_ids_become_topic_tokens():
    assert hri_face_id(17) == "f17"
    assert hri_face_id(17, "robot1_") == "robot1_17"
    assert is_valid_hri_id("f17") and is_valid_hri_id("hbkzi") and is_valid_hri_id("_x")
    for bad in ("17", "", "a-b", "a/b", "a b", None, 17):
        assert not is_valid_hri_id(bad), bad
    with pytest.raises(ValueError, match="untracked"):
        hri_face_id(0)
    with pytest.raises(ValueError, match="digit"):
        check_id_prefix("9")
    with pytest.raises(ValueError, match="digit"):
        TrackRegistry(prefix="")


def test_untracked_and_invalid_keys_are_refused():
    reg = TrackRegistry(grace=0.0)
    ch = reg.update([0, -3, 5, "x", 5], 1.0)
    assert [f.hri_id for f in ch.appeared] == ["f5"] and ch.refused == (0, -3, "x")
    hri = HriIdRegistry()
    ch = hri.update(["abc", "1x", "a-b", "abc"], 1.0)
    assert [f.hri_id for f in ch.appeared] == ["abc"] and ch.refused == ("1x", "a-b")


# --- lifecycle ------------------------------------------------------------------------------

frames = st.lists(st.tuples(st.floats(0.0, 1.0), st.sets(st.integers(1, 12), max_size=6)),
                  min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(frames, st.sampled_from([0.0, 0.05, 0.3, 1.0]), st.booleans())
def test_live_faces_are_exactly_the_ones_seen_within_the_grace(seq, grace, timer):
    """Random appear/disappear sequences: the live set equals the reference model's."""
    reg = TrackRegistry(grace=grace, capacity=1000)
    channels = FaceChannels(lambda face: ["pub", face.hri_id], lambda obj: destroyed.append(obj))
    destroyed: list = []
    created = 0
    last_seen: dict[int, float] = {}
    state: dict[int, bool] = {}
    now = 0.0
    for dt, ids in seq:
        now += dt
        ch = reg.expire(now) if timer and not ids else reg.update(ids, now)
        channels.apply(ch)
        created += len(ch.appeared)
        for f in ch.appeared:
            assert not state.get(f.face_id), f"{f.hri_id} appeared while live"
            state[f.face_id] = True
        for f in ch.vanished:
            assert state.get(f.face_id), f"{f.hri_id} vanished while not live"
            state[f.face_id] = False
        if not (timer and not ids):
            for i in ids:
                last_seen[i] = now
        expected = {i for i, t in last_seen.items() if now - t <= grace}
        assert {f.face_id for f in reg.live()} == expected
        assert set(reg.hri_ids()) == {f"f{i}" for i in expected}
        assert len(reg) == len(channels) == created - len(destroyed)
        assert reg.sizes() == (len(reg),) * 3
        for i in ids:  # everything seen in this frame has its objects
            assert channels.get(f"f{i}") == ["pub", f"f{i}"]
    channels.close()
    assert len(channels) == 0 and len(destroyed) == created


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["aa", "bb", "cc", "dd", "ee"]), max_size=5),
                min_size=1, max_size=40))
def test_string_ids_get_stable_distinct_integers_never_reused(seq):
    reg = HriIdRegistry(grace=0.0)
    given_ints: set[int] = set()
    for t, ids in enumerate(seq):
        before = {f.hri_id: f.face_id for f in reg.live()}
        ch = reg.update(ids, float(t))
        assert set(reg.hri_ids()) == set(ids)  # grace 0: the list is the truth
        for f in reg.live():
            if f.hri_id in before:
                assert f.face_id == before[f.hri_id]  # stable while live
        for f in ch.appeared:
            assert f.face_id not in given_ints  # never reused (no wrap in 40 frames)
            given_ints.add(f.face_id)
            assert reg.by_face_id(f.face_id).hri_id == f.hri_id
        live_ints = [f.face_id for f in reg.live()]
        assert len(live_ints) == len(set(live_ints))


def test_ten_thousand_ids_leave_nothing_behind():
    reg = TrackRegistry(grace=0.2, capacity=64)
    hri = HriIdRegistry(grace=0.0, capacity=64)
    alive: list = []
    channels = FaceChannels(lambda face: alive.append(face.hri_id) or face.hri_id,
                            lambda name: alive.remove(name))
    rng = np.random.default_rng(0)
    next_id, now, peak = 1, 0.0, 0
    current: list[int] = []
    while next_id <= 10_000:
        now += 1 / 15
        current = [i for i in current if rng.random() > 0.1]  # faces leave
        while len(current) < 3:
            current.append(next_id)
            next_id += 1
        channels.apply(reg.update(current, now))
        hri.update([f"h{i}" for i in current], now)
        peak = max(peak, len(reg))
        assert len(alive) == len(reg) <= 3 + 3 * 4  # seen within 0.2 s = 3 frames
        assert hri.sizes() == (len(current),) * 3
    assert next_id > 10_000 and peak <= 15
    channels.apply(reg.update([], now + 1.0))
    hri.update([], now + 1.0)
    assert len(reg) == 0 and reg.sizes() == (0, 0, 0) and alive == []
    assert hri.sizes() == (0, 0, 0)


def test_capacity_evicts_the_faces_seen_longest_ago():
    reg = TrackRegistry(grace=10.0, capacity=3)
    reg.update([1, 2], 0.0)
    reg.update([3], 1.0)
    ch = reg.update([4], 2.0)
    assert [f.face_id for f in ch.vanished] == [1] and reg.evicted == 1
    assert sorted(f.face_id for f in reg.live()) == [2, 3, 4]
    ch = reg.update([5, 6, 7, 8], 3.0)  # more than fit in one frame: the rest refused
    assert ch.refused == (8,) and sorted(reg.hri_ids()) == ["f5", "f6", "f7"]


def test_integer_ids_wrap_around_skipping_live_ones():
    reg = HriIdRegistry(grace=10.0, capacity=3, max_face_id=5)
    reg.update(["a", "b"], 0.0)        # 1, 2
    for t, name in enumerate(["c", "d", "e", "g"], 1):
        reg.update([name, "a", "b"], float(t))
    ints = {f.hri_id: f.face_id for f in reg.live()}
    assert ints["a"] == 1 and ints["b"] == 2
    assert ints["g"] not in (1, 2) and 1 <= ints["g"] <= 5  # wrapped past 5, skipped 1, 2


def test_emotion_only_updates_see_without_expiring():
    reg = TrackRegistry(grace=0.0)
    reg.update([1, 2], 0.0)
    ch = reg.update([2], 1.0, expire=False)
    assert not ch and sorted(reg.hri_ids()) == ["f1", "f2"]
    assert [f.hri_id for f in reg.update([2], 2.0).vanished] == ["f1"]
    assert isinstance(reg.clear(), Changes) and len(reg) == 0


# --- ROIs -----------------------------------------------------------------------------------

def test_rois_round_trip_between_pixels_and_normalized():
    n = normalized_roi(Box(64, 48, 128, 96), 640, 480)
    assert n == pytest.approx((0.1, 0.1, 0.3, 0.3))
    assert pixel_box(*n, 640, 480) == Box(64, 48, 128, 96)
    assert normalized_roi(Box(-10, -10, 20, 20), 100, 100) == (0.0, 0.0, 0.1, 0.1)
    assert pixel_box(-0.5, 0.2, 1.5, 0.4, 100, 50) == Box(0, 10, 100, 10)
    with pytest.raises(ValueError, match="non-finite"):
        pixel_box(math.nan, 0, 1, 1, 10, 10)
    with pytest.raises(ValueError, match="max below"):
        pixel_box(0.5, 0, 0.4, 1, 10, 10)
    with pytest.raises(ValueError, match="size"):
        normalized_roi(Box(0, 0, 1, 1), 0, 10)


@settings(max_examples=300, deadline=None)
@given(st.integers(-50, 700), st.integers(-50, 500), st.integers(0, 700), st.integers(0, 500))
def test_any_box_normalizes_into_the_unit_square(x, y, w, h):
    n = normalized_roi(Box(x, y, w, h), 640, 480)
    assert all(0.0 <= v <= 1.0 for v in n) and n[0] <= n[2] and n[1] <= n[3]
    b = pixel_box(*n, 640, 480)
    assert b == Box(x, y, w, h).clipped(640, 480)


# --- frame grouping -------------------------------------------------------------------------

def test_frames_complete_when_every_listed_face_has_its_image_and_roi():
    fa = FrameAssembler(max_wait=1.0)
    fa.image("a", 100, "img-a")          # images may come before the list
    fa.roi("a", 100, "roi-a")
    fa.tracked(100, "hdr", ["a", "b"], now=0.0)
    assert fa.pop_ready(0.01) == []      # b's image is still on its way
    fa.image("b", 100, "img-b")
    assert fa.pop_ready(0.02) == []      # and its roi
    fa.roi("b", 100, "roi-b")
    (frame,) = fa.pop_ready(0.03)
    assert frame.stamp == 100 and frame.header == "hdr" and frame.missing == []
    assert frame.faces == [("a", "img-a", "roi-a"), ("b", "img-b", "roi-b")]
    assert fa.pending() == 0


def test_a_face_without_roi_waits_max_wait_then_takes_none_or_its_latest():
    fa = FrameAssembler(max_wait=0.5)
    fa.tracked(100, "h", ["a"], now=0.0)
    fa.image("a", 100, "i1")
    assert fa.pop_ready(0.4) == []
    assert fa.pop_ready(0.5)[0].faces == [("a", "i1", None)]


def test_incomplete_frames_go_after_max_wait_or_a_newer_list():
    fa = FrameAssembler(max_wait=0.1)
    fa.tracked(100, "h1", ["a", "kept"], now=0.0)
    fa.image("a", 100, "a1")
    assert fa.pop_ready(0.05) == []
    (frame,) = fa.pop_ready(0.1)
    assert frame.missing == ["kept"] and [f[0] for f in frame.faces] == ["a"]
    fa.tracked(200, "h2", ["a"], now=1.0)
    fa.tracked(300, "h3", ["a"], now=1.01)
    fa.image("a", 300, "a3")
    fa.roi("a", 300, "r3")
    out = fa.pop_ready(1.02)
    assert [f.stamp for f in out] == [200, 300]
    assert out[0].missing == ["a"] and out[1].faces[0][1] == "a3"
    fa.image("a", 250, "late")           # older than a frame handed out
    assert fa.late >= 1 and fa.pending() == 0


def test_empty_lists_are_frames_too_and_the_latest_roi_fills_in():
    fa = FrameAssembler(max_wait=0.1)
    fa.tracked(1, "h", [], now=0.0)
    (frame,) = fa.pop_ready(0.0)
    assert frame.ids == [] and frame.faces == []
    fa.roi("a", 2, "r2")
    fa.tracked(2, "h", ["a"], now=0.0)
    fa.image("a", 2, "i2")
    assert fa.pop_ready(0.0)[0].faces == [("a", "i2", "r2")]
    fa.tracked(3, "h", ["a"], now=0.0)
    fa.image("a", 3, "i3")               # no roi for stamp 3: the latest one, after max_wait
    assert fa.pop_ready(0.0) == []
    assert fa.pop_ready(0.1)[0].faces == [("a", "i3", "r2")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["list", "image", "roi"]), st.integers(0, 40),
                          st.sampled_from(["a", "b", "c"])), max_size=200))
def test_frame_grouping_stays_bounded_and_in_order(events):
    fa = FrameAssembler(max_wait=0.5, history=5, max_faces=2)
    handed: list[int] = []
    now = 0.0
    for kind, stamp, face in events:
        now += 0.01
        if kind == "list":
            fa.tracked(stamp, None, [face, "b"], now)
        elif kind == "image":
            fa.image(face, stamp, stamp)
        else:
            fa.roi(face, stamp, stamp)
        for frame in fa.pop_ready(now):
            handed.append(frame.stamp)
            for hri_id, image, roi in frame.faces:
                assert image == frame.stamp and hri_id in frame.ids
        assert fa.pending() <= 3 * 5
        assert all(len(v) <= 2 for v in fa._images.values())
    assert handed == sorted(set(handed))


def test_stamp_ns():
    assert stamp_ns(SimpleNamespace(sec=2, nanosec=5)) == 2_000_000_005


# --- graph ----------------------------------------------------------------------------------

def test_graph_adds_the_bridge_or_replaces_camera_and_detector():
    from conftest import REPO_ROOT
    from emotion_perception.graph import graph_spec, load_params_file
    from emotion_perception.core.params import NODE_PARAMS

    names = [s.name for s in graph_spec(hri=True)]
    assert names == ["camera", "face_detector", "emotion_classifier", "emotion_smoother",
                     "emotion_debug_image", "hri_bridge"]
    names = [s.name for s in graph_spec(hri=True, hri_input=True)]
    assert names == ["hri_input", "emotion_classifier", "emotion_smoother"]
    spec = {s.name: s for s in graph_spec("/cam", hri_input=True)}
    assert spec["emotion_debug_image"].remappings == {"image": "/cam"}  # drawn on their image
    yaml = load_params_file(REPO_ROOT / "config" / "emotion_perception.yaml")
    for s in graph_spec("/cam", hri=True) + graph_spec("/cam", hri_input=True):
        assert s.name in NODE_PARAMS and s.name in yaml, s.name
        assert set(yaml[s.name]) <= {p.name for p in NODE_PARAMS[s.name]}
    for node in ("hri_bridge", "hri_input"):  # every declared parameter is in the YAML
        common = {"autostart", "image_qos", "diagnostics_period"}
        declared = {p.name for p in NODE_PARAMS[node]} - common
        assert declared <= set(yaml[node]), declared - set(yaml[node])

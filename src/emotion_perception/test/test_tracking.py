"""Tests of the IoU / centre-distance face tracker."""

from __future__ import annotations

import pytest

from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Box, FaceDetection


def _det(x: int, y: int, w: int = 60, h: int = 60, score: float = 0.9) -> FaceDetection:
    return FaceDetection(box=Box(x, y, w, h), score=score)


def test_two_faces_keep_two_stable_ids() -> None:
    tracker = FaceTracker(min_hits=2)
    seen = []
    for frame in range(12):
        left = _det(50 + 3 * frame, 100)
        right = _det(400 - 4 * frame, 120 + frame)
        # detector order changes between frames; output follows detection order
        dets = [left, right] if frame % 2 == 0 else [right, left]
        out = tracker.update(dets)
        assert [f.box for f in out] == [d.box for d in dets]
        by_box = {f.box: f for f in out}
        seen.append((by_box[left.box].face_id, by_box[right.box].face_id))
        assert all(f.confirmed == (frame >= 1) for f in out)
    assert set(seen) == {(1, 2)}
    assert tracker.active_ids == [1, 2]
    assert tracker.pop_retired() == []


def test_confirmation_after_min_hits() -> None:
    tracker = FaceTracker(min_hits=3)
    flags = [tracker.update([_det(10, 10)])[0] for _ in range(4)]
    assert [f.confirmed for f in flags] == [False, False, True, True]
    assert [f.hits for f in flags] == [1, 2, 3, 4]
    assert {f.face_id for f in flags} == {1}


def test_min_hits_one_confirms_immediately() -> None:
    out = FaceTracker(min_hits=1).update([_det(0, 0), _det(200, 0)])
    assert [(f.face_id, f.confirmed) for f in out] == [(1, True), (2, True)]


def test_retirement_and_ids_never_reused() -> None:
    tracker = FaceTracker(min_hits=1, max_misses=3)
    assert tracker.update([_det(10, 10)])[0].face_id == 1
    for miss in range(1, 3):  # two misses: still alive
        assert tracker.update([]) == []
        assert tracker.active_ids == [1]
        assert tracker.tracks[0].misses == miss
    assert tracker.pop_retired() == []
    # back within max_misses: same id, miss counter reset
    assert tracker.update([_det(12, 10)])[0].face_id == 1
    assert tracker.tracks[0].misses == 0
    for _ in range(3):
        tracker.update([])
    assert tracker.active_ids == []
    assert tracker.pop_retired() == [1]
    assert tracker.pop_retired() == []
    # the same place again: a new id, never 1 again
    assert tracker.update([_det(12, 10)])[0].face_id == 2


def test_unmatched_detection_gets_new_id_while_others_continue() -> None:
    tracker = FaceTracker(min_hits=1)
    tracker.update([_det(0, 0)])
    out = tracker.update([_det(300, 300), _det(2, 1)])
    assert [f.face_id for f in out] == [2, 1]
    assert [f.confirmed for f in out] == [True, True]


def test_centre_distance_fallback() -> None:
    # 60 px box moving 25 px right: IoU = 35*60 / (2*3600 - 35*60) = 0.41 -> IoU match;
    # moving 45 px: IoU = 0.14 < 0.3, centre distance 45 / 60 = 0.75
    far = FaceTracker(min_hits=1, max_center_distance=1.0)
    far.update([_det(100, 100)])
    assert far.update([_det(145, 100)])[0].face_id == 1
    strict = FaceTracker(min_hits=1, max_center_distance=0.5)
    strict.update([_det(100, 100)])
    assert strict.update([_det(145, 100)])[0].face_id == 2
    off = FaceTracker(min_hits=1, max_center_distance=0.0)
    off.update([_det(100, 100)])
    assert off.update([_det(125, 100)])[0].face_id == 1  # IoU still matches
    assert off.update([_det(175, 100)])[0].face_id == 2  # 50 px: IoU 0.09, no fallback


def test_fallback_rejects_very_different_sizes() -> None:
    tracker = FaceTracker(min_hits=1, max_center_distance=2.0)
    tracker.update([_det(100, 100, 40, 40)])
    assert tracker.update([_det(60, 60, 140, 140)])[0].face_id == 2


def test_greedy_prefers_best_iou() -> None:
    tracker = FaceTracker(min_hits=1)
    tracker.update([_det(0, 0, 100, 100), _det(90, 0, 100, 100)])
    out = tracker.update([_det(85, 0, 100, 100), _det(5, 0, 100, 100)])
    assert [f.face_id for f in out] == [2, 1]


def test_reset_retires_everything_and_keeps_ids_unique() -> None:
    tracker = FaceTracker(min_hits=1)
    tracker.update([_det(0, 0), _det(200, 0)])
    tracker.reset()
    assert tracker.active_ids == []
    assert sorted(tracker.pop_retired()) == [1, 2]
    assert tracker.update([_det(0, 0)])[0].face_id == 3


def test_box_smoothing() -> None:
    plain = FaceTracker(min_hits=1)
    plain.update([_det(100, 100)])
    assert plain.update([_det(110, 100)])[0].box == Box(110, 100, 60, 60)
    smooth = FaceTracker(min_hits=1, box_smoothing=0.5)
    smooth.update([_det(100, 100)])
    assert smooth.update([_det(110, 100)])[0].box == Box(105, 100, 60, 60)


def test_returned_faces_are_snapshots() -> None:
    tracker = FaceTracker(min_hits=2)
    first = tracker.update([_det(0, 0)])[0]
    tracker.update([_det(1, 0)])
    assert not first.confirmed and first.hits == 1


@pytest.mark.parametrize("kwargs, name", [
    (dict(min_iou=0.0), "min_iou"),
    (dict(min_iou=1.5), "min_iou"),
    (dict(max_center_distance=-0.1), "max_center_distance"),
    (dict(max_center_distance=float("inf")), "max_center_distance"),
    (dict(min_hits=0), "min_hits"),
    (dict(min_hits=1.5), "min_hits"),
    (dict(max_misses=0), "max_misses"),
    (dict(box_smoothing=1.0), "box_smoothing"),
    (dict(box_smoothing=-0.1), "box_smoothing"),
])
def test_parameter_errors(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FaceTracker(**kwargs)

"""Mirror TTA spread over a tracked face's frames: views, averages, state, and the graph paths."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_perception.core.classifiers.base import EmotionClassifier
from emotion_perception.core.mirror_over_time import MirrorOverTime
from emotion_perception.core.multicam import classify_groups
from emotion_perception.core.pipeline import classify_crops
from emotion_perception.core.types import Box, TrackedFace


class SidedClassifier(EmotionClassifier):
    """Probabilities that tell a face from its mirror image: class 0 grows with the left half's
    brightness, class 1 with the right half's, so the views of an asymmetric face differ."""

    name = "sided"
    tta_mirror = True

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        w = batch.shape[2]
        left = batch[:, :, : w // 2].mean(axis=(1, 2, 3))
        right = batch[:, :, w // 2:].mean(axis=(1, 2, 3))
        out = np.full((len(batch), 7), 0.1, np.float32)
        out[:, 0] += left
        out[:, 1] += right
        return out / out.sum(axis=1, keepdims=True)


def _face(left: int, right: int) -> np.ndarray:
    img = np.zeros((60, 60, 3), np.uint8)
    img[:, :30], img[:, 30:] = left, right
    return img


def _views(clf: SidedClassifier, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clf.tta_mirror = False
    plain = clf.classify([crop])[0][0]
    mirrored = clf.classify([np.ascontiguousarray(crop[:, ::-1])])[0][0]
    clf.tta_mirror = True
    return plain, mirrored


def test_a_new_track_gets_both_views_then_one_view_a_frame_alternating() -> None:
    clf = SidedClassifier()
    crops = [_face(200, 20), _face(180, 40), _face(160, 60)]
    views = [_views(clf, c) for c in crops]
    clf.calls.clear()
    mot = MirrorOverTime()
    key = ("", 1)
    p0, v0 = mot.classify(clf, [crops[0]], [key], [0.0])
    assert v0.all() and clf.calls == [2]
    # the classifier's own TTA: what a new face must equal
    np.testing.assert_allclose(p0[0], clf.classify([crops[0]])[0][0], atol=1e-6)
    clf.calls.clear()
    p1, _ = mot.classify(clf, [crops[1]], [key], [1 / 30])
    p2, _ = mot.classify(clf, [crops[2]], [key], [2 / 30])
    assert clf.calls == [1, 1], "a tracked face seen last frame costs one view"
    # frame 0 stored its mirrored view, so frame 1 is plain, frame 2 mirrored
    expect1 = (views[1][0] + views[0][1]) / 2
    expect2 = (views[2][1] + views[1][0]) / 2
    np.testing.assert_allclose(p1[0], expect1 / expect1.sum(), atol=1e-6)
    np.testing.assert_allclose(p2[0], expect2 / expect2.sum(), atol=1e-6)
    assert (mot.views, mot.faces) == (4, 3)


def test_untracked_gapped_and_forgotten_faces_get_both_views() -> None:
    clf = SidedClassifier()
    mot = MirrorOverTime(max_gap=0.25)
    crop = _face(200, 20)
    mot.classify(clf, [crop, crop], [None, ("a", 1)], [0.0, 0.0])
    clf.calls.clear()
    mot.classify(clf, [crop, crop], [None, ("a", 1)], [0.1, 0.1])
    assert clf.calls == [3], "the untracked face: 2 views, the track: 1"
    clf.calls.clear()
    mot.classify(clf, [crop], [("a", 1)], [0.5])  # 0.4 s since its last frame > max_gap
    assert clf.calls == [2]
    # a camera's call forgets that camera's tracks it does not name; other cameras keep theirs
    mot.classify(clf, [crop], [("b", 1)], [0.5])
    mot.classify(clf, [crop], [("a", 2)], [0.53])
    clf.calls.clear()
    mot.classify(clf, [crop, crop], [("a", 1), ("b", 1)], [0.56, 0.56])
    assert clf.calls == [3], "a:1 was forgotten (2 views), b:1 was kept (1 view)"
    # another face under the same track (a cut, two tracks swapping faces): both views
    clf.calls.clear()
    mot.classify(clf, [_face(20, 200)], [("b", 1)], [0.6])
    assert clf.calls == [2]
    from emotion_perception.core.mirror_over_time import MIN_SIMILARITY, similarities
    faces = np.random.default_rng(0).random((2, 48, 48, 1))
    sims = similarities(faces, np.stack([faces[0] * 0.5 + 0.1, faces[0]]))
    assert sims[0] == pytest.approx(1.0) and abs(sims[1]) < MIN_SIMILARITY
    assert similarities(np.ones((1, 4)), np.ones((1, 4)))[0] == 0.0  # constant: no match
    # the same stamp again (a repeated message) is not a next frame
    clf.calls.clear()
    mot.classify(clf, [crop], [("b", 1)], [0.56])
    assert clf.calls == [2]


def test_chunking_padding_and_bad_input() -> None:
    clf = SidedClassifier()
    mot = MirrorOverTime()
    crops = [_face(10 * i, 200) for i in range(5)]
    keys = [("", i + 1) for i in range(5)]
    full, _ = mot.classify(clf, crops, keys, [0.0] * 5, chunk=4)
    assert clf.calls == [4, 4, 2]
    clf.calls.clear()
    padded, _ = mot.classify(clf, crops[:2], keys[:2], [0.03] * 2, pad_to=6)
    assert clf.calls == [6] and padded.shape == (2, 7)
    empty, valid = mot.classify(clf, [], [], [])
    assert empty.shape == (0, 7) and valid.shape == (0,)
    with pytest.raises(ValueError, match="keys"):
        mot.classify(clf, crops, keys[:2], [0.0] * 5)
    clf.tta_shift = 1
    assert not MirrorOverTime.applies(clf)
    with pytest.raises(ValueError, match="tta_shift"):
        mot.classify(clf, crops, keys, [0.1] * 5)
    with pytest.raises(ValueError, match="max_gap"):
        MirrorOverTime(max_gap=0)


def test_non_finite_outputs_are_invalid_and_not_kept() -> None:
    class NaNOnce(SidedClassifier):
        bad = True

        def predict(self, batch):
            out = super().predict(batch)
            if self.bad:
                out[:] = np.nan
            return out

    clf = NaNOnce()
    mot = MirrorOverTime()
    _, valid = mot.classify(clf, [_face(200, 20)], [("", 1)], [0.0])
    assert not valid.any()
    clf.bad = False
    clf.calls.clear()
    _, valid = mot.classify(clf, [_face(200, 20)], [("", 1)], [0.03])
    assert valid.all() and clf.calls == [2], "a NaN view is never averaged into a later frame"


def test_classify_crops_and_groups_use_the_same_state() -> None:
    clf = SidedClassifier()
    box = Box(0, 0, 60, 60)
    faces = [TrackedFace(face_id=3, box=box, score=0.9, confirmed=True),
             TrackedFace(face_id=0, box=box, score=0.9, confirmed=True)]
    crops = [_face(200, 20), _face(20, 200)]
    mot = MirrorOverTime()
    est, invalid = classify_crops(clf, crops, faces, 0.0, over_time=mot, camera="front")
    assert invalid == 0 and [e.face_id for e in est] == [3, 0]
    clf.calls.clear()
    results = classify_groups(clf, [(crops, faces, 1 / 30), (crops[:1], faces[:1], 1 / 30)],
                              pad_to=8, over_time=mot, cameras=["front", "back"])
    # front:3 seen last frame (1 view), the untracked face (2), back:3 is new (2), padded to 8
    assert clf.calls == [8]
    assert [len(e) for e, _ in results] == [2, 1]
    # a classifier without mirror TTA (or a duck-typed one) is classified as usual
    clf.tta_mirror = False
    clf.calls.clear()
    classify_crops(clf, crops, faces, 2 / 30, over_time=mot, camera="front")
    assert clf.calls == [2]
    clf.tta_mirror = True
    with pytest.raises(ValueError, match="camera names"):
        classify_groups(clf, [(crops, faces, 0.1)], over_time=mot, cameras=[])


def _node_outputs(rclpy_session, over_time: bool, stamps: list[float], face_ids: list[int]):
    from builtin_interfaces.msg import Time
    from emotion_msgs.msg import Face, FaceArray
    from rclpy.parameter import Parameter

    from emotion_perception.core.sample_input import astronaut_face
    from emotion_perception.nodes.classifier_node import EmotionClassifierNode
    from emotion_perception.nodes.convert import array_to_image

    node = EmotionClassifierNode(None, parameter_overrides=[
        Parameter("autostart", value=False),
        Parameter("tta_mirror_over_time", value=over_time),
        Parameter("max_age", value=0.0)])
    try:
        node.trigger_configure()
        assert not node.configure_error, node.configure_error
        node.trigger_activate()
        out = []
        node._pub.publish = out.append
        face = astronaut_face()
        crop = array_to_image(np.ascontiguousarray(face), "bgr8")
        for stamp, fid in zip(stamps, face_ids):
            t = Time(sec=int(stamp), nanosec=int(round((stamp % 1) * 1e9)))
            msg = FaceArray(faces=[Face(face_id=fid, crop=crop, detection_score=0.9)])
            msg.header.stamp = t
            msg.image_width = msg.image_height = 1000
            node._process(msg)
        return ([np.array(m.emotions[0].probabilities) for m in out],
                node.diagnostics_extra().get("views_per_face"))
    finally:
        node._close_all()
        node.destroy_node()


@pytest.mark.ros
def test_the_classifier_node_spreads_mirror_tta_over_a_tracks_frames(rclpy_session):
    stamps = [100.0, 100.033, 100.066, 100.1]
    spread, views = _node_outputs(rclpy_session, True, stamps, [5, 5, 5, 5])
    both, no_views = _node_outputs(rclpy_session, False, stamps, [5, 5, 5, 5])
    assert views == pytest.approx(5 / 4) and no_views is None
    np.testing.assert_allclose(spread[0], both[0], atol=1e-6)  # a new track: both views
    # the same face every frame: one view a frame averaged with the last gives both views again
    for p in spread[1:]:
        np.testing.assert_allclose(p, both[0], atol=2e-3)
    assert all(int(np.argmax(p)) == 3 for p in spread), "the smiling demo face is happy"
    _, untracked = _node_outputs(rclpy_session, True, stamps, [0, 0, 0, 0])
    assert untracked == pytest.approx(2.0)

"""Tests of the face detectors and of the embedded sample input they run on."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_perception.core.classifiers.base import ModelError
from emotion_perception.core.detectors.haar import HaarDetector, weight_to_score
from emotion_perception.core.detectors.yunet import YuNetDetector
from emotion_perception.core.sample_input import (
    PORTRAIT_FACE_BOX, astronaut_face, demo_frames, scene_boxes, synthetic_scene,
    synthetic_scene_with_boxes)
from emotion_perception.core.types import Box, FaceDetection


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


def _best_iou(dets: list[FaceDetection], box: Box) -> float:
    return max((d.box.iou(box) for d in dets), default=0.0)


# --- sample input -------------------------------------------------------------------------

def test_astronaut_face_crop() -> None:
    face = astronaut_face()
    assert face.shape == (180, 180, 3) and face.dtype == np.uint8
    face[:] = 0  # a copy: the cached portrait is untouched
    assert astronaut_face().mean() > 50


@pytest.mark.parametrize("n_faces", [0, 1, 2, 4])
def test_scene_geometry(n_faces: int) -> None:
    frame, boxes = synthetic_scene_with_boxes(n_faces, size=(480, 640), t=0.7)
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    assert len(boxes) == n_faces
    for a in boxes:
        assert a.clipped(640, 480) == a and a.w >= 56
        assert all(a.iou(b) == 0.0 for b in boxes if b is not a)
    np.testing.assert_array_equal(frame, synthetic_scene(n_faces, (480, 640), 0.7))
    assert boxes == scene_boxes(n_faces, (480, 640), 0.7)


def test_scene_drifts_slowly() -> None:
    a, b = scene_boxes(2, t=0.0), scene_boxes(2, t=1.0 / 15.0)
    c = scene_boxes(2, t=2.0)
    for before, after, later in zip(a, b, c):
        assert abs(after.x - before.x) + abs(after.y - before.y) <= 4
        assert before.iou(after) > 0.9
        assert later != before


def test_scene_errors() -> None:
    with pytest.raises(ValueError, match="n_faces"):
        synthetic_scene(-1)
    with pytest.raises(ValueError, match="n_faces"):
        synthetic_scene(40, size=(240, 320))
    with pytest.raises(ValueError, match="size"):
        synthetic_scene(1, size=(32, 640))


def test_demo_frames() -> None:
    frames = list(demo_frames(3, fps=10, n_faces=2, size=(240, 320)))
    assert [t for t, _ in frames] == pytest.approx([0.0, 0.1, 0.2])
    assert all(f.shape == (240, 320, 3) for _, f in frames)
    endless = demo_frames(None, fps=30)
    assert [next(endless)[0] for _ in range(3)] == pytest.approx([0.0, 1 / 30, 2 / 30])
    with pytest.raises(ValueError, match="fps"):
        next(demo_frames(2, fps=0))
    with pytest.raises(ValueError, match="n_frames"):
        next(demo_frames(-1))


# --- haar -----------------------------------------------------------------------------------

def test_haar_finds_the_portrait_face(haar: HaarDetector) -> None:
    dets = haar.detect(astronaut_face())
    assert len(dets) == 1
    assert dets[0].box.iou(PORTRAIT_FACE_BOX) > 0.6
    assert 0.5 < dets[0].score <= 1.0
    assert dets[0].landmarks is None


@pytest.mark.parametrize("n_faces", [1, 2])
@pytest.mark.parametrize("t", [0.0, 2.3])
def test_haar_finds_scene_faces(haar: HaarDetector, n_faces: int, t: float) -> None:
    frame, truth = synthetic_scene_with_boxes(n_faces, t=t)
    before = frame.copy()
    dets = haar.detect(frame)
    np.testing.assert_array_equal(frame, before)
    assert len(dets) == n_faces
    for box in truth:
        assert _best_iou(dets, box) > 0.5
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for d in dets:
        assert d.box.clipped(640, 480) == d.box and d.box.area > 0


def test_haar_gray_and_full_resolution(haar: HaarDetector) -> None:
    frame, truth = synthetic_scene_with_boxes(2, t=1.0)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert [d.box for d in haar.detect(gray)] == [d.box for d in haar.detect(frame)]
    full = HaarDetector(downscale=False).detect(frame)
    assert len(full) == 2 and all(_best_iou(full, b) > 0.5 for b in truth)
    dim = (gray * 0.25).astype(np.uint8)
    equalized = HaarDetector(max_side=0, equalize=True).detect(dim)
    assert len(equalized) == 2 and all(_best_iou(equalized, b) > 0.5 for b in truth)


def test_haar_min_and_max_size(haar: HaarDetector) -> None:
    frame = synthetic_scene(1)
    assert HaarDetector(min_size=200).detect(frame) == []
    assert HaarDetector(min_size=20, max_size=60).detect(frame) == []


def test_haar_blank_image(haar: HaarDetector) -> None:
    assert haar.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_haar_rejects_bad_images(haar: HaarDetector) -> None:
    with pytest.raises(ValueError, match="uint8"):
        haar.detect(np.zeros((50, 50), np.float32))
    with pytest.raises(ValueError, match="shape"):
        haar.detect(np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        haar.detect(np.zeros((0, 50), np.uint8))


@pytest.mark.parametrize("kwargs, name", [
    (dict(scale_factor=1.0), "scale_factor"),
    (dict(min_neighbors=-1), "min_neighbors"),
    (dict(min_size=7), "min_size"),
    (dict(min_size=40, max_size=30), "max_size"),
    (dict(max_side=16), "max_side"),
    (dict(downscale="yes"), "downscale"),
    (dict(equalize=1), "equalize"),
    (dict(cascade=""), "cascade"),
])
def test_haar_parameter_errors(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        HaarDetector(**kwargs)


def test_haar_cascade_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cascade 'no_such_cascade.xml'"):
        HaarDetector(cascade="no_such_cascade.xml")
    with pytest.raises(FileNotFoundError, match="cascade"):
        HaarDetector(cascade=str(tmp_path / "missing.xml"))
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<opencv_storage><nothing/></opencv_storage>")
    with pytest.raises(ModelError, match="garbage.xml"):
        HaarDetector(cascade=str(garbage))
    alt = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"
    assert HaarDetector(cascade=str(alt)).path == alt


def test_weight_to_score_is_monotonic_in_unit_interval() -> None:
    weights = [-1e9, -5.0, 0.0, 1.0, 3.0, 8.0, 1e9, float("inf")]
    scores = [weight_to_score(w) for w in weights]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores)
    assert weight_to_score(1.0) == pytest.approx(0.5)
    assert weight_to_score(float("nan")) < 0.01


# --- yunet ----------------------------------------------------------------------------------

def test_yunet_empty_model_path_says_where_to_get_one() -> None:
    with pytest.raises(ValueError, match="model_path") as info:
        YuNetDetector()
    assert "opencv_zoo" in str(info.value) and ".onnx" in str(info.value)


def test_yunet_missing_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model_path") as info:
        YuNetDetector(model_path=str(tmp_path / "face_detection_yunet.onnx"))
    assert "opencv_zoo" in str(info.value)
    with pytest.raises(FileNotFoundError, match="model_path"):
        YuNetDetector(model_path="no_such_yunet_model.onnx")  # bare name: looked up


def test_yunet_garbage_model(tmp_path: Path) -> None:
    bad = tmp_path / "broken_yunet.onnx"
    bad.write_bytes(b"this is not an onnx file" * 10)
    with pytest.raises(ModelError, match="broken_yunet.onnx"):
        YuNetDetector(model_path=str(bad))


@pytest.mark.parametrize("kwargs, name", [
    (dict(score_threshold=1.5), "score_threshold"),
    (dict(score_threshold=-0.1), "score_threshold"),
    (dict(nms_threshold=2.0), "nms_threshold"),
    (dict(top_k=0), "top_k"),
    (dict(max_side=10), "max_side"),
])
def test_yunet_parameter_errors(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        YuNetDetector(model_path="unused.onnx", **kwargs)


_YUNET = os.environ.get("EMOTION_PERCEPTION_YUNET_MODEL", "")


@pytest.mark.skipif(not _YUNET or not Path(_YUNET).is_file(),
                    reason="no YuNet .onnx model available offline (the package never downloads"
                           " one); set EMOTION_PERCEPTION_YUNET_MODEL to a "
                           "face_detection_yunet_*.onnx file to run this test")
def test_yunet_finds_scene_faces() -> None:
    detector = YuNetDetector(model_path=_YUNET)
    frame, truth = synthetic_scene_with_boxes(2, t=0.5)
    dets = detector.detect(frame)
    assert len(dets) == 2
    for det in dets:
        assert det.landmarks is not None and det.landmarks.shape == (5, 2)
        assert 0.0 <= det.score <= 1.0
    for box in truth:
        assert _best_iou(dets, box) > 0.4
    for det in dets:  # the shared contract: rows 0 and 1 are the right and left eye
        assert det.landmark_names[:2] == ("right_eye", "left_eye")
        assert det.eyes() is not None and det.eyes()[0][0] < det.eyes()[1][0]


# --- blazeface ------------------------------------------------------------------------------

def _blazeface(**kwargs):
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector
    try:
        return BlazeFaceDetector(**kwargs)
    except FileNotFoundError as exc:  # the mediapipe wheel that carries the model is absent
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def blazeface():
    return _blazeface()


@pytest.mark.parametrize("n_faces", [1, 2, 4])
def test_blazeface_finds_the_demo_faces_with_keypoints(n_faces: int) -> None:
    detector = _blazeface(input_side=256)
    frame, truth = synthetic_scene_with_boxes(n_faces, t=0.4)
    before = frame.copy()
    dets = detector.detect(frame)
    np.testing.assert_array_equal(frame, before)
    assert len(dets) == n_faces
    for box in truth:
        assert _best_iou(dets, box) > 0.5
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True) and all(0.5 <= s <= 1.0 for s in scores)
    for det in dets:
        assert det.box.clipped(640, 480) == det.box
        assert det.landmarks.shape == (6, 2) and det.landmarks.dtype == np.float32
        assert det.landmark_names == ("right_eye", "left_eye", "nose_tip", "mouth_center",
                                      "right_ear_tragion", "left_ear_tragion")
        x, y, w, h = det.box.as_tuple()
        right, left = det.eyes()
        nose, mouth = det.landmarks[2], det.landmarks[3]
        # upright faces: the person's right eye is the left one in the image, both above
        # the nose, the nose above the mouth, all inside the box
        assert x < right[0] < left[0] < x + w
        assert max(right[1], left[1]) < nose[1] < mouth[1] < y + h
        assert left[0] - right[0] > 0.25 * w
    # gray, (H, W, 1) and BGRA frames: the same faces
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    for other in (gray, gray[:, :, None], cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)):
        found = detector.detect(other)
        assert len(found) == n_faces and all(_best_iou(found, b) > 0.5 for b in truth)


@pytest.mark.parametrize("model, input_side", [("short", 0), ("short", 192), ("full", 0)])
def test_blazeface_models_and_input_sizes(model: str, input_side: int) -> None:
    detector = _blazeface(model=model, input_side=input_side)
    frame, truth = synthetic_scene_with_boxes(2, t=1.0)
    dets = detector.detect(frame)
    assert len(dets) == 2 and all(_best_iou(dets, b) > 0.5 for b in truth)
    # another frame size resizes the input (short) or letterboxes it (full): same faces
    small = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
    half = [Box(b.x // 2, b.y // 2, b.w // 2, b.h // 2) for b in truth]
    dets = detector.detect(small)
    assert len(dets) == 2 and all(_best_iou(dets, b) > 0.5 for b in half)


def test_blazeface_second_pass_finds_a_small_face_the_first_misses() -> None:
    frame, (box,) = synthetic_scene_with_boxes(1)
    small = cv2.resize(frame, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas = np.zeros_like(frame)
    canvas[100:100 + small.shape[0], 150:150 + small.shape[1]] = small
    truth = Box(150 + round(box.x * 0.4), 100 + round(box.y * 0.4), round(box.w * 0.4),
                round(box.h * 0.4))
    # the face is 15 px in the first pass's input
    assert _blazeface(input_side=128, refine_threshold=0.0).detect(canvas) == []
    refined = _blazeface(input_side=128, refine_threshold=0.1)
    (face,) = refined.detect(canvas)
    assert _best_iou([face], truth) > 0.5 and face.score >= refined.score_threshold
    assert face.landmarks.shape == (6, 2)
    right, left = face.eyes()
    assert truth.x < right[0] < left[0] < truth.x + truth.w
    # the faces the first pass finds stay as they are: the second pass only adds
    frame2, truth2 = synthetic_scene_with_boxes(2, t=1.0)
    plain = _blazeface(input_side=256, refine_threshold=0.0).detect(frame2)
    both = _blazeface(input_side=256, refine_threshold=0.1).detect(frame2)
    assert [d.box for d in both[:len(plain)]] == [d.box for d in plain]
    assert all(_best_iou(both, b) > 0.5 for b in truth2)
    # nothing weak in a blank frame: no tile, no face
    assert refined.detect(np.zeros((480, 640, 3), np.uint8)) == []
    # refine_accept is the score the tile's face must reach: above that face's, it is dropped
    assert _blazeface(input_side=128, refine_threshold=0.1,
                      refine_accept=min(0.99, face.score + 0.005)).detect(canvas) == []
    assert len(_blazeface(input_side=128, refine_threshold=0.1,
                          refine_accept=max(0.01, face.score - 0.05)).detect(canvas)) == 1


def test_blazeface_detect_regions_refinds_faces_where_they_are_and_nowhere_else() -> None:
    detector = _blazeface(input_side=256)
    assert detector.detects_regions
    frame, truth = synthetic_scene_with_boxes(2, t=0.4)
    full = detector.detect(frame)
    # a tracked box a little off the face (the face moved): the face is found where it is
    moved = [Box(b.x + b.w // 8, b.y - b.h // 10, b.w, b.h) for b in truth]
    empty = Box(5, 5, 60, 60)  # background only
    found = detector.detect_regions(frame, [*moved, empty, Box(10, 10, 0, 0)])
    assert len(found) == 4 and found[2] is None and found[3] is None
    for face, box in zip(found[:2], truth):
        assert face is not None and face.box.iou(box) > 0.5
        assert _best_iou(full, face.box) > 0.6 and face.score >= detector.score_threshold
        assert face.landmarks.shape == (6, 2) and face.box.clipped(640, 480) == face.box
        right, left = face.eyes()
        assert box.x < right[0] < left[0] < box.x + box.w
    # a box whose centre has no face: the face beside it is not returned for it
    (other,) = detector.detect_regions(frame, [Box(truth[0].x + truth[0].w, truth[0].y,
                                                   truth[0].w, truth[0].h)])
    assert other is None or _best_iou([other], truth[0]) < 0.3
    assert detector.detect_regions(frame, []) == []
    # a 96x96 tile against the 256x192 input of a 640x480 frame: under a fifth of the work
    assert detector.region_side == 96
    assert detector.region_cost(frame.shape) == pytest.approx(96 * 96 / (256 * 192))
    assert _blazeface(input_side=192).region_cost((480, 640)) == pytest.approx(
        96 * 96 / (144 * 192))
    assert _blazeface(region_side=0).region_cost((480, 640)) == pytest.approx(
        128 * 128 / (256 * 192))
    assert _blazeface(model="full").region_cost((480, 640)) == 1.0
    assert HaarDetector().region_cost((480, 640)) == 0.0
    # detectors without regions say so
    with pytest.raises(NotImplementedError, match="haar"):
        HaarDetector().detect_regions(frame, truth)
    assert not HaarDetector.detects_regions


@pytest.mark.parametrize("side", [0, 96, 64])
def test_blazeface_region_tiles_run_at_region_side(side: int) -> None:
    """The looks near tracked faces run at region_side, the second pass at refine_side."""
    detector = _blazeface(input_side=256, region_side=side, refine_side=0)
    frame, truth = synthetic_scene_with_boxes(2, t=0.4)
    found = detector.detect_regions(frame, truth)
    assert all(f is not None and f.box.iou(b) > 0.5 for f, b in zip(found, truth))
    side = side or 128
    assert detector._tiles[side].input.shape == (1, side, side, 3)
    assert detector._tiles[side].interp.get_input_details()[0]["shape"].tolist() == \
        [1, side, side, 3]
    # refine_side 0: the second pass's tiles at the model's own input; both made at
    # construction
    assert detector._tiles[128].input.shape == (1, 128, 128, 3)
    assert sorted(detector._tiles) == sorted({128, side})
    assert detector.refine_side == 128
    # by default the second pass's tiles are 96x96, the same interpreter as 96 region tiles
    default = _blazeface(region_side=side)
    assert default.refine_side == 96 and sorted(default._tiles) == sorted({96, side})
    assert sorted(_blazeface(region_side=side, refine_side=112)._tiles) == sorted({112, side})
    assert sorted(_blazeface(region_side=side, refine_threshold=0.0)._tiles) == [side]
    # the fixed-input full-range model: its own input, whatever region_side says
    assert _blazeface(model="full", region_side=64).region_side == 192
    assert _blazeface(model="full", refine_side=64).refine_side == 192


def test_blazeface_keypoints_turn_with_the_face() -> None:
    from emotion_perception.core.preprocessing import eye_roll

    detector = _blazeface(input_side=256)
    frame, (box,) = synthetic_scene_with_boxes(1)
    (upright,) = detector.detect(frame)
    base = math.degrees(eye_roll(upright.eyes()))
    assert abs(base) < 6.0
    for degrees in (-20.0, 20.0):
        # cv2's positive angle turns the image counter-clockwise on screen: the person's
        # left eye (right in the image) goes up, the eye line's angle becomes -degrees
        # (the keypoints of a 100 px face at input_side 256 are good to a few degrees)
        turn = cv2.getRotationMatrix2D(box.center, degrees, 1.0)
        turned = cv2.warpAffine(frame, turn, (640, 480), borderMode=cv2.BORDER_REPLICATE)
        (det,) = detector.detect(turned)
        assert math.degrees(eye_roll(det.eyes())) - base == pytest.approx(-degrees, abs=10.0)


def test_blazeface_mirror_pass_merges_the_mirrored_look() -> None:
    """The mirrored scan's faces land on the same faces, eyes the right way round."""
    mirrored, plain = _blazeface(mirror_pass=True), _blazeface(mirror_pass=False)
    assert mirrored.mirror_pass and not plain.mirror_pass
    frame, truth = synthetic_scene_with_boxes(2, t=0.3)
    for image, boxes in ((frame, truth),
                         (np.ascontiguousarray(frame[:, ::-1]),
                          [Box(640 - b.x - b.w, b.y, b.w, b.h) for b in truth])):
        found, ref = mirrored.detect(image), plain.detect(image)
        assert len(found) == len(ref) == 2  # merged with the first look, not beside it
        for face in found:
            (match,) = [r for r in ref if r.box.iou(face.box) > 0.8]
            assert max(_best_iou([face], b) for b in boxes) > 0.5
            right, left = face.eyes()
            # unmirrored image: the person's right eye is on the image's left; a keypoint
            # swap left undone would average the two eyes towards the nose
            assert right[0] < left[0]
            ref_right, ref_left = match.eyes()
            assert np.linalg.norm(left - right) == pytest.approx(
                np.linalg.norm(ref_left - ref_right), rel=0.15)
    # the two scans' candidates together: twice the network runs of one scan
    mirrored._prepare(frame)
    both = mirrored._scan()
    plain._prepare(frame)
    assert len(both[2]) > len(plain._scan()[2])


def test_blazeface_blank_and_bad_images(blazeface) -> None:
    assert blazeface.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        blazeface.detect(np.zeros((48, 48), np.float32))
    with pytest.raises(ValueError, match="shape"):
        blazeface.detect(np.zeros((48, 48, 2), np.uint8))


def test_blazeface_anchor_grids_match_the_models() -> None:
    from emotion_perception.core.detectors.blazeface import MODELS, make_anchors
    anchors = make_anchors(MODELS["short"], 128, 128)
    assert anchors.shape == (896, 2)  # 16x16 cells x 2 + 8x8 cells x 6
    np.testing.assert_allclose(anchors[:2], [[4.0, 4.0], [4.0, 4.0]])
    np.testing.assert_allclose(anchors[512], [8.0, 8.0])  # first stride-16 cell
    assert make_anchors(MODELS["short"], 256, 192).shape == (32 * 24 * 2 + 16 * 12 * 6, 2)
    assert make_anchors(MODELS["full"], 192, 192).shape == (48 * 48, 2)


def test_weighted_nms_merges_overlaps_by_score() -> None:
    from emotion_perception.core.detectors.blazeface import weighted_nms
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    points = np.array([[[2.0, 2.0]], [[4.0, 2.0]], [[55.0, 55.0]]])
    scores = np.array([0.6, 0.9, 0.7])
    out = weighted_nms(boxes, points, scores, 0.3)
    assert [round(s, 2) for _, _, s in out] == [0.9, 0.7]
    (box, pts, _), (far, _, _) = out
    np.testing.assert_allclose(box, [0.6, 0, 10.6, 10])  # (0.6 * 0 + 0.9 * 1) / 1.5
    np.testing.assert_allclose(pts, [[3.2, 2.0]])
    np.testing.assert_allclose(far, boxes[2])
    assert len(weighted_nms(boxes, points, scores, 1.0)) == 3  # nothing overlaps by > 1


@pytest.mark.parametrize("kwargs, name", [
    (dict(model="medium"), "model"),
    (dict(input_side=32), "input_side"),
    (dict(input_side=100.5), "input_side"),
    (dict(score_threshold=1.0), "score_threshold"),
    (dict(nms_threshold=-0.1), "nms_threshold"),
    (dict(min_size=-1), "min_size"),
    (dict(num_threads=0), "num_threads"),
    (dict(refine_threshold=0.5), "refine_threshold"),
    (dict(refine_threshold=-0.1), "refine_threshold"),
    (dict(refine_threshold=0.1, refine_max=-1), "refine_max"),
    (dict(refine_threshold=0.1, refine_scale=0.5), "refine_scale"),
    (dict(refine_threshold=0.1, refine_accept=1.0), "refine_accept"),
    (dict(region_side=100), "region_side"),
    (dict(region_side=48), "region_side"),
    (dict(region_side=272), "region_side"),
    (dict(refine_side=100), "refine_side"),
    (dict(refine_side=32), "refine_side"),
    (dict(mirror_pass="yes"), "mirror_pass"),
])
def test_blazeface_parameter_errors(kwargs: dict, name: str) -> None:
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector
    with pytest.raises(ValueError, match=name):
        BlazeFaceDetector(**kwargs)


def test_blazeface_model_files(tmp_path: Path, blazeface) -> None:
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector, installed_model
    with pytest.raises(FileNotFoundError, match="model_path"):
        BlazeFaceDetector(model_path=str(tmp_path / "missing.tflite"))
    bad = tmp_path / "broken_blazeface.tflite"
    bad.write_bytes(b"not a flatbuffer" * 20)
    with pytest.raises(ModelError, match="broken_blazeface.tflite"):
        BlazeFaceDetector(model_path=str(bad))
    # the other model's file under the short model's name: its shapes are refused
    full = installed_model("face_detection_full_range_sparse.tflite")
    with pytest.raises(ModelError, match="input"):
        BlazeFaceDetector(model="short", model_path=str(full))
    with pytest.raises(FileNotFoundError, match="mediapipe"):
        installed_model("no_such_model.tflite")
    assert blazeface.path.name == "face_detection_short_range.tflite"


def test_blazeface_is_a_registered_plugin_with_a_calibrated_framing(blazeface) -> None:
    from emotion_perception.core import plugins
    assert plugins.available("detector")["blazeface"].endswith(":BlazeFaceDetector")
    margin, offset = blazeface.crop_framing
    assert 0.0 <= margin <= 0.3 and -0.2 <= offset < 0.0  # the box sits low on FER faces
    assert HaarDetector.crop_framing != blazeface.crop_framing


@pytest.mark.parametrize("key, value", [("blazeface.region_side", 100),
                                        ("blazeface.input_side", 32)])
def test_blazeface_value_errors_name_the_node_parameter(key: str, value: int) -> None:
    """A refused value is named as the parameter the user sets, other words left as they are."""
    from emotion_perception.builders import build_detector
    from emotion_perception.core.params import merge_params

    values = merge_params(["face_detector"], overrides={"face_detector": {key: value}})
    with pytest.raises(ValueError) as err:
        build_detector(values["face_detector"])
    message = str(err.value)
    assert message.startswith(f"{key} must be 0 (the network's own") and f"got {value}" in message
    assert "blazeface.model" not in message

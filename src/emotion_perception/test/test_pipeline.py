"""Tests of the frame pipeline (sample scene -> haar -> tracker -> classifier) and annotation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from emotion_perception.core.annotate import draw_annotations
from emotion_perception.core.classes import NUM_CLASSES
from emotion_perception.core.classifiers.base import EmotionClassifier
from emotion_perception.core.detectors.haar import HaarDetector
from emotion_perception.core.image_conversion import array_to_image, image_to_array, to_bgr8
from emotion_perception.core.pipeline import FramePipeline, build_estimates, classify_crops
from emotion_perception.core.preprocessing import (crop_face, crop_geometry, eye_roll,
                                                   square_crop_box)
from emotion_perception.core.sample_input import demo_frames, scene_boxes
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Box, EmotionEstimate, FaceDetection, TrackedFace


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory: pytest.TempPathFactory) -> EmotionClassifier:
    keras = pytest.importorskip("keras")
    from emotion_perception.core.classifiers.keras_classifier import KerasClassifier
    keras.utils.set_random_seed(3)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    path = tmp_path_factory.mktemp("pipeline") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return KerasClassifier(model_path=str(path))


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


class _MeanClassifier(EmotionClassifier):
    """Deterministic fake: probabilities from the mean brightness; NaN for dark crops."""

    name = "mean"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        mean = batch.mean(axis=(1, 2, 3))
        out = np.stack([np.full(NUM_CLASSES, m + 0.01) for m in mean]).astype(np.float32)
        out[:, 3] += mean
        out[mean < 0.05] = np.nan
        return out


def test_two_faces_stable_ids_over_frames(haar: HaarDetector,
                                          tiny_keras: EmotionClassifier) -> None:
    pipe = FramePipeline(haar, tiny_keras, FaceTracker(min_hits=1))
    ids_per_frame = []
    for t, frame in demo_frames(5, fps=15, n_faces=2):
        estimates = pipe.process(frame, stamp=100.0 + t)
        assert len(estimates) == 2
        truth = scene_boxes(2, t=t)
        for est in estimates:
            assert est.probabilities.shape == (NUM_CLASSES,)
            assert est.probabilities.dtype == np.float32
            assert est.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
            assert est.stamp == pytest.approx(100.0 + t)
            assert 0.0 <= est.detection_score <= 1.0
            assert not est.smoothed
            assert max(est.box.iou(b) for b in truth) > 0.5
        ids_per_frame.append(sorted(e.face_id for e in estimates))
        assert pipe.timings["detect"] > 0 and pipe.timings["classify"] > 0
    assert ids_per_frame == [[1, 2]] * 5
    assert pipe.invalid_count == 0 and pipe.frames == 5
    assert pipe.pop_retired() == []


def test_unconfirmed_tracks_are_not_classified(haar: HaarDetector) -> None:
    pipe = FramePipeline(haar, _MeanClassifier(), FaceTracker(min_hits=2))
    frames = [f for _, f in demo_frames(3, n_faces=1)]
    assert pipe.process(frames[0], 0.0) == []
    assert len(pipe.last_tracked) == 1 and not pipe.last_tracked[0].confirmed
    assert [e.face_id for e in pipe.process(frames[1], 0.1)] == [1]


def test_no_tracker_gives_untracked_faces(haar: HaarDetector) -> None:
    pipe = FramePipeline(haar, _MeanClassifier(), tracker=None)
    _, frame = next(demo_frames(1, n_faces=2))
    estimates = pipe.process(frame, 1.0)
    assert [e.face_id for e in estimates] == [0, 0]
    assert pipe.pop_retired() == []


def test_max_faces_keeps_the_best(haar: HaarDetector) -> None:
    pipe = FramePipeline(haar, _MeanClassifier(), FaceTracker(min_hits=1), max_faces=1)
    _, frame = next(demo_frames(1, n_faces=2))
    faces = pipe.detect(frame)
    best = haar.detect(frame)[0]
    assert len(faces) == 1 and faces[0].box == best.box


def test_crops_follow_the_margin(haar: HaarDetector) -> None:
    pipe = FramePipeline(haar, _MeanClassifier(), crop_margin=0.2)
    face = TrackedFace(face_id=1, box=Box(100, 100, 50, 50), score=1.0, confirmed=True)
    image = np.zeros((300, 300, 3), np.uint8)
    (crop,) = pipe.crops(image, [face])
    assert crop.shape == (70, 70, 3)
    assert np.shares_memory(crop, image)


def test_invalid_rows_are_dropped_and_counted(haar: HaarDetector) -> None:
    pipe = FramePipeline(haar, _MeanClassifier())
    image = np.zeros((200, 300, 3), np.uint8)
    image[:, 150:] = 200  # right face bright, left face black -> NaN row
    faces = [TrackedFace(face_id=i + 1, box=Box(20 + 150 * i, 50, 80, 80), score=0.9,
                         confirmed=True) for i in range(2)]
    estimates = pipe.classify(image, faces, stamp=2.5)
    assert [e.face_id for e in estimates] == [2]
    assert estimates[0].label == 3 and estimates[0].box == faces[1].box
    assert pipe.invalid_count == 1


def test_build_estimates_checks_lengths() -> None:
    face = TrackedFace(face_id=1, box=Box(0, 0, 4, 4), score=1.0, confirmed=True)
    with pytest.raises(ValueError, match="faces"):
        build_estimates([face], np.zeros((2, 7), np.float32), np.ones(2, bool), 0.0)
    with pytest.raises(ValueError, match="crops"):
        classify_crops(_MeanClassifier(), [], [face], 0.0)


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "mono8"])
def test_pipeline_equals_node_chain(haar: HaarDetector, tiny_keras: EmotionClassifier,
                                    encoding: str) -> None:
    """process() gives what detector node -> crop messages -> classifier node would give."""
    in_process = FramePipeline(haar, tiny_keras, FaceTracker(min_hits=1))
    detector_side = FramePipeline(haar, tiny_keras, FaceTracker(min_hits=1))
    for t, frame_bgr in demo_frames(3, n_faces=2):
        source = {"bgr8": frame_bgr, "rgb8": frame_bgr[:, :, ::-1],
                  "mono8": frame_bgr.mean(axis=2).astype(np.uint8)}[encoding]
        msg = array_to_image(source, encoding)
        # what the runner / bag evaluation does
        expected = in_process.process(to_bgr8(image_to_array(msg), encoding), t)
        # detector node: detect on the BGR view, publish crops in the source encoding
        raw = image_to_array(msg)
        faces = detector_side.detect(to_bgr8(raw, encoding))
        crop_msgs = [array_to_image(np.ascontiguousarray(c), encoding)
                     for c in detector_side.crops(raw, faces)]
        # classifier node: crop messages -> BGR arrays -> one batch
        crops = [to_bgr8(image_to_array(m), m.encoding) for m in crop_msgs]
        got, invalid = classify_crops(tiny_keras, crops, faces, t)
        assert invalid == 0 and len(got) == len(expected) == 2
        for a, b in zip(got, expected):
            assert (a.face_id, a.box, a.stamp) == (b.face_id, b.box, b.stamp)
            np.testing.assert_array_equal(a.probabilities, b.probabilities)


def test_detect_only_pipeline(haar: HaarDetector) -> None:
    pipe = FramePipeline(haar, None, FaceTracker(min_hits=1))
    _, frame = next(demo_frames(1, n_faces=2))
    faces = pipe.detect(frame)
    assert len(faces) == 2 and len(pipe.crops(frame, faces)) == 2
    with pytest.raises(RuntimeError, match="no classifier"):
        pipe.process(frame, 0.0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(crop_margin=-0.1), "crop_margin"),
    (dict(crop_margin=1.5), "crop_margin"),
    (dict(max_faces=0), "max_faces"),
])
def test_parameter_errors(haar: HaarDetector, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FramePipeline(haar, _MeanClassifier(), **kwargs)


# --- crop framing and alignment ---------------------------------------------------------------

def _pattern_face(size: int = 200) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """A white square with a face drawn in black: two eyes, a mouth bar; their centres."""
    image = np.full((size, size), 255, np.uint8)
    marks = {"right_eye": (70.0, 80.0), "left_eye": (130.0, 80.0), "mouth": (100.0, 145.0)}
    for name in ("right_eye", "left_eye"):
        cv2.circle(image, tuple(int(v) for v in marks[name]), 8, 0, -1)
    cv2.rectangle(image, (75, 140), (125, 150), 0, -1)
    return image, marks


def _dark_blobs(crop: np.ndarray) -> list[tuple[float, float, float]]:
    """Return (x, y, width / height) of the dark blobs of a gray crop, left to right."""
    count, _, stats, centres = cv2.connectedComponentsWithStats((crop < 100).astype(np.uint8))
    blobs = [(float(c[0]), float(c[1]), stats[i, 2] / max(stats[i, 3], 1))
             for i, c in enumerate(centres) if i and stats[i, 4] > 20]
    return sorted(blobs)


@pytest.mark.parametrize("degrees", [-25.0, -10.0, 0.0, 15.0, 25.0])
def test_aligned_crop_turns_a_rotated_face_upright(degrees: float) -> None:
    face, marks = _pattern_face()
    # turn the whole picture about its centre; the marks move with it
    turn = cv2.getRotationMatrix2D((100.0, 100.0), degrees, 1.0)
    turned = cv2.warpAffine(face, turn, (200, 200), borderValue=255)
    moved = {k: turn @ np.array([x, y, 1.0]) for k, (x, y) in marks.items()}
    eyes = (moved["right_eye"], moved["left_eye"])
    assert math.degrees(eye_roll(eyes)) == pytest.approx(-degrees, abs=1e-6)
    box = (40.0, 40.0, 120.0, 120.0)  # an axis-aligned detector box around the face
    crop = crop_face(turned, box, 0.1, eyes=eyes)
    assert crop.shape == (144, 144)
    blobs = _dark_blobs(crop)
    assert len(blobs) == 3, blobs
    by_y = sorted(blobs, key=lambda b: b[1])
    right, left = sorted(by_y[:2])
    mouth = by_y[2]
    # upright: eyes level and on the left/right where they belong, mouth below between them
    # and wider than tall; the crop is 1.2 box sides around the box centre (100, 100)
    assert right[1] == pytest.approx(left[1], abs=1.0)
    assert right[0] == pytest.approx(72 - 30, abs=1.5) and left[0] == pytest.approx(72 + 30,
                                                                                    abs=1.5)
    assert right[1] == pytest.approx(72 - 20, abs=1.5)
    assert mouth[0] == pytest.approx(72, abs=1.5) and mouth[1] == pytest.approx(72 + 45, abs=1.5)
    assert mouth[2] > 3.0
    # without the eyes, the same box gives the unrotated crop: the eyes stay tilted
    plain = crop_face(turned, box, 0.1)
    tilt = _dark_blobs(plain)
    if abs(degrees) >= 10:
        eye_pair = sorted(tilt, key=lambda b: b[1])
        assert abs(eye_pair[0][1] - eye_pair[-1][1]) > 5.0


def test_crop_geometry_and_offsets() -> None:
    # offset moves the centre down the face: down the image when upright, sideways when the
    # face lies on its side (eye line pointing down the image: angle +90 degrees)
    assert crop_geometry((10, 20, 40, 30), 0.1, 0.0) == pytest.approx((30.0, 35.0, 48.0))
    assert crop_geometry((10, 20, 40, 30), 0.0, -0.1) == pytest.approx((30.0, 31.0, 40.0))
    cx, cy, side = crop_geometry((10, 20, 40, 30), 0.0, 0.25, math.pi / 2)
    assert (cx, cy, side) == pytest.approx((20.0, 35.0, 40.0))
    assert square_crop_box((100, 100, 50, 50), 0.0, (300, 300), offset=-0.2) == \
        (100, 90, 50, 50)
    assert eye_roll(None) == 0.0 and eye_roll(((5, 5), (5, 5))) == 0.0
    assert eye_roll(((0, 0), (10, 10))) == pytest.approx(math.pi / 4)


def test_level_eyes_give_the_unrotated_pixels() -> None:
    """With level eyes and whole-pixel geometry the resampled crop is the plain crop."""
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    box = (50, 30, 40, 40)
    level = ((60.0, 45.0), (80.0, 45.0))
    aligned = crop_face(image, box, 0.0, eyes=level)
    np.testing.assert_array_equal(aligned, crop_face(image, box, 0.0))
    assert not np.shares_memory(aligned, image)
    one = crop_face(image[:, :, :1], box, 0.0, eyes=level)
    assert one.shape == (40, 40, 1)
    # a face at the image edge: a full square, the edge pixels repeated
    edge = crop_face(image, (-10, -10, 40, 40), 0.0, eyes=((0.0, 0.0), (20.0, 0.0)))
    assert edge.shape == (40, 40, 3)
    np.testing.assert_array_equal(edge[0, 0], image[0, 0])
    with pytest.raises(ValueError, match="outside"):
        crop_face(image, (500, 500, 20, 20), 0.1, eyes=level)


def test_pipeline_crops_use_the_keypoints_of_each_face(haar: HaarDetector) -> None:
    face, marks = _pattern_face()
    turn = cv2.getRotationMatrix2D((100.0, 100.0), 20.0, 1.0)
    turned = cv2.warpAffine(face, turn, (200, 200), borderValue=255)
    eyes = np.array([turn @ np.array([*marks[k], 1.0]) for k in ("right_eye", "left_eye")],
                    np.float32)
    box = Box(40, 40, 120, 120)
    with_points = TrackedFace(face_id=1, box=box, score=1.0, confirmed=True, landmarks=eyes)
    without = TrackedFace(face_id=2, box=box, score=1.0, confirmed=True)
    aligned = FramePipeline(haar, None, crop_margin=0.1, crop_offset=0.05, crop_align=True)
    a, b = aligned.crops(turned, [with_points, without])
    np.testing.assert_array_equal(a, crop_face(turned, box.as_tuple(), 0.1, offset=0.05,
                                               eyes=(eyes[0], eyes[1])))
    np.testing.assert_array_equal(b, crop_face(turned, box.as_tuple(), 0.1, offset=0.05))
    plain = FramePipeline(haar, None, crop_margin=0.1, crop_offset=0.05)
    (c,) = plain.crops(turned, [with_points])
    np.testing.assert_array_equal(c, b)


def test_detect_passes_each_detections_keypoints_to_its_face() -> None:
    class _Fixed:
        name = "fixed"

        def detect(self, image):
            eyes = np.array([[20, 25], [40, 25]], np.float32)
            return [FaceDetection(Box(10, 10, 40, 40), 0.9, eyes),
                    FaceDetection(Box(100, 10, 40, 40), 0.8)]

    for tracker in (None, FaceTracker(min_hits=1)):
        pipe = FramePipeline(_Fixed(), None, tracker, crop_align=True)
        faces = pipe.detect(np.zeros((100, 200, 3), np.uint8))
        assert faces[0].landmarks.tolist() == [[20, 25], [40, 25]]
        assert faces[1].landmarks is None


class _Regions:
    """Fake detector with regions: one face per entry of ``faces`` (changed by the test)."""

    name = "regions"
    detects_regions = True

    def __init__(self, faces: list[Box]) -> None:
        self.faces = faces
        self.calls: list[str] = []

    def detect(self, image):
        self.calls.append("full")
        return [FaceDetection(b, 0.9 - 0.1 * i) for i, b in enumerate(self.faces)]

    def detect_regions(self, image, boxes):
        self.calls.append("regions")
        out = []
        for box in boxes:
            hit = [b for b in self.faces
                   if box.x <= b.center[0] <= box.x + box.w and box.y <= b.center[1] <= box.y
                   + box.h]
            out.append(FaceDetection(hit[0], 0.8) if hit else None)
        return out


def test_full_scan_every_looks_near_the_tracks_between_full_scans() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    det = _Regions([Box(10, 10, 40, 40), Box(150, 20, 50, 50)])
    pipe = FramePipeline(det, None, FaceTracker(min_hits=1), full_scan_every=3)
    ids = [[f.face_id for f in pipe.detect(frame)] for _ in range(7)]
    assert det.calls == ["full", "regions", "regions"] * 2 + ["full"]
    assert pipe.scans == {"full": 3, "regions": 4}
    assert all(sorted(i) == [1, 2] for i in ids)  # the same two tracks throughout
    # a face that moved away from its track: no frame without it, the full scan runs at once
    det.calls.clear()
    det.faces = [Box(10, 10, 40, 40), Box(200, 120, 50, 50)]
    faces = pipe.detect(frame)
    assert det.calls == ["regions", "full"]
    assert {f.box for f in faces} == set(det.faces) and len(pipe.tracker.tracks) == 3
    # a face centred in a track's box but not overlapping it enough to be its face (another
    # face there, as in a bag of stills): a full scan
    big = _Regions([Box(0, 0, 120, 120)])
    cut = FramePipeline(big, None, FaceTracker(min_hits=1), full_scan_every=3)
    cut.tracker.update([FaceDetection(Box(45, 45, 30, 30), 0.9)])  # IoU 0.06 with the face
    cut.detect(frame)
    assert big.calls == ["regions", "full"]
    # a track that missed a frame (the old position, retiring): full scans until it is gone
    det.calls.clear()
    pipe.detect(frame)
    assert det.calls == ["full"]
    # two tracks on one face: the region passes return it once
    det2 = _Regions([Box(10, 10, 40, 40)])
    twin = FramePipeline(det2, None, FaceTracker(min_hits=1), full_scan_every=5)
    twin.tracker.update([FaceDetection(Box(12, 12, 40, 40), 0.9),
                         FaceDetection(Box(14, 9, 40, 40), 0.9)])
    twin._since_full_scan = 0
    assert len(twin.detect(frame)) == 1 and det2.calls == ["regions"]
    # full_scan_every 1, no tracker, or a detector without regions: every frame is a full scan
    for pipe in (FramePipeline(_Regions([Box(10, 10, 40, 40)]), None, FaceTracker(min_hits=1)),
                 FramePipeline(_Regions([Box(10, 10, 40, 40)]), None, None, full_scan_every=3)):
        for _ in range(4):
            pipe.detect(frame)
        assert pipe.detector.calls == ["full"] * 4
    plain = _Regions([Box(10, 10, 40, 40)])
    plain.detects_regions = False
    pipe = FramePipeline(plain, None, FaceTracker(min_hits=1), full_scan_every=3)
    for _ in range(4):
        pipe.detect(frame)
    assert plain.calls == ["full"] * 4
    with pytest.raises(ValueError, match="full_scan_every"):
        FramePipeline(plain, None, full_scan_every=0)
    # tiles that would cost a full scan or more: full scans (0.4 a tile: 2 tracks yes, 3 no)
    for n, expected in ((2, ["full", "regions"]), (3, ["full", "full"])):
        costly = _Regions([Box(10 + 60 * i, 10, 40, 40) for i in range(n)])
        costly.region_cost = lambda shape: 0.4
        pipe = FramePipeline(costly, None, FaceTracker(min_hits=1), full_scan_every=3)
        pipe.detect(frame)
        pipe.detect(frame)
        assert costly.calls == expected, n


def test_full_scan_every_keeps_blazeface_on_the_demo_faces() -> None:
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector
    try:
        every, scan = BlazeFaceDetector(), BlazeFaceDetector()
    except FileNotFoundError as exc:  # the mediapipe wheel that carries the model is absent
        pytest.skip(str(exc))
    pipes = [FramePipeline(scan, None, FaceTracker()),
             FramePipeline(every, None, FaceTracker(), full_scan_every=4)]
    for _, frame in demo_frames(24, fps=15, n_faces=2):
        a, b = (p.detect(frame) for p in pipes)
        assert sorted(f.face_id for f in a) == sorted(f.face_id for f in b)
        for face in a:
            (twin,) = [f for f in b if f.face_id == face.face_id]
            assert face.box.iou(twin.box) > 0.8
    assert pipes[1].scans == {"full": 6, "regions": 18}


def test_every_path_builds_its_crops_with_the_detectors_calibrated_framing() -> None:
    """Nodes, emotion_eval_bag and emotion_eval_detectors: one builder, one crop function."""
    from emotion_perception.bags.evaluate import build_pipeline as eval_pipeline, resolve_params
    from emotion_perception.builders import build_pipeline
    from emotion_perception.core.params import DETECTOR, by_name

    defaults = {name: p.default for name, p in by_name(DETECTOR).items()}
    assert defaults["crop_margin"] == -1.0 and defaults["crop_align"] is True
    haar_values = dict(defaults, detector="haar")
    pipe = build_pipeline(haar_values)
    assert (pipe.crop_margin, pipe.crop_offset) == HaarDetector.crop_framing
    explicit = build_pipeline(dict(haar_values, crop_margin=0.3, crop_offset=0.1,
                                   crop_align=False))
    assert (explicit.crop_margin, explicit.crop_offset, explicit.crop_align) == (0.3, 0.1,
                                                                                 False)
    params = resolve_params(overrides={"face_detector": {"detector": "haar"},
                                       "emotion_classifier": {"classifier": "tflite"}})
    offline = eval_pipeline(params)
    assert (offline.crop_margin, offline.crop_offset, offline.crop_align) == \
        (pipe.crop_margin, pipe.crop_offset, pipe.crop_align)
    _, frame = next(demo_frames(1, n_faces=2))
    node_faces, eval_faces = pipe.detect(frame), offline.detect(frame)
    pipe.detect(frame), offline.detect(frame)  # min_hits 2: confirmed on the second frame
    node_faces, eval_faces = pipe.detect(frame), offline.detect(frame)
    assert len(node_faces) == 2
    for a, b in zip(pipe.crops(frame, node_faces), offline.crops(frame, eval_faces)):
        np.testing.assert_array_equal(a, b)


# --- annotation -----------------------------------------------------------------------------

def _estimate(face_id: int, box: Box, top: int, smoothed: bool = False) -> EmotionEstimate:
    probs = np.full(NUM_CLASSES, 0.05, np.float32)
    probs[top] = 1.0 - 0.05 * (NUM_CLASSES - 1)
    return EmotionEstimate(face_id=face_id, probabilities=probs, box=box, smoothed=smoothed,
                           smoother="ema" if smoothed else "")


def test_draw_annotations_returns_a_new_annotated_image() -> None:
    _, frame = next(demo_frames(1, n_faces=2))
    before = frame.copy()
    boxes = scene_boxes(2)
    out = draw_annotations(frame, [_estimate(1, boxes[0], 3),
                                   _estimate(2, boxes[1], 0, smoothed=True)])
    np.testing.assert_array_equal(frame, before)
    assert out.shape == frame.shape and out.dtype == np.uint8 and out is not frame
    changed = np.any(out != frame, axis=2)
    for box in boxes:
        # the box outline and the bar chart next to it change pixels around every face
        assert changed[box.y:box.y + box.h, box.x:box.x + 3].any()
        rows = slice(box.y, box.y + box.h)
        right = changed[rows, box.x + box.w + 4:box.x + box.w + 100]
        left = changed[rows, max(0, box.x - 100):box.x - 4]
        assert max(right.mean(), left.mean()) > 0.3
    assert not changed[450:, :40].any()  # far from the faces nothing is drawn
    assert np.array_equal(draw_annotations(frame, []), frame)


def test_draw_annotations_edge_cases() -> None:
    gray = np.full((120, 160), 90, np.uint8)
    edge = _estimate(7, Box(130, 0, 30, 30), 6)  # at the top-right corner: bars go left
    out = draw_annotations(gray, [edge])
    assert out.shape == (120, 160, 3)
    assert np.any(out[:100, :120] != 90)
    with pytest.raises(ValueError, match="uint8"):
        draw_annotations(gray.astype(np.float32), [edge])

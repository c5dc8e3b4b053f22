"""Tests of the frame pipeline (sample scene -> haar -> tracker -> classifier) and annotation."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_perception.core.annotate import draw_annotations
from emotion_perception.core.classes import NUM_CLASSES
from emotion_perception.core.classifiers.base import EmotionClassifier
from emotion_perception.core.detectors.haar import HaarDetector
from emotion_perception.core.image_conversion import array_to_image, image_to_array, to_bgr8
from emotion_perception.core.pipeline import FramePipeline, build_estimates, classify_crops
from emotion_perception.core.sample_input import demo_frames, scene_boxes
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Box, EmotionEstimate, TrackedFace


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

"""Tests of the face check (MediaPipe face-mesh presence score) and BlazeFace's use of it."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_perception.core.classifiers.base import ModelError
from emotion_perception.core.detectors.face_check import ENLARGE, INPUT_SIDE, crop_matrix
from emotion_perception.core.sample_input import demo_frames, synthetic_scene_with_boxes


def _detector(**kwargs):
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector
    try:
        return BlazeFaceDetector(**kwargs)
    except FileNotFoundError as exc:  # the mediapipe wheel that carries the models is absent
        pytest.skip(str(exc))


def _presence(**kwargs):
    from emotion_perception.core.detectors.face_check import FacePresence
    try:
        return FacePresence(**kwargs)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


class _Check:
    """Stand-in for FacePresence: a fixed score, and the scores of the faces it was asked."""

    def __init__(self, value: float) -> None:
        self.value, self.asked = value, []

    def score(self, image, box, points) -> float:
        self.asked.append(np.asarray(box, float))
        return self.value


@pytest.mark.parametrize("degrees", [0.0, 30.0, -75.0])
def test_crop_matrix_centres_the_box_and_levels_the_eye_line(degrees: float) -> None:
    box = np.array([100.0, 50.0, 180.0, 140.0])  # 80 x 90: the longer side sets the crop
    a = math.radians(degrees)
    eyes = np.array([[120.0, 80.0], [120.0 + 30 * math.cos(a), 80.0 + 30 * math.sin(a)]])
    m = crop_matrix(box, eyes)

    def to_frame(u: float, v: float) -> np.ndarray:  # crop pixel index -> frame pixel index
        return m @ np.array([u, v, 1.0])

    centre = (INPUT_SIDE - 1) / 2.0
    np.testing.assert_allclose(to_frame(centre, centre), [140.0 - 0.5, 95.0 - 0.5], atol=1e-9)
    along = to_frame(INPUT_SIDE - 1, centre) - to_frame(0, centre)
    # the crop's rows run along the eye line, from the right eye to the left one
    assert math.degrees(math.atan2(along[1], along[0])) == pytest.approx(degrees, abs=1e-9)
    # the crop is ENLARGE box sides wide
    k = np.hypot(*m[:, 0])
    assert k * INPUT_SIDE == pytest.approx(90.0 * ENLARGE)
    # no points: not turned
    assert crop_matrix(box, None)[0, 1] == 0.0


def test_presence_is_high_on_faces_upright_or_turned_and_low_on_textures() -> None:
    check = _presence()
    frame, (truth,) = synthetic_scene_with_boxes(1)
    (face,) = _detector(verify_threshold=0.0).detect(frame)
    box = np.array([face.box.x, face.box.y, face.box.x + face.box.w, face.box.y + face.box.h],
                   float)
    assert check.score(frame, box, face.landmarks) > 0.9
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert check.score(gray, box, face.landmarks) > 0.9
    # the face turned 35 degrees: the crop turns with the eye line and the score stays
    turn = cv2.getRotationMatrix2D(truth.center, 35.0, 1.0)
    turned = cv2.warpAffine(frame, turn, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    ones = np.hstack([face.landmarks[:2], np.ones((2, 1), np.float32)])
    eyes = ones @ turn.T
    assert check.score(turned, box, eyes) > 0.9
    # background: noise, a flat patch, the frame's corner
    noise = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert check.score(noise, box, None) < 0.1
    assert check.score(np.full((480, 640, 3), 90, np.uint8), box, None) < 0.1
    assert check.score(frame, np.array([0.0, 0.0, 60.0, 60.0]), None) < 0.1


def test_blazeface_checks_only_the_doubtful_faces() -> None:
    frame, truth = synthetic_scene_with_boxes(2, t=1.0)
    detector = _detector(verify_below=0.7)
    plain = _detector(verify_threshold=0.0, refine_threshold=0.0).detect(frame)
    assert len(plain) == 2
    # all first-pass faces checked (verify_below 1): a check that says no drops them all
    detector.verify_below = 1.0
    detector._check = no = _Check(0.0)
    assert detector.detect(frame) == [] and len(no.asked) >= 2
    detector._check = _Check(1.0)
    assert [d.box for d in detector.detect(frame)] == [d.box for d in plain]
    # first-pass faces at or above verify_below are not checked
    detector.verify_below = min(d.score for d in plain)
    detector._check = no = _Check(0.0)
    assert [d.box for d in detector.detect(frame)] == [d.box for d in plain]
    assert no.asked == []
    # threshold 0: no check is loaded at all
    assert _detector(verify_threshold=0.0)._check is None


def test_blazeface_checks_every_face_the_second_pass_adds() -> None:
    frame, (box,) = synthetic_scene_with_boxes(1)
    small = cv2.resize(frame, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas = np.zeros_like(frame)
    canvas[100:100 + small.shape[0], 150:150 + small.shape[1]] = small
    assert _detector(input_side=128, refine_threshold=0.0).detect(canvas) == []
    detector = _detector(input_side=128, refine_threshold=0.1, verify_below=0.0)
    (face,) = detector.detect(canvas)  # the real check agrees: it is a face
    detector._check = no = _Check(0.0)
    assert detector.detect(canvas) == [] and len(no.asked) == 1
    np.testing.assert_allclose(no.asked[0][2:] - no.asked[0][:2], [face.box.w, face.box.h],
                               atol=1.5)


def test_blazeface_with_the_check_finds_the_demo_faces() -> None:
    checked, unchecked = _detector(), _detector(verify_threshold=0.0, refine_accept=0.7)
    for _, frame in demo_frames(12, n_faces=2):
        a, b = checked.detect(frame), unchecked.detect(frame)
        assert len(a) == 2 and [d.box for d in a] == [d.box for d in b]


@pytest.mark.parametrize("kwargs, name", [
    (dict(verify_threshold=1.0), "verify_threshold"),
    (dict(verify_threshold=-0.1), "verify_threshold"),
    (dict(verify_below=1.5), "verify_below"),
    (dict(verify_model_path=3), "verify_model_path"),
])
def test_blazeface_check_parameter_errors(kwargs: dict, name: str) -> None:
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector
    with pytest.raises(ValueError, match=name):
        BlazeFaceDetector(**kwargs)


def test_face_check_model_files(tmp_path: Path) -> None:
    from emotion_perception.core.detectors.blazeface import BlazeFaceDetector, installed_model
    assert _presence().path.name == "face_landmark.tflite"
    with pytest.raises(FileNotFoundError, match="verify_model_path"):
        BlazeFaceDetector(verify_model_path=str(tmp_path / "missing.tflite"))
    bad = tmp_path / "broken_mesh.tflite"
    bad.write_bytes(b"not a flatbuffer" * 20)
    with pytest.raises(ModelError, match="broken_mesh.tflite"):
        BlazeFaceDetector(verify_model_path=str(bad))
    # BlazeFace's own file is not a face-mesh model: its shapes are refused
    short = installed_model("face_detection_short_range.tflite")
    with pytest.raises(ModelError, match="input"):
        BlazeFaceDetector(verify_model_path=str(short))


def test_without_the_wheel_the_error_says_how_to_go_on(monkeypatch) -> None:
    import importlib.metadata as metadata

    from emotion_perception.core.detectors.face_check import FacePresence

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError) as info:
        FacePresence()
    message = str(info.value)
    assert "mediapipe" in message and "verify_model_path" in message
    assert "verify_threshold 0" in message

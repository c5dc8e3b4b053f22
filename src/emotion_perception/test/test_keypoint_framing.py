"""Keypoint crop framing: known eye keypoints give the expected crop square (crop_face)."""

import math

import numpy as np
import pytest

from emotion_perception.core.preprocessing import crop_face, crop_geometry


def coordinate_image(width: int = 200, height: int = 160) -> np.ndarray:
    """Return a float32 image whose channels hold each pixel's own x and y index."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.dstack([xs, ys, np.zeros_like(xs)])


def crop_centre(crop: np.ndarray) -> tuple[float, float]:
    """Return the image point (x, y) at the middle of a crop of ``coordinate_image``."""
    return float(crop[..., 0].mean()), float(crop[..., 1].mean())


def test_level_eyes_centre_the_crop_below_their_midpoint() -> None:
    image = coordinate_image()
    box = (60, 40, 50, 50)            # box centre (85, 65)
    eyes = ((80.0, 60.0), (100.0, 60.0))  # midpoint (90, 60): 5 px right of the box centre
    crop = crop_face(image, box, 0.1, offset=0.3, eyes=eyes, eye_offset=0.2)
    assert crop.shape[:2] == (60, 60)  # side from the box: 50 * (1 + 2 * 0.1)
    cx, cy = crop_centre(crop)
    assert cx == pytest.approx(90.0 - 0.5, abs=0.05)       # the midpoint, not the box centre
    assert cy == pytest.approx(60.0 + 0.2 * 50 - 0.5, abs=0.05)  # 0.2 box sides below it
    # the top-left crop pixel is the square's corner (pixel indices are centres - 0.5)
    assert crop[0, 0, 0] == pytest.approx(90.0 - 30.0 + 0.5 - 0.5, abs=0.05)
    assert crop[0, 0, 1] == pytest.approx(70.0 - 30.0 + 0.5 - 0.5, abs=0.05)


@pytest.mark.parametrize("degrees", [-25.0, 10.0, 30.0])
def test_turned_eyes_move_the_centre_down_the_face_axis(degrees: float) -> None:
    image = coordinate_image()
    a = math.radians(degrees)
    mid = np.array([95.0, 70.0])
    across = np.array([math.cos(a), math.sin(a)])
    down = np.array([-math.sin(a), math.cos(a)])
    eyes = (mid - 12.0 * across, mid + 12.0 * across)
    box = (70, 50, 40, 40)
    crop = crop_face(image, box, 0.0, eyes=eyes, eye_offset=0.25)
    expected = mid + 0.25 * 40 * down - 0.5
    np.testing.assert_allclose(crop_centre(crop), expected, atol=0.05)
    # the crop's first row runs along the eye line: x and y change as across does
    row = crop[0, :, :2]
    step = (row[-1] - row[0]) / (len(row) - 1)
    np.testing.assert_allclose(step, across, atol=1e-3)


def test_without_eye_offset_or_eyes_the_box_frames_the_crop() -> None:
    image = coordinate_image()
    box = (60, 40, 50, 50)
    eyes = ((80.0, 60.0), (100.0, 60.0))
    aligned = crop_face(image, box, 0.1, offset=-0.1, eyes=eyes)
    np.testing.assert_allclose(crop_centre(aligned), (85.0 - 0.5, 65.0 - 5.0 - 0.5), atol=0.05)
    plain = crop_face(image, box, 0.1, offset=-0.1, eye_offset=0.2)  # no eyes: box framing
    x, y = crop_centre(plain)
    assert (x, y) == pytest.approx((85.0 - 0.5, 60.0 - 0.5), abs=0.6)


def test_crop_geometry_anchor() -> None:
    assert crop_geometry((0, 0, 10, 20), 0.5, 0.1, 0.0, anchor=(3.0, 4.0)) == \
        pytest.approx((3.0, 6.0, 40.0))
    assert crop_geometry((0, 0, 10, 20), 0.5, 0.1) == pytest.approx((5.0, 12.0, 40.0))


def test_non_finite_eyes_are_refused() -> None:
    image = coordinate_image()
    with pytest.raises(ValueError, match="not finite"):
        crop_face(image, (60, 40, 50, 50), 0.1, eyes=((80.0, 60.0), (math.nan, 60.0)),
                  eye_offset=0.2)


def test_detector_eval_scores_and_calibrates_the_eye_centred_framing(
        tmp_path, capsys, tiny_model_path):
    import json

    import cv2

    from emotion_perception.bags.detector_eval import main as eval_detectors_main
    from emotion_perception.core.sample_input import PORTRAIT_FACE_BOX, astronaut_face

    try:
        from emotion_perception.core.detectors.blazeface import BlazeFaceDetector
        BlazeFaceDetector()
    except FileNotFoundError as exc:  # the mediapipe wheel that carries the model is absent
        pytest.skip(str(exc))
    b = PORTRAIT_FACE_BOX
    face = cv2.cvtColor(astronaut_face()[b.y - 10:b.y + b.h + 10, b.x - 10:b.x + b.w + 10],
                        cv2.COLOR_BGR2GRAY)
    npz = tmp_path / "faces.npz"
    np.savez(npz, images=np.repeat(face[None], 4, axis=0), labels=np.arange(4),
             usage=np.array(["Training"] * 4))
    common = ["--npz", str(npz), "--split", "Training", "--detector", "blazeface", "--quiet",
              "--min-face", "150", "--max-face", "220", "--max-rotation", "20"]
    out = tmp_path / "r.json"
    assert eval_detectors_main(common + ["--model-path", str(tiny_model_path), "--json",
                                         str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert rows["blazeface / eye-centred"]["detection_rate"] == \
        rows["blazeface / calibrated"]["detection_rate"] > 0.5
    capsys.readouterr()
    assert eval_detectors_main(common + ["--calibrate"]) == 0
    text = capsys.readouterr().out
    offset = float(text.split("crop_eye_offset")[1].split()[0])
    assert 0.0 < offset < 0.4  # the face's centre lies below the eyes

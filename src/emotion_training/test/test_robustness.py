"""Tests of the robustness table (emotion_training.robustness)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_training.robustness import PERTURBATIONS, format_table, main, perturb


def test_perturbations_are_seeded_change_faces_and_keep_their_type(make_faces) -> None:
    faces, _ = make_faces(6, seed=3)
    for name in PERTURBATIONS:
        out = perturb(faces, name, seed=5)
        assert out.shape == faces.shape and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - faces).mean() > 0.5, f"{name} left the faces alone"
        np.testing.assert_array_equal(out, perturb(faces, name, seed=5))


def test_jpeg_q30_is_opencv_jpeg_at_quality_30(make_faces) -> None:
    faces, _ = make_faces(2, seed=4)
    ok, buf = cv2.imencode(".jpg", faces[1], [cv2.IMWRITE_JPEG_QUALITY, 30])
    assert ok
    np.testing.assert_array_equal(perturb(faces, "jpeg_q30")[1],
                                  cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))


def test_bad_input_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown perturbation 'fog'"):
        perturb(np.zeros((1, 48, 48), np.uint8), "fog")
    with pytest.raises(ValueError, match="uint8"):
        perturb(np.zeros((1, 48, 48), np.float32), "jpeg_q30")


def test_table_reports_the_cost_in_points() -> None:
    table = {"a.tflite": {"clean": 0.70, "jpeg_q30": 0.60},
             "b.keras": {"clean": 0.65, "jpeg_q30": 0.64}}
    text = format_table(table)
    assert "| jpeg_q30 | 60.0 % (-10.0) | 64.0 % (-1.0) |" in text
    assert "| clean | 70.0 % | 65.0 % |" in text


def test_cli_scores_every_model_on_the_same_faces(tiny_model_path: Path, synthetic_npz: Path,
                                                  tmp_path: Path, capsys) -> None:
    pytest.importorskip("keras")
    out = tmp_path / "rob"
    rc = main(["--model", str(tiny_model_path), "--model", str(tiny_model_path),
               "--data", str(synthetic_npz), "--only", "jpeg_q30", "--only", "blur_sigma2",
               "--out", str(out), "--tta-mirror"])
    assert rc == 0
    report = json.loads((out / "robustness.json").read_text())
    rows = list(report["accuracy"].values())
    assert len(report["accuracy"]) == 1  # the same path twice is one row
    assert set(rows[0]) == {"clean", "jpeg_q30", "blur_sigma2"}
    assert all(0.0 <= v <= 1.0 for v in rows[0].values())
    assert rows[0]["clean"] > 0.5  # the tiny model learned the gratings
    assert cv2.imread(str(out / "robustness.png")) is not None
    assert "jpeg_q30" in capsys.readouterr().out
    assert main(["--model", str(tmp_path / "none.keras"), "--data", str(synthetic_npz)]) == 2

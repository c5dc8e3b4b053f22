"""Tests of the augmentation preview (emotion_training.preview)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("keras")

from emotion_training.augment import AugmentConfig  # noqa: E402
from emotion_training.preview import augment_batch, main  # noqa: E402


def test_augmenter_changes_faces_only_in_training_mode(make_faces) -> None:
    faces, _ = make_faces(16, seed=41)
    before, after = augment_batch(faces, AugmentConfig(), seed=1)
    assert before.shape == after.shape == (16, 48, 48, 1)
    assert after.min() >= 0.0 and after.max() <= 1.0
    assert np.abs(after - before).mean() > 0.01
    _, only_flip = augment_batch(faces, AugmentConfig(rotation_deg=0, zoom=0, shift=0,
                                                      brightness=0, contrast=0), seed=1)
    flipped = np.all(np.isclose(only_flip, before[:, :, ::-1]), axis=(1, 2, 3))
    kept = np.all(np.isclose(only_flip, before), axis=(1, 2, 3))
    assert (flipped | kept).all()  # a horizontal flip or nothing, face by face
    with pytest.raises(ValueError, match="AugmentConfig"):
        augment_batch(faces, {"flip": True})


def test_cli_writes_png(synthetic_npz: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("augment: {flip: true, rotation_deg: 20, zoom: 0.2, shift: 0.1, "
                   "brightness: 0.3, contrast: 0.3}\n")
    out = tmp_path / "aug.png"
    assert main(["--data", str(synthetic_npz), "--out", str(out), "--config", str(cfg)]) == 0
    im = cv2.imread(str(out))
    assert im is not None and im.shape[1] > im.shape[0]
    assert main(["--data", str(synthetic_npz), "--out", str(out), "--config",
                 str(tmp_path / "missing.yaml")]) == 2

"""emotion_scene_crops (Training faces as the live detector crops them) and training on them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_training import train
from emotion_training.config import TrainConfig
from emotion_training.scene_crops import main as scene_crops_main


def _portrait_npz(path: Path, n_train: int = 6, n_val: int = 2) -> Path:
    """Write an npz of the demo portrait's real face (which BlazeFace finds), shifted per row."""
    from emotion_perception.core.sample_input import PORTRAIT_FACE_BOX, astronaut_face

    b = PORTRAIT_FACE_BOX
    face = cv2.cvtColor(astronaut_face()[b.y - 10:b.y + b.h + 10, b.x - 10:b.x + b.w + 10],
                        cv2.COLOR_BGR2GRAY)
    face = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
    n = n_val + n_train
    # every row distinct (a brightness step), PublicTest rows first
    images = np.stack([np.clip(face.astype(int) + 3 * i - 12, 0, 255).astype(np.uint8)
                       for i in range(n)])
    np.savez(path, images=images, labels=np.arange(n) % 7,
             usage=np.array(["PublicTest"] * n_val + ["Training"] * n_train))
    return path


def test_the_tool_crops_only_training_faces_where_the_detector_finds_them(
        tmp_path: Path, capsys) -> None:
    npz = _portrait_npz(tmp_path / "faces.npz")
    out = tmp_path / "crops.npz"
    assert scene_crops_main(["--data", str(npz), "--out", str(out), "--copies", "2",
                             "--min-face", "150", "--max-face", "220", "--quiet"]) == 0
    assert "crops of 12 pasted faces" in capsys.readouterr().out
    with np.load(npz) as d:
        sources, source_labels = d["images"], d["labels"]
    with np.load(out) as f:
        crops, labels, rows, copy = f["images"], f["labels"], f["source_row"], f["copy"]
        meta = json.loads(str(f["meta"]))
    assert meta["faces_pasted"] == 12 and meta["data_rows"] == 8 and meta["seeds"] == [100, 101]
    assert meta["faces_found"] == len(crops) >= 9  # BlazeFace finds the real face
    assert crops.shape[1:] == (48, 48) and crops.dtype == np.uint8
    assert set(rows) <= set(range(2, 8))  # Training rows only: PublicTest is never cut
    assert set(copy) == {0, 1}
    np.testing.assert_array_equal(labels, source_labels[rows])
    for crop, row in zip(crops, rows):  # each crop is its face, upright and framed
        r = np.corrcoef(crop.ravel().astype(float), sources[row].ravel().astype(float))[0, 1]
        assert r > 0.5


def test_the_tool_refuses_bad_input(tmp_path: Path, capsys) -> None:
    npz = tmp_path / "test_only.npz"
    np.savez(npz, images=np.zeros((2, 48, 48), np.uint8), labels=np.zeros(2),
             usage=np.array(["PublicTest"] * 2))
    assert scene_crops_main(["--data", str(npz), "--out", str(tmp_path / "c.npz")]) == 2
    assert "no Training rows" in capsys.readouterr().err
    assert scene_crops_main(["--data", str(tmp_path / "none.npz"), "--out",
                             str(tmp_path / "c.npz")]) == 2
    assert "not found" in capsys.readouterr().err
    assert scene_crops_main(["--data", str(npz), "--out", str(tmp_path / "c.png")]) == 2
    assert ".npz" in capsys.readouterr().err


def _crops_file(path: Path, images: np.ndarray, rows: list[int], data_rows: int) -> Path:
    np.savez(path, images=images, labels=np.zeros(len(rows), np.int64),
             source_row=np.asarray(rows), copy=np.zeros(len(rows), np.int64),
             meta=np.asarray(json.dumps({"data_rows": data_rows})))
    return path


def test_training_adds_crops_with_their_sources_targets_and_never_a_removed_source(
        tmp_path: Path, npz_writer) -> None:
    npz = npz_writer(tmp_path / "d.npz", n_train=40, n_val=10, seed=3)
    with np.load(npz) as d:
        arrays = dict(d)
    arrays["images"][5] = arrays["images"][44]       # Training row 5 also in PublicTest
    arrays["images"][7] = arrays["images"][6]        # row 7 a duplicate of row 6
    np.savez(npz, **arrays)
    cfg = TrainConfig(data=str(npz), label_mode="mixed", epochs=1)
    plain = train.prepare_data(cfg)
    rows = [3, 5, 6, 7, 44, 12]                      # 5: overlap, 7: duplicate, 44: PublicTest
    crops = np.stack([np.full((48, 48), 10 * (i + 1), np.uint8) for i in range(len(rows))])
    d = train.prepare_data(replace(cfg, scene_crops=str(
        _crops_file(tmp_path / "c.npz", crops, rows, len(arrays["images"])))))
    # rows 3, 6, 7 and 12: a dropped duplicate's crop is its kept twin's (same pixels)
    kept = [0, 2, 3, 5]
    n = len(plain["x_train"])
    assert d["report"]["scene_crops_added"] == len(kept)
    assert len(d["x_train"]) == n + len(kept)
    np.testing.assert_array_equal(d["x_train"][:n], plain["x_train"])
    np.testing.assert_allclose(d["x_train"][n:, 0, 0, 0], [10 * (i + 1) / 255 for i in kept],
                               atol=1e-6)
    by_pixels = {a.tobytes(): i for i, a in enumerate(d["train"].images)}
    for j, i in enumerate(kept):                     # targets: the source face's (FER+ mixed)
        src = by_pixels[arrays["images"][rows[i]].tobytes()]
        np.testing.assert_array_equal(d["y_train"][n + j], plain["y_train"][src])
    np.testing.assert_array_equal(d["y_val"], plain["y_val"])


def test_training_refuses_crops_of_another_dataset_and_with_folds(tmp_path: Path,
                                                                  npz_writer) -> None:
    npz = npz_writer(tmp_path / "d.npz", n_train=20, n_val=5, seed=4)
    cfg = TrainConfig(data=str(npz), epochs=1)
    other = _crops_file(tmp_path / "c.npz", np.zeros((1, 48, 48), np.uint8), [0], 999)
    with pytest.raises(ValueError, match="999 rows"):
        train.prepare_data(replace(cfg, scene_crops=str(other)))
    with pytest.raises(FileNotFoundError, match="scene_crops"):
        train.prepare_data(replace(cfg, scene_crops=str(tmp_path / "absent.npz")))
    with pytest.raises(ValueError, match="scene_crops"):
        replace(cfg, scene_crops=str(other), folds=3)

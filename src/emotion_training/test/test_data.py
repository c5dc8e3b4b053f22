"""Tests of loading, cleaning, leakage-free splitting and targets (emotion_training.data)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotion_perception.core.classes import CLASS_NAMES
from emotion_training import data as D
from emotion_training.config import TrainConfig
from emotion_training.train import prepare_data

USAGES = ("Training", "PublicTest")


def _write_csv(path: Path, images: np.ndarray, labels: np.ndarray, usage: np.ndarray) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for im, lab, use in zip(images, labels, usage):
            w.writerow([int(lab), " ".join(str(int(v)) for v in im.ravel()), use])


def _write_folder(root: Path, images: np.ndarray, labels: np.ndarray, usage: np.ndarray
                  ) -> None:
    for i, (im, lab, use) in enumerate(zip(images, labels, usage)):
        folder = root / ("train" if use == "Training" else "val") / CLASS_NAMES[lab]
        folder.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(folder / f"{i:04d}.png"), im)


def _canonical(ds: D.FaceDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((ds.labels, ds.usage, ds.hashes))
    return ds.hashes[order], ds.images[order], ds.labels[order], ds.usage[order]


def test_npz_csv_and_folder_loaders_agree(tmp_path: Path, npz_writer) -> None:
    npz = npz_writer(tmp_path / "d.npz", n_train=21, n_val=14)
    ref = D.load_dataset(npz)
    assert ref.votes is not None and ref.votes.shape == (35, 7)
    assert ref.votes[0].sum() == 0  # the row without FER+ votes
    _write_csv(tmp_path / "d.csv", ref.images, ref.labels, ref.usage)
    _write_folder(tmp_path / "folder", ref.images, ref.labels, ref.usage)
    for other in (D.load_dataset(tmp_path / "d.csv"), D.load_dataset(tmp_path / "folder")):
        assert len(other) == len(ref)
        for a, b in zip(_canonical(ref), _canonical(other)):
            np.testing.assert_array_equal(a, b)


def test_ferplus_votes_are_mapped_to_our_class_order(tmp_path: Path, npz_writer) -> None:
    ds = D.load_dataset(npz_writer(tmp_path / "d.npz", n_train=14, n_val=7))
    has = ds.votes.sum(axis=1) > 0
    # write_npz gives the FER2013 class 7 of 10 votes, so it is the FER+ majority
    np.testing.assert_array_equal(ds.votes[has].argmax(axis=1), ds.labels[has])


def test_loaders_report_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        D.load_dataset(tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("nope")
    with pytest.raises(ValueError, match="npz"):
        D.load_dataset(tmp_path / "x.txt")
    np.savez(tmp_path / "bad.npz", images=np.zeros((1, 48, 48), np.uint8))
    with pytest.raises(ValueError, match="missing arrays"):
        D.load_npz(tmp_path / "bad.npz")


def _dataset(images: np.ndarray, labels, usage, votes=None, nf=None) -> D.FaceDataset:
    return D.FaceDataset(images=np.asarray(images, np.uint8), labels=np.asarray(labels),
                         usage=np.asarray(usage), votes=votes, not_face_votes=nf)


def test_clean_drops_constant_images_not_faces_and_duplicates(make_faces) -> None:
    faces, labels = make_faces(6, seed=3)
    images = np.concatenate([faces, faces[:2], np.zeros((2, 48, 48)),
                             np.full((1, 48, 48), 200)]).astype(np.uint8)
    labels = np.concatenate([labels, labels[:2], [0, 0, 1]])
    votes = np.zeros((len(images), 7), np.float32)
    votes[:, 0] = 5
    nf = np.zeros(len(images), np.int64)
    nf[5] = 9  # face 5 is "not a face" for the crowd
    ds = _dataset(images, labels, ["Training"] * len(images), votes, nf)
    cleaned, report = D.clean(ds)
    assert report.constant_images == 3
    assert report.not_a_face == 1
    assert report.duplicates_dropped == 2  # the two face copies (black ones count as constant)
    assert report.in_duplicate_groups == 4 + 2
    assert len(cleaned) == 5
    assert len(set(cleaned.hashes)) == len(cleaned)
    flat = cleaned.images.reshape(len(cleaned), -1)
    assert (flat.max(axis=1) > flat.min(axis=1)).all()
    kept, _ = D.clean(ds, drop_not_face=False)
    assert len(kept) == 6


def test_remove_overlap_drops_shared_images(make_faces) -> None:
    faces, labels = make_faces(8, seed=4)
    train = _dataset(faces[:6], labels[:6], ["Training"] * 6)
    held = _dataset(np.concatenate([faces[4:8], faces[:1]]), labels[:5], ["PublicTest"] * 5)
    rest, n = D.remove_overlap(train, held)
    assert n == 3
    np.testing.assert_array_equal(rest.images, faces[1:4])


group_strategy = st.tuples(
    st.booleans(),  # constant image?
    st.lists(st.tuples(st.sampled_from(USAGES), st.integers(0, 6)), min_size=1, max_size=4))


def _dataset_from_groups(groups: list, order_seed: int) -> D.FaceDataset:
    images, labels, usage = [], [], []
    for g, (constant, copies) in enumerate(groups):
        if constant:
            im = np.full((48, 48), g, np.uint8)
        else:
            im = np.random.default_rng(1000 + g).integers(0, 256, (48, 48), dtype=np.uint8)
        for use, label in copies:
            images.append(im)
            labels.append(label)
            usage.append(use)
    order = np.random.default_rng(order_seed).permutation(len(images))
    return _dataset(np.stack(images)[order], np.array(labels)[order], np.array(usage)[order])


def _assert_disjoint(a: np.ndarray, b: np.ndarray) -> None:
    shared = set(a.tolist()) & set(b.tolist())
    assert not shared, f"{len(shared)} image(s) on both sides of a split"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(group_strategy, min_size=2, max_size=25), st.integers(0, 2**16))
def test_no_image_is_on_both_sides_of_any_split(groups: list, order_seed: int) -> None:
    ds = _dataset_from_groups(groups, order_seed)
    distinct = len(set(ds.hashes.tolist()))
    for k in range(2, 6):
        if distinct < k:
            with pytest.raises(ValueError, match="folds"):
                list(D.kfold_indices(ds, k, seed=order_seed))
            continue
        seen = np.zeros(len(ds), np.int64)
        for tr, va in D.kfold_indices(ds, k, seed=order_seed):
            _assert_disjoint(ds.hashes[tr], ds.hashes[va])
            assert len(tr) + len(va) == len(ds)
            seen[va] += 1
        assert (seen == 1).all()  # the validation folds partition the data
    uses = set(ds.usage.tolist())
    if uses != set(USAGES):
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        np.savez(path, images=ds.images, labels=ds.labels, usage=ds.usage)
        d = prepare_data(TrainConfig(data=str(path)))
    _assert_disjoint(d["train"].hashes, d["val"].hashes)
    assert len(set(d["train"].hashes.tolist())) == len(d["train"])
    assert len(d["val"]) == int((ds.usage == "PublicTest").sum())  # validation is untouched
    assert d["x_train"].shape == (len(d["train"]), 48, 48, 1)


def test_kfold_is_stratified_and_rejects_bad_k(make_faces) -> None:
    faces, labels = make_faces(70, seed=5)
    ds = _dataset(faces, labels, ["Training"] * 70)
    for _, va in D.kfold_indices(ds, 5):
        np.testing.assert_array_equal(np.bincount(ds.labels[va], minlength=7), [2] * 7)
    with pytest.raises(ValueError, match="k must be"):
        list(D.kfold_indices(ds, 1))


@pytest.mark.parametrize("mode", ["fer", "ferplus", "majority", "mixed"])
def test_targets_are_distributions(tmp_path: Path, npz_writer, mode: str) -> None:
    ds = D.load_dataset(npz_writer(tmp_path / "d.npz", n_train=21, n_val=7))
    t = D.targets(ds, mode, ferplus_weight=0.3)
    assert t.shape == (len(ds), 7) and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-6)
    assert (t >= 0).all()
    # the row without votes falls back to its FER2013 label
    np.testing.assert_array_equal(t[0], np.eye(7)[ds.labels[0]])
    if mode == "fer":
        np.testing.assert_array_equal(t.argmax(axis=1), ds.labels)


def test_targets_reject_unknown_modes(make_faces) -> None:
    faces, labels = make_faces(7)
    ds = _dataset(faces, labels, ["Training"] * 7)
    with pytest.raises(ValueError, match="label_mode"):
        D.targets(ds, "soft")


def test_class_weights_balance_counts() -> None:
    labels = np.array([0] * 40 + [1] * 10 + [2] * 10 + [3] * 10 + [4] * 10 + [5] * 10 + [6] * 10)
    w = D.class_weights(labels, power=1.0)
    counts = np.bincount(labels)
    np.testing.assert_allclose(w * counts, (w * counts)[0])  # each class weighs the same
    np.testing.assert_allclose((w[labels]).sum(), len(labels), rtol=1e-6)
    np.testing.assert_allclose(D.class_weights(labels, power=0.0), 1.0)

"""FER2013 loading, cleaning, leakage-free splitting and label targets.

Loaders return a :class:`FaceDataset`: uint8 images (N, 48, 48), FER2013 labels, the official
``usage`` split, optional FER+ votes mapped to our class order, and a content hash per image.
The protocol (``docs/PROTOCOL.md`` in this package's README) is:

1. drop all-black (constant) images;
2. group pixel-identical images by hash; a Training image whose hash also occurs in PublicTest
   is dropped from Training (else the validation score would reward memorisation);
3. exact duplicates inside one side are kept once;
4. augmentation happens on the fly, on training batches only (never before a split);
5. models are chosen on PublicTest only. PrivateTest is never loaded.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES

# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
# unknown, NF. Indices of our classes (angry, disgust, fear, happy, sad, surprise, neutral):
FERPLUS_TO_FER = (4, 5, 6, 1, 3, 2, 0)
FERPLUS_NOT_A_FACE = 9
IMAGE_SHAPE = (48, 48)


@dataclass
class FaceDataset:
    """A set of 48x48 grayscale faces with labels; all arrays share index i."""

    images: np.ndarray                      # uint8 (N, 48, 48)
    labels: np.ndarray                      # int64 (N,), FER2013 class index
    usage: np.ndarray                       # str (N,), e.g. "Training", "PublicTest"
    votes: np.ndarray | None = None         # float32 (N, 7) FER+ votes in our order, or None
    not_face_votes: np.ndarray | None = None  # int (N,) FER+ "not a face" votes
    hashes: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3:
            raise ValueError(f"images must be (N, H, W), got {self.images.shape}")
        for name in ("labels", "usage"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, images {n}")
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= NUM_CLASSES):
            raise ValueError(f"labels must be in [0, {NUM_CLASSES - 1}]")
        if self.hashes is None:
            self.hashes = image_hashes(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray | Sequence[int]) -> "FaceDataset":
        """Return the rows in ``index`` (a boolean mask or integer indices)."""
        idx = np.asarray(index)
        return FaceDataset(
            images=self.images[idx], labels=self.labels[idx], usage=self.usage[idx],
            votes=None if self.votes is None else self.votes[idx],
            not_face_votes=None if self.not_face_votes is None else self.not_face_votes[idx],
            hashes=self.hashes[idx])

    def split(self, usage: str) -> "FaceDataset":
        """Return the rows whose official usage is ``usage`` (e.g. Training, PublicTest)."""
        mask = self.usage == usage
        if not mask.any():
            raise ValueError(f"no rows with usage {usage!r}; have {sorted(set(self.usage))}")
        return self.subset(mask)

    def class_counts(self) -> np.ndarray:
        """Return the number of images per class."""
        return np.bincount(self.labels, minlength=NUM_CLASSES)


def image_hashes(images: np.ndarray) -> np.ndarray:
    """Return a hex SHA-1 of each image's pixels (the identity used for leakage checks)."""
    return np.array([hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest()
                     for im in images])


def load_npz(path: str | Path) -> FaceDataset:
    """Load the shared ``fer2013_trainval.npz`` (see shared/data/README.md)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    with np.load(path) as d:
        missing = {"images", "labels", "usage"} - set(d.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}; has {d.files}")
        votes = nf = None
        if "ferplus_votes" in d.files:
            raw = d["ferplus_votes"].astype(np.int32)
            votes, nf = _map_ferplus(raw)
        return FaceDataset(images=d["images"].astype(np.uint8),
                           labels=d["labels"].astype(np.int64), usage=d["usage"].astype(str),
                           votes=votes, not_face_votes=nf)


def _map_ferplus(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if raw.ndim != 2 or raw.shape[1] != 10:
        raise ValueError(f"FER+ votes must be (N, 10), got {raw.shape}")
    missing = (raw < 0).any(axis=1)
    votes = raw[:, FERPLUS_TO_FER].astype(np.float32)
    votes[missing] = 0.0
    nf = np.where(missing, 0, raw[:, FERPLUS_NOT_A_FACE])
    return votes, nf


def load_csv(path: str | Path) -> FaceDataset:
    """Load Kaggle's ``fer2013.csv`` (columns emotion, pixels, Usage)."""
    path = Path(path)
    images, labels, usage = [], [], []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"emotion", "pixels", "Usage"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            pixels = np.array(row["pixels"].split(), dtype=np.int64)
            if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                raise ValueError(f"{path}:{lineno}: expected 2304 pixel values in 0..255")
            images.append(pixels.astype(np.uint8).reshape(IMAGE_SHAPE))
            labels.append(int(row["emotion"]))
            usage.append(row["Usage"])
    if not images:
        raise ValueError(f"{path}: no rows")
    return FaceDataset(np.stack(images), np.array(labels, np.int64), np.array(usage))


def load_image_folder(root: str | Path) -> FaceDataset:
    """Load ``root/<split>/<class>/*.png`` (split = train/test/val ...) or ``root/<class>/*``.

    Split folder names map to usages: ``train*`` -> Training, ``val*``/``public*`` ->
    PublicTest, anything else is kept under its own name.
    """
    import cv2

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    class_dirs = {c.lower() for c in CLASS_NAMES}
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    if subdirs and all(p.name.lower() in class_dirs for p in subdirs):
        splits = [(root, "Training")]
    else:
        splits = [(p, _usage_for(p.name)) for p in sorted(subdirs)]
    images, labels, usage = [], [], []
    for split_dir, split_usage in splits:
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if class_dir.name.lower() not in class_dirs:
                raise ValueError(f"unknown class folder {class_dir}; expected {CLASS_NAMES}")
            label = CLASS_NAMES.index(class_dir.name.lower())
            for f in sorted(class_dir.iterdir()):
                if f.suffix.lower() not in {".png", ".jpg", ".jpeg", ".bmp", ".pgm"}:
                    continue
                im = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if im is None:
                    raise ValueError(f"cannot read image {f}")
                if im.shape != IMAGE_SHAPE:
                    im = cv2.resize(im, IMAGE_SHAPE[::-1], interpolation=cv2.INTER_AREA)
                images.append(im)
                labels.append(label)
                usage.append(split_usage)
    if not images:
        raise ValueError(f"no images found under {root}")
    return FaceDataset(np.stack(images), np.array(labels, np.int64), np.array(usage))


def _usage_for(name: str) -> str:
    low = name.lower()
    if low.startswith("train"):
        return "Training"
    if low.startswith(("val", "public")):
        return "PublicTest"
    return name


def load_dataset(path: str | Path) -> FaceDataset:
    """Load a dataset by its form: ``.npz``, ``.csv`` or an image folder."""
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.suffix == ".csv":
        return load_csv(path)
    raise ValueError(f"unsupported dataset {path}: expected a .npz, a .csv or a folder")


@dataclass
class CleanReport:
    """What :func:`clean` removed, for logs and model cards."""

    constant_images: int = 0
    not_a_face: int = 0
    in_duplicate_groups: int = 0
    duplicates_dropped: int = 0
    overlap_with_validation: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the report as a plain dict."""
        return dict(self.__dict__)


def clean(ds: FaceDataset, drop_not_face: bool = True) -> tuple[FaceDataset, CleanReport]:
    """Drop constant (e.g. all-black) images, FER+ not-a-face majorities and exact duplicates.

    Duplicates keep their first occurrence. Use on training data only: a validation or test
    split is scored as it is.
    """
    report = CleanReport()
    flat = ds.images.reshape(len(ds), -1)
    keep = flat.max(axis=1) != flat.min(axis=1)
    report.constant_images = int((~keep).sum())
    if drop_not_face and ds.votes is not None and ds.not_face_votes is not None:
        nf = ds.not_face_votes > ds.votes.max(axis=1)
        report.not_a_face = int((nf & keep).sum())
        keep &= ~nf
    _, first, counts = np.unique(ds.hashes, return_index=True, return_counts=True)
    report.in_duplicate_groups = int(counts[counts > 1].sum())
    is_first = np.zeros(len(ds), bool)
    is_first[first] = True
    report.duplicates_dropped = int((keep & ~is_first).sum())
    keep &= is_first
    return ds.subset(keep), report


def remove_overlap(train: FaceDataset, held: FaceDataset) -> tuple[FaceDataset, int]:
    """Drop from ``train`` every image whose pixels also occur in ``held``."""
    clash = np.isin(train.hashes, held.hashes)
    return train.subset(~clash), int(clash.sum())


def kfold_indices(ds: FaceDataset, k: int, seed: int = 0
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (train_idx, val_idx) for k folds, stratified by class, duplicates kept together.

    Images with equal hashes form one group and always land in the same fold, so no image can
    be on both sides of any split even if the caller did not deduplicate.
    """
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    uniq, group = np.unique(ds.hashes, return_inverse=True)
    if len(uniq) < k:
        raise ValueError(f"{len(uniq)} distinct images cannot fill {k} folds")
    rng = np.random.default_rng(seed)
    group_label = np.zeros(len(uniq), np.int64)
    group_label[group] = ds.labels  # any member's label; groups are usually singletons
    fold_of_group = np.empty(len(uniq), np.int64)
    start = int(rng.integers(k))  # one running start: folds stay balanced, none empty
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(group_label == c)
        rng.shuffle(members)
        fold_of_group[members] = (np.arange(len(members)) + start) % k
        start = (start + len(members)) % k
    fold = fold_of_group[group]
    for f in range(k):
        yield np.flatnonzero(fold != f), np.flatnonzero(fold == f)


def targets(ds: FaceDataset, label_mode: str = "mixed", ferplus_weight: float = 0.5
            ) -> np.ndarray:
    """Return (N, 7) float32 training targets.

    label_mode:
      ``fer``      one-hot FER2013 labels;
      ``ferplus``  FER+ vote distribution (one-hot FER2013 where no votes exist);
      ``majority`` one-hot FER+ majority vote (FER2013 label where no votes exist);
      ``mixed``    ``(1 - w) * fer + w * ferplus``: the crowd's votes as informed label
                   smoothing around the original label (w = ``ferplus_weight``).
    """
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[ds.labels]
    if label_mode == "fer" or ds.votes is None:
        if label_mode not in {"fer", "ferplus", "majority", "mixed"}:
            raise ValueError(f"unknown label_mode {label_mode!r}")
        return onehot
    totals = ds.votes.sum(axis=1, keepdims=True)
    has = totals[:, 0] > 0
    dist = np.where(has[:, None], ds.votes / np.maximum(totals, 1.0), onehot)
    if label_mode == "ferplus":
        return dist.astype(np.float32)
    if label_mode == "majority":
        maj = np.eye(NUM_CLASSES, dtype=np.float32)[ds.votes.argmax(axis=1)]
        return np.where(has[:, None], maj, onehot).astype(np.float32)
    if label_mode == "mixed":
        if not 0.0 <= ferplus_weight <= 1.0:
            raise ValueError(f"ferplus_weight must be in [0, 1], got {ferplus_weight}")
        return ((1.0 - ferplus_weight) * onehot + ferplus_weight * dist).astype(np.float32)
    raise ValueError(f"unknown label_mode {label_mode!r}; use fer, ferplus, majority or mixed")


def class_weights(labels: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Return per-class weights ``(mean_count / count) ** power`` (0.5 = square-root balance)."""
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    w = (counts.mean() / counts) ** power
    return (w / (w * counts).sum() * counts.sum()).astype(np.float32)

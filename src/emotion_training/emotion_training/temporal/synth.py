"""Synthetic face sequences: perturbed still faces over time, classified frame by frame."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES

from .config import SequenceConfig

Classifier = Callable[[np.ndarray], np.ndarray]


@dataclass
class SequenceSet:
    """S sequences of T frames: classifier outputs, true labels, stamps and provenance."""

    probs: np.ndarray          # float32 (S, T, 7): the classifier's output on each frame
    labels: np.ndarray         # int64 (S, T): true class of the face shown
    stamps: np.ndarray         # float64 (S, T): seconds, strictly increasing per sequence
    switch_frame: np.ndarray   # int64 (S,): first frame of class b, -1 without a switch
    source: np.ndarray         # int64 (S, 2): image index of a and b in the split (-1: none)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s, t = self.labels.shape
        shapes = {"probs": (s, t, NUM_CLASSES), "stamps": (s, t), "switch_frame": (s,),
                  "source": (s, 2)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, "
                                 f"expected {shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "SequenceSet":
        """Return the sequences in ``index``."""
        return SequenceSet(self.probs[index], self.labels[index], self.stamps[index],
                           self.switch_frame[index], self.source[index], dict(self.meta))

    def save(self, path: str | Path) -> None:
        """Write the set to a compressed ``.npz`` (meta as a JSON string)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, probs=self.probs, labels=self.labels, stamps=self.stamps,
                            switch_frame=self.switch_frame, source=self.source,
                            meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path) -> "SequenceSet":
        """Read a set written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sequence file not found: {path} (run the make step)")
        with np.load(path, allow_pickle=False) as d:
            return cls(d["probs"], d["labels"], d["stamps"], d["switch_frame"], d["source"],
                       json.loads(str(d["meta"])))


def make_stamps(rng: np.random.Generator, frames: int, cfg: SequenceConfig) -> np.ndarray:
    """Return ``frames`` stamps from 0 at ``cfg.fps`` with jitter and dropped frames."""
    period = 1.0 / cfg.fps
    gaps = period * (1.0 + rng.uniform(-cfg.stamp_jitter, cfg.stamp_jitter, frames - 1))
    gaps += period * (rng.random(frames - 1) < cfg.drop_prob)
    return np.concatenate([[0.0], np.cumsum(gaps)])


class FramePerturber:
    """Per-frame perturbation of (T, 48, 48, 1) float faces: Keras augmenter + OpenCV ops."""

    def __init__(self, cfg: SequenceConfig, seed: int) -> None:
        from ..augment import AugmentConfig, build_augmenter

        self.cfg = cfg
        aug = AugmentConfig(flip=False, rotation_deg=cfg.rotation_deg, zoom=cfg.zoom,
                            shift=cfg.shift, brightness=cfg.brightness, contrast=cfg.contrast)
        self.augmenter = build_augmenter(aug, seed) if any(
            (cfg.rotation_deg, cfg.zoom, cfg.shift, cfg.brightness, cfg.contrast)) else None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return perturbed uint8 frames (T, H, W) of one sequence's float frames ``x``."""
        import cv2

        cfg = self.cfg
        if self.augmenter is not None:
            x = np.asarray(self.augmenter(x, training=True), dtype=np.float32)
        frames = x[..., 0].copy()
        t_len, h, w = frames.shape
        noise_std = rng.uniform(0.0, cfg.noise_std_max)
        occl_left, rect, fill = 0, (0, 0, 0, 0), 0.0
        for i in range(t_len):
            f = frames[i]
            if cfg.blur_prob and rng.random() < cfg.blur_prob:
                f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.5, cfg.blur_sigma_max))
            if occl_left == 0 and cfg.occlusion_rate and rng.random() < cfg.occlusion_rate:
                lo, hi = cfg.occlusion_frames
                occl_left = int(rng.integers(lo, hi + 1))
                side = rng.uniform(*cfg.occlusion_size)
                rh, rw = max(1, int(side * h)), max(1, int(side * w * rng.uniform(0.7, 1.4)))
                rw = min(rw, w)
                rect = (int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1)),
                        rw, rh)
                fill = rng.uniform(0.0, 1.0)
            if occl_left > 0:
                dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
                x0 = min(max(rect[0] + dx, 0), w - rect[2])
                y0 = min(max(rect[1] + dy, 0), h - rect[3])
                f = f.copy()
                f[y0:y0 + rect[3], x0:x0 + rect[2]] = fill
                occl_left -= 1
            if noise_std > 0:
                f = f + rng.normal(0.0, noise_std, f.shape).astype(np.float32)
            frames[i] = f
        return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_sequences(images: np.ndarray, labels: np.ndarray, classifier: Classifier,
                   n_sequences: int, cfg: SequenceConfig | None = None, seed: int = 0,
                   chunk: int = 16, progress: bool = False, split: str = "") -> SequenceSet:
    """Generate ``n_sequences`` sequences from one split's uint8 (N, 48, 48) faces.

    ``classifier`` maps a preprocessed (B, 48, 48, 1) float32 batch to (B, 7) probabilities.
    Frames of ``chunk`` sequences are classified in one call.
    """
    from emotion_perception.core.preprocessing import preprocess_faces

    cfg = cfg or SequenceConfig()
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(f"images must be uint8 (N, H, W) with one label each, got "
                         f"{images.dtype} {images.shape} and {labels.shape} labels")
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError("images of at least two classes are needed to make switches")
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be >= 1, got {n_sequences}")
    rng = np.random.default_rng(seed)
    _seed_keras(seed)
    perturb = FramePerturber(cfg, seed)
    by_class = {int(c): np.flatnonzero(labels == c) for c in present}
    t_len = cfg.frames
    out_probs = np.zeros((n_sequences, t_len, NUM_CLASSES), np.float32)
    out_labels = np.zeros((n_sequences, t_len), np.int64)
    out_stamps = np.zeros((n_sequences, t_len), np.float64)
    switch = np.full(n_sequences, -1, np.int64)
    source = np.full((n_sequences, 2), -1, np.int64)
    starts = range(0, n_sequences, chunk)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc=f"sequences {split}".strip(), unit="chunk")
    for start in starts:
        stop = min(n_sequences, start + chunk)
        batch = []
        for s in range(start, stop):
            a_idx = _pick_image(rng, labels, by_class, cfg.class_sampling, exclude=None)
            idx = np.full(t_len, a_idx)
            source[s, 0] = a_idx
            if rng.random() < cfg.switch_prob:
                k = int(rng.integers(cfg.min_segment, t_len - cfg.min_segment + 1))
                b_idx = _pick_image(rng, labels, by_class, cfg.class_sampling,
                                    exclude=int(labels[a_idx]))
                idx[k:] = b_idx
                switch[s], source[s, 1] = k, b_idx
            faces = images[idx]
            if rng.random() < 0.5:
                faces = faces[:, :, ::-1]
            x = preprocess_faces(np.ascontiguousarray(faces))
            batch.append(perturb(x, rng))
            out_labels[s] = labels[idx]
            out_stamps[s] = make_stamps(rng, t_len, cfg)
        frames = np.concatenate(batch)
        probs = np.asarray(classifier(preprocess_faces(frames)), dtype=np.float32)
        if probs.shape != (len(frames), NUM_CLASSES) or not np.isfinite(probs).all():
            raise ValueError(f"classifier returned {probs.shape} (finite: "
                             f"{bool(np.isfinite(probs).all())}), expected "
                             f"({len(frames)}, {NUM_CLASSES}) finite probabilities")
        probs = np.clip(probs, 0.0, None)
        probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
        out_probs[start:stop] = probs.reshape(stop - start, t_len, NUM_CLASSES)
    meta = {"split": split, "seed": seed, "sequences": n_sequences,
            "config": asdict(cfg), "images_available": int(len(images))}
    return SequenceSet(out_probs, out_labels, out_stamps, switch, source, meta)


def _pick_image(rng: np.random.Generator, labels: np.ndarray, by_class: dict[int, np.ndarray],
                sampling: str, exclude: int | None) -> int:
    classes = [c for c in by_class if c != exclude]
    if sampling == "uniform":
        pool = by_class[classes[int(rng.integers(len(classes)))]]
        return int(pool[int(rng.integers(len(pool)))])
    if exclude is None:
        return int(rng.integers(len(labels)))
    pool = np.concatenate([by_class[c] for c in classes])
    return int(pool[int(rng.integers(len(pool)))])


def _seed_keras(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def over_time_views(plain: np.ndarray, mirrored: np.ndarray, faces: np.ndarray | None = None
                    ) -> np.ndarray:
    """Mirror TTA spread over frames, as the live ``tta_mirror_over_time`` does (one track).

    ``plain`` and ``mirrored`` are (S, T, 7) probabilities of each frame as it is and mirrored;
    ``faces`` (S, T, H, W, 1) the frames' model inputs. A sequence's frame 0 averages both of
    its views; a later frame averages its own view (the orientation its previous frame was not
    classified in) with the previous frame's, unless the two inputs look like different faces
    (:data:`~emotion_perception.core.mirror_over_time.MIN_SIMILARITY`; a switch to another
    face), where it averages both of its own views again. That is what the live classifier
    computes for a track seen at every frame (core/mirror_over_time.py; a test compares them).
    """
    from emotion_perception.core.mirror_over_time import MIN_SIMILARITY, similarities

    s_len, t_len = plain.shape[:2]
    out = np.empty_like(plain)
    out[:, 0] = (plain[:, 0] + mirrored[:, 0]) / 2
    last, last_mirrored = mirrored[:, 0].copy(), np.ones(s_len, bool)
    for t in range(1, t_len):
        same = np.ones(s_len, bool) if faces is None else \
            similarities(faces[:, t], faces[:, t - 1]) >= MIN_SIMILARITY
        flip = ~last_mirrored
        now = np.where(flip[:, None], mirrored[:, t], plain[:, t])
        both = (plain[:, t] + mirrored[:, t]) / 2
        out[:, t] = np.where(same[:, None], (now + last) / 2, both)
        last = np.where(same[:, None], now, mirrored[:, t])
        last_mirrored = np.where(same, flip, True)
    return out


def file_classifier(path: str | Path, batch_size: int = 512, tta_mirror: bool = False,
                    tta_shift: int = 0, over_time_frames: int = 0) -> Classifier:
    """Load a classifier ``.keras`` or ``.tflite`` file; return batch -> (B, 7) probabilities.

    The shipped ``emotion_net_int8.tflite`` is what the live graph runs by default, so the LSTM
    best learns from its outputs. With ``tta_mirror`` each face's probabilities are averaged
    with its mirror image's, and with ``tta_shift`` with the face's shifted copies, as the live
    classifier's ``tta_mirror`` and ``tta_shift`` parameters do. With ``over_time_frames``
    = T > 0 (and ``tta_mirror``, no shift) a batch is taken as whole sequences of T frames and
    mirror TTA is spread over each sequence's frames (:func:`over_time_views`), as the live
    ``tta_mirror_over_time`` does.
    """
    from ..evaluate import load_predictor, predict_probabilities

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier model not found: {path}")
    predictor = load_predictor(path)
    classes = predictor.predict_batch(np.zeros((1, *predictor.input_size, 1), np.float32))
    if classes.shape != (1, NUM_CLASSES):
        raise ValueError(f"classifier {path} outputs {classes.shape[1:]} per face, expected "
                         f"({NUM_CLASSES},)")

    def classify(batch: np.ndarray) -> np.ndarray:
        return predict_probabilities(predictor, batch, tta_mirror=tta_mirror,
                                     batch_size=batch_size, progress=False, tta_shift=tta_shift)

    if over_time_frames > 0 and tta_mirror and not tta_shift:
        t_len = int(over_time_frames)

        def spread(batch: np.ndarray) -> np.ndarray:
            if len(batch) % t_len:
                raise ValueError(f"a batch of {len(batch)} frames is not whole sequences of "
                                 f"{t_len}")
            views = [predict_probabilities(predictor, np.ascontiguousarray(b),
                                           batch_size=batch_size, progress=False)
                     for b in (batch, batch[:, :, ::-1])]
            plain, mirrored = (v.reshape(-1, t_len, NUM_CLASSES) for v in views)
            faces = np.asarray(batch).reshape(-1, t_len, *np.shape(batch)[1:])
            return over_time_views(plain, mirrored, faces).reshape(-1, NUM_CLASSES)
        return spread
    return classify


def load_splits(data: str | Path) -> dict[str, Any]:
    """Return the Training faces (cleaned, without PublicTest overlap) and PublicTest faces.

    Constant (e.g. all-black) images are dropped from both: they are no face to film.
    """
    from .. import data as D

    ds = D.load_dataset(data)
    train, report = D.clean(ds.split("Training"))
    test = ds.split("PublicTest")
    train, overlap = D.remove_overlap(train, test)
    report.overlap_with_validation = overlap
    flat = test.images.reshape(len(test), -1)
    test = test.subset(flat.max(axis=1) != flat.min(axis=1))
    return {"Training": train, "PublicTest": test, "cleaning": report.as_dict()}


def plot_frames(images: np.ndarray, labels: np.ndarray, cfg: SequenceConfig, seed: int,
                path: Path, frames: int = 12) -> None:
    """Write a PNG of two sequences' perturbed frames (what the classifier saw)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emotion_perception.core.preprocessing import preprocess_faces

    rng = np.random.default_rng(seed)
    perturb = FramePerturber(cfg, seed)
    fig, axes = plt.subplots(2, frames, figsize=(frames * 1.0, 2.4))
    for row in range(2):
        i = int(rng.integers(len(images)))
        x = preprocess_faces(np.repeat(images[i][None], frames, axis=0))
        shown = perturb(x, rng)
        for j in range(frames):
            axes[row, j].imshow(shown[j], cmap="gray", vmin=0, vmax=255)
            axes[row, j].axis("off")
        axes[row, 0].set_title(CLASS_NAMES[int(labels[i])], fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

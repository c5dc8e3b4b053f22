"""Temporal smoothing: synthetic face sequences, LSTM training and the smoother benchmark.

``python -m emotion_training.temporal {make,train,bench,all} --out WORK [...]``

make
    Builds synthetic "video" sequences from still FER2013 faces and runs a trained classifier
    on every frame. A sequence shows one face of class ``a``; with probability
    ``switch_prob`` it switches at a random frame (at least ``min_segment`` frames from either
    end) to a face of another class ``b``. Every frame is the current face with its own
    perturbation: the Keras augmenter of :mod:`emotion_training.augment` (rotation, zoom,
    shift, brightness, contrast; no flip, a mirrored face is chosen per sequence instead) and
    OpenCV ops (Gaussian blur, sensor noise, occluding rectangles that persist for a few
    frames like a hand passing by), quantised back to 8 bits as a camera would deliver, then
    preprocessed with the shared :func:`preprocess_faces` and classified. Stamps follow
    ``fps`` with jitter and the odd dropped frame. The target of each frame is the true
    label of the face shown. Training sequences use only the cleaned Training split (minus
    every image also in PublicTest), benchmark sequences only PublicTest: the two never mix.
    Writes ``WORK/sequences/{train,test}.npz`` (+ a PNG of example frames).
train
    Trains the many-to-one LSTM of :func:`build_lstm` on every frame's window of the last
    ``window`` probability vectors (left zero-padded at a sequence start, exactly as
    :class:`~emotion_perception.core.smoothing.lstm.LstmSmoother` builds them at run time via
    the shared :func:`sliding_windows`), target = the frame's true label. A held-out part of
    the training *sequences* (never of their windows) drives early stopping. Writes
    ``WORK/lstm/emotion_lstm.keras``, ``history.csv`` and ``train_summary.json``.
bench
    Runs ``none``, ``ema``, ``hysteresis`` and ``lstm`` through the runtime smoother classes
    (all sequences as concurrent tracks, one ``update_many`` per frame) on the benchmark
    sequences and reports accuracy, flicker (unnecessary label changes per second on segments
    of constant truth), transition lag and per-update time; see
    :mod:`emotion_perception.core.metrics` for the definitions. Writes ``WORK/bench/``
    (``bench.json``, ``bench.txt``, ``bench.png``); ``--export DIR`` also writes
    ``DIR/emotion_lstm.keras`` and its model card (``emotion_lstm.model_card.{md,json}``).
all
    make, train and bench in one go.

Everything is seeded (``seed`` in the config; the benchmark sequences use ``seed + 1``), so
the same inputs give the same sequences, model and numbers on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES
from emotion_perception.core.metrics import TABLE_COLUMNS, json_safe
from emotion_perception.core.smoothing.lstm import sliding_windows
from emotion_perception.nodes.params import CLASSIFIER, by_name

from .export import file_names, sha256_of

Classifier = Callable[[np.ndarray], np.ndarray]
LSTM_FILE = "emotion_lstm.keras"
CARD_STEM = "emotion_lstm.model_card"
METHODS = ("none", "ema", "hysteresis", "lstm")


# ----------------------------------------------------------------------------- configuration
@dataclass
class SequenceConfig:
    """How synthetic sequences are made (see the module docstring)."""

    frames: int = 60                 # T frames per sequence
    fps: float = 15.0                # nominal frame rate of the stamps
    stamp_jitter: float = 0.1        # each frame interval is (1 +- U(jitter)) / fps
    drop_prob: float = 0.03          # probability that a frame is lost (a doubled interval)
    switch_prob: float = 0.7         # probability that a sequence changes expression once
    min_segment: int = 15            # frames before and after a switch, at least
    class_sampling: str = "data"     # data: images drawn uniformly; uniform: classes uniform
    rotation_deg: float = 6.0        # Keras augmenter strengths, drawn anew for every frame
    zoom: float = 0.08
    shift: float = 0.06
    brightness: float = 0.15
    contrast: float = 0.2
    blur_prob: float = 0.3           # per frame; Gaussian sigma U(0.5, blur_sigma_max) px
    blur_sigma_max: float = 1.5
    noise_std_max: float = 0.02      # per sequence sensor noise std ~ U(0, max), [0, 1] scale
    occlusion_rate: float = 0.04     # per frame probability that an occlusion starts
    occlusion_frames: tuple[int, int] = (3, 10)      # its duration range in frames
    occlusion_size: tuple[float, float] = (0.2, 0.5)  # its side, as a fraction of the face

    def __post_init__(self) -> None:
        self.occlusion_frames = tuple(int(v) for v in self.occlusion_frames)  # type: ignore
        self.occlusion_size = tuple(float(v) for v in self.occlusion_size)  # type: ignore
        checks = {
            "frames": self.frames >= 2, "fps": self.fps > 0,
            "stamp_jitter": 0 <= self.stamp_jitter < 1, "drop_prob": 0 <= self.drop_prob < 1,
            "switch_prob": 0 <= self.switch_prob <= 1,
            "min_segment": 1 <= self.min_segment and 2 * self.min_segment <= self.frames,
            "class_sampling": self.class_sampling in {"data", "uniform"},
            "rotation_deg": 0 <= self.rotation_deg <= 180, "zoom": 0 <= self.zoom < 1,
            "shift": 0 <= self.shift < 1, "brightness": 0 <= self.brightness < 1,
            "contrast": 0 <= self.contrast < 1, "blur_prob": 0 <= self.blur_prob <= 1,
            "blur_sigma_max": self.blur_sigma_max >= 0.5, "noise_std_max": self.noise_std_max >= 0,
            "occlusion_rate": 0 <= self.occlusion_rate <= 1,
            "occlusion_frames": len(self.occlusion_frames) == 2
            and 1 <= self.occlusion_frames[0] <= self.occlusion_frames[1],
            "occlusion_size": len(self.occlusion_size) == 2
            and 0 < self.occlusion_size[0] <= self.occlusion_size[1] <= 1,
        }
        _raise_bad("sequences", self, checks)


@dataclass
class LstmConfig:
    """The LSTM smoother's architecture and training."""

    window: int = 16
    units: int = 32
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 3e-3
    patience: int = 5                # early stopping on the validation loss
    val_fraction: float = 0.15       # of the training sequences

    def __post_init__(self) -> None:
        checks = {"window": self.window >= 1, "units": self.units >= 1,
                  "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
                  "learning_rate": self.learning_rate > 0, "patience": self.patience >= 0,
                  "val_fraction": 0 < self.val_fraction < 1}
        _raise_bad("lstm", self, checks)


@dataclass
class BenchConfig:
    """Parameters of the benchmarked smoothers and metrics."""

    ema_tau: float = 0.5
    hysteresis_window: int = 7
    hysteresis_margin: float = 0.25
    max_gap: float = 1.0
    hold: int = 3                    # frames a new label must hold to end a transition

    def __post_init__(self) -> None:
        checks = {"ema_tau": self.ema_tau > 0, "hysteresis_window": self.hysteresis_window >= 1,
                  "hysteresis_margin": 0 <= self.hysteresis_margin <= 1,
                  "max_gap": self.max_gap > 0, "hold": self.hold >= 1}
        _raise_bad("bench", self, checks)


def _live_tta_shift_ok(value: Any) -> bool:
    """Whether ``value`` is a ``tta_shift`` the live classifier node accepts (its declaration)."""
    try:
        by_name(CLASSIFIER)["tta_shift"].check(value)
    except ValueError:
        return False
    return True


@dataclass
class TemporalConfig:
    """Everything the temporal pipeline depends on; saved beside its outputs."""

    seed: int = 1234
    train_sequences: int = 300
    test_sequences: int = 100
    tta_mirror: bool = True   # classify frames as the live classifier does by default
    tta_shift: int = 0        # the live classifier's tta_shift (pixels; 0 = off)
    sequences: SequenceConfig = field(default_factory=SequenceConfig)
    lstm: LstmConfig = field(default_factory=LstmConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self) -> None:
        for name, cls in (("sequences", SequenceConfig), ("lstm", LstmConfig),
                          ("bench", BenchConfig)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, _from_mapping(cls, value, name))
        _raise_bad("config", self, {"train_sequences": self.train_sequences >= 2,
                                    "test_sequences": self.test_sequences >= 1,
                                    "tta_mirror": isinstance(self.tta_mirror, bool),
                                    "tta_shift": _live_tta_shift_ok(self.tta_shift)})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TemporalConfig":
        """Load a YAML file; an unknown key is an error naming it."""
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping at top level")
        return _from_mapping(cls, raw, str(path))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON/YAML-serialisable dict."""
        return json.loads(json.dumps(asdict(self)))


def _from_mapping(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**raw)


def _raise_bad(section: str, obj: Any, checks: Mapping[str, bool]) -> None:
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"invalid {section} values: "
                         + ", ".join(f"{k}={getattr(obj, k)!r}" for k in bad))


# ------------------------------------------------------------------------------ sequences
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
        from .augment import AugmentConfig, build_augmenter

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


def file_classifier(path: str | Path, batch_size: int = 512, tta_mirror: bool = False,
                    tta_shift: int = 0) -> Classifier:
    """Load a classifier ``.keras`` or ``.tflite`` file; return batch -> (B, 7) probabilities.

    The shipped ``emotion_net_int8.tflite`` is what the live graph runs by default, so the LSTM
    best learns from its outputs. With ``tta_mirror`` each face's probabilities are averaged
    with its mirror image's, and with ``tta_shift`` with the face's shifted copies, as the live
    classifier's ``tta_mirror`` and ``tta_shift`` parameters do.
    """
    from .evaluate import load_predictor, predict_probabilities

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
    return classify


def load_splits(data: str | Path) -> dict[str, Any]:
    """Return the Training faces (cleaned, without PublicTest overlap) and PublicTest faces.

    Constant (e.g. all-black) images are dropped from both: they are no face to film.
    """
    from . import data as D

    ds = D.load_dataset(data)
    train, report = D.clean(ds.split("Training"))
    test = ds.split("PublicTest")
    train, overlap = D.remove_overlap(train, test)
    report.overlap_with_validation = overlap
    flat = test.images.reshape(len(test), -1)
    test = test.subset(flat.max(axis=1) != flat.min(axis=1))
    return {"Training": train, "PublicTest": test, "cleaning": report.as_dict()}


# -------------------------------------------------------------------------------- the LSTM
def build_lstm(window: int = 16, units: int = 32, num_classes: int = NUM_CLASSES):
    """Return the smoother model: (None, window, 7) windows -> (None, 7) softmax.

    Masking (all-zero rows are padding) -> LSTM(units) -> Dense softmax. About 5 k weights at
    32 units.
    """
    import keras
    from keras import layers

    if window < 1 or units < 1:
        raise ValueError(f"window and units must be >= 1, got {window} and {units}")
    inputs = keras.Input((window, num_classes), name="probabilities")
    x = layers.Masking(mask_value=0.0, name="padding")(inputs)
    x = layers.LSTM(units, name="lstm")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="smoothed")(x)
    return keras.Model(inputs, outputs, name="emotion_lstm")


def training_windows(seqs: SequenceSet, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Return every frame's model input (S*T, window, 7) and its true label (S*T,)."""
    x = np.concatenate([sliding_windows(p, window) for p in seqs.probs])
    return x, seqs.labels.reshape(-1)


def split_sequences(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (train, validation) sequence indices, shuffled with ``seed``."""
    if n < 2:
        raise ValueError(f"need at least 2 sequences to hold some out, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(val_fraction * n))))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train_lstm(seqs: SequenceSet, cfg: LstmConfig | None = None, seed: int = 0,
               out: Path | None = None, verbose: int = 0) -> tuple[Any, dict[str, Any]]:
    """Train the LSTM on ``seqs``; return (model with the best weights, summary).

    The summary holds the validation loss/accuracy before training and at the best epoch,
    the epochs run and the per-epoch history. With ``out``, writes ``emotion_lstm.keras``,
    ``history.csv`` and ``train_summary.json`` there.
    """
    import keras

    cfg = cfg or LstmConfig()
    tr, va = split_sequences(len(seqs), cfg.val_fraction, seed)
    x_tr, y_tr = training_windows(seqs.subset(tr), cfg.window)
    x_va, y_va = training_windows(seqs.subset(va), cfg.window)
    keras.utils.set_random_seed(seed)
    model = build_lstm(cfg.window, cfg.units)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    loss0, acc0 = model.evaluate(x_va, y_va, batch_size=1024, verbose=0)
    train_loss0 = model.evaluate(x_tr, y_tr, batch_size=1024, verbose=0)[0]
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                         restore_best_weights=True)
    t0 = time.time()
    hist = model.fit(x_tr, y_tr, validation_data=(x_va, y_va), epochs=cfg.epochs,
                     batch_size=cfg.batch_size, shuffle=True, callbacks=[stop],
                     verbose=verbose)
    h = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = int(np.argmin(h["val_loss"]))
    summary = {
        "train_sequences": int(len(tr)), "val_sequences": int(len(va)),
        "train_windows": int(len(x_tr)), "val_windows": int(len(x_va)),
        "initial_train_loss": float(train_loss0),
        "initial_val_loss": float(loss0), "initial_val_accuracy": float(acc0),
        "best_epoch": best + 1, "epochs_run": len(h["loss"]),
        "best_val_loss": h["val_loss"][best], "best_val_accuracy": h["val_accuracy"][best],
        "train_seconds": round(time.time() - t0, 1), "parameters": int(model.count_params()),
        "seed": seed, "config": asdict(cfg), "history": h,
        "sequences_meta": seqs.meta,
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / LSTM_FILE)
        with (out / "history.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            keys = sorted(h)
            writer.writerow(["epoch"] + keys)
            for e in range(len(h["loss"])):
                writer.writerow([e + 1] + [h[k][e] for k in keys])
        (out / "train_summary.json").write_text(json.dumps(json_safe(summary), indent=2,
                                                           allow_nan=False))
    return model, summary


# ------------------------------------------------------------------------------- benchmark
def make_smoothers(lstm_path: str | Path | None, cfg: BenchConfig, max_tracks: int
                   ) -> dict[str, Any]:
    """Return the smoothers to compare, keyed by plugin name (``lstm`` only with a path)."""
    from emotion_perception.core.smoothing.simple import (
        EmaSmoother, HysteresisSmoother, NoSmoother)

    common = {"max_gap": cfg.max_gap, "max_tracks": max_tracks}
    out: dict[str, Any] = {
        "none": NoSmoother(**common),
        "ema": EmaSmoother(tau=cfg.ema_tau, **common),
        "hysteresis": HysteresisSmoother(window=cfg.hysteresis_window,
                                         margin=cfg.hysteresis_margin, **common),
    }
    if lstm_path:
        from emotion_perception.core.smoothing.lstm import LstmSmoother

        out["lstm"] = LstmSmoother(model_path=str(lstm_path), window=lstm_window(lstm_path),
                                   **common)
    return out


def lstm_window(path: str | Path) -> int:
    """Return the fixed window length a saved LSTM smoother model takes."""
    import keras

    model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    window = model.inputs[0].shape[1]
    if window is None:
        raise ValueError(f"{path}: the model takes any window length; expected a fixed one")
    return int(window)


def run_smoother(smoother: Any, seqs: SequenceSet, progress: bool = False
                 ) -> tuple[np.ndarray, float]:
    """Run all sequences as concurrent tracks, one ``update_many`` per frame.

    Returns the (S, T, 7) outputs and the mean wall time per track update in microseconds.
    """
    n, t_len = seqs.labels.shape
    out = np.zeros((n, t_len, NUM_CLASSES), np.float32)
    ids = list(range(n))
    frames = range(t_len)
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, desc=f"bench {smoother.name}", unit="frame", leave=False)
    elapsed = 0.0
    for t in frames:
        items = list(zip(ids, seqs.stamps[:, t].tolist(), seqs.probs[:, t]))
        t0 = time.perf_counter()
        res = smoother.update_many(items)
        elapsed += time.perf_counter() - t0
        out[:, t] = np.stack(res)
    return out, elapsed / (n * t_len) * 1e6


def bench(seqs: SequenceSet, lstm_path: str | Path | None, cfg: BenchConfig | None = None,
          progress: bool = False) -> dict[str, Any]:
    """Compare the smoothers on ``seqs``; return the metrics per method and their outputs."""
    from emotion_perception.core.metrics import summarize_sequences

    cfg = cfg or BenchConfig()
    smoothers = make_smoothers(lstm_path, cfg, max_tracks=len(seqs) + 1)
    outputs, timing = {}, {}
    for name, sm in smoothers.items():
        outputs[name], timing[name] = run_smoother(sm, seqs, progress)
    summary = summarize_sequences(seqs.labels, seqs.stamps, outputs, hold=cfg.hold)
    for name in summary:
        summary[name]["us_per_update"] = timing[name]
    return {"metrics": summary, "outputs": outputs}


BENCH_COLUMNS = TABLE_COLUMNS + (("us_per_update", "us/update", "{:.1f}"),)


def markdown_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Return the benchmark metrics as a Markdown table."""
    head = "| method | " + " | ".join(t for _, t, _ in BENCH_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(BENCH_COLUMNS)
    rows = [head, sep]
    for name, m in metrics.items():
        cells = []
        for key, _, fmt in BENCH_COLUMNS:
            v = m.get(key, math.nan)
            cells.append("n/a" if isinstance(v, float) and math.isnan(v)
                         else fmt.format(int(v) if "d" in fmt else v))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_bench(seqs: SequenceSet, outputs: Mapping[str, np.ndarray],
               metrics: Mapping[str, Mapping[str, float]], path: Path, examples: int = 4
               ) -> None:
    """Write a PNG: labels over time of a few switching sequences, and the metric bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.flatnonzero(seqs.switch_frame >= 0)[:examples]
    if len(picks) == 0:
        picks = np.arange(min(examples, len(seqs)))
    names = list(outputs)
    fig, axes = plt.subplots(len(picks) + 1, 1, figsize=(10, 2.2 * (len(picks) + 1)),
                             squeeze=False)
    for ax, s in zip(axes[:-1, 0], picks):
        t = seqs.stamps[s]
        ax.step(t, seqs.labels[s], where="post", color="k", lw=3, alpha=0.35, label="truth")
        for j, name in enumerate(names):
            ax.step(t, outputs[name][s].argmax(axis=1) + 0.08 * (j - len(names) / 2),
                    where="post", lw=1.2, label=name)
        ax.set_yticks(range(NUM_CLASSES), CLASS_NAMES, fontsize=7)
        ax.set_title(f"sequence {s}", fontsize=9)
        ax.set_xlabel("s", fontsize=8)
    handles, legend_labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, fontsize=8, ncol=len(names) + 1, loc="upper center")
    ax = axes[-1, 0]
    x = np.arange(len(names))
    flicker = [metrics[n]["flicker_per_s"] for n in names]
    lag = [metrics[n]["mean_lag_frames"] for n in names]
    ax.bar(x - 0.2, flicker, 0.4, label="flicker (changes/s)")
    ax.bar(x + 0.2, lag, 0.4, label="mean lag (frames)")
    ax.set_xticks(x, [f"{n}\nacc {metrics[n]['accuracy']:.3f}" for n in names], fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def write_model_card(export: Path, lstm_path: Path, result: Mapping[str, Any],
                     train_summary: Mapping[str, Any] | None, test_meta: Mapping[str, Any],
                     config: TemporalConfig) -> dict[str, Any]:
    """Copy the LSTM into ``export`` and write its model card (.md and .json)."""
    import keras

    export.mkdir(parents=True, exist_ok=True)
    target = export / LSTM_FILE
    if lstm_path.resolve() != target.resolve():
        shutil.copyfile(lstm_path, target)
    train_meta = file_names(dict((train_summary or {}).get("sequences_meta", {})),
                            ("data", "classifier"))
    test_meta = file_names(dict(test_meta), ("data", "classifier"))
    card = {
        "model": LSTM_FILE, "sha256": sha256_of(target),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": "temporal smoothing of per-frame FER2013 emotion probabilities per face track",
        "input": f"(batch, {lstm_window(target)}, {NUM_CLASSES}) float32 probability "
                 "vectors, oldest first, left zero-padded (masked) for short histories",
        "output": f"(batch, {NUM_CLASSES}) softmax for the newest frame, classes "
                  f"{list(CLASS_NAMES)}",
        "training": {k: v for k, v in (train_summary or {}).items()
                     if k not in {"history", "sequences_meta"}},
        "train_sequences": train_meta,
        "benchmark_sequences": test_meta,
        "benchmark_config": asdict(config.bench),
        "config": config.to_dict(),
        "metrics": result["metrics"],
        "versions": {"keras": keras.__version__, "numpy": np.__version__},
        "caveats": [
            "Sequences are synthetic: still FER2013 faces with per-frame perturbations, "
            "not real video; a switch changes the person as well as the expression.",
            "Training sequences use the classifier's own Training images, on which it can be "
            "more confident and more accurate than on unseen faces (compare the two "
            "raw_frame_accuracy values); the benchmark uses PublicTest faces, unseen by the "
            "classifier and by this model.",
            "The model learned the error pattern of one classifier (see train_sequences."
            "classifier); retrain it when the classifier changes.",
        ],
    }
    (export / f"{CARD_STEM}.json").write_text(json.dumps(json_safe(card), indent=2,
                                                         default=str, allow_nan=False))
    t = card["training"]
    md = [
        "# Model card: emotion_lstm.keras (temporal smoother)", "",
        f"Date: {card['date']}  ", f"SHA-256: `{card['sha256']}`", "",
        "## What it does", "",
        f"{card['task'].capitalize()}. Input: {card['input']}. Output: {card['output']}. "
        "Used by the "
        "`lstm` smoother plugin (`emotion_perception.core.smoothing.lstm`).", "",
        "## Data and sequences", "",
        f"* Data: `{Path(str(train_meta.get('data', '?'))).name}` "
        f"(sha256 `{train_meta.get('data_sha256', '?')}`)",
        f"* Classifier producing the per-frame probabilities: "
        f"`{Path(str(train_meta.get('classifier', '?'))).name}` (sha256 "
        f"`{train_meta.get('classifier_sha256', '?')}`)",
        f"* Training sequences: {train_meta.get('sequences', '?')} from the cleaned Training "
        f"split (seed {train_meta.get('seed', '?')}); benchmark sequences: "
        f"{test_meta.get('sequences', '?')} from PublicTest (seed {test_meta.get('seed', '?')})."
        " The two splits never mix.",
        f"* Classifier frame accuracy on the (perturbed) frames: training sequences "
        f"{_fmt(train_meta.get('raw_frame_accuracy'))}, benchmark sequences "
        f"{_fmt(test_meta.get('raw_frame_accuracy'))}.",
        "* Each sequence: one face, with probability `switch_prob` switching once to a face of "
        "another class; every frame perturbed (Keras augmenter: rotation, zoom, shift, "
        "brightness, contrast; OpenCV: blur, noise, persistent occlusions), quantised to "
        "8 bits, preprocessed with the shared `preprocess_faces` and classified. Stamps at "
        "`fps` with jitter and dropped frames. Full settings in the JSON card.", "",
        "## Training", "",
        f"* LSTM {config.lstm.units} units, window {config.lstm.window}, "
        f"{t.get('parameters', '?')} parameters; Adam lr {config.lstm.learning_rate}, batch "
        f"{config.lstm.batch_size}, early stopping (patience {config.lstm.patience}) on the "
        "validation loss of held-out training sequences.",
        f"* Epochs run {t.get('epochs_run', '?')}, best epoch {t.get('best_epoch', '?')}: "
        f"validation loss {_fmt(t.get('best_val_loss'))} (before training "
        f"{_fmt(t.get('initial_val_loss'))}), validation accuracy "
        f"{_fmt(t.get('best_val_accuracy'))}.",
        f"* Seed {t.get('seed', '?')}.", "",
        "## Benchmark (PublicTest sequences)", "",
        markdown_table(result["metrics"]), "",
        "flicker/s: unnecessary label changes per second on segments of constant truth; lag: "
        f"frames from a true change until the new label holds {config.bench.hold} frames, over "
        "the transitions each method resolves (unresolved ones counted apart); lag common: "
        "over the transitions that all methods resolve; see "
        "`emotion_perception.core.metrics`.", "",
        "## Reproduce", "",
        "```",
        f"python -m emotion_training.temporal all --config CONFIG.yaml --out WORK "
        f"--data {Path(str(train_meta.get('data', 'DATA.npz'))).name} "
        f"--classifier {Path(str(train_meta.get('classifier', 'CLASSIFIER'))).name} "
        "--export DIR",
        "```", "",
        "with CONFIG.yaml holding the `config` of the JSON card (seeds included).", "",
        "## Caveats", "",
    ] + [f"* {c}" for c in card["caveats"]] + [""]
    (export / f"{CARD_STEM}.md").write_text("\n".join(md))
    return card


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "?"


# --------------------------------------------------------------------------------- the CLI
def _paths(args: argparse.Namespace) -> dict[str, Path]:
    work = Path(args.out)
    return {
        "train_seq": Path(getattr(args, "train_sequences_file", None)
                          or work / "sequences" / "train.npz"),
        "test_seq": Path(getattr(args, "test_sequences_file", None)
                         or work / "sequences" / "test.npz"),
        "lstm_dir": work / "lstm",
        "lstm": Path(getattr(args, "lstm", None) or work / "lstm" / LSTM_FILE),
        "bench": work / "bench",
    }


def _config(args: argparse.Namespace) -> TemporalConfig:
    cfg = TemporalConfig.from_yaml(args.config) if args.config else TemporalConfig()
    if args.seed is not None:
        cfg.seed = args.seed
    for key in ("train_sequences", "test_sequences"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    for key in ("frames", "fps"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg.sequences, key, value)
    for key in ("epochs", "window", "units"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg.lstm, key, value)
    # re-validate after the overrides
    return TemporalConfig(seed=cfg.seed, train_sequences=cfg.train_sequences,
                          test_sequences=cfg.test_sequences, tta_mirror=cfg.tta_mirror,
                          tta_shift=cfg.tta_shift,
                          sequences=asdict(cfg.sequences), lstm=asdict(cfg.lstm),
                          bench=asdict(cfg.bench))


def cmd_make(args: argparse.Namespace, cfg: TemporalConfig) -> None:
    """Generate the training and benchmark sequence sets."""
    paths = _paths(args)
    if not args.data or not args.classifier:
        raise ValueError("make needs --data and --classifier")
    splits = load_splits(args.data)
    classifier = file_classifier(args.classifier, tta_mirror=cfg.tta_mirror,
                                 tta_shift=cfg.tta_shift)
    common = {"data": str(Path(args.data).resolve()), "data_sha256": sha256_of(args.data),
              "classifier": str(Path(args.classifier).resolve()),
              "classifier_sha256": sha256_of(args.classifier),
              "classifier_tta_mirror": cfg.tta_mirror, "classifier_tta_shift": cfg.tta_shift,
              "cleaning": splits["cleaning"]}
    for split, n, seed, path in (("Training", cfg.train_sequences, cfg.seed, paths["train_seq"]),
                                 ("PublicTest", cfg.test_sequences, cfg.seed + 1,
                                  paths["test_seq"])):
        ds = splits[split]
        seqs = make_sequences(ds.images, ds.labels, classifier, n, cfg.sequences, seed,
                              progress=True, split=split)
        raw_acc = float((seqs.probs.argmax(-1) == seqs.labels).mean())
        seqs.meta.update(common, raw_frame_accuracy=raw_acc)
        seqs.save(path)
        print(f"{split}: {n} sequences x {cfg.sequences.frames} frames -> {path} "
              f"(classifier frame accuracy {raw_acc:.3f}, "
              f"{int((seqs.switch_frame >= 0).sum())} with a switch)", flush=True)
    plot_frames(splits["PublicTest"].images, splits["PublicTest"].labels, cfg.sequences,
                cfg.seed, paths["test_seq"].parent / "example_frames.png")


def cmd_train(args: argparse.Namespace, cfg: TemporalConfig) -> dict[str, Any]:
    """Train the LSTM on the training sequences."""
    paths = _paths(args)
    seqs = SequenceSet.load(paths["train_seq"])
    if seqs.meta.get("split") not in ("Training", ""):
        raise ValueError(f"{paths['train_seq']} holds {seqs.meta.get('split')} sequences; "
                         "the LSTM trains on Training sequences only")
    verbose = 1 if sys.stdout.isatty() else 2
    _, summary = train_lstm(seqs, cfg.lstm, cfg.seed, paths["lstm_dir"], verbose=verbose)
    print(f"LSTM: best epoch {summary['best_epoch']}/{summary['epochs_run']}, validation loss "
          f"{summary['initial_val_loss']:.4f} -> {summary['best_val_loss']:.4f}, accuracy "
          f"{summary['initial_val_accuracy']:.3f} -> {summary['best_val_accuracy']:.3f}; "
          f"saved {paths['lstm_dir'] / LSTM_FILE}", flush=True)
    return summary


def cmd_bench(args: argparse.Namespace, cfg: TemporalConfig) -> dict[str, Any]:
    """Benchmark the smoothers on the held-out sequences; optionally export the LSTM."""
    from emotion_perception.core.metrics import format_table

    paths = _paths(args)
    seqs = SequenceSet.load(paths["test_seq"])
    if seqs.meta.get("split") == "Training":
        raise ValueError(f"{paths['test_seq']} holds Training sequences; benchmark on "
                         "PublicTest sequences")
    lstm = paths["lstm"] if paths["lstm"].is_file() else None
    if lstm is None:
        print(f"no LSTM at {paths['lstm']}: benchmarking the other smoothers only",
              file=sys.stderr)
    result = bench(seqs, lstm, cfg.bench, progress=True)
    table = format_table(result["metrics"], BENCH_COLUMNS)
    print(table)
    out = paths["bench"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.txt").write_text(table + "\n")
    record = {"metrics": result["metrics"], "config": cfg.to_dict(),
              "sequences": str(paths["test_seq"]), "sequences_meta": seqs.meta,
              "lstm": str(lstm) if lstm else None,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / "bench.json").write_text(json.dumps(json_safe(record), indent=2, default=str,
                                               allow_nan=False))
    plot_bench(seqs, result["outputs"], result["metrics"], out / "bench.png")
    print(f"wrote {out / 'bench.json'}, {out / 'bench.txt'}, {out / 'bench.png'}")
    if args.export:
        if lstm is None:
            raise ValueError("--export needs a trained LSTM")
        summary_file = lstm.parent / "train_summary.json"
        train_summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
        write_model_card(Path(args.export), lstm, result, train_summary, seqs.meta, cfg)
        print(f"exported {Path(args.export) / LSTM_FILE} and {CARD_STEM}.md/.json")
    return result


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the CLI."""
    p = argparse.ArgumentParser(prog="python -m emotion_training.temporal",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", required=True, help="work folder (sequences/, lstm/, bench/)")
        sp.add_argument("--config", type=Path, help="YAML (configs/temporal.yaml); defaults "
                        "if omitted")
        sp.add_argument("--seed", type=int, help="overrides the config's seed")

    def make_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", help="dataset .npz/.csv/folder (Training and PublicTest)")
        sp.add_argument("--classifier", help="classifier .keras or .tflite whose outputs are "
                        "smoothed (best: the live default, emotion_net_int8.tflite)")
        sp.add_argument("--train-sequences", type=int, help="number of training sequences")
        sp.add_argument("--test-sequences", type=int, help="number of benchmark sequences")
        sp.add_argument("--frames", type=int, help="frames per sequence")
        sp.add_argument("--fps", type=float, help="nominal frame rate")

    def train_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--epochs", type=int, help="maximum LSTM epochs")
        sp.add_argument("--window", type=int, help="frames per LSTM window")
        sp.add_argument("--units", type=int, help="LSTM units")

    def bench_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--lstm", help="LSTM model to benchmark (default WORK/lstm/...)")
        sp.add_argument("--export", help="folder to receive emotion_lstm.keras + model card")

    sp = sub.add_parser("make", help="generate training and benchmark sequences")
    common(sp)
    make_args(sp)
    sp = sub.add_parser("train", help="train the LSTM smoother")
    common(sp)
    train_args(sp)
    sp.add_argument("--train-sequences-file", help="default WORK/sequences/train.npz")
    sp = sub.add_parser("bench", help="compare the smoothers on benchmark sequences")
    common(sp)
    bench_args(sp)
    sp.add_argument("--test-sequences-file", help="default WORK/sequences/test.npz")
    sp = sub.add_parser("all", help="make, train and bench")
    common(sp)
    make_args(sp)
    train_args(sp)
    bench_args(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the temporal-smoothing tool."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        cfg = _config(args)
    except (ValueError, OSError, TypeError) as exc:
        print(f"temporal: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    (out / f"config_{args.command}.yaml").write_text(yaml.safe_dump(cfg.to_dict(),
                                                                    sort_keys=False))
    try:
        if args.command in ("make", "all"):
            cmd_make(args, cfg)
        if args.command in ("train", "all"):
            cmd_train(args, cfg)
        if args.command in ("bench", "all"):
            cmd_bench(args, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"temporal: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

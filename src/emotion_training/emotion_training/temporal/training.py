"""The LSTM smoother model and its training on sequence windows."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception.core.classes import NUM_CLASSES
from emotion_perception.core.metrics import json_safe
from emotion_perception.core.smoothing.lstm import sliding_windows

from .config import LSTM_FILE, LstmConfig
from .synth import SequenceSet


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

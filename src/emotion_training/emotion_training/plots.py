"""Shared plotting helpers: confusion matrices, per-class bars, training curves, image grids.

Everything draws with matplotlib's non-interactive Agg backend and writes PNG files, so the
tools run on headless machines. Each function returns the path it wrote.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from emotion_perception.core.classes import CLASS_NAMES  # noqa: E402


def _save(fig: "plt.Figure", path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion_matrix(matrix: np.ndarray, path: str | Path, title: str = "Confusion matrix",
                          class_names: Sequence[str] = CLASS_NAMES,
                          proportions: bool = False) -> Path:
    """Draw a confusion matrix (rows = true class, columns = predicted) with its numbers.

    ``proportions`` formats the cells as fractions in [0, 1] (row-normalised matrices) instead
    of integer counts; the colour scale follows the values either way.
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = len(class_names)
    if m.shape != (n, n):
        raise ValueError(f"matrix must be {n}x{n} for {n} class names, got {m.shape}")
    fig, ax = plt.subplots(figsize=(1.0 * n + 2.5, 1.0 * n + 1.5))
    vmax = 1.0 if proportions else max(1.0, float(m.max()))
    im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            value = m[i, j]
            text = f"{value:.2f}" if proportions else f"{int(round(value))}"
            dark = value > 0.6 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    return _save(fig, path)


def plot_per_class(metrics: Mapping[str, Mapping[str, float]], path: str | Path,
                   title: str = "Per-class precision and recall",
                   keys: Sequence[str] = ("precision", "recall", "f1")) -> Path:
    """Draw grouped bars of per-class metrics; ``metrics[class][key]`` values lie in [0, 1].

    The support of each class (``metrics[class]["support"]``, if present) is written under its
    name so rare classes stand out.
    """
    names = list(metrics)
    if not names:
        raise ValueError("metrics is empty")
    x = np.arange(len(names))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(names) + 2), 4.5))
    for k, key in enumerate(keys):
        values = [float(metrics[c].get(key, 0.0)) for c in names]
        bars = ax.bar(x + (k - (len(keys) - 1) / 2) * width, values, width, label=key)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    labels = [f"{c}\n(n={int(metrics[c]['support'])})" if "support" in metrics[c] else c
              for c in names]
    ax.set_xticks(x, labels=labels)
    ax.set_ylim(0.0, 1.08)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Read a Keras ``CSVLogger`` file into column -> values (non-numeric cells become NaN)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file not found: {path}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    out: dict[str, list[float]] = {}
    for key in rows[0]:
        values = []
        for r in rows:
            try:
                values.append(float(r[key]))
            except (TypeError, ValueError):
                values.append(float("nan"))
        out[key] = values
    return out


def plot_training_curves(history: Mapping[str, Sequence[float]] | str | Path,
                         path: str | Path, title: str = "Training curves") -> Path:
    """Draw accuracy and loss per epoch (training and validation) side by side.

    ``history`` is a mapping like the one :func:`read_history` returns, or a CSV path. At least
    one of ``accuracy``, ``val_accuracy``, ``loss``, ``val_loss`` must be present.
    """
    if isinstance(history, (str, Path)):
        history = read_history(history)
    wanted = ("accuracy", "val_accuracy", "loss", "val_loss")
    if not any(k in history for k in wanted):
        raise ValueError(f"history has none of the columns {wanted}; has {sorted(history)}")
    n = max(len(history[k]) for k in wanted if k in history)
    epochs = (np.asarray(history["epoch"], dtype=float) + 1 if "epoch" in history
              else np.arange(1, n + 1, dtype=float))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "-s")):
            if key in history:
                ax.plot(epochs[:len(history[key])], history[key], style, markersize=3,
                        label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    if "val_accuracy" in history:
        val = np.asarray(history["val_accuracy"], dtype=float)
        if np.isfinite(val).any():
            best = int(np.nanargmax(val))
            axes[0].axvline(epochs[best], color="grey", linestyle=":", linewidth=1)
            axes[0].set_title(f"best val_accuracy {val[best]:.4f} at epoch {int(epochs[best])}",
                              fontsize=9)
    fig.suptitle(title)
    return _save(fig, path)


def plot_image_rows(rows: Sequence[Sequence[np.ndarray]], path: str | Path,
                    titles: Sequence[Sequence[str]] | None = None,
                    row_labels: Sequence[str] | None = None, suptitle: str | None = None,
                    cell_inches: float = 1.6) -> Path:
    """Draw a grid of images (gray 2-D or BGR uint8), one list per row, with optional titles."""
    if not rows or not rows[0]:
        raise ValueError("rows must contain at least one image")
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, layout="constrained",
                             figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.4))
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(rows[i]):
                ax.axis("off")
                continue
            im = np.asarray(rows[i][j])
            if im.ndim == 3 and im.shape[2] == 1:
                im = im[:, :, 0]
            if im.ndim == 2:
                vmax = 255 if im.dtype == np.uint8 else 1.0
                ax.imshow(im, cmap="gray", vmin=0, vmax=vmax)
            else:
                ax.imshow(im[:, :, ::-1])  # BGR -> RGB
            if titles is not None and j < len(titles[i]):
                ax.set_title(titles[i][j], fontsize=8)
            if row_labels is not None and j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return _save(fig, path)

"""Augmentation preview CLI: ``emotion_augment_preview --data NPZ --out aug.png [--config Y]``.

Draws 16 Training faces before and after the training augmenter (``augment.build_augmenter``
called with ``training=True``), with the strengths of a training config, so a person can see
what the network is shown.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from emotion_perception.core.preprocessing import preprocess_faces


def augment_batch(images_uint8: np.ndarray, cfg: object | None = None, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return (before, after): preprocessed faces (N, H, W, 1) and their augmented versions.

    ``cfg`` is an :class:`~emotion_training.augment.AugmentConfig` (defaults if None).
    """
    import keras

    from .augment import AugmentConfig, build_augmenter

    if cfg is not None and not isinstance(cfg, AugmentConfig):
        raise ValueError(f"cfg must be an AugmentConfig or None, got {type(cfg).__name__}")
    before = preprocess_faces(images_uint8)
    keras.utils.set_random_seed(seed)
    augmenter = build_augmenter(cfg, seed)
    after = np.asarray(augmenter(before, training=True), dtype=np.float32)
    return before, np.clip(after, 0.0, 1.0)


def _tile(batch: np.ndarray, cols: int) -> np.ndarray:
    n, h, w = batch.shape[:3]
    rows = -(-n // cols)
    pad = 2
    sheet = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        sheet[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = batch[i, ..., 0]
    return sheet


def write_preview(before: np.ndarray, after: np.ndarray, path: str | Path,
                  subtitle: str = "") -> Path:
    """Write a PNG with the faces before (left) and after (right) augmentation."""
    from . import plots

    if before.shape != after.shape:
        raise ValueError(f"before {before.shape} and after {after.shape} differ")
    cols = int(np.ceil(np.sqrt(len(before))))
    return plots.plot_image_rows(
        [[_tile(before, cols), _tile(after, cols)]], path,
        [["before", "after augmenter(training=True)"]],
        suptitle=f"augmentation preview{': ' + subtitle if subtitle else ''}", cell_inches=4.5)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_augment_preview``."""
    p = argparse.ArgumentParser(prog="emotion_augment_preview",
                                description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True,
                   help="dataset: .npz, Kaggle .csv or image folder")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--config", type=Path, help="training YAML (its augment section is used)")
    p.add_argument("--n", type=int, default=16, help="number of faces (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the selection and transforms")
    p.add_argument("--split", default="Training", help="split to draw faces from")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from dataclasses import asdict

    from .augment import AugmentConfig
    from .config import TrainConfig
    from .data import load_dataset

    try:
        aug = TrainConfig.from_yaml(a.config).augment if a.config else AugmentConfig()
        ds = load_dataset(a.data).split(a.split)
    except (ValueError, OSError, TypeError) as exc:
        print(f"emotion_augment_preview: {exc}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(a.seed)
    idx = np.sort(rng.choice(len(ds), size=min(a.n, len(ds)), replace=False))
    before, after = augment_batch(ds.images[idx], aug, a.seed)
    subtitle = ", ".join(f"{k}={v}" for k, v in asdict(aug).items())
    path = write_preview(before, after, a.out, subtitle)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

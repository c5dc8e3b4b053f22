"""``emotion_cam``: class activation map grids for dataset faces.

The maps themselves (exact for GAP heads, no gradients) live in
``emotion_perception.core.cam``, shared with the live debug image; they are re-exported here.

``emotion_cam --model M.keras --data NPZ [--n 8] [--split PublicTest] --out DIR`` writes one
PNG per face (the face and its 7 class maps, titled with class and probability) and an index
PNG with all of them. An ensemble from ``emotion_ensemble`` shows its members' mean maps.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from emotion_perception.core.cam import (CamExtractor, MeanCam, cam_extractor,  # noqa: F401
                                         class_activation_maps, overlay)
from emotion_perception.core.classes import CLASS_NAMES


def _display_face(face: np.ndarray, scale: int = 3) -> np.ndarray:
    h, w = face.shape[:2]
    return cv2.resize(face, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


def write_cam_grids(extractor: CamExtractor | MeanCam, images: np.ndarray,
                    labels: np.ndarray | None, out_dir: str | Path, joint: bool = False,
                    names: list[str] | None = None) -> list[Path]:
    """Write one PNG per face (face + one overlay per class) and ``cam_index.png``."""
    from tqdm import tqdm

    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cams, probs = extractor.maps(images, joint)
    rows, row_titles, row_labels, written = [], [], [], []
    for i in tqdm(range(len(images)), desc="CAM grids", unit="face", leave=False):
        face = _display_face(np.asarray(images[i]))
        pred = int(probs[i].argmax())
        truth = "?" if labels is None else CLASS_NAMES[int(labels[i])]
        tiles = [face] + [overlay(face, cams[i, c]) for c in range(cams.shape[1])]
        titles = [f"true: {truth}"] + [f"{'*' if c == pred else ''}{CLASS_NAMES[c]} "
                                       f"{probs[i, c]:.2f}" for c in range(cams.shape[1])]
        name = (names[i] if names else f"{i:03d}")
        written.append(plots.plot_image_rows(
            [tiles], out / f"cam_{name}_{truth}.png", [titles],
            suptitle=f"face {name}: true {truth}, predicted {CLASS_NAMES[pred]} "
                     f"({probs[i, pred]:.2f}); * = predicted class", cell_inches=1.8))
        rows.append(tiles)
        row_titles.append(titles)
        row_labels.append(f"{name}")
    written.append(plots.plot_image_rows(
        rows, out / "cam_index.png", row_titles, row_labels,
        suptitle="class activation maps (each map scaled to [0, 1]; * = predicted)"
        if not joint else "class activation maps (scaled jointly per face; * = predicted)"))
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_cam``."""
    p = argparse.ArgumentParser(prog="emotion_cam", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help=".keras classifier with a GAP head")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset: .npz, Kaggle .csv or image folder")
    p.add_argument("--split", default="PublicTest", help="usage split to draw faces from")
    p.add_argument("--n", type=int, default=8, help="number of faces (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the face selection")
    p.add_argument("--joint", action="store_true",
                   help="scale the 7 maps of a face together instead of one by one")
    p.add_argument("--out", type=Path, required=True, help="output folder for the PNGs")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from .data import load_dataset

    try:
        ds = load_dataset(a.data).split(a.split)
        if not a.model.is_file():
            raise FileNotFoundError(f"model file not found: {a.model}")
        model = keras.saving.load_model(a.model, compile=False, safe_mode=True)
        extractor = cam_extractor(model)
    except (ValueError, OSError) as exc:
        print(f"emotion_cam: {exc}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(a.seed)
    idx = np.sort(rng.choice(len(ds), size=min(a.n, len(ds)), replace=False))
    files = write_cam_grids(extractor, ds.images[idx], ds.labels[idx], a.out, a.joint,
                            names=[f"{a.split}{i}" for i in idx])
    for f in files:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

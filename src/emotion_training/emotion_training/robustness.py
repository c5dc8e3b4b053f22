"""Robustness table: accuracy of classifiers on faces degraded the way a camera path degrades them.

``emotion_robustness --model A.tflite --model B.keras --data $DATA --tta-mirror`` scores every
model on the same split under the same fixed, seeded perturbations of the 48x48 faces (JPEG
quality 30 and 50, Gaussian blur, low resolution, brightness and contrast changes, a 10 %
shift, a 15-degree rotation, noise) and prints clean accuracy, each perturbation's accuracy and
its cost in points. Every model sees bit-identical perturbed faces, so the rows compare.
Writes ``robustness.json`` and ``robustness.png`` (grouped bars) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

Perturbation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _jpeg(quality: int) -> Perturbation:
    def apply(face: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return apply


def _blur(sigma: float) -> Perturbation:
    return lambda face, _rng: cv2.GaussianBlur(face, (0, 0), sigma)


def _low_res(side: int) -> Perturbation:
    def apply(face: np.ndarray, _rng: np.random.Generator) -> np.ndarray:
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, face.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return apply


def _affine(face: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.warpAffine(face, matrix, face.shape[::-1], flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _shift(fraction: float) -> Perturbation:
    def apply(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = face.shape
        angle = rng.uniform(0, 2 * np.pi)
        dx, dy = fraction * w * np.cos(angle), fraction * h * np.sin(angle)
        return _affine(face, np.float32([[1, 0, dx], [0, 1, dy]]))
    return apply


def _rotate(degrees: float) -> Perturbation:
    def apply(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = face.shape
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return _affine(face, cv2.getRotationMatrix2D((w / 2, h / 2), sign * degrees, 1.0))
    return apply


def _levels(gain: float, offset: float) -> Perturbation:
    return lambda face, _rng: np.clip(face.astype(np.float32) * gain + offset, 0,
                                      255).astype(np.uint8)


def _noise(sigma: float) -> Perturbation:
    def apply(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(face + rng.normal(0, sigma, face.shape), 0, 255).astype(np.uint8)
    return apply


#: name -> perturbation of one uint8 (48, 48) face; fixed so every model sees the same faces
PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg_q30": _jpeg(30),
    "jpeg_q50": _jpeg(50),
    "blur_sigma1": _blur(1.0),
    "blur_sigma2": _blur(2.0),
    "low_res_16px": _low_res(16),
    "low_res_24px": _low_res(24),
    "darker_40pct": _levels(0.6, 0.0),
    "low_contrast": _levels(0.5, 64.0),
    "shift_10pct": _shift(0.10),
    "rotate_15deg": _rotate(15.0),
    "noise_sigma10": _noise(10.0),
}


def perturb(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """Return the uint8 faces ``images`` (N, H, W) under perturbation ``name`` (seeded)."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    rng = np.random.default_rng(seed)
    fn = PERTURBATIONS[name]
    return np.stack([fn(face, rng) for face in images]) if len(images) else images.copy()


def robustness(model_paths: list[Path], images: np.ndarray, labels: np.ndarray,
               tta_mirror: bool = False, names: list[str] | None = None, seed: int = 0,
               progress: bool = True) -> dict:
    """Return {model: {"clean": acc, perturbation: acc, ...}} on the same perturbed faces."""
    from emotion_perception.core.preprocessing import preprocess_faces

    from .evaluate import load_predictor, predict_probabilities

    names = list(PERTURBATIONS) if names is None else names
    labels = np.asarray(labels)
    sets = {"clean": images}
    sets.update({name: perturb(images, name, seed) for name in names})
    out: dict[str, dict[str, float]] = {}
    for path in model_paths:
        predictor = load_predictor(path)
        row = {}
        for name, faces in sets.items():
            x = preprocess_faces(faces, predictor.input_size)
            probs = predict_probabilities(predictor, x, tta_mirror, progress=progress,
                                          desc=f"{path.name} {name}")
            row[name] = float((probs.argmax(axis=1) == labels).mean())
        out[str(path)] = row
    return out


def format_table(table: dict[str, dict[str, float]]) -> str:
    """Return a markdown table: accuracy per model and perturbation, cost in points."""
    models = list(table)
    names = list(next(iter(table.values())))
    lines = ["| perturbation | " + " | ".join(Path(m).name for m in models) + " |",
             "|---" * (len(models) + 1) + "|"]
    for name in names:
        cells = []
        for m in models:
            acc = table[m][name]
            cost = 100 * (table[m]["clean"] - acc)
            cells.append(f"{100 * acc:.1f} %" if name == "clean" else
                         f"{100 * acc:.1f} % ({-cost:+.1f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(table: dict[str, dict[str, float]], path: Path) -> None:
    """Write grouped bars of accuracy per perturbation, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(table)
    names = list(next(iter(table.values())))
    x = np.arange(len(names))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.9), 4.2))
    for i, m in enumerate(models):
        ax.bar(x + i * width - 0.4 + width / 2, [100 * table[m][n] for n in names], width,
               label=Path(m).name)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy under camera-path perturbations (same faces for every model)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_robustness``."""
    p = argparse.ArgumentParser(prog="emotion_robustness", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, action="append", required=True,
                   help=".keras or .tflite classifier (repeat to compare models)")
    p.add_argument("--data", type=Path, required=True, help="dataset (.npz, .csv, folder)")
    p.add_argument("--split", default="PublicTest", help="usage split to score (PublicTest)")
    p.add_argument("--tta-mirror", action="store_true", help="mirror TTA as the live default")
    p.add_argument("--only", action="append", choices=sorted(PERTURBATIONS),
                   help="score only these perturbations (repeatable; default all)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N faces")
    p.add_argument("--seed", type=int, default=0, help="seed of the random perturbations")
    p.add_argument("--out", type=Path, default=Path("robustness"), help="output folder")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .data import load_dataset

    try:
        for m in a.model:
            if not m.is_file():
                raise FileNotFoundError(f"model file not found: {m}")
        ds = load_dataset(a.data).split(a.split)
        if a.limit:
            ds = ds.subset(np.arange(min(a.limit, len(ds))))
        table = robustness(a.model, ds.images, ds.labels, a.tta_mirror, a.only, a.seed,
                           progress=sys.stderr.isatty())
    except (ValueError, OSError) as exc:
        print(f"emotion_robustness: {exc}", file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    report = {"split": a.split, "n": int(len(ds.labels)), "tta_mirror": a.tta_mirror,
              "seed": a.seed, "accuracy": table}
    (a.out / "robustness.json").write_text(json.dumps(report, indent=2))
    plot(table, a.out / "robustness.png")
    print(f"{a.split}, n = {len(ds.labels)}, mirror TTA: {a.tta_mirror}")
    print(format_table(table))
    print(f"wrote {a.out / 'robustness.json'} and {a.out / 'robustness.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation CLI: ``emotion_evaluate --model M.keras|M.tflite --data NPZ --out DIR``.

Scores a Keras or TFLite classifier on one split of a dataset (PublicTest by default) with the
shared preprocessing, optionally with test-time augmentation: the mean of the probabilities of
each face and its horizontal flip (``--tta-mirror``), and of each face moved a few pixels up,
down, left and right (``--tta-shift``), as the runtime classifiers do. The report holds
accuracy, macro-F1, per-class precision / recall / F1 / error rate / support, the confusion
matrix in counts and in row proportions, single-face latency (median and 95th percentile over
about 200 faces) and the parameter count. It is written as ``report.json`` with
``confusion_counts.png``, ``confusion_proportions.png``, ``per_class.png`` and, given a Keras
``history.csv``, ``training_curves.png``; the tables are also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES
from emotion_perception.core.classifiers.base import sanitize_probabilities
# one classification-metrics implementation for training and bag evaluation (re-exported here)
from emotion_perception.core.metrics import classification_metrics, confusion_matrix  # noqa: F401
from emotion_perception.core.preprocessing import (merge_tta, preprocess_faces, tta_view_count,
                                                   tta_views)

KERAS_SUFFIXES = {".keras"}
TFLITE_SUFFIXES = {".tflite"}


class Predictor:
    """A loaded classifier: maps preprocessed (N, H, W, 1) float32 faces to probabilities.

    A thin wrapper over the runtime classifier classes
    (:class:`~emotion_perception.core.classifiers.keras_classifier.KerasClassifier`,
    :class:`~emotion_perception.core.classifiers.tflite_classifier.TFLiteClassifier`): the
    figures this module reports come from the code the robot runs, not from a copy of it.
    """

    kind: str = "?"

    def __init__(self, classifier: Any, path: Path | None, param_count: int | None) -> None:
        self.classifier = classifier
        self.path = path
        self.input_size = tuple(classifier.input_size)
        self.param_count = param_count

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        """Return (N, classes) float32 probabilities for one batch."""
        return self.classifier.predict(x)


class KerasPredictor(Predictor):
    """A Keras 3 model run by the runtime ``KerasClassifier`` (a compiled graph)."""

    kind = "keras"

    def __init__(self, model: Any, path: Path | None = None) -> None:
        from emotion_perception.core.classifiers.keras_classifier import KerasClassifier

        shape = tuple(model.input_shape)
        if len(shape) != 4 or shape[-1] != 1:
            raise ValueError(f"model input must be (N, H, W, 1), got {shape}")
        clf = KerasClassifier(str(path) if path else "", max_batch=256, model=model)
        super().__init__(clf, path, int(model.count_params()))
        self.model = model


class TFLitePredictor(Predictor):
    """A TFLite flatbuffer run by the runtime ``TFLiteClassifier`` (LiteRT)."""

    kind = "tflite"

    def __init__(self, path: Path | None = None, model_content: bytes | None = None,
                 num_threads: int | None = None) -> None:
        from emotion_perception.core.classifiers.tflite_classifier import TFLiteClassifier

        if (path is None) == (model_content is None):
            raise ValueError("give exactly one of path and model_content")
        clf = TFLiteClassifier(str(path) if path is not None else "",
                               num_threads=num_threads or 0, model_content=model_content)
        super().__init__(clf, path, _count_constants(clf.interpreter))

    @property
    def input_dtype(self) -> type:
        """Return the numpy dtype the interpreter's input tensor takes."""
        return self.classifier.input_dtype


def _count_constants(interpreter: Any) -> int | None:
    """Count the elements of constant tensors (weights after batch-norm folding)."""
    try:
        ops = interpreter._get_ops_details()  # no public API lists operator inputs
    except AttributeError:
        return None
    produced = {int(t) for op in ops for t in op["outputs"]}
    used = {int(t) for op in ops for t in op["inputs"] if t >= 0}
    inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    return int(sum(int(np.prod(details[t]["shape"])) for t in used - produced - inputs
                   if t in details))


def load_predictor(model_path: str | Path, num_threads: int | None = None) -> Predictor:
    """Load a ``.keras`` (safe mode, not compiled) or ``.tflite`` classifier."""
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        from emotion_perception.core.model_lookup import load_keras_model

        model = load_keras_model(path, "--model")
        return KerasPredictor(model, path)
    if suffix in TFLITE_SUFFIXES:
        return TFLitePredictor(path, num_threads=num_threads)
    raise ValueError(f"unsupported model file {path}: expected .keras or .tflite")


def predict_probabilities(predictor: Predictor, x: np.ndarray, tta_mirror: bool = False,
                          batch_size: int = 256, progress: bool = True,
                          desc: str = "predicting", tta_shift: int = 0) -> np.ndarray:
    """Return (N, classes) probabilities for preprocessed faces ``x`` (N, H, W, 1).

    ``tta_mirror`` averages each face's probabilities with those of its horizontal flip;
    ``tta_shift`` > 0 also averages over the faces moved by that many pixels up, down, left
    and right: the views of the runtime classifiers' ``tta_mirror`` / ``tta_shift``
    (:func:`emotion_perception.core.preprocessing.tta_views`).
    """
    from tqdm import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must be (N, H, W, C), got {x.shape}")
    n_views = tta_view_count(tta_mirror, tta_shift)
    step = max(1, batch_size // n_views)
    out = []
    steps = range(0, len(x), step)
    for i in tqdm(steps, desc=desc, unit="batch", disable=not progress, leave=False):
        views = tta_views(x[i:i + step], tta_mirror, tta_shift)
        out.append(merge_tta(predictor.predict_batch(views), n_views))
    if not out:
        return np.zeros((0, NUM_CLASSES), np.float32)
    raw = np.concatenate(out).astype(np.float32)
    # rows renormalised as the runtime publishes them (int8 outputs do not sum to exactly 1);
    # a row the runtime would drop (non-finite, negative) is returned as the model gave it
    published, valid = sanitize_probabilities(raw)
    return np.where(valid[:, None], published, raw)


def measure_latency(predictor: Predictor, x: np.ndarray, n: int = 200, warmup: int = 5
                    ) -> dict[str, float]:
    """Time ``n`` single-face predictions (batch 1), cycling through ``x``; return ms stats.

    ``n = 0`` (or no faces) returns ``n: 0`` and None statistics.
    """
    if n < 1 or len(x) == 0:
        return {"n": 0, "median_ms": None, "p95_ms": None, "mean_ms": None}
    idx = np.arange(n) % len(x)
    for i in range(min(warmup, n)):
        predictor.predict_batch(x[idx[i]:idx[i] + 1])
    times = np.empty(n)
    for k, i in enumerate(idx):
        t0 = time.perf_counter()
        predictor.predict_batch(x[i:i + 1])
        times[k] = (time.perf_counter() - t0) * 1e3
    return {"n": int(n), "median_ms": float(np.median(times)),
            "p95_ms": float(np.percentile(times, 95)), "mean_ms": float(times.mean())}


def evaluate_model(model_path: str | Path, images_uint8: np.ndarray, labels: np.ndarray,
                   tta_mirror: bool = False, batch_size: int = 256, *,
                   latency_samples: int = 200, progress: bool = True,
                   predictor: Predictor | None = None, tta_shift: int = 0) -> dict[str, Any]:
    """Evaluate a classifier on faces ``images_uint8`` (N, H, W) with true ``labels``.

    Faces go through the shared ``preprocess_faces``. Returns the report dict (see the module
    docstring); ``latency_samples=0`` skips the latency measurement. A ready ``predictor``
    may be passed to avoid loading ``model_path`` again.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(images_uint8) != len(labels):
        raise ValueError(f"{len(images_uint8)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no images to evaluate")
    predictor = predictor or load_predictor(model_path)
    x = preprocess_faces(images_uint8, predictor.input_size)
    t0 = time.perf_counter()
    probs = predict_probabilities(predictor, x, tta_mirror, batch_size, progress,
                                  tta_shift=tta_shift)
    seconds = time.perf_counter() - t0
    if probs.shape[1] != NUM_CLASSES:
        raise ValueError(f"model outputs {probs.shape[1]} classes, expected {NUM_CLASSES}")
    cm = confusion_matrix(labels, probs.argmax(axis=1))
    report: dict[str, Any] = {
        "model": str(model_path), "format": predictor.kind, "class_names": list(CLASS_NAMES),
        "tta_mirror": bool(tta_mirror), "tta_shift": int(tta_shift), "preprocessing":
            "emotion_perception.core.preprocessing.preprocess_faces (48x48 gray, [0, 1])",
    }
    report.update(classification_metrics(cm))
    report["mean_true_class_probability"] = float(probs[np.arange(len(labels)), labels].mean())
    report["throughput_faces_per_s"] = float(len(x) / seconds) if seconds > 0 else None
    report["latency_batch1"] = measure_latency(predictor, x, latency_samples)
    report["param_count"] = predictor.param_count
    report["param_count_note"] = ("Keras count_params()" if predictor.kind == "keras" else
                                  "elements of constant tensors (batch norm folded)")
    return report


def format_tables(report: dict[str, Any]) -> str:
    """Return the report's headline numbers and tables as aligned plain text."""
    names = report["class_names"]
    width = max(9, max(len(n) for n in names) + 1)
    lines = [f"model: {report['model']} ({report['format']}), n = {report['n']}, "
             f"mirror TTA: {report['tta_mirror']}, shift TTA: {report.get('tta_shift', 0)} px",
             f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}"]
    lat = report.get("latency_batch1") or {}
    if lat.get("n"):
        lines.append(f"latency per face (batch 1, n={lat['n']}): median {lat['median_ms']:.2f} "
                     f"ms, p95 {lat['p95_ms']:.2f} ms")
    if report.get("param_count") is not None:
        lines.append(f"parameters: {report['param_count']:,}")

    def matrix(title: str, rows: list[list[float]], fmt: str) -> None:
        lines.append("")
        lines.append(f"{title} (rows = true, columns = predicted)")
        lines.append(" " * width + "".join(f"{n[:width - 1]:>{width}}" for n in names))
        for name, row in zip(names, rows):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}{fmt}}" for v in row))

    matrix("confusion matrix, counts", report["confusion_counts"], "d")
    matrix("confusion matrix, row proportions", report["confusion_proportions"], ".3f")
    lines.append("")
    lines.append(f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}"
                 f"{'error':>10}{'support':>10}")
    for name in names:
        m = report["per_class"][name]
        err = "-" if m["error_rate"] is None else f"{m['error_rate']:.3f}"
        lines.append(f"{name:<{width}}{m['precision']:>10.3f}{m['recall']:>10.3f}"
                     f"{m['f1']:>10.3f}{err:>10}{m['support']:>10d}")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: str | Path,
                 history: str | Path | None = None) -> dict[str, Path]:
    """Write ``report.json`` and the PNG plots into ``out_dir``; return name -> path."""
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(report["model"]).name
    files = {
        "confusion_counts": plots.plot_confusion_matrix(
            np.array(report["confusion_counts"]), out / "confusion_counts.png",
            f"{name}: confusion matrix (counts, n={report['n']})"),
        "confusion_proportions": plots.plot_confusion_matrix(
            np.array(report["confusion_proportions"]), out / "confusion_proportions.png",
            f"{name}: confusion matrix (row proportions)", proportions=True),
        "per_class": plots.plot_per_class(
            report["per_class"], out / "per_class.png",
            f"{name}: accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}"),
    }
    if history is not None:
        files["training_curves"] = plots.plot_training_curves(
            history, out / "training_curves.png", f"training history ({Path(history).name})")
    report = dict(report, files={k: str(v.name) for k, v in files.items()})
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    files["report"] = path
    return files


def _default_out(model: Path, split: str, tta: bool, shift: int = 0) -> Path:
    return (model.parent / f"eval_{model.stem}_{split}{'_tta' if tta else ''}"
            f"{f'_shift{shift}' if shift else ''}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_evaluate``."""
    p = argparse.ArgumentParser(prog="emotion_evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help=".keras or .tflite classifier")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset: .npz, Kaggle .csv or image folder")
    p.add_argument("--split", default="PublicTest", help="usage split to score (PublicTest)")
    p.add_argument("--tta-mirror", action="store_true",
                   help="average each face's prediction with its mirror image's")
    p.add_argument("--tta-shift", type=int, default=0, metavar="PX",
                   help="also average over the face moved PX pixels up, down, left and right "
                        "(0 = off)")
    p.add_argument("--out", type=Path,
                   help="output folder (default: eval_<model>_<split> beside the model)")
    p.add_argument("--history", type=Path, help="training history.csv to plot")
    p.add_argument("--batch-size", type=int, default=256, help="prediction batch size")
    p.add_argument("--latency-samples", type=int, default=200,
                   help="faces to time one at a time (0 = skip)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N faces")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .data import load_dataset

    try:
        if a.history is not None and not a.history.is_file():
            raise FileNotFoundError(f"history file not found: {a.history}")
        ds = load_dataset(a.data).split(a.split)
        if a.limit:
            ds = ds.subset(np.arange(min(a.limit, len(ds))))
        report = evaluate_model(a.model, ds.images, ds.labels, a.tta_mirror, a.batch_size,
                                latency_samples=a.latency_samples, tta_shift=a.tta_shift)
    except (ValueError, OSError) as exc:
        print(f"emotion_evaluate: {exc}", file=sys.stderr)
        return 2
    report["data"] = str(a.data)
    report["split"] = a.split
    out = a.out or _default_out(a.model, a.split, a.tta_mirror, a.tta_shift)
    files = write_report(report, out, a.history)
    print(format_tables(report))
    print("")
    for path in files.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The exported LSTM's model card (Markdown and JSON)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES
from emotion_perception.core.metrics import json_safe

from ..export import file_names, sha256_of
from .benchmark import lstm_window, markdown_table
from .config import CARD_STEM, LSTM_FILE, TemporalConfig


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
        f"`{train_meta.get('classifier_sha256', '?')}`), {_tta_text(train_meta)}",
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


def _tta_text(meta: Mapping[str, Any]) -> str:
    """How the sequences' frames were classified, in the live classifier's parameter names."""
    if not meta.get("classifier_tta_mirror"):
        return "without mirror TTA (`tta_mirror: false`)"
    shift = meta.get("classifier_tta_shift") or 0
    if meta.get("classifier_tta_mirror_over_time"):
        return ("with mirror TTA spread over each sequence's frames (`tta_mirror_over_time: "
                "true`, the live default: one view a frame, alternately mirrored, averaged "
                "with the previous frame's)")
    return (f"with mirror TTA on every frame (`tta_mirror: true`, `tta_mirror_over_time: "
            f"false`, `tta_shift: {shift}`)")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "?"

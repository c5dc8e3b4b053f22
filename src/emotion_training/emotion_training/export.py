"""Export CLI: ``emotion_export --model best.keras --out DIR --name NAME --data NPZ``.

Writes, into ``DIR``:

* ``NAME.keras``: the bare classifier re-saved without optimizer state (a training wrapper
  ``[augmenter, classifier]`` is unwrapped);
* ``NAME_float32.tflite``, ``NAME_float16.tflite`` (float16 weights) and ``NAME_int8.tflite``
  (full-integer quantization calibrated on ``--calibration`` Training faces);
* ``NAME.parity.json``: for each TFLite file, the largest and mean absolute probability
  difference to the Keras model and the top-1 agreement on a sample of the evaluation split,
  the top-1 accuracy of every format on the whole evaluation split and single-face latency;
* ``NAME.model_card.md`` and ``NAME.model_card.json``: data, split protocol, preprocessing,
  class order, metrics (``--metrics``: an ``emotion_evaluate`` report.json), parity numbers,
  file sizes and SHA-256, parameter count, date and the training config (``--run``: the
  training run folder; by default the model's folder if it holds a ``config.yaml``; for an
  ensemble from ``emotion_ensemble``, one ``--run`` per member in member order).

Conversion uses ``tf.lite.TFLiteConverter.from_keras_model``, which works for Keras 3.15 on
TensorFlow 2.21 (it exports a SavedModel internally). ``from_concrete_functions`` on a traced
``model.__call__`` converts too, but leaves the weights as resource variables that the int8
interpreter cannot read, and its float files return NaN: do not use it.

The int8 model keeps a **float32 input and output** (quantize / dequantize ops inside the
graph). On LiteRT's CPU (XNNPACK) path it runs as fast as the int8-interface variant (both
about 0.27 ms per face against 0.96 ms for float32 for emotion_net width 32 on one thread,
measured for this module), and clients feed it the same [0, 1] float faces as every other
file, so no runtime needs to know quantization parameters.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emotion_perception.core.cam import is_inference_identity
from emotion_perception.core.classes import CLASS_NAMES
from emotion_perception.core.preprocessing import MODEL_INPUT_SIZE, preprocess_faces

MODES = ("float32", "float16", "int8")
PREPROCESSING = ("emotion_perception.core.preprocessing.preprocess_faces: face crop -> "
                 "grayscale -> resize to 48x48 (area interpolation when shrinking) -> float32 "
                 "in [0, 1] (uint8 / 255) -> shape (N, 48, 48, 1)")
SPLIT_PROTOCOL = ("Trained on FER2013 'Training' after cleaning (constant images, FER+ "
                  "not-a-face majorities and exact duplicates dropped; Training images that "
                  "also occur in PublicTest removed). Models chosen on 'PublicTest' only. "
                  "PrivateTest was never loaded. Augmentation on the fly on training batches.")


def unwrap_classifier(model: Any) -> Any:
    """Return the classifier inside a training wrapper ``[augmenter..., classifier]``.

    A model whose last layer is itself a model and whose other layers are all identity at
    inference (random augmentation, dropout) is unwrapped; anything else is returned as is.
    """
    import keras

    layers = list(model.layers)
    if (len(layers) >= 2 and isinstance(layers[-1], keras.Model)
            and all(is_inference_identity(lay) for lay in layers[:-1])):
        return unwrap_classifier(layers[-1])
    return model


def require_tensorflow_backend() -> None:
    """Raise ``RuntimeError`` unless TensorFlow is importable and Keras runs on it.

    The TFLite converter needs both. Training runs on any Keras backend (``KERAS_BACKEND=torch``
    on a GPU machine with PyTorch only): its ``.keras`` files load unchanged on TensorFlow,
    so a run trained elsewhere is exported where TensorFlow is installed.
    """
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("TFLite export needs TensorFlow (pip install tensorflow); train on "
                           "any Keras backend, export where TensorFlow is installed: "
                           ".keras files load across backends") from exc
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"TFLite export needs the TensorFlow Keras backend, this process "
                           f"runs {keras.backend.backend()!r}: set KERAS_BACKEND=tensorflow "
                           f"(the .keras file loads there unchanged)")


def convert_to_tflite(model: Any, mode: str = "float32",
                      representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras model to a TFLite flatbuffer.

    ``mode``: ``float32``; ``float16`` (float16 weights, float32 compute on CPU); ``int8``
    (full-integer kernels, float32 input/output; needs ``representative``, preprocessed
    faces (N, H, W, 1) for calibration).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "int8" and (representative is None or len(representative) == 0):
        raise ValueError("int8 quantization needs representative (calibration) images")
    require_tensorflow_backend()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        rep = np.asarray(representative, dtype=np.float32)

        def dataset() -> Any:
            for i in range(len(rep)):
                yield [rep[i:i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(io.StringIO()):  # the SavedModel export prints its spec
        return bytes(converter.convert())


def parity_numbers(reference: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Compare probabilities with the reference's: max/mean abs difference, top-1 agreement."""
    reference = np.asarray(reference, np.float64)
    probs = np.asarray(probs, np.float64)
    if reference.shape != probs.shape or reference.size == 0:
        raise ValueError(f"shapes differ or are empty: {reference.shape} vs {probs.shape}")
    diff = np.abs(reference - probs)
    return {"n": int(len(reference)), "max_abs_prob_diff": float(diff.max()),
            "mean_abs_prob_diff": float(diff.mean()),
            "top1_agreement": float((reference.argmax(1) == probs.argmax(1)).mean())}


def sha256_of(path: str | Path) -> str:
    """Return the hex SHA-256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_names(meta: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Cut the path strings at ``keys`` of ``meta`` to file names, in place; return ``meta``.

    Model cards carry file names only: local paths mean nothing to their readers.
    """
    for key in keys:
        if isinstance(meta.get(key), str):
            meta[key] = Path(meta[key]).name
    return meta


def _read_run(run_dir: Path | None, depth: int = 0) -> dict[str, Any]:
    """Return what a training run folder says about itself (config, summary, epochs).

    A run that started from another run's weights (``init_weights``) carries that run's info
    under ``started_from`` (followed up to 5 stages), so a fine-tuned model's card shows every
    stage. Local paths are cut to the names that mean something to readers.
    """
    import yaml

    info: dict[str, Any] = {}
    if run_dir is None:
        return info
    info["run_dir"] = run_dir.name  # the folder name only: local paths mean nothing to readers
    if (run_dir / "config.yaml").is_file():
        cfg = file_names(yaml.safe_load((run_dir / "config.yaml").read_text()) or {},
                         ("data", "scene_crops"))
        init = str(cfg.get("init_weights") or "")
        if init and depth < 5:
            parent, card = Path(init).parent, Path(init).with_suffix(".model_card.json")
            if (parent / "config.yaml").is_file():
                info["started_from"] = _read_run(parent, depth + 1)
            elif card.is_file():
                # a shipped model (no run folder beside it): its card holds its stages
                info["started_from"] = _run_from_card(card)
        for key in ("init_weights", "teacher"):  # models this run learned from: folder/file
            if cfg.get(key):
                cfg[key] = f"{Path(str(cfg[key])).parent.name}/{Path(str(cfg[key])).name}"
        info["config"] = cfg
    if (run_dir / "summary.json").is_file():
        info["summary"] = json.loads((run_dir / "summary.json").read_text())
    if (run_dir / "history.csv").is_file():
        info["history_epochs"] = max(
            0, len((run_dir / "history.csv").read_text().strip().splitlines()) - 1)
    return info


#: the file ending of a model card's JSON (``emotion_net.model_card.json``)
CARD_SUFFIX = ".model_card.json"


def _run_from_card(card_path: Path) -> dict[str, Any]:
    """Return the stages a model card lists as a ``_read_run`` chain (last stage outermost)."""
    training = json.loads(card_path.read_text()).get("training") or {}
    chain: dict[str, Any] = {}
    for stage in training.get("stages") or [training]:
        chain = {"run_dir": stage.get("run_dir"), "config": stage.get("config"),
                 "history_epochs": stage.get("epochs_logged"),
                 **({"started_from": chain} if chain else {})}
    return chain


def _training_stages(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the card's training stages, first stage first."""
    stages = []
    while run:
        stages.append({"run_dir": run.get("run_dir"), "config": run.get("config"),
                       "epochs_logged": run.get("history_epochs")})
        run = run.get("started_from", {})
    return stages[::-1]


def export_model(model_path: str | Path, out_dir: str | Path, name: str,
                 calibration_images: np.ndarray, eval_images: np.ndarray | None = None,
                 eval_labels: np.ndarray | None = None, *, parity_samples: int = 500,
                 latency_samples: int = 100, metrics: dict[str, Any] | None = None,
                 run_dir: str | Path | Sequence[str | Path] | None = None,
                 data_source: str | None = None,
                 seed: int = 0, progress: bool = True, keras_dtype: str = "float32"
                 ) -> dict[str, Any]:
    """Export a Keras classifier to ``.keras`` + three TFLite files with parity and a card.

    ``keras_dtype="float16"`` stores the ``.keras`` file with float16 weights and compute
    (half the size, e.g. for an ensemble); its parity with the float32 model is measured like
    the TFLite files'. The TFLite files are always converted from the float32 model.

    ``calibration_images``: uint8 faces (N, 48, 48) for int8 calibration (Training split).
    ``eval_images``/``eval_labels``: faces for the parity sample (up to ``parity_samples``)
    and for top-1 accuracy of every format; without them the parity sample is drawn from the
    calibration images and no accuracy is reported. Returns the model card dict.
    """
    import keras
    from tqdm import tqdm

    from .evaluate import (KerasPredictor, TFLitePredictor, measure_latency,
                           predict_probabilities)

    require_tensorflow_backend()
    if keras_dtype not in ("float32", "float16"):
        raise ValueError(f"keras_dtype must be float32 or float16, got {keras_dtype!r}")
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"name must be a non-empty file stem without separators, got {name!r}")
    if calibration_images is None or len(calibration_images) == 0:
        raise ValueError("calibration_images must hold at least one face")
    if (eval_images is None) != (eval_labels is None):
        raise ValueError("give both eval_images and eval_labels, or neither")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"model file not found: {model_path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = unwrap_classifier(keras.saving.load_model(model_path, compile=False,
                                                      safe_mode=True))
    keras_file = out / f"{name}.keras"
    model.save(keras_file)
    size = tuple(int(v) for v in model.input_shape[1:3])
    rng = np.random.default_rng(seed)
    x_cal = preprocess_faces(calibration_images, size)
    if eval_images is not None:
        x_eval = preprocess_faces(eval_images, size)
        labels = np.asarray(eval_labels, np.int64)
    else:
        x_eval, labels = x_cal, None
    pick = np.sort(rng.permutation(len(x_eval))[:parity_samples])
    x_par = x_eval[pick]

    keras_pred = KerasPredictor(model, keras_file)
    ref_par = predict_probabilities(keras_pred, x_par, progress=False)
    formats: dict[str, Any] = {"keras": {"file": keras_file.name}}
    predictors: dict[str, Any] = {"keras": keras_pred}
    for mode in tqdm(MODES, desc="converting", unit="model", disable=not progress):
        content = convert_to_tflite(model, mode, x_cal if mode == "int8" else None)
        path = out / f"{name}_{mode}.tflite"
        path.write_bytes(content)
        pred = TFLitePredictor(model_content=content)
        predictors[mode] = pred
        formats[mode] = {"file": path.name,
                         "parity": parity_numbers(ref_par, predict_probabilities(
                             pred, x_par, progress=False)),
                         "input_dtype": np.dtype(pred.input_dtype).name}
    if keras_dtype == "float16":
        half = to_float16(model)
        half.save(keras_file)
        predictors["keras"] = KerasPredictor(half, keras_file)
        formats["keras"]["dtype"] = "float16"
        formats["keras"]["parity"] = parity_numbers(ref_par, predict_probabilities(
            predictors["keras"], x_par, progress=False))
    for fmt, pred in predictors.items():
        path = out / formats[fmt]["file"]
        formats[fmt]["bytes"] = path.stat().st_size
        formats[fmt]["sha256"] = sha256_of(path)
        formats[fmt]["latency_batch1"] = measure_latency(pred, x_par, latency_samples)
        if labels is not None:
            probs = predict_probabilities(pred, x_eval, progress=progress, desc=f"eval {fmt}")
            formats[fmt]["eval_accuracy"] = float((probs.argmax(1) == labels).mean())
    if isinstance(run_dir, (list, tuple)):
        runs = [_read_run(Path(r)) if not str(r).endswith(CARD_SUFFIX)
                else _run_from_card(Path(r)) for r in run_dir]
        run = runs[0] if len(runs) == 1 else {"members": runs}
    else:
        run_path = Path(run_dir) if run_dir is not None else (
            model_path.parent if (model_path.parent / "config.yaml").is_file() else None)
        run = _read_run(run_path)
    card = build_model_card(name, model, formats, metrics, run, data_source,
                            n_calibration=len(x_cal), n_eval=None if labels is None
                            else len(labels), source_model=Path(model_path).name)
    (out / f"{name}.parity.json").write_text(json.dumps(
        {"reference": keras_file.name, "n_parity": int(len(x_par)), "formats": formats},
        indent=2) + "\n")
    write_model_card(card, out, name)
    return card


def to_float16(model: Any) -> Any:
    """Return a copy of ``model`` storing and computing in float16 (inputs stay float32)."""
    import keras

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            cfg["dtype"] = "float16"
        return layer.__class__.from_config(cfg)

    half = keras.models.clone_model(model, clone_function=clone, recursive=True)
    half.set_weights([np.asarray(w).astype(np.float16) for w in model.get_weights()])
    return half


def _training_section(run: dict[str, Any]) -> dict[str, Any]:
    """Return the card's training section; an ensemble's lists one section per member."""
    if "members" in run:
        return {"ensemble": "mean of the members' probabilities (emotion_ensemble)",
                "members": [_training_section(m) for m in run["members"]]}
    return {"run_dir": run.get("run_dir"), "config": run.get("config"),
            "summary": run.get("summary") or None, "epochs_logged": run.get("history_epochs"),
            "stages": _training_stages(run)}


def build_model_card(name: str, model: Any, formats: dict[str, Any],
                     metrics: dict[str, Any] | None, run: dict[str, Any],
                     data_source: str | None, n_calibration: int, n_eval: int | None,
                     source_model: str) -> dict[str, Any]:
    """Assemble the model card dict (see the module docstring for its contents)."""
    import keras
    import tensorflow as tf

    summary = (run["members"][0] if "members" in run else run).get("summary", {})
    card: dict[str, Any] = {
        "name": name,
        "architecture": model.name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source_model": source_model,
        "parameters": int(model.count_params()),
        "input": {"shape": [None, *MODEL_INPUT_SIZE, 1], "dtype": "float32",
                  "range": [0.0, 1.0], "layout": "NHWC, grayscale"},
        "output": {"shape": [None, len(CLASS_NAMES)], "dtype": "float32",
                   "meaning": "softmax probabilities in class_order"},
        "class_order": list(CLASS_NAMES),
        "preprocessing": PREPROCESSING,
        "data": {"source": data_source, "training_split": "FER2013 Training",
                 "validation_split": "FER2013 PublicTest",
                 "cleaning": summary.get("cleaning"),
                 "n_train": summary.get("n_train"), "label_mode": summary.get("label_mode"),
                 "int8_calibration_images": n_calibration, "parity_eval_images": n_eval},
        "split_protocol": SPLIT_PROTOCOL,
        "training": _training_section(run),
        "metrics": _metrics_digest(metrics),
        "formats": formats,
        "int8_interface": "float32 input and output, int8 kernels inside (see export.py)",
        "toolchain": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "limitations": [
            "FER2013 faces are 48x48 grayscale web images with noisy labels; accuracy on "
            "other populations, poses, lighting or cameras is unknown.",
            "Predicts displayed expressions, not felt emotions; not for decisions about people.",
            "Disgust is rare in the training data (436 images); see per-class recall.",
        ],
    }
    return card


def _metrics_digest(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if not report:
        return None
    keep = ("model", "data", "split", "n", "tta_mirror", "tta_shift", "accuracy", "macro_f1",
            "per_class", "confusion_counts", "confusion_proportions", "latency_batch1",
            "param_count")
    return file_names({k: report[k] for k in keep if k in report}, ("model", "data"))


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def render_model_card(card: dict[str, Any]) -> str:
    """Return the model card as Markdown."""
    lines = [f"# Model card: {card['name']}", "",
             f"- Architecture: `{card['architecture']}`, {card['parameters']:,} parameters",
             f"- Exported: {card['date']} from `{card['source_model']}`",
             f"- Toolchain: TensorFlow {card['toolchain']['tensorflow']}, "
             f"Keras {card['toolchain']['keras']}", "",
             "## Input, output, class order", "",
             f"- Input: float32 {card['input']['shape']} (NHWC grayscale) in [0, 1]",
             f"- Preprocessing: {card['preprocessing']}",
             f"- Output: softmax probabilities over {len(card['class_order'])} classes, "
             "in this order:", ""]
    lines += [f"  {i}. {c}" for i, c in enumerate(card["class_order"])]
    data = card["data"]
    lines += ["", "## Data and split protocol", "",
              f"- Source: {data['source'] or '-'}", f"- {card['split_protocol']}",
              f"- Label mode: {data['label_mode'] or '-'}; training images after cleaning: "
              f"{_fmt(data['n_train'])}",
              f"- Cleaning report: {json.dumps(data['cleaning']) if data['cleaning'] else '-'}",
              f"- int8 calibration: {data['int8_calibration_images']} Training faces", ""]
    m = card["metrics"]
    lines += ["## Metrics", ""]
    if m:
        lines += [f"Split {m.get('split', '?')} (n = {m.get('n')}), mirror TTA "
                  f"{m.get('tta_mirror')}, shift TTA {m.get('tta_shift', 0)} px: accuracy "
                  f"**{_fmt(m.get('accuracy'))}**, macro-F1 "
                  f"**{_fmt(m.get('macro_f1'))}**.", "",
                  "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for c, v in (m.get("per_class") or {}).items():
            lines.append(f"| {c} | {_fmt(v['precision'], '.3f')} | {_fmt(v['recall'], '.3f')} "
                         f"| {_fmt(v['f1'], '.3f')} | {v['support']} |")
    else:
        lines.append("No evaluation report was given (`--metrics`); see the per-format "
                     "accuracy below.")
    lines += ["", "## Files and parity with the Keras model", "",
              "| file | bytes | max abs prob diff | top-1 agreement | eval accuracy "
              "| latency median ms (batch 1) |", "|---|---|---|---|---|---|"]
    for fmt, f in card["formats"].items():
        par = f.get("parity", {})
        lines.append(f"| `{f['file']}` | {f['bytes']:,} | "
                     f"{_fmt(par.get('max_abs_prob_diff'), '.2e')} | "
                     f"{_fmt(par.get('top1_agreement'), '.4f')} | "
                     f"{_fmt(f.get('eval_accuracy'))} | "
                     f"{_fmt((f.get('latency_batch1') or {}).get('median_ms'), '.3f')} |")
    lines += ["", f"int8 interface: {card['int8_interface']}.", "",
              "SHA-256:", ""]
    lines += [f"- `{f['file']}`: `{f['sha256']}`" for f in card["formats"].values()]
    train = card["training"]
    lines += ["", "## Training", ""]
    if "members" in train:
        lines += [f"An ensemble of {len(train['members'])} members: {train['ensemble']}.", ""]
        for i, member in enumerate(train["members"], 1):
            lines += [f"### Member {i}", ""] + _render_stages(member, "####")
    else:
        lines += _render_stages(train, "###")
    lines += ["", "## Limitations", ""] + [f"- {t}" for t in card["limitations"]]
    return "\n".join(lines) + "\n"


def _render_stages(train: dict[str, Any], heading: str) -> list[str]:
    """Return the markdown lines of one model's training stages."""
    import yaml

    stages = train.get("stages") or [train]
    lines: list[str] = []
    if len(stages) > 1:
        lines += [f"{len(stages)} stages; each later stage starts from the previous stage's "
                  "best checkpoint (`init_weights`).", ""]
    for i, stage in enumerate(stages, 1):
        if len(stages) > 1:
            lines += [f"{heading} Stage {i}", ""]
        lines += [f"- Run folder: {stage.get('run_dir') or '-'}",
                  f"- Epochs logged: {_fmt(stage.get('epochs_logged'))}"]
        if stage.get("config"):
            lines += ["", "```yaml", yaml.safe_dump(stage["config"], sort_keys=False).rstrip(),
                      "```", ""]
    return lines


def write_model_card(card: dict[str, Any], out_dir: str | Path, name: str
                     ) -> tuple[Path, Path]:
    """Write ``NAME.model_card.json`` and ``NAME.model_card.md``; return both paths."""
    out = Path(out_dir)
    js = out / f"{name}.model_card.json"
    md = out / f"{name}.model_card.md"
    js.write_text(json.dumps(card, indent=2) + "\n")
    md.write_text(render_model_card(card))
    return js, md


def _load_json(path: Path | None, what: str) -> dict[str, Any] | None:
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_export``."""
    p = argparse.ArgumentParser(prog="emotion_export", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="trained .keras model")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--name", default="emotion_net", help="file stem of the exported files")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset (.npz, .csv, folder): Training faces calibrate int8")
    p.add_argument("--calibration", type=int, default=500,
                   help="number of Training faces for int8 calibration (default 500)")
    p.add_argument("--eval-split", default="PublicTest",
                   help="split for parity and accuracy ('none' to skip)")
    p.add_argument("--parity-samples", type=int, default=500,
                   help="faces of the eval split compared with the Keras model")
    p.add_argument("--metrics", type=Path, help="report.json of emotion_evaluate")
    p.add_argument("--run", type=Path, action="append",
                   help="training run folder (config.yaml, summary.json); for an ensemble, "
                        "once per member in member order, where a member without its run "
                        "folder (a shipped model) may be given by its .model_card.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration sample")
    p.add_argument("--keras-dtype", choices=("float32", "float16"), default="float32",
                   help="dtype of the exported .keras weights (float16 halves its size)")
    a = p.parse_args(argv)
    if a.calibration < 1 or a.parity_samples < 1:
        p.error("--calibration and --parity-samples must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from . import data as D

    try:
        require_tensorflow_backend()  # before the data is read, not after
        metrics = _load_json(a.metrics, "metrics report")
        for run in a.run or []:
            if not (run.is_dir() or (run.is_file() and run.name.endswith(CARD_SUFFIX))):
                raise FileNotFoundError(f"run folder (or {CARD_SUFFIX} of a shipped member) "
                                        f"not found: {run}")
        ds = D.load_dataset(a.data)
        train, _ = D.clean(ds.split("Training"))
        rng = np.random.default_rng(a.seed)
        cal = train.images[np.sort(rng.permutation(len(train))[:a.calibration])]
        ev = None if a.eval_split.lower() == "none" else ds.split(a.eval_split)
        card = export_model(
            a.model, a.out, a.name, cal, None if ev is None else ev.images,
            None if ev is None else ev.labels, parity_samples=a.parity_samples,
            metrics=metrics, run_dir=a.run, data_source=Path(a.data).name, seed=a.seed,
            keras_dtype=a.keras_dtype)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"emotion_export: {exc}", file=sys.stderr)
        return 2
    print(f"{'format':<8} {'bytes':>10} {'max|dp|':>10} {'top1 agr':>9} {'eval acc':>9} "
          f"{'ms/face':>8}")
    for fmt, f in card["formats"].items():
        par = f.get("parity", {})
        print(f"{fmt:<8} {f['bytes']:>10,} {_fmt(par.get('max_abs_prob_diff'), '.2e'):>10} "
              f"{_fmt(par.get('top1_agreement')):>9} {_fmt(f.get('eval_accuracy')):>9} "
              f"{_fmt((f.get('latency_batch1') or {}).get('median_ms'), '.3f'):>8}")
    for f in sorted(a.out.glob(f"{a.name}*")):
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export the LSTM smoother to TFLite: ``python -m emotion_training.lstm_export``.

``python -m emotion_training.lstm_export --model DIR/emotion_lstm.keras`` writes
``DIR/emotion_lstm.tflite`` and, when ``DIR`` holds the LSTM's model card
(``emotion_lstm.model_card.{json,md}``, written by ``emotion_temporal bench --export``), adds
the file's SHA-256, size, operators and Keras parity to it (``--out`` writes elsewhere).

Why the LSTM is unrolled: ``TFLiteConverter`` turns a Keras LSTM with a dynamic batch into
TensorList ops whose element shape is not static, which only TensorFlow's select ops can run
(TensorFlow at run time, exactly what the ``.tflite`` is meant to avoid). The smoother's window
is fixed (the model's input is ``(None, window, 7)``), so the converter is given a copy of the
model with ``unroll=True`` and the same weights: ``window`` copies of the cell, builtin ops only
(FULLY_CONNECTED, LOGISTIC, TANH, SELECT_V2 for the padding mask, ...), dynamic batch kept.
Conversion allows ``TFLITE_BUILTINS`` only, so a model that would need select ops fails here
rather than at run time.

Parity: the ``.tflite`` (run by the runtime's interpreter) and the Keras model are compared on
:func:`parity_windows`, deterministic synthetic probability sequences cut into the smoother's
left-padded windows; the export fails if they differ by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception.core.classes import NUM_CLASSES
from emotion_perception.core.smoothing.lstm import DEFAULT_MODEL, sliding_windows

from .export import require_tensorflow_backend, sha256_of

TFLITE_FILE = DEFAULT_MODEL
CARD_STEM = "emotion_lstm.model_card"
RECURRENT_LAYERS = ("LSTM", "GRU", "SimpleRNN")
#: largest probability difference the export accepts between the .tflite and Keras
DEFAULT_TOLERANCE = 1e-5
MD_HEADING = "## TFLite file (runtime default)"


def unrolled(model: Any) -> Any:
    """Return a copy of ``model`` whose recurrent layers are unrolled, with the same weights.

    Raises ValueError if the time dimension of the input is not fixed (unrolling needs it).
    """
    import keras

    window = model.inputs[0].shape[1] if len(model.inputs) == 1 else None
    if window is None:
        raise ValueError("the LSTM's input has no fixed window (shape "
                         f"{[tuple(i.shape) for i in model.inputs]}); TFLite export unrolls "
                         "the recurrence and needs (None, window, 7)")
    config = model.get_config()
    found = 0
    for layer in config.get("layers", []):
        if layer.get("class_name") in RECURRENT_LAYERS:
            layer["config"]["unroll"] = True
            found += 1
    if not found:
        raise ValueError(f"model {model.name!r} has no {'/'.join(RECURRENT_LAYERS)} layer")
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def convert_lstm(model: Any) -> bytes:
    """Convert the Keras LSTM smoother to a float32 TFLite flatbuffer (builtin ops only)."""
    require_tensorflow_backend()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(unrolled(model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with contextlib.redirect_stdout(io.StringIO()):  # the SavedModel export prints its spec
        return bytes(converter.convert())


def parity_windows(window: int, tracks: int = 40, frames: int = 48, seed: int = 0
                   ) -> np.ndarray:
    """Return deterministic (tracks * frames, window, 7) smoother inputs for parity checks.

    Each track is a noisy softmax sequence favouring one class, switching to another halfway
    through on every other track; one in four is nearly one-hot (confident classifier). Its
    windows are :func:`sliding_windows`, so the first ``window - 1`` of each track are
    left-padded with zero rows as at run time.
    """
    rng = np.random.default_rng(seed)
    out = []
    for k in range(tracks):
        truth = np.full(frames, k % NUM_CLASSES)
        if k % 2:
            truth[frames // 2:] = (k + 3) % NUM_CLASSES
        logits = rng.normal(0.0, 1.0, (frames, NUM_CLASSES))
        logits[np.arange(frames), truth] += 8.0 if k % 4 == 3 else 1.5
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        out.append(sliding_windows(probs.astype(np.float32), window))
    return np.concatenate(out)


def tflite_outputs(content: bytes, windows: np.ndarray) -> np.ndarray:
    """Run a converted flatbuffer on ``windows`` with the runtime's interpreter class."""
    from emotion_perception.core.litert import load_interpreter

    interp = load_interpreter("converted LSTM", content=content, num_threads=1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(windows.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], np.ascontiguousarray(windows, np.float32))
    interp.invoke()
    return interp.get_tensor(out["index"]).copy()


def operators(content: bytes) -> list[str]:
    """Return the sorted operator names of a flatbuffer (``DELEGATE`` left out)."""
    from emotion_perception.core.litert import load_interpreter

    interp = load_interpreter("converted model", content=content)
    return sorted({d["op_name"] for d in interp._get_ops_details()} - {"DELEGATE"})


def export_lstm_tflite(model_path: str | Path, out_dir: str | Path | None = None,
                       tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Convert ``model_path``, check parity, write ``out_dir/emotion_lstm.tflite``; see module.

    Returns the card entry (file, sha256, bytes, ops, parity, source). Updates the model card
    in ``out_dir`` when there is one. Raises ValueError when parity exceeds ``tolerance``
    (nothing is written then).
    """
    from emotion_perception.core.model_lookup import load_keras_model

    model_path = Path(model_path)
    out = Path(out_dir) if out_dir is not None else model_path.parent
    model = load_keras_model(model_path, "--model", "LSTM smoother")
    window = int(model.inputs[0].shape[1] or 0)
    content = convert_lstm(model)
    windows = parity_windows(window)
    reference = np.asarray(model(windows, training=False), np.float64)
    diff = np.abs(tflite_outputs(content, windows).astype(np.float64) - reference)
    parity = {"windows": int(len(windows)), "max_abs_prob_diff": float(diff.max()),
              "mean_abs_prob_diff": float(diff.mean()),
              "data": "emotion_training.lstm_export.parity_windows(window) (synthetic, "
                      "seed 0, padded short histories included)"}
    if not parity["max_abs_prob_diff"] <= tolerance:
        raise ValueError(f"TFLite LSTM differs from {model_path} by "
                         f"{parity['max_abs_prob_diff']:.3g} > tolerance {tolerance:g}")
    out.mkdir(parents=True, exist_ok=True)
    target = out / TFLITE_FILE
    target.write_bytes(content)
    import tensorflow as tf

    entry = {"file": TFLITE_FILE, "sha256": sha256_of(target), "bytes": len(content),
             "window": window, "dtype": "float32", "ops": operators(content),
             "parity": parity, "converted_from": model_path.name,
             "converted_from_sha256": sha256_of(model_path),
             "conversion": "Keras model with unroll=True (same weights) -> "
                           "TFLiteConverter.from_keras_model, TFLITE_BUILTINS only",
             "versions": {"tensorflow": tf.__version__}}
    update_card(out, entry)
    return entry


def update_card(folder: Path, entry: dict[str, Any]) -> bool:
    """Put ``entry`` into the LSTM model card in ``folder`` (json key ``tflite``, md section).

    Returns False (and changes nothing) when ``folder`` has no ``emotion_lstm.model_card.json``.
    """
    card_json = folder / f"{CARD_STEM}.json"
    if not card_json.is_file():
        return False
    card = json.loads(card_json.read_text())
    card["tflite"] = entry
    card_json.write_text(json.dumps(card, indent=2))
    card_md = folder / f"{CARD_STEM}.md"
    if card_md.is_file():
        card_md.write_text(with_md_section(card_md.read_text(), _md_lines(entry)))
    return True


def _md_lines(entry: dict[str, Any]) -> list[str]:
    p = entry["parity"]
    return [MD_HEADING, "",
            f"`{entry['file']}` ({entry['bytes']} bytes), SHA-256 `{entry['sha256']}`: what "
            "the `lstm` smoother runs by default, through LiteRT (no TensorFlow in the "
            f"process). Converted from `{entry['converted_from']}` (sha256 "
            f"`{entry['converted_from_sha256']}`): {entry['conversion']}. Window "
            f"{entry['window']}, {entry['dtype']}, builtin operators only: "
            f"{', '.join(entry['ops'])}.", "",
            f"Parity with the Keras model on {p['windows']} synthetic windows: max |diff| "
            f"{p['max_abs_prob_diff']:.2e}, mean {p['mean_abs_prob_diff']:.2e}. Reproduce: "
            f"`python -m emotion_training.lstm_export --model {entry['converted_from']}`.", ""]


def with_md_section(md: str, lines: list[str]) -> str:
    """Return ``md`` with the TFLite section replaced, or inserted before ``## Reproduce``."""
    text = md.rstrip("\n").split("\n")
    if MD_HEADING in text:
        start = text.index(MD_HEADING)
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")),
                   len(text))
        del text[start:end]
    else:
        start = text.index("## Reproduce") if "## Reproduce" in text else len(text)
        if start == len(text):
            lines = [""] + lines
    text[start:start] = lines
    return "\n".join(text).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m emotion_training.lstm_export",
                                 description=__doc__.split("\n", 1)[0])
    ap.add_argument("--model", required=True, help="the LSTM smoother's .keras file")
    ap.add_argument("--out", help="folder for emotion_lstm.tflite (default: the model's)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="largest accepted |probability difference| to Keras")
    args = ap.parse_args(argv)
    try:
        entry = export_lstm_tflite(args.model, args.out, args.tolerance)
    except (ValueError, RuntimeError) as exc:
        print(f"lstm_export: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

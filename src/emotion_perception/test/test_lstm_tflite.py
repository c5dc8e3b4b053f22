"""The LSTM smoother's TFLite file: Keras parity, no TensorFlow in the process, clear errors.

The shipped ``emotion_lstm.tflite`` (the ``lstm`` smoother's default) is the shipped
``emotion_lstm.keras`` unrolled and converted by ``emotion_training.lstm_export``; both run
through :class:`LstmSmoother` here on the same deterministic synthetic tracks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotion_perception.core.classes import NUM_CLASSES
from emotion_perception.core.classifiers.base import ModelError

MODELS = Path(__file__).resolve().parents[1] / "models"
CARD = json.loads((MODELS / "emotion_lstm.model_card.json").read_text())
WINDOW = CARD["config"]["lstm"]["window"]
#: the largest |probability difference| accepted between the .tflite and the Keras model
TOLERANCE = 1e-5


def _env() -> dict[str, str]:
    import emotion_perception

    env = dict(os.environ)
    root = str(Path(emotion_perception.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def synthetic_tracks(seed: int = 3, tracks: int = 5, frames: int = 40
                     ) -> list[list[tuple[int, float, np.ndarray]]]:
    """Return per-frame observation lists of several tracks (deterministic).

    Tracks start at different frames (short, zero-padded histories), favour a class that
    changes halfway, one is nearly one-hot, and track 2 has a gap that restarts its window.
    """
    rng = np.random.default_rng(seed)
    frames_out: list[list[tuple[int, float, np.ndarray]]] = []
    for t in range(frames):
        items = []
        for k in range(tracks):
            if t < 3 * k or (k == 2 and 20 <= t < 36):
                continue
            cls = (k + (t >= frames // 2) * 2) % NUM_CLASSES
            logits = rng.normal(0.0, 1.0, NUM_CLASSES)
            logits[cls] += 9.0 if k == 4 else 1.5
            p = np.exp(logits - logits.max())
            items.append((k, t / 15.0, p / p.sum()))
        frames_out.append(items)
    return frames_out


def test_shipped_tflite_matches_the_keras_model_on_synthetic_tracks() -> None:
    pytest.importorskip("keras")
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    lite = LstmSmoother(str(MODELS / CARD["tflite"]["file"]), window=WINDOW)
    ref = LstmSmoother(str(MODELS / CARD["model"]), window=WINDOW)
    assert lite.runtime in ("litert", "tf.lite") and ref.runtime == "keras"
    worst, n = 0.0, 0
    for items in synthetic_tracks():
        got, want = lite.update_many(items), ref.update_many(items)
        for g, w in zip(got, want):
            assert g.shape == (NUM_CLASSES,)
            worst = max(worst, float(np.abs(g - w).max()))
            n += 1
    assert n > 140 and lite.resets == ref.resets == 1
    assert worst <= TOLERANCE, f"max |tflite - keras| = {worst:.3g} over {n} outputs"
    assert lite.fallbacks == ref.fallbacks == 0


def test_card_describes_the_shipped_tflite() -> None:
    import hashlib

    entry = CARD["tflite"]
    path = MODELS / entry["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert entry["converted_from_sha256"] == CARD["sha256"]  # converted from the shipped .keras
    assert entry["window"] == WINDOW
    assert not [op for op in entry["ops"] if "FLEX" in op.upper() or op == "CUSTOM"]
    assert entry["sha256"] in (MODELS / "emotion_lstm.model_card.md").read_text()


def test_the_default_lstm_smoother_runs_tflite_without_tensorflow() -> None:
    script = (
        "import sys, numpy as np\n"
        "from emotion_perception.core import plugins\n"
        "sm = plugins.create('smoother', 'lstm')\n"
        "p = np.full(7, 0.02); p[3] = 0.88\n"
        "out = [sm.update(1, i / 15.0, p) for i in range(20)][-1]\n"
        "assert int(out.argmax()) == 3, out\n"
        "print(sm.runtime, sm.model_path.suffix, 'tensorflow' in sys.modules,"
        " 'keras' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["litert", ".tflite", "False", "False"], res.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_live_with_the_lstm_smoother_keeps_tensorflow_out(tmp_path) -> None:
    script = (
        "import os, sys\n"
        "from emotion_perception import live\n"
        f"rc = live.main(['--source', 'demo', '--smoother', 'lstm', '--frames', '15',"
        f" '--classifier', 'tflite', '--quiet', '--namespace', '/lstm_tflite_live',"
        f" '--video', {str(tmp_path / 'v.mp4')!r}])\n"
        "print('RESULT', rc, 'tensorflow' in sys.modules, 'keras' in sys.modules,"
        " flush=True)\n"
        "os._exit(0)\n")
    res = subprocess.run([sys.executable, "-c", script], env=_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=240)
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT")]
    assert lines == ["RESULT 0 False False"], (res.stdout[-2000:], res.stderr[-3000:])


def test_a_tflite_of_another_window_or_garbage_is_refused(tmp_path) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    with pytest.raises(ModelError, match=r"emotion_lstm\.tflite.*window=8"):
        LstmSmoother(str(MODELS / CARD["tflite"]["file"]), window=8)
    (tmp_path / "garbage.tflite").write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ModelError, match="garbage.tflite"):
        LstmSmoother(str(tmp_path / "garbage.tflite"), window=WINDOW)


def test_without_a_tflite_the_shipped_keras_model_is_used(monkeypatch) -> None:
    pytest.importorskip("keras")
    from emotion_perception.core.smoothing import lstm

    monkeypatch.setattr(lstm, "DEFAULT_MODEL", "no_such_lstm.tflite")
    sm = lstm.LstmSmoother(window=WINDOW)
    assert sm.runtime == "keras" and sm.model_path.name == CARD["model"]
    monkeypatch.setattr(lstm, "FALLBACK_KERAS_MODEL", "no_such_lstm.keras")
    with pytest.raises(FileNotFoundError, match="no_such_lstm.tflite"):
        lstm.LstmSmoother(window=WINDOW)

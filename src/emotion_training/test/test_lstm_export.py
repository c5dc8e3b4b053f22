"""``emotion_training.lstm_export``: the LSTM smoother as a builtin-ops TFLite file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from emotion_training import lstm_export as LE

NUM_CLASSES = 7


def tiny_lstm(window: int | None, seed: int = 0):
    """Build an untrained masked LSTM smoother of the runtime's layout (4 units)."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(seed)
    inp = keras.Input((window, NUM_CLASSES))
    x = keras.layers.Masking(mask_value=0.0)(inp)
    x = keras.layers.LSTM(4)(x)
    return keras.Model(inp, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tflite_converter) -> tuple[Path, dict]:
    """Export a tiny window-8 LSTM next to a minimal model card; return (folder, entry)."""
    folder = tmp_path_factory.mktemp("lstm_export")
    tiny_lstm(8).save(folder / "emotion_lstm.keras")
    (folder / f"{LE.CARD_STEM}.json").write_text(json.dumps({"model": "emotion_lstm.keras"}))
    (folder / f"{LE.CARD_STEM}.md").write_text("# Card\n\n## Benchmark\n\nx\n\n## Reproduce\n"
                                               "\ny\n")
    return folder, LE.export_lstm_tflite(folder / "emotion_lstm.keras")


def test_export_writes_a_builtin_ops_file_and_records_it_in_the_card(exported) -> None:
    folder, entry = exported
    path = folder / LE.TFLITE_FILE
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["window"] == 8 and entry["parity"]["max_abs_prob_diff"] <= LE.DEFAULT_TOLERANCE
    assert "FULLY_CONNECTED" in entry["ops"]
    assert not [op for op in entry["ops"] if "FLEX" in op.upper() or op == "CUSTOM"]
    card = json.loads((folder / f"{LE.CARD_STEM}.json").read_text())
    assert card["model"] == "emotion_lstm.keras" and card["tflite"] == entry
    md = (folder / f"{LE.CARD_STEM}.md").read_text()
    assert md.index(LE.MD_HEADING) < md.index("## Reproduce") and entry["sha256"] in md
    # a second export replaces the section instead of adding another
    LE.update_card(folder, entry)
    assert (folder / f"{LE.CARD_STEM}.md").read_text().count(LE.MD_HEADING) == 1


def test_the_runtime_smoother_on_the_export_matches_keras(exported) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    folder, _ = exported
    lite = LstmSmoother(str(folder / LE.TFLITE_FILE), window=8)
    ref = LstmSmoother(str(folder / "emotion_lstm.keras"), window=8)
    assert lite.runtime != "keras" and ref.runtime == "keras"
    rng = np.random.default_rng(1)
    for t in range(20):
        items = [(k, t / 15.0, rng.dirichlet(np.ones(NUM_CLASSES))) for k in range(3)]
        np.testing.assert_allclose(np.stack(lite.update_many(items)),
                                   np.stack(ref.update_many(items)), atol=LE.DEFAULT_TOLERANCE)


def test_parity_windows_are_deterministic_and_padded_like_the_runtime() -> None:
    a, b = LE.parity_windows(8, tracks=3, frames=10), LE.parity_windows(8, tracks=3, frames=10)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (30, 8, NUM_CLASSES)
    assert (a[0, :7] == 0).all() and np.isclose(a[0, 7].sum(), 1.0)  # first frame: padded
    assert not (a[9] == 0).all(axis=1).any()                          # full history


def test_unrolling_needs_a_fixed_window() -> None:
    with pytest.raises(ValueError, match="fixed window"):
        LE.unrolled(tiny_lstm(None))


def test_export_refuses_a_parity_miss_and_writes_nothing(tmp_path, tflite_converter) -> None:
    tiny_lstm(5).save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="tolerance"):
        LE.export_lstm_tflite(tmp_path / "m.keras", tmp_path / "out", tolerance=-1.0)
    assert not (tmp_path / "out" / LE.TFLITE_FILE).exists()

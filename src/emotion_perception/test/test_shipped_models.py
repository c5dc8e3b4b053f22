"""The shipped model files: each one matches its model card and works on the demo face.

These load the real files from ``models/`` (what the package installs), not test doubles: a
re-export that changes a file without its card, reorders classes or breaks the interface
fails here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from emotion_perception.core.classes import CLASS_NAMES
from emotion_perception.core.sample_input import astronaut_face

MODELS = Path(__file__).resolve().parents[1] / "models"
NET_CARD = json.loads((MODELS / "emotion_net.model_card.json").read_text())
LSTM_CARD = json.loads((MODELS / "emotion_lstm.model_card.json").read_text())
#: every classifier's card: the live default's and the ``accurate`` ensemble's where shipped
CLASSIFIER_CARDS = {p.name.split(".")[0]: json.loads(p.read_text())
                    for p in sorted(MODELS.glob("*.model_card.json"))
                    if p.name != "emotion_lstm.model_card.json"}
HAPPY = CLASS_NAMES.index("happy")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shipped_classifier_formats() -> list[tuple[str, dict]]:
    return [(f"{card_name}:{name}", entry) for card_name, card in CLASSIFIER_CARDS.items()
            for name, entry in card["formats"].items() if (MODELS / entry["file"]).is_file()]


def test_every_shipped_model_file_has_a_card_entry_with_its_sha256() -> None:
    carded = {entry["file"]: entry["sha256"] for _, entry in _shipped_classifier_formats()}
    carded[LSTM_CARD["model"]] = LSTM_CARD["sha256"]
    carded[LSTM_CARD["tflite"]["file"]] = LSTM_CARD["tflite"]["sha256"]
    shipped = sorted(p.name for p in MODELS.iterdir() if p.suffix in (".keras", ".tflite"))
    assert shipped, f"no model files in {MODELS}"
    assert sorted(carded) == shipped, "a shipped model file without a card entry, or the reverse"
    for name, sha in carded.items():
        assert _sha256(MODELS / name) == sha, f"{name} differs from the file its card describes"


@pytest.mark.parametrize("card", sorted(CLASSIFIER_CARDS))
def test_cards_name_the_runtime_class_order_and_interface(card: str) -> None:
    net = CLASSIFIER_CARDS[card]
    assert net["class_order"] == list(CLASS_NAMES)
    assert net["input"]["shape"][1:] == [48, 48, 1]
    assert net["output"]["shape"][1:] == [len(CLASS_NAMES)]
    assert "classes" in LSTM_CARD["output"] and str(list(CLASS_NAMES)) in LSTM_CARD["output"]


@pytest.mark.parametrize("fmt", [name for name, _ in _shipped_classifier_formats()])
def test_shipped_classifier_reads_the_smiling_demo_face_as_happy(fmt: str) -> None:
    card, name = fmt.split(":")
    entry = CLASSIFIER_CARDS[card]["formats"][name]
    path = MODELS / entry["file"]
    if path.suffix == ".tflite":
        from emotion_perception.core.classifiers.tflite_classifier import TFLiteClassifier

        clf = TFLiteClassifier(str(path))
    else:
        pytest.importorskip("keras")
        from emotion_perception.core.classifiers.keras_classifier import KerasClassifier

        clf = KerasClassifier(str(path))
    face = astronaut_face()
    probs, valid = clf.classify([face, face[:, ::-1]])
    assert probs.shape == (2, len(CLASS_NAMES)) and valid.all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == HAPPY).all(), np.round(probs, 3)


def test_shipped_formats_agree_on_the_demo_face() -> None:
    from emotion_perception.core.classifiers.tflite_classifier import TFLiteClassifier

    pytest.importorskip("keras")
    from emotion_perception.core.classifiers.keras_classifier import KerasClassifier

    face = astronaut_face()
    keras_probs, _ = KerasClassifier(str(MODELS / "emotion_net.keras")).classify([face])
    int8_probs, _ = TFLiteClassifier(str(MODELS / "emotion_net_int8.tflite")).classify([face])
    # the card's int8 parity bound over 500 faces holds for this one too
    bound = NET_CARD["formats"]["int8"]["parity"]["max_abs_prob_diff"]
    assert np.abs(keras_probs - int8_probs).max() <= bound


def test_shipped_lstm_keeps_a_steady_happy_stream_happy() -> None:
    pytest.importorskip("keras")
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    window = LSTM_CARD["config"]["lstm"]["window"]
    smoother = LstmSmoother(str(MODELS / LSTM_CARD["model"]), window=window)
    stream = np.full(len(CLASS_NAMES), 0.2 / len(CLASS_NAMES), np.float32)
    stream[HAPPY] += 0.8
    for i in range(window + 2):
        out = smoother.update(7, i / 15.0, stream)
    assert out.shape == (len(CLASS_NAMES),)
    np.testing.assert_allclose(out.sum(), 1.0, atol=1e-5)
    assert int(np.argmax(out)) == HAPPY

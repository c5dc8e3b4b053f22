"""Tests of evaluation (emotion_training.evaluate) with a tiny trained model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_perception.core.classes import CLASS_NAMES
from emotion_perception.core.preprocessing import preprocess_faces
from emotion_training import evaluate as E

pytest.importorskip("keras")


def test_classification_metrics_match_hand_computation() -> None:
    labels = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3, 6])
    preds = np.array([0, 0, 1, 1, 0, 3, 3, 3, 6, 6])
    cm = E.confusion_matrix(labels, preds)
    assert cm.sum() == len(labels) and cm[0, 1] == 1 and cm[3, 6] == 1
    m = E.classification_metrics(cm)
    assert m["accuracy"] == pytest.approx(7 / 10)
    angry = m["per_class"]["angry"]
    assert angry["precision"] == pytest.approx(2 / 3)
    assert angry["recall"] == pytest.approx(2 / 3)
    assert angry["error_rate"] == pytest.approx(1 / 3)
    assert m["per_class"]["neutral"]["precision"] == pytest.approx(1 / 2)
    assert m["per_class"]["fear"]["support"] == 0
    assert m["per_class"]["fear"]["error_rate"] is None
    f1 = [2 / 3, 1 / 2, 6 / 7, 2 / 3]  # angry, disgust, happy, neutral: the classes present
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    np.testing.assert_allclose(np.sum(m["confusion_proportions"], axis=1),
                               [1, 1, 0, 1, 0, 0, 1])
    with pytest.raises(ValueError, match="labels"):
        E.confusion_matrix(np.array([7]), np.array([0]))


def test_evaluate_model_report_is_consistent(tiny_model_path: Path, make_faces) -> None:
    images, labels = make_faces(63, seed=11)
    report = E.evaluate_model(tiny_model_path, images, labels, latency_samples=10,
                              progress=False, batch_size=16)
    cm = np.array(report["confusion_counts"])
    assert cm.sum() == len(labels) == report["n"]
    assert report["accuracy"] == pytest.approx(np.trace(cm) / len(labels))
    assert report["accuracy"] > 0.8  # the gratings are easy; a broken pipeline is at ~1/7
    np.testing.assert_array_equal([report["per_class"][c]["support"] for c in CLASS_NAMES],
                                  np.bincount(labels, minlength=7))
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert report["latency_batch1"]["n"] == 10
    assert 0 < report["latency_batch1"]["median_ms"] <= report["latency_batch1"]["p95_ms"]
    assert report["param_count"] > 1000
    text = E.format_tables(report)
    assert "confusion matrix, counts" in text and "row proportions" in text
    assert all(c in text for c in CLASS_NAMES)


def test_write_report_writes_json_and_pngs(tiny_model_path: Path, make_faces,
                                           tmp_path: Path) -> None:
    images, labels = make_faces(21, seed=12)
    report = E.evaluate_model(tiny_model_path, images, labels, latency_samples=0,
                              progress=False)
    hist = tmp_path / "history.csv"
    hist.write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.3,1.8,0.25,1.9\n"
                    "1,0.5,1.2,0.45,1.4\n2,0.6,1.0,0.5,1.3\n")
    files = E.write_report(report, tmp_path / "eval", hist)
    for name in ("confusion_counts", "confusion_proportions", "per_class", "training_curves"):
        im = cv2.imread(str(files[name]))
        assert im is not None and im.shape[0] > 100 and im.shape[1] > 100, name
    saved = json.loads(files["report"].read_text())
    assert saved["confusion_counts"] == report["confusion_counts"]
    assert saved["latency_batch1"]["median_ms"] is None


def _mirror_symmetric(images: np.ndarray) -> np.ndarray:
    out = images.copy()
    out[:, :, 24:] = images[:, :, :24][:, :, ::-1]
    return out


def test_mirror_tta_averages_face_and_mirror(tiny_model_path: Path, make_faces) -> None:
    pred = E.load_predictor(tiny_model_path)
    images, _ = make_faces(14, seed=13)
    x = preprocess_faces(images)
    plain = E.predict_probabilities(pred, x, progress=False)
    tta = E.predict_probabilities(pred, x, tta_mirror=True, batch_size=5, progress=False)
    mirrored = E.predict_probabilities(pred, x[:, :, ::-1], progress=False)
    np.testing.assert_allclose(tta, 0.5 * (plain + mirrored), atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-3  # gratings are not mirror-symmetric
    xs = preprocess_faces(_mirror_symmetric(images))
    np.testing.assert_allclose(E.predict_probabilities(pred, xs, True, progress=False),
                               E.predict_probabilities(pred, xs, False, progress=False),
                               atol=1e-6)


def test_shift_tta_is_the_runtime_views_mean_in_any_batch_size(tiny_model_path: Path,
                                                               make_faces) -> None:
    from emotion_perception.core.preprocessing import tta_views

    pred = E.load_predictor(tiny_model_path)
    images, _ = make_faces(7, seed=3)
    x = preprocess_faces(images)
    views = tta_views(x, mirror=True, shift=2)
    expected = pred.predict_batch(views).reshape(10, 7, -1).mean(axis=0)
    for batch_size in (1, 7, 25, 256):  # smaller than, equal to and beyond the view count
        got = E.predict_probabilities(pred, x, True, batch_size, False, tta_shift=2)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    mirror_only = E.predict_probabilities(pred, x, True, progress=False)
    assert np.abs(mirror_only - expected).max() > 1e-4


def _convert(model_path: Path, int8_io: bool, calib: np.ndarray) -> bytes:
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_io:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.mark.parametrize("int8_io", [False, True], ids=["float32", "int8-io"])
def test_tflite_models_are_evaluated_like_keras(tiny_model_path: Path, make_faces,
                                                tmp_path: Path, int8_io: bool,
                                                tflite_converter: None) -> None:
    calib, _ = make_faces(40, seed=14)
    path = tmp_path / "m.tflite"
    path.write_bytes(_convert(tiny_model_path, int8_io, preprocess_faces(calib)))
    images, labels = make_faces(35, seed=15)
    ref = E.evaluate_model(tiny_model_path, images, labels, latency_samples=0,
                           progress=False)
    rep = E.evaluate_model(path, images, labels, latency_samples=3, progress=False,
                           batch_size=8)
    assert rep["format"] == "tflite"
    pred = E.load_predictor(path)
    assert np.dtype(pred.input_dtype) == (np.int8 if int8_io else np.float32)
    if int8_io:
        assert abs(rep["accuracy"] - ref["accuracy"]) <= 0.15
    else:
        assert rep["confusion_counts"] == ref["confusion_counts"]
    assert 0.5 * ref["param_count"] < rep["param_count"] <= ref["param_count"]


def test_cli_writes_report(tiny_model_path: Path, synthetic_npz: Path, tmp_path: Path,
                           capsys) -> None:
    out = tmp_path / "ev"
    rc = E.main(["--model", str(tiny_model_path), "--data", str(synthetic_npz), "--out",
                 str(out), "--latency-samples", "5", "--tta-mirror"])
    assert rc == 0
    assert "accuracy" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "PublicTest" and report["tta_mirror"] is True
    assert report["tta_shift"] == 0
    assert (out / "confusion_proportions.png").is_file()
    assert E.main(["--model", str(tiny_model_path), "--data", str(synthetic_npz), "--out",
                   str(tmp_path / "ev2"), "--latency-samples", "0", "--tta-shift", "2"]) == 0
    assert json.loads((tmp_path / "ev2" / "report.json").read_text())["tta_shift"] == 2
    assert "shift TTA: 2 px" in capsys.readouterr().out
    assert E.main(["--model", str(tiny_model_path), "--data", str(synthetic_npz), "--out",
                   str(tmp_path / "ev3"), "--tta-shift", "30"]) == 2
    assert "shift must be in [0, 23]" in capsys.readouterr().err
    assert E.main(["--model", str(tmp_path / "nope.keras"), "--data", str(synthetic_npz)]) == 2


@pytest.mark.parametrize("fmt", ["keras", "int8"])
def test_evaluation_scores_what_the_runtime_classifier_publishes(
        tiny_model_path: Path, make_faces, tmp_path: Path, fmt: str) -> None:
    """Training-side figures come from the runtime classes: same faces, same probabilities."""
    from emotion_perception.core.classifiers.keras_classifier import KerasClassifier
    from emotion_perception.core.classifiers.tflite_classifier import TFLiteClassifier

    images, _ = make_faces(12, seed=21)
    path = tiny_model_path
    if fmt == "int8":
        pytest.importorskip("tensorflow")
        path = tmp_path / "m.tflite"
        path.write_bytes(_convert(tiny_model_path, True, preprocess_faces(images)))
    runtime = (KerasClassifier if fmt == "keras" else TFLiteClassifier)(str(path))
    runtime.tta_mirror = True
    live, valid = runtime.classify(list(images))
    assert valid.all()
    pred = E.load_predictor(path)
    assert isinstance(pred.classifier, type(runtime))
    offline = E.predict_probabilities(pred, preprocess_faces(images), tta_mirror=True,
                                      batch_size=7, progress=False)
    np.testing.assert_allclose(offline, live, atol=1e-6)

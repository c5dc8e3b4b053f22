"""Tests of the Keras -> TFLite export with parity checks and model card (export.py)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emotion_perception.core.classes import CLASS_NAMES  # noqa: E402
from emotion_perception.core.preprocessing import preprocess_faces  # noqa: E402
from emotion_training import export as X  # noqa: E402

# Tolerances of the exported files against the Keras model (probabilities in [0, 1]):
FLOAT32_MAX_DIFF = 1e-4   # same arithmetic up to operator fusion
FLOAT16_MAX_DIFF = 1e-2   # weights rounded to float16
INT8_MIN_TOP1 = 0.8       # 8-bit weights and activations change some close calls


@pytest.fixture(scope="module")
def exported(tiny_model_path: Path, synthetic_npz: Path, tmp_path_factory,
             tflite_converter: None) -> Path:
    """Run the CLI once on the tiny model with a fake run folder and metrics report."""
    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_text("model: emotion_net\nmodel_args: {width: 4}\nepochs: 6\n")
    (run / "summary.json").write_text(json.dumps(
        {"val_accuracy": 0.9, "n_train": 280, "cleaning": {"constant_images": 0,
                                                           "duplicates_dropped": 0}}))
    metrics = run / "report.json"
    metrics.write_text(json.dumps({"split": "PublicTest", "n": 70, "accuracy": 0.9,
                                   "macro_f1": 0.88, "per_class": {},
                                   "model": "/home/someone/runs/net/best.keras",
                                   "data": "/data/fer.npz"}))
    out = tmp_path_factory.mktemp("export")
    rc = X.main(["--model", str(tiny_model_path), "--out", str(out), "--name", "tiny",
                 "--data", str(synthetic_npz), "--calibration", "100", "--run", str(run),
                 "--metrics", str(metrics), "--parity-samples", "70"])
    assert rc == 0
    return out


def test_all_files_are_written(exported: Path) -> None:
    for suffix in (".keras", "_float32.tflite", "_float16.tflite", "_int8.tflite",
                   ".parity.json", ".model_card.md", ".model_card.json"):
        assert (exported / f"tiny{suffix}").is_file(), suffix


def test_parity_within_tolerances(exported: Path) -> None:
    parity = json.loads((exported / "tiny.parity.json").read_text())["formats"]
    assert parity["float32"]["parity"]["max_abs_prob_diff"] < FLOAT32_MAX_DIFF
    assert parity["float16"]["parity"]["max_abs_prob_diff"] < FLOAT16_MAX_DIFF
    assert parity["int8"]["parity"]["top1_agreement"] >= INT8_MIN_TOP1
    for fmt in ("keras", "float32", "float16", "int8"):
        assert 0.0 <= parity[fmt]["eval_accuracy"] <= 1.0
        assert parity[fmt]["bytes"] == (exported / parity[fmt]["file"]).stat().st_size
    assert parity["int8"]["bytes"] < parity["float32"]["bytes"]


def test_exported_files_reproduce_the_model(exported: Path, tiny_model_path: Path,
                                            make_faces) -> None:
    from ai_edge_litert.interpreter import Interpreter

    faces, _ = make_faces(20, seed=31)
    x = preprocess_faces(faces)
    ref = keras.saving.load_model(tiny_model_path, compile=False).predict_on_batch(x)
    resaved = keras.saving.load_model(exported / "tiny.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(resaved.predict_on_batch(x), ref, atol=1e-6)
    agree = 0
    interp = Interpreter(model_path=str(exported / "tiny_int8.tflite"))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32  # float interface
    for i in range(len(x)):
        interp.set_tensor(inp["index"], x[i:i + 1])
        interp.invoke()
        p = interp.get_tensor(out["index"])[0]
        assert abs(p.sum() - 1.0) < 0.02
        agree += int(p.argmax() == ref[i].argmax())
    assert agree / len(x) >= INT8_MIN_TOP1


def test_model_card_has_class_order_metrics_and_config(exported: Path) -> None:
    card = json.loads((exported / "tiny.model_card.json").read_text())
    assert card["class_order"] == list(CLASS_NAMES)
    assert card["metrics"]["accuracy"] == 0.9
    assert (card["metrics"]["model"], card["metrics"]["data"]) == ("best.keras", "fer.npz")
    assert card["training"]["config"]["model_args"] == {"width": 4}
    assert card["data"]["cleaning"]["constant_images"] == 0
    assert card["parameters"] > 1000
    md = (exported / "tiny.model_card.md").read_text()
    order = [md.index(f". {c}\n") for c in CLASS_NAMES]
    assert order == sorted(order)
    assert "preprocess_faces" in md and "tiny_int8.tflite" in md


def test_int8_needs_calibration_and_wrappers_are_unwrapped(tiny_model_path: Path) -> None:
    from emotion_training.augment import build_augmenter

    model = keras.saving.load_model(tiny_model_path, compile=False)
    with pytest.raises(ValueError, match="representative"):
        X.convert_to_tflite(model, "int8")
    with pytest.raises(ValueError, match="mode"):
        X.convert_to_tflite(model, "int4")
    wrapper = keras.Sequential([keras.Input((48, 48, 1)), build_augmenter(), model])
    assert X.unwrap_classifier(wrapper) is model
    assert X.unwrap_classifier(model) is model


def test_export_without_tensorflow_backend_fails_clearly_before_reading_data(
        tiny_model_path: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    model = keras.saving.load_model(tiny_model_path, compile=False)
    out = tmp_path / "out"
    args = ["--model", str(tiny_model_path), "--out", str(out), "--data",
            str(tmp_path / "absent.npz")]
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow now fails
    assert X.main(args) == 2
    err = capsys.readouterr().err
    assert "TFLite export needs TensorFlow" in err and "absent.npz" not in err
    with pytest.raises(RuntimeError, match="needs TensorFlow"):
        X.convert_to_tflite(model)
    # TensorFlow importable, but Keras runs another backend (torch on the GPU machine)
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    assert X.main(args) == 2
    err = capsys.readouterr().err
    assert "KERAS_BACKEND=tensorflow" in err and "'torch'" in err
    assert not out.exists()


def test_parity_numbers() -> None:
    a = np.array([[0.7, 0.3], [0.4, 0.6]])
    b = np.array([[0.6, 0.4], [0.45, 0.55]])
    p = X.parity_numbers(a, b)
    assert p["max_abs_prob_diff"] == pytest.approx(0.1)
    assert p["top1_agreement"] == 1.0
    assert X.parity_numbers(a, b[::-1])["top1_agreement"] == 0.0


def test_float16_keras_export_halves_weights_and_keeps_parity(tmp_path) -> None:
    import keras

    from emotion_training import models
    from emotion_training.export import to_float16

    keras.utils.set_random_seed(3)
    model = models.build_model("emotion_net", width=4)
    half = to_float16(model)
    assert all(w.dtype == "float16" for w in half.weights)
    x = np.random.default_rng(0).random((6, 48, 48, 1), dtype=np.float32)
    path = tmp_path / "half.keras"
    half.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    got = np.asarray(loaded.predict_on_batch(x), dtype=np.float32)
    want = np.asarray(model.predict_on_batch(x), dtype=np.float32)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_model_card_lists_every_stage_of_a_warm_started_model(tmp_path: Path) -> None:
    stage1, stage2 = tmp_path / "stage1", tmp_path / "runs" / "stage2"
    stage1.mkdir()
    stage2.mkdir(parents=True)
    (stage1 / "config.yaml").write_text(
        "data: /somewhere/local/fer.npz\nlabel_mode: mixed\nepochs: 40\n")
    (stage1 / "history.csv").write_text("epoch,loss\n" + "".join(f"{i},1\n" for i in range(40)))
    (stage2 / "config.yaml").write_text(
        f"data: /elsewhere/fer.npz\nlabel_mode: fer\nepochs: 3\n"
        f"init_weights: {stage1 / 'best.keras'}\n"
        f"teacher: {tmp_path / 'ens' / 'teacher.keras'}\nteacher_weight: 0.5\n")
    (stage2 / "history.csv").write_text("epoch,loss\n0,1\n1,1\n2,1\n")
    run = X._read_run(stage2)
    stages = X._training_stages(run)
    assert [s["run_dir"] for s in stages] == ["stage1", "stage2"]
    assert [s["epochs_logged"] for s in stages] == [40, 3]
    assert [s["config"]["label_mode"] for s in stages] == ["mixed", "fer"]
    # local paths are cut to names
    assert stages[0]["config"]["data"] == "fer.npz"
    assert stages[1]["config"]["init_weights"] == "stage1/best.keras"
    assert stages[1]["config"]["teacher"] == "ens/teacher.keras"
    assert str(tmp_path) not in json.dumps(run)
    # a single run is one stage
    assert [s["run_dir"] for s in X._training_stages(X._read_run(stage1))] == ["stage1"]

    # a run warm-started from a shipped model (a file with its card beside it, no run folder)
    # lists the card's stages before its own
    shipped = tmp_path / "models"
    shipped.mkdir()
    card = {"training": {"run_dir": "stage2", "stages": stages}}
    (shipped / "net.model_card.json").write_text(json.dumps(card))
    stage3 = tmp_path / "stage3"
    stage3.mkdir()
    init = shipped / "net.keras"
    (stage3 / "config.yaml").write_text(f"label_mode: fer\ninit_weights: {init}\n")
    (stage3 / "history.csv").write_text("epoch,loss\n0,1\n")
    stages3 = X._training_stages(X._read_run(stage3))
    assert [s["run_dir"] for s in stages3] == ["stage1", "stage2", "stage3"]
    assert [s["epochs_logged"] for s in stages3] == [40, 3, 1]
    assert stages3[2]["config"]["init_weights"] == "models/net.keras"


def test_an_ensemble_card_lists_each_members_training(tmp_path: Path,
                                                      tflite_converter: None) -> None:
    import keras

    runs = []
    for name, width in (("w32_fer", 32), ("w48", 48)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(f"data: /local/fer.npz\nmodel_args: {{width: {width}}}\n")
        (run / "history.csv").write_text("epoch,loss\n0,1\n")
        runs.append(X._read_run(run))
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    card = X.build_model_card("emotion_net", model, {}, None, {"members": runs}, "fer.npz", 10,
                              None, "ens.keras")
    members = card["training"]["members"]
    assert [m["run_dir"] for m in members] == ["w32_fer", "w48"]
    assert [m["config"]["model_args"]["width"] for m in members] == [32, 48]
    md = X.render_model_card(card)
    assert "An ensemble of 2 members" in md
    assert md.index("### Member 1") < md.index("w32_fer") < md.index("### Member 2") \
        < md.index("w48")
    assert "/local" not in json.dumps(card)


def test_an_ensemble_member_without_its_run_folder_comes_from_its_model_card(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shipped = Path(__file__).resolve().parents[2] / "emotion_perception" / "models" / \
        "emotion_net.model_card.json"
    run = tmp_path / "w48"
    run.mkdir()
    (run / "config.yaml").write_text("data: /local/fer.npz\nmodel_args: {width: 48}\n")
    member = X._run_from_card(shipped)
    section = X._training_section({"members": [member, X._read_run(run)]})
    first, second = section["members"]
    shipped_stages = json.loads(shipped.read_text())["training"]["stages"]
    assert [s["run_dir"] for s in first["stages"]] == [s["run_dir"] for s in shipped_stages]
    assert second["stages"][0]["config"]["model_args"]["width"] == 48
    assert X.main(["--model", str(tmp_path / "m.keras"), "--out", str(tmp_path / "o"),
                   "--data", str(tmp_path / "d.npz"), "--run", str(tmp_path / "x.json")]) != 0
    assert "x.json" in capsys.readouterr().err

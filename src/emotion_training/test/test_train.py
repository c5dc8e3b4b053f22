"""Tests of the training pipeline (emotion_training.train) on a tiny synthetic dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emotion_training.config import TrainConfig
from emotion_training.plots import read_history

pytest.importorskip("keras")


def _config(npz: Path, epochs: int) -> TrainConfig:
    # Gratings change class under a horizontal flip, so this data is trained without flips.
    return TrainConfig(
        data=str(npz), model="emotion_net", model_args={"width": 4, "dropout": 0.0},
        label_mode="mixed", epochs=epochs, batch_size=16, learning_rate=5e-3,
        warmup_epochs=0, early_stopping_patience=5, seed=3,
        augment={"flip": False, "rotation_deg": 3, "zoom": 0.05, "shift": 0.05,
                 "brightness": 0.1, "contrast": 0.1})


@pytest.mark.slow
def test_training_lowers_the_loss_writes_outputs_and_resumes(tmp_path: Path, npz_writer,
                                                             capsys) -> None:
    from emotion_training import train

    npz = npz_writer(tmp_path / "d.npz", n_train=210, n_val=35, seed=2)
    out = tmp_path / "run"
    summary = train.run(_config(npz, epochs=2), out)
    hist = read_history(out / "history.csv")
    assert len(hist["loss"]) == 2
    assert hist["loss"][1] < hist["loss"][0]
    for name in ("best.keras", "last.keras", "summary.json", "config.yaml", "state.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*tmp*"))  # checkpoints are written through temporary files
    saved = json.loads((out / "summary.json").read_text())
    assert saved["n_train"] == 210 and saved["n_val"] == 35
    assert set(saved["cleaning"]) >= {"constant_images", "duplicates_dropped"}
    assert 0.0 <= summary["val_accuracy"] <= 1.0
    assert summary["val_accuracy"] == pytest.approx(max(hist["val_accuracy"]), abs=1e-6)
    assert TrainConfig.from_yaml(out / "config.yaml").model_args == {"width": 4, "dropout": 0.0}

    capsys.readouterr()
    seconds_before = json.loads((out / "state.json").read_text())["train_seconds"]
    resumed = train.run(_config(npz, epochs=3), out, resume=True)
    printed = capsys.readouterr().out
    assert "resuming from epoch 2" in printed
    assert "epoch 3/3 done at " in printed and "finished" in printed  # the pace line
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 3
    # training time adds up over the processes, not only the one that resumed
    assert state["train_seconds"] > seconds_before > 0
    assert resumed["train_seconds"] == state["train_seconds"]
    hist = read_history(out / "history.csv")
    np.testing.assert_array_equal(hist["epoch"], [0, 1, 2])


@pytest.mark.slow
def test_a_run_that_stopped_early_is_not_trained_on_by_resume(tmp_path: Path, npz_writer,
                                                              capsys) -> None:
    from emotion_training import train

    npz = npz_writer(tmp_path / "d.npz", n_train=64, n_val=16, seed=4)
    out = tmp_path / "run"
    # a learning rate of ~0 keeps the validation accuracy flat: patience 1 stops after epoch 2
    cfg = replace(_config(npz, epochs=6), learning_rate=1e-12, early_stopping_patience=1)
    train.run(cfg, out)
    assert json.loads((out / "state.json").read_text())["stopped_early"] is True
    epochs = read_history(out / "history.csv")["epoch"]
    assert len(epochs) < 6
    capsys.readouterr()
    summary = train.run(cfg, out, resume=True)
    assert "stopped early" in capsys.readouterr().out
    np.testing.assert_array_equal(read_history(out / "history.csv")["epoch"], epochs)
    assert summary["epochs_run"] == len(epochs)
    state = json.loads((out / "state.json").read_text())
    assert summary["train_seconds"] == state["train_seconds"] > 0
    # a state file written before train_seconds existed: the time is unknown, not this
    # process's few seconds
    del state["train_seconds"]
    (out / "state.json").write_text(json.dumps(state))
    assert train.run(cfg, out, resume=True)["train_seconds"] is None


@pytest.mark.slow
def test_cross_validation_reports_every_fold_and_public_test(tmp_path: Path, npz_writer) -> None:
    from emotion_training import train

    npz = npz_writer(tmp_path / "d.npz", n_train=90, n_val=20, seed=6)
    out = tmp_path / "cv"
    summary = train.run(replace(_config(npz, epochs=1), folds=3), out)
    assert len(summary["folds"]) == 3
    for k, fold in enumerate(summary["folds"], start=1):
        hist = read_history(out / f"fold{k}" / "history.csv")
        assert fold["last_epoch_val_accuracy"] == pytest.approx(hist["val_accuracy"][-1])
        assert 0.0 <= fold["public_test_accuracy"] <= 1.0
    assert sum(f["n_val"] for f in summary["folds"]) == summary["folds"][0]["n_train"] \
        + summary["folds"][0]["n_val"]
    last = [f["last_epoch_val_accuracy"] for f in summary["folds"]]
    assert summary["cv_last_mean"] == pytest.approx(np.mean(last))
    assert json.loads((out / "summary.json").read_text())["cv_last_mean"] == \
        pytest.approx(np.mean(last))


def test_distillation_targets_mix_labels_with_the_teachers_mirror_averaged_output(
        tmp_path: Path, npz_writer) -> None:
    import keras

    from emotion_training import train
    from emotion_training.evaluate import load_predictor, predict_probabilities
    from emotion_training.models import build_model

    keras.utils.set_random_seed(9)
    build_model("emotion_net", width=4).save(tmp_path / "teacher.keras")
    npz = npz_writer(tmp_path / "d.npz", n_train=40, n_val=10, seed=7)
    base = replace(_config(npz, epochs=1), label_mode="fer")
    plain = train.prepare_data(base)
    cfg = replace(base, teacher=str(tmp_path / "teacher.keras"), teacher_weight=0.25)
    d = train.prepare_data(cfg)
    teacher = predict_probabilities(load_predictor(tmp_path / "teacher.keras"), d["x_train"],
                                    tta_mirror=True, progress=False)
    np.testing.assert_allclose(d["y_train"], 0.75 * plain["y_train"] + 0.25 * teacher,
                               atol=1e-5)
    np.testing.assert_allclose(d["y_train"].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(d["y_val"], plain["y_val"])  # validation keeps its labels
    with pytest.raises(FileNotFoundError, match="teacher"):
        train.prepare_data(replace(base, teacher=str(tmp_path / "absent.keras")))
    with pytest.raises(ValueError, match="teacher"):
        replace(base, teacher="t.keras", folds=5)
    with pytest.raises(ValueError, match="teacher_weight"):
        replace(base, teacher_weight=1.5)


def test_the_line_after_each_epoch_says_how_long_is_left() -> None:
    from emotion_training.train import time_left

    assert time_left(12, 150, 82.0) == \
        "epoch 12/150 done at 82 s an epoch: about 3 h 09 min left"  # 138 x 82 s
    assert time_left(148, 150, 90.0) == "epoch 148/150 done at 90 s an epoch: about 3 min left"
    assert time_left(150, 150, 90.0).endswith("finished")


def test_lr_schedule_warms_up_then_decays_to_one_percent() -> None:
    from emotion_training.train import lr_schedule

    cfg = TrainConfig(epochs=10, warmup_epochs=2, learning_rate=1.0)
    lrs = [lr_schedule(cfg)(e) for e in range(11)]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    assert lrs[10] == pytest.approx(0.01)


@pytest.mark.slow
def test_bfloat16_training_saves_float32_models_that_match_it_and_resumes(
        tmp_path: Path, npz_writer, capsys) -> None:
    import keras

    from emotion_training import train

    npz = npz_writer(tmp_path / "d.npz", n_train=96, n_val=16, seed=6)
    out = tmp_path / "run"
    cfg = replace(_config(npz, epochs=2), precision="mixed_bfloat16")
    train.run(cfg, out)
    # the global policy is left as it was: nothing else in the process computes in bfloat16
    assert keras.config.dtype_policy().name == "float32"
    wrapper = keras.models.load_model(out / "last_wrapper.keras")
    trained = wrapper.layers[-1]
    assert trained.get_layer("block1a_conv").dtype_policy.compute_dtype == "bfloat16"
    assert trained.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    faces = np.random.default_rng(1).random((8, 48, 48, 1), dtype=np.float32)
    for name in ("best.keras", "last.keras"):
        saved = keras.models.load_model(out / name)
        assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}, name
    last = keras.models.load_model(out / "last.keras")
    # the float32 twin holds the trained weights: its outputs differ only by bfloat16 rounding
    np.testing.assert_allclose(last.predict(faces, verbose=0),
                               trained.predict(faces, verbose=0), atol=0.05)
    for a, b in zip(last.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    capsys.readouterr()
    train.run(replace(cfg, epochs=3), out, resume=True)
    printed = capsys.readouterr().out
    assert "resuming from epoch 2" in printed and "warning" not in printed
    assert json.loads((out / "state.json").read_text())["epoch"] == 3
    # --precision float32 on a resumed bfloat16 run: said, not silently ignored
    train.run(replace(cfg, epochs=4, precision="float32"), out, resume=True)
    printed = capsys.readouterr().out
    assert printed.count("warning: this run trains in mixed_bfloat16, as it began") == 1
    assert json.loads((out / "state.json").read_text())["epoch"] == 4
    # ... and stays what it was: the record says so, the saved classifiers are float32
    assert TrainConfig.from_yaml(out / "config.yaml").precision == "mixed_bfloat16"
    for name in ("best.keras", "last.keras"):
        saved = keras.models.load_model(out / name)
        assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}, name
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="float16")


def test_config_rejects_bad_values_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    (tmp_path / "c.yaml").write_text("epochs: 3\nbogus: 1\n")
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


@pytest.mark.slow
def test_init_weights_starts_from_a_saved_model_and_refuses_a_mismatch(
        tmp_path: Path, npz_writer) -> None:
    import keras

    from emotion_training import train
    from emotion_training.models import build_model

    npz = npz_writer(tmp_path / "d.npz", n_train=64, n_val=16, seed=5)
    keras.utils.set_random_seed(11)
    source = build_model("emotion_net", width=4, dropout=0.0)
    source.save(tmp_path / "source.keras")
    faces = np.random.default_rng(0).random((8, 48, 48, 1), dtype=np.float32)
    expected = source.predict(faces, verbose=0)

    fresh = build_model("emotion_net", width=4, dropout=0.0)
    assert not np.allclose(fresh.predict(faces, verbose=0), expected, atol=1e-3)
    train.init_from(fresh, tmp_path / "source.keras")
    np.testing.assert_allclose(fresh.predict(faces, verbose=0), expected, atol=1e-6)

    # Through a training run: one epoch at a negligible learning rate keeps the source's outputs
    # (up to batch-norm statistics), which a fresh initialisation would not.
    cfg = _config(npz, epochs=1)
    cfg.init_weights, cfg.learning_rate = str(tmp_path / "source.keras"), 1e-9
    train.run(cfg, tmp_path / "ft")
    tuned = keras.models.load_model(tmp_path / "ft" / "last.keras")
    np.testing.assert_allclose(tuned.predict(faces, verbose=0), expected, atol=0.05)

    with pytest.raises(ValueError, match="does not match"):
        train.init_from(build_model("emotion_net", width=8), tmp_path / "source.keras")
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        train.init_from(fresh, tmp_path / "missing.keras")
    assert train.main(["--out", str(tmp_path / "x"), "--data", str(npz),
                       "--init-weights", str(tmp_path / "missing.keras")]) == 2


def test_every_shipped_training_config_loads() -> None:
    configs = Path(__file__).resolve().parents[1] / "configs"
    names = sorted(p.name for p in configs.glob("emotion_net*.yaml"))
    assert "emotion_net.yaml" in names and "emotion_net_finetune_fer.yaml" in names
    for name in names:
        cfg = TrainConfig.from_yaml(configs / name)
        assert cfg.model == "emotion_net", name
    stage2 = TrainConfig.from_yaml(configs / "emotion_net_finetune_fer.yaml")
    assert stage2.label_mode == "fer" and stage2.init_weights.endswith("best.keras")
    distill = TrainConfig.from_yaml(configs / "emotion_net_distill.yaml")
    assert distill.teacher.endswith(".keras") and 0 < distill.teacher_weight < 1
    seed_cv = TrainConfig.from_yaml(configs / "seed_cnn_cv.yaml")  # the original's protocol
    assert (seed_cv.model, seed_cv.folds, seed_cv.epochs) == ("seed_cnn", 5, 30)
    assert seed_cv.early_stopping_patience >= seed_cv.epochs and seed_cv.label_mode == "fer"
    long = TrainConfig.from_yaml(configs / "emotion_net_long.yaml")  # the 150-300 epochs
    assert long.epochs >= 150 and long.early_stopping_patience >= long.epochs
    assert long.optimizer == "sgd" and 0 < long.average_from <= long.epochs


@pytest.mark.slow
def test_weight_average_is_the_mean_of_the_epochs_from_average_from_and_resumes(
        tmp_path: Path, npz_writer) -> None:
    """average.keras holds the mean of the epoch-end weights from average_from on."""
    import keras

    from emotion_training import train

    npz = npz_writer(tmp_path / "d.npz", n_train=120, n_val=30, seed=4)
    out = tmp_path / "run"
    cfg = replace(_config(npz, epochs=2), average_from=2)
    train.run(cfg, out)
    record = json.loads((out / "average.json").read_text())
    assert record["epochs"] == [2] and 0.0 <= record["val_accuracy"][0] <= 1.0
    second = keras.models.load_model(out / "last.keras").get_weights()
    averaged = keras.models.load_model(out / "average.keras").get_weights()
    for a, w in zip(averaged, second):  # one epoch averaged: its own weights
        np.testing.assert_allclose(a, w, rtol=1e-6, atol=1e-7)
    # resumed for a third epoch: the mean of epochs 2 and 3, the running mean carried over
    summary = train.run(replace(cfg, epochs=3), out, resume=True)
    record = json.loads((out / "average.json").read_text())
    assert record["epochs"] == [2, 3] and len(record["val_accuracy"]) == 2
    third = keras.models.load_model(out / "last.keras").get_weights()
    averaged = keras.models.load_model(out / "average.keras").get_weights()
    assert any(not np.allclose(w2, w3) for w2, w3 in zip(second, third))
    for a, w2, w3 in zip(averaged, second, third):
        np.testing.assert_allclose(a, (w2 + w3) / 2, rtol=1e-5, atol=1e-6)
    assert summary["average"] == {"epochs": [2, 3], "val_accuracy": record["val_accuracy"][-1]}
    # the score in the record is the averaged model's own
    data = train.prepare_data(cfg)
    x_val, y_val = data["x_val"], data["y_val"]
    model = keras.models.load_model(out / "average.keras")
    acc = float((model.predict(x_val, verbose=0).argmax(1) == y_val.argmax(1)).mean())
    assert record["val_accuracy"][-1] == pytest.approx(acc)
    # a new run in the same folder (no --resume) starts its average afresh
    train.run(replace(cfg, epochs=2), out)
    assert json.loads((out / "average.json").read_text())["epochs"] == [2]
    with pytest.raises(ValueError, match="average_from"):
        replace(cfg, average_from=4)

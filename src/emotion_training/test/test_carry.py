"""A run carried across machines (emotion_training.carry, emotion_train --carry)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from emotion_training.config import TrainConfig

pytest.importorskip("keras")


def _config(npz: Path, epochs: int) -> TrainConfig:
    return TrainConfig(
        data=str(npz), model="emotion_net", model_args={"width": 8, "dropout": 0.0},
        epochs=epochs, batch_size=16, learning_rate=5e-3, warmup_epochs=0, seed=5,
        optimizer="sgd", average_from=2, early_stopping_patience=10,
        augment={"flip": False, "rotation_deg": 3, "zoom": 0.05, "shift": 0.05})


def test_weights_travel_as_float16_where_large_and_come_back_in_order(tmp_path: Path) -> None:
    from emotion_training.carry import FLOAT16_ABOVE, _save_weights, load_weights

    rng = np.random.default_rng(0)
    big = rng.normal(size=(3, 3, 64, 64)).astype(np.float32)
    small = rng.normal(size=(64,)).astype(np.float32) * 1e3
    _save_weights([small, big, small + 1], tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as f:
        assert f["w000"].dtype == np.float32 and f["w001"].dtype == np.float16
    back = load_weights(tmp_path / "w.npz")
    assert [w.dtype for w in back] == [np.float32] * 3
    np.testing.assert_array_equal(back[0], small)  # small arrays exactly
    np.testing.assert_array_equal(back[2], small + 1)
    assert big.size > FLOAT16_ABOVE
    np.testing.assert_allclose(back[1], big, rtol=2 ** -11, atol=1e-7)  # float16's rounding
    assert not list(tmp_path.glob("*tmp*"))


@pytest.mark.slow
def test_a_carried_run_goes_on_where_its_folder_is_lost(tmp_path: Path, npz_writer,
                                                        capsys) -> None:
    import keras

    from emotion_training import train
    from emotion_training.carry import load_weights, unpack_run, weights_file

    npz = npz_writer(tmp_path / "d.npz", n_train=96, n_val=24, seed=7)
    out, carry = tmp_path / "run", tmp_path / "carried"
    cfg = _config(npz, epochs=2)
    train.run(cfg, out, carry=carry)
    manifest = json.loads((carry / "carry.json").read_text())
    assert manifest["epoch"] == 2 and set(manifest["models"]) == {"last", "best", "average"}
    assert set(manifest["files"]) == {"config.yaml", "history.csv", "state.json",
                                      "average.json"}
    # the carried copy is the run's: the last epoch's weights, to float16's rounding
    last = keras.models.load_model(out / "last.keras").get_weights()
    for a, b in zip(load_weights(weights_file(carry, "last")), last):
        np.testing.assert_allclose(a, b, rtol=2 ** -11, atol=1e-6)
    averaged = keras.models.load_model(out / "average.keras").get_weights()
    for a, b in zip(load_weights(weights_file(carry, "average")), averaged):
        np.testing.assert_allclose(a, b, rtol=2 ** -11, atol=1e-6)
    best = keras.models.load_model(out / "best.keras").get_weights()  # from memory, too
    for a, b in zip(load_weights(weights_file(carry, "best")), best):
        np.testing.assert_allclose(a, b, rtol=2 ** -11, atol=1e-6)
    assert (carry / "history.csv").read_text() == (out / "history.csv").read_text()
    total = sum(f.stat().st_size for f in carry.iterdir())
    assert total < 0.6 * 3 * (out / "last.keras").stat().st_size  # compact: 3 models in it

    # a new machine: the run folder is gone; it is rebuilt with the carried weights ...
    shutil.rmtree(out)
    assert unpack_run(carry, out, cfg)
    rebuilt = keras.models.load_model(out / "last_wrapper.keras").layers[-1].get_weights()
    for a, b in zip(rebuilt, load_weights(weights_file(carry, "last"))):
        np.testing.assert_array_equal(a, b)
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
    assert not unpack_run(carry, out, cfg)  # a folder with a state.json is left as it is
    # ... and that is what --resume does, then trains on
    shutil.rmtree(out)
    capsys.readouterr()
    train.run(replace(cfg, epochs=3), out, resume=True, carry=carry)
    printed = capsys.readouterr().out
    assert "rebuilt" in printed and "resuming from epoch 2" in printed
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 3
    history = (out / "history.csv").read_text().strip().splitlines()
    assert len(history) == 1 + 3  # the carried two epochs, then the third
    assert json.loads((out / "average.json").read_text())["epochs"] == [2, 3]
    assert json.loads((carry / "carry.json").read_text())["epoch"] == 3
    third = keras.models.load_model(out / "last.keras").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(third, last))  # it trained on


@pytest.mark.slow
def test_a_bfloat16_run_can_go_on_in_float32_from_its_carried_copy(tmp_path: Path, npz_writer,
                                                                   capsys) -> None:
    """Only float32 weights travel, so the rebuilt run takes the precision asked for."""
    import keras

    from emotion_training import train

    npz = npz_writer(tmp_path / "d.npz", n_train=64, n_val=16, seed=9)
    out, carry = tmp_path / "run", tmp_path / "carried"
    cfg = replace(_config(npz, epochs=2), epochs=1, precision="mixed_bfloat16", average_from=0)
    train.run(cfg, out, carry=carry)
    shutil.rmtree(out)
    capsys.readouterr()
    train.run(replace(cfg, epochs=2, precision="float32"), out, resume=True, carry=carry)
    printed = capsys.readouterr().out
    assert "trained in mixed_bfloat16 so far and goes on in float32" in printed
    assert "warning" not in printed  # no clash with the saved trainer: it was rebuilt
    assert TrainConfig.from_yaml(out / "config.yaml").precision == "float32"
    trainer = keras.models.load_model(out / "last_wrapper.keras").layers[-1]
    assert trainer.get_layer("block1a_conv").dtype_policy.compute_dtype == "float32"
    assert json.loads((out / "state.json").read_text())["epoch"] == 2


@pytest.mark.slow
def test_carry_refuses_what_would_lose_carried_epochs(tmp_path: Path, npz_writer) -> None:
    from emotion_training import train
    from emotion_training.carry import CarryError, weights_file

    npz = npz_writer(tmp_path / "d.npz", n_train=64, n_val=16, seed=8)
    out, carry = tmp_path / "run", tmp_path / "carried"
    cfg = _config(npz, epochs=2)
    train.run(replace(cfg, average_from=0), out, carry=carry)
    before = weights_file(carry, "last").read_bytes()
    with pytest.raises(CarryError, match="add --resume"):  # a new run over a carried one
        train.run(cfg, tmp_path / "other", carry=carry)
    with pytest.raises(CarryError, match="cross-validation"):
        train.run(replace(cfg, folds=2), tmp_path / "cv", carry=tmp_path / "cv_carried")
    # a local folder behind its carried copy: refused, not trained over
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "state.json").write_text(json.dumps({"epoch": 1, "best_val_accuracy": 0.1}))
    with pytest.raises(CarryError, match="at epoch 1 but its carried copy"):
        train.run(replace(cfg, epochs=3), stale, resume=True, carry=carry)
    assert weights_file(carry, "last").read_bytes() == before
    # another architecture cannot take the carried weights
    shutil.rmtree(out)
    with pytest.raises(CarryError, match="do not match"):
        train.run(replace(cfg, epochs=3, model_args={"width": 4, "dropout": 0.0}), out,
                  resume=True, carry=carry)


def test_emotion_train_says_why_it_refuses_a_carry(tmp_path: Path, capsys) -> None:
    from emotion_training import train

    carry = tmp_path / "carried"
    carry.mkdir()
    (carry / "carry.json").write_text(json.dumps({"epoch": 4, "models": ["last"],
                                                  "files": []}))
    rc = train.main(["--out", str(tmp_path / "run"), "--carry", str(carry), "--epochs", "5"])
    assert rc == 2
    assert "carries a run at epoch 4: add --resume" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

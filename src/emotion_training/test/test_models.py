"""Tests of the model registry (emotion_training.models)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emotion_training import models  # noqa: E402


def _randomize(model: "keras.Model", seed: int = 0) -> None:
    """Give every weight (incl. batch-norm statistics) a random, valid value."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0, 0.2, w.shape).astype("float32")
        if "variance" in w.path:
            value = np.abs(value) + 0.5
        w.assign(value)


def test_seed_cnn_has_the_original_parameter_count() -> None:
    assert models.build_model("seed_cnn").count_params() == 555_079


@pytest.mark.parametrize("name,kwargs", [("seed_cnn15", {}), ("emotion_net", {"width": 4}),
                                         ("seed_cnn", {})])
def test_models_output_probabilities(name: str, kwargs: dict) -> None:
    model = models.build_model(name, **kwargs)
    x = np.random.default_rng(1).random((3, 48, 48, 1), dtype=np.float32)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (3, 7)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert (y >= 0).all()


def test_registry_lists_models_and_rejects_unknown_names() -> None:
    assert {"seed_cnn", "seed_cnn15", "emotion_net"} <= set(models.available_models())
    with pytest.raises(ValueError, match="available: .*emotion_net.*seed_cnn"):
        models.build_model("resnet9000")


def test_builder_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="width"):
        models.build_model("emotion_net", width=2)
    with pytest.raises(ValueError, match="input_shape"):
        models.build_model("seed_cnn", input_shape=(48, 48))
    with pytest.raises(ValueError, match="already registered"):
        models.register("seed_cnn")(models.seed_cnn)


@pytest.mark.parametrize("name,kwargs", [("emotion_net", {"width": 4}), ("seed_cnn", {})])
def test_save_and_load_give_identical_outputs(tmp_path, name: str, kwargs: dict) -> None:
    model = models.build_model(name, **kwargs)
    _randomize(model)
    x = np.random.default_rng(2).random((4, 48, 48, 1), dtype=np.float32)
    before = keras.ops.convert_to_numpy(model(x, training=False))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    after = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert loaded.count_params() == model.count_params()

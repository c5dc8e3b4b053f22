"""The ensemble averages its members and survives save -> load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from emotion_training import models
from emotion_training.ensemble import build_ensemble, main


def _member(seed: int):
    keras.utils.set_random_seed(seed)
    return models.build_model("emotion_net", width=4)


def test_ensemble_output_is_the_mean_and_round_trips(tmp_path):
    a, b = _member(1), _member(2)
    x = np.random.default_rng(0).random((5, 48, 48, 1), dtype=np.float32)
    expected = (keras.ops.convert_to_numpy(a(x, training=False))
                + keras.ops.convert_to_numpy(b(x, training=False))) / 2
    ens = build_ensemble([a, b])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ens(x, training=False)), expected,
                               atol=1e-6)
    path = tmp_path / "ens.keras"
    ens.save(path)
    loaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), expected,
                               atol=1e-6)


def test_ensemble_rejects_bad_members(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        build_ensemble([_member(1)])
    five = models.build_model("emotion_net", width=4, num_classes=5)
    with pytest.raises(ValueError, match="disagree"):
        build_ensemble([_member(1), five])
    assert main(["--members", str(tmp_path / "x.keras"), str(tmp_path / "y.keras"),
                 "--out", str(tmp_path / "e.keras")]) == 2

"""Tests of the camera-path degradations and the optimiser options of the trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

keras = pytest.importorskip("keras")

from emotion_training.augment import (AugmentConfig, RandomJpeg,  # noqa: E402
                                      RandomLowResolution, build_augmenter)
from emotion_training.config import TrainConfig  # noqa: E402

ONLY_GEOMETRY_OFF = dict(flip=False, rotation_deg=0, zoom=0, shift=0, brightness=0, contrast=0)


def _faces(make_faces, n: int = 8) -> np.ndarray:
    faces, _ = make_faces(n, seed=5)
    return (faces.astype(np.float32) / 255.0)[..., None]


@pytest.mark.parametrize("name", ["jpeg", "low_res", "blur", "erase", "noise"])
def test_each_degradation_acts_in_training_only_and_stays_in_range(make_faces, name) -> None:
    x = _faces(make_faces)
    aug = build_augmenter(AugmentConfig(**ONLY_GEOMETRY_OFF, **{name: 1.0}), seed=3)
    assert len(aug.layers) == 1
    out = np.asarray(aug(x, training=True))
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    changed = np.abs(out - x).reshape(len(x), -1).max(axis=1) > 1e-3
    assert changed.all(), f"{name} at probability 1 left {int((~changed).sum())} faces alone"
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)


def test_jpeg_layer_is_tensorflow_jpeg_at_the_drawn_quality(make_faces) -> None:
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the jpeg augmentation needs the TensorFlow backend")
    x = _faces(make_faces, 4)
    out = np.asarray(RandomJpeg(1.0, (30, 30), seed=1)(x, training=True))
    want = np.stack([tf.image.adjust_jpeg_quality(face, 30).numpy() for face in x])
    np.testing.assert_allclose(out, want, atol=1e-6)
    # rate 0: every face passes through untouched
    np.testing.assert_array_equal(np.asarray(RandomJpeg(0.0, seed=1)(x, training=True)), x)


def test_low_resolution_layer_is_a_down_and_up_sampling(make_faces) -> None:
    x = _faces(make_faces, 4)
    out = np.asarray(RandomLowResolution(1.0, (12, 12), seed=2)(x, training=True))
    ops = keras.ops
    low = ops.image.resize(x, (12, 12), interpolation="area")
    want = np.asarray(ops.image.resize(low, (48, 48), interpolation="bilinear"))
    np.testing.assert_allclose(out, want, atol=1e-5)


@pytest.mark.parametrize("bad", [{"jpeg": 1.5}, {"erase": -0.1}, {"jpeg_quality": [90, 20]},
                                 {"low_res_side": [2, 8]}, {"erase_scale": [0.0, 0.2]},
                                 {"jpeg_quality": 30}])
def test_bad_degradation_settings_are_refused_by_name(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AugmentConfig(**bad)


def test_optimiser_and_label_smoothing_reach_the_compiled_trainer(tmp_path: Path) -> None:
    from emotion_training.train import build_trainer

    cfg = TrainConfig(model_args={"width": 4}, optimizer="sgd", momentum=0.8,
                      label_smoothing=0.1, augment={"erase": 0.5, "low_res": 0.5})
    _, wrapper = build_trainer(cfg)
    assert isinstance(wrapper.optimizer, keras.optimizers.SGD)
    assert wrapper.optimizer.nesterov and wrapper.optimizer.momentum == pytest.approx(0.8)
    assert wrapper.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    # the wrapper (saved for --resume) reloads with the custom degradation layers
    wrapper.save(tmp_path / "w.keras")
    again = keras.models.load_model(tmp_path / "w.keras")
    names = [type(layer).__name__ for layer in again.layers[0].layers]
    assert "RandomLowResolution" in names and "RandomErasing" in names
    for bad in ({"optimizer": "rmsprop"}, {"momentum": 1.0}, {"label_smoothing": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_config_with_pairs_round_trips_through_safe_yaml(tmp_path: Path) -> None:
    cfg = TrainConfig(augment={"jpeg": 0.3, "jpeg_quality": [25, 80]}, optimizer="sgd")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    again = TrainConfig.from_yaml(path)
    assert again == cfg
    assert again.augment.jpeg_quality == (25, 80)

"""Tests of class activation maps (emotion_training.cam)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emotion_training import cam as C  # noqa: E402
from emotion_training.augment import build_augmenter  # noqa: E402
from emotion_training.models import build_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tiny_model_path: Path):
    """Return the session's tiny trained emotion_net."""
    return keras.saving.load_model(tiny_model_path, compile=False)


@pytest.fixture(scope="module")
def seed_cnn():
    """Return the original architecture with random weights."""
    keras.utils.set_random_seed(5)
    return build_model("seed_cnn")


def test_maps_have_input_size_and_unit_range(tiny_model, seed_cnn, make_faces) -> None:
    faces, _ = make_faces(5, seed=21)
    for model in (tiny_model, seed_cnn):
        maps = C.class_activation_maps(model, faces)
        assert maps.shape == (5, 7, 48, 48) and maps.dtype == np.float32
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        per_map_max = maps.reshape(5, 7, -1).max(axis=2)
        np.testing.assert_allclose(per_map_max, 1.0, atol=1e-6)  # each map is scaled alone
        joint = C.class_activation_maps(model, faces, joint=True)
        np.testing.assert_allclose(joint.reshape(5, -1).max(axis=1), 1.0, atol=1e-6)
        assert joint.reshape(5, -1).min(axis=1).max() <= 1e-6


def test_map_means_plus_bias_are_the_logits(tiny_model, seed_cnn, make_faces) -> None:
    faces, _ = make_faces(6, seed=22)
    for model in (tiny_model, seed_cnn):
        ext = C.CamExtractor.from_model(model)
        raw, probs = ext.raw(faces)
        assert raw.shape[:2] == (6, 7)
        logits = raw.mean(axis=(2, 3)) + ext.bias
        # softmax(logits) must be the model's own output, i.e. log-probabilities differ from
        # the logits by one constant per face
        log_p = np.log(np.asarray(model.predict_on_batch(ext.prepare(faces)), np.float64))
        shift = log_p - logits
        np.testing.assert_allclose(shift - shift[:, :1], 0.0, atol=1e-4)
        np.testing.assert_allclose(probs, np.exp(log_p), atol=1e-6)


def test_training_wrapper_is_unwrapped(tiny_model, make_faces) -> None:
    wrapper = keras.Sequential([keras.Input((48, 48, 1)), build_augmenter(), tiny_model])
    faces, _ = make_faces(3, seed=23)
    np.testing.assert_allclose(C.class_activation_maps(wrapper, faces),
                               C.class_activation_maps(tiny_model, faces), atol=1e-6)


def test_models_without_gap_head_are_rejected() -> None:
    with pytest.raises(ValueError, match="GAP head"):
        C.CamExtractor.from_model(build_model("seed_cnn15"))
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5, activation="relu")(x)
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    with pytest.raises(ValueError, match="GAP head"):
        C.CamExtractor.from_model(keras.Model(inputs, outputs))


def test_overlay_is_bgr_uint8_of_the_face_size() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    cam = rng.random((48, 48)).astype(np.float32)
    out = C.overlay(gray, cam)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(C.overlay(gray, cam, alpha=0.0),
                                  cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    heat = cv2.applyColorMap((cam * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_JET)
    np.testing.assert_array_equal(C.overlay(gray, cam, alpha=1.0), heat)
    bgr = rng.integers(0, 256, (100, 80, 3), dtype=np.uint8)
    out = C.overlay(bgr, cam)  # the map is resized to the face
    assert out.shape == (100, 80, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="alpha"):
        C.overlay(gray, cam, alpha=2.0)


def test_cli_writes_one_grid_per_face_and_an_index(tiny_model_path: Path, synthetic_npz: Path,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "cams"
    assert C.main(["--model", str(tiny_model_path), "--data", str(synthetic_npz), "--n", "2",
                   "--out", str(out)]) == 0
    grids = sorted(out.glob("cam_PublicTest*.png"))
    assert len(grids) == 2
    for path in grids + [out / "cam_index.png"]:
        im = cv2.imread(str(path))
        assert im is not None and im.shape[1] > im.shape[0]


def test_ensemble_maps_are_the_mean_of_its_members_maps(make_faces, tmp_path: Path) -> None:
    from emotion_training.ensemble import build_ensemble

    keras.utils.set_random_seed(7)
    a, b = build_model("emotion_net", width=4), build_model("emotion_net", width=4)
    faces, _ = make_faces(3, seed=24)
    expected = (C.class_activation_maps(a, faces) + C.class_activation_maps(b, faces)) / 2
    path = tmp_path / "ens.keras"
    build_ensemble([a, b]).save(path)
    ens = keras.saving.load_model(path, compile=False, safe_mode=True)
    cams, probs = C.cam_extractor(ens).maps(faces)
    np.testing.assert_allclose(cams, expected, atol=1e-5)
    x = C.CamExtractor.from_model(a).prepare(faces)
    np.testing.assert_allclose(probs, ens.predict_on_batch(x), atol=1e-5)


def test_a_float16_model_gets_the_maps_of_its_float32_original(tiny_model, make_faces) -> None:
    from emotion_training.export import to_float16

    faces, _ = make_faces(4, seed=25)
    half = C.cam_extractor(to_float16(tiny_model))
    cams, probs = half.maps(faces)
    assert cams.dtype == np.float32 and cams.shape == (4, 7, 48, 48)
    full, full_probs = C.cam_extractor(tiny_model).maps(faces)
    np.testing.assert_allclose(cams, full, atol=0.05)
    np.testing.assert_allclose(probs, full_probs, atol=0.01)

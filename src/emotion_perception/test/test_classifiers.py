"""Tests of the Keras and TFLite classifiers and of the model lookup, on tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotion_perception.core import model_lookup
from emotion_perception.core.classifiers.base import ModelError
from emotion_perception.core.classifiers.keras_classifier import KerasClassifier
from emotion_perception.core.classifiers.tflite_classifier import TFLiteClassifier
from emotion_perception.core.model_lookup import (
    DEFAULT_KERAS_MODEL, DEFAULT_TFLITE_MODEL, find_model)
from emotion_perception.core.preprocessing import (merge_tta, preprocess_faces, tta_view_count,
                                                   tta_views)

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _tiny_model(num_classes: int = 7, channels: int = 1, seed: int = 0) -> "keras.Model":
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((48, 48, channels))
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _batch(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 48, 48, 1), dtype=np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    model = _tiny_model()
    paths = {"keras": folder / "tiny.keras"}
    model.save(paths["keras"])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    paths["tflite"] = folder / "tiny_f32.tflite"
    paths["tflite"].write_bytes(converter.convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([_batch(1, seed=s)] for s in range(16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    paths["int8"] = folder / "tiny_int8.tflite"
    paths["int8"].write_bytes(converter.convert())
    paths["five"] = folder / "five_classes.keras"
    _tiny_model(num_classes=5).save(paths["five"])
    paths["rgb"] = folder / "rgb_input.keras"
    _tiny_model(channels=3).save(paths["rgb"])
    paths["reference"] = folder / "reference.npy"
    np.save(paths["reference"], model.predict_on_batch(_batch(5)))
    return paths


@pytest.fixture(scope="module")
def keras_clf(models: dict[str, Path]) -> KerasClassifier:
    return KerasClassifier(model_path=str(models["keras"]))


def test_keras_shapes_sums_and_reference(keras_clf: KerasClassifier,
                                         models: dict[str, Path]) -> None:
    assert keras_clf.name == "keras" and keras_clf.input_size == (48, 48)
    probs = keras_clf.predict(_batch(5))
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, np.load(models["reference"]), atol=1e-5)
    assert keras_clf.predict(np.zeros((0, 48, 48, 1), np.float32)).shape == (0, 7)


def test_keras_batching_is_consistent(models: dict[str, Path]) -> None:
    clf = KerasClassifier(model_path=str(models["keras"]), max_batch=4)
    batch = _batch(11, seed=5)
    together = clf.predict(batch)  # three chunks: 4 + 4 + 3
    one_by_one = np.concatenate([clf.predict(batch[i:i + 1]) for i in range(11)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert not np.allclose(together[0], together[1])  # the rows differ: inputs matter
    if clf.tf_function is not None:  # one trace serves every batch size
        assert clf.tf_function.experimental_get_tracing_count() == 1


def test_keras_classify_raw_crops(keras_clf: KerasClassifier) -> None:
    rng = np.random.default_rng(2)
    crops = [rng.integers(0, 255, (90, 90, 3), dtype=np.uint8),
             rng.integers(0, 255, (40, 40), dtype=np.uint8)]
    probs, valid = keras_clf.classify(crops)
    assert probs.shape == (2, 7) and valid.tolist() == [True, True]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_keras_rejects_wrong_batch_shape(keras_clf: KerasClassifier) -> None:
    with pytest.raises(ValueError, match=r"\(N, 48, 48, 1\)"):
        keras_clf.predict(np.zeros((2, 48, 48), np.float32))


def test_keras_wrong_class_count(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match="five_classes.keras") as info:
        KerasClassifier(model_path=str(models["five"]))
    assert "5 classes" in str(info.value) and "7" in str(info.value)


def test_keras_wrong_input_channels(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError, match="rgb_input.keras.*grayscale"):
        KerasClassifier(model_path=str(models["rgb"]))


@pytest.mark.parametrize("kind", ["keras", "tflite"])
def test_truncated_and_garbage_files(kind: str, models: dict[str, Path],
                                     tmp_path: Path) -> None:
    cls = KerasClassifier if kind == "keras" else TFLiteClassifier
    data = models[kind].read_bytes()
    truncated = tmp_path / f"truncated.{kind}"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelError, match=f"truncated.{kind}"):
        cls(model_path=str(truncated))
    garbage = tmp_path / f"garbage.{kind}"
    garbage.write_bytes(b"\x00not a model\xff" * 64)
    with pytest.raises(ModelError, match=f"garbage.{kind}"):
        cls(model_path=str(garbage))


@pytest.mark.parametrize("cls", [KerasClassifier, TFLiteClassifier])
def test_missing_file_names_model_path(cls: type, tmp_path: Path) -> None:
    missing = tmp_path / "nope.model"
    with pytest.raises(FileNotFoundError, match="model_path") as info:
        cls(model_path=str(missing))
    assert "nope.model" in str(info.value)


def test_tflite_float32_parity(keras_clf: KerasClassifier, models: dict[str, Path]) -> None:
    clf = TFLiteClassifier(model_path=str(models["tflite"]), num_threads=1)
    assert clf.name == "tflite" and clf.input_size == (48, 48)
    resizes = []
    original = clf._interp.resize_tensor_input

    def counting_resize(*args: object, **kwargs: object) -> None:
        resizes.append(args[1])
        original(*args, **kwargs)

    clf._interp.resize_tensor_input = counting_resize
    for n in (1, 3, 3, 2, 1):  # batch size changes force resizes, repeats do not
        batch = _batch(n, seed=n)
        np.testing.assert_allclose(clf.predict(batch), keras_clf.predict(batch), atol=1e-4)
    assert [list(shape)[0] for shape in resizes] == [3, 2, 1]
    assert clf.predict(np.zeros((0, 48, 48, 1), np.float32)).shape == (0, 7)


def test_tflite_int8_model(keras_clf: KerasClassifier, models: dict[str, Path]) -> None:
    clf = TFLiteClassifier(model_path=str(models["int8"]))
    assert clf._in_dtype == np.int8 and clf._out_dtype == np.int8
    batch = _batch(4, seed=9)
    probs = clf.predict(batch)
    assert probs.shape == (4, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.05)
    np.testing.assert_allclose(probs, keras_clf.predict(batch), atol=0.05)
    _, valid = clf.classify([np.full((60, 60), 128, np.uint8)])
    assert valid.tolist() == [True]


def test_tflite_wrong_class_count(models: dict[str, Path], tmp_path: Path) -> None:
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.saving.load_model(models["five"]))
    path = tmp_path / "five.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(ModelError, match="five.tflite") as info:
        TFLiteClassifier(model_path=str(path))
    assert "5 classes" in str(info.value)


@pytest.mark.parametrize("cls, kwargs, name", [
    (KerasClassifier, dict(threads=-1), "threads"),
    (KerasClassifier, dict(max_batch=0), "max_batch"),
    (TFLiteClassifier, dict(num_threads=-2), "num_threads"),
])
def test_parameter_errors(cls: type, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


# --- model lookup ---------------------------------------------------------------------------

@pytest.fixture
def lookup_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    share, source = tmp_path / "share_models", tmp_path / "source_models"
    share.mkdir()
    source.mkdir()
    monkeypatch.setattr(model_lookup, "_share_models_dir", lambda: (share, ""))
    monkeypatch.setattr(model_lookup, "source_models_dir", lambda: source)
    return share, source


def test_find_model_order(lookup_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    share, source = lookup_dirs
    (source / "m.keras").write_bytes(b"x")
    assert find_model("m.keras") == source / "m.keras"
    (share / "m.keras").write_bytes(b"x")
    assert find_model("m.keras") == share / "m.keras"
    explicit = tmp_path / "mine.keras"
    explicit.write_bytes(b"x")
    assert find_model("m.keras", str(explicit)) == explicit.resolve()


def test_find_model_takes_a_bare_name_as_a_shipped_model(lookup_dirs: tuple[Path, Path],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    share, source = lookup_dirs
    monkeypatch.chdir(tmp_path)
    (source / "other.tflite").write_bytes(b"x")
    assert find_model("m.keras", "other.tflite") == source / "other.tflite"
    (share / "other.tflite").write_bytes(b"x")
    assert find_model("m.keras", "other.tflite") == share / "other.tflite"
    (tmp_path / "other.tflite").write_bytes(b"x")  # a file in the working directory wins
    assert find_model("m.keras", "other.tflite") == (tmp_path / "other.tflite").resolve()
    with pytest.raises(FileNotFoundError, match="nor in the shipped models") as info:
        find_model("m.keras", "absent.tflite")
    assert str(share) in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist; set"):  # a path: no lookup
        find_model("m.keras", "sub/other.tflite")


def test_find_model_errors(lookup_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    share, source = lookup_dirs
    with pytest.raises(FileNotFoundError, match="model_path") as info:
        find_model("absent.keras")
    assert str(share / "absent.keras") in str(info.value)
    assert str(source / "absent.keras") in str(info.value)
    with pytest.raises(FileNotFoundError, match="model_path 'nowhere.keras' does not exist"):
        find_model("absent.keras", "nowhere.keras")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        find_model("absent.keras", str(tmp_path))


def test_find_model_without_ament_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMENT_PREFIX_PATH", "/nonexistent_prefix")
    with pytest.raises(FileNotFoundError) as info:
        find_model("surely_absent_model.tflite")
    text = str(info.value)
    assert "ament index" in text and str(model_lookup.source_models_dir()) in text


def test_default_models_found_by_lookup(lookup_dirs: tuple[Path, Path],
                                        models: dict[str, Path]) -> None:
    _, source = lookup_dirs
    assert (DEFAULT_KERAS_MODEL, DEFAULT_TFLITE_MODEL) == (
        "emotion_net.keras", "emotion_net_int8.tflite")
    with pytest.raises(FileNotFoundError, match="emotion_net.keras"):
        KerasClassifier()
    (source / DEFAULT_KERAS_MODEL).write_bytes(models["keras"].read_bytes())
    (source / DEFAULT_TFLITE_MODEL).write_bytes(models["int8"].read_bytes())
    assert KerasClassifier().path == source / DEFAULT_KERAS_MODEL
    assert TFLiteClassifier().path == source / DEFAULT_TFLITE_MODEL


def test_mirror_tta_averages_face_and_mirror(models: dict[str, Path]) -> None:
    clf = KerasClassifier(model_path=str(models["keras"]))
    rng = np.random.default_rng(5)
    crops = [rng.integers(0, 255, (60, 60), dtype=np.uint8) for _ in range(3)]
    plain, _ = clf.classify(crops)
    mirrored, _ = clf.classify([c[:, ::-1] for c in crops])
    clf.tta_mirror = True
    tta, valid = clf.classify(crops)
    assert valid.all() and tta.shape == (3, 7)
    np.testing.assert_allclose(tta, (plain + mirrored) / 2, atol=1e-5)
    tta_of_mirror, _ = clf.classify([c[:, ::-1] for c in crops])
    np.testing.assert_allclose(tta_of_mirror, tta, atol=1e-5)  # mirror-invariant by design


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, H, W, C) ``a`` moved so that out[y, x] = a[y + dy, x + dx], edges repeated."""
    h, w = a.shape[1:3]
    rows = np.clip(np.arange(h) + dy, 0, h - 1)
    cols = np.clip(np.arange(w) + dx, 0, w - 1)
    return a[:, rows][:, :, cols]


def test_tta_views_are_the_mirrored_and_shifted_faces() -> None:
    x = _batch(3, seed=7)
    assert tta_view_count(False, 0) == 1 and tta_view_count(True, 0) == 2
    assert tta_view_count(False, 2) == 5 and tta_view_count(True, 3) == 10
    assert tta_views(x) is x
    views = tta_views(x, mirror=True, shift=3)
    assert views.shape == (30, 48, 48, 1) and views.flags["C_CONTIGUOUS"]
    expected = [_shifted(base, dy, dx) for base in (x, x[:, :, ::-1])
                for dy, dx in ((0, 0), (3, 0), (-3, 0), (0, 3), (0, -3))]
    np.testing.assert_array_equal(views, np.concatenate(expected))
    assert not np.array_equal(expected[1], x)  # the shifted views really differ
    probs = np.arange(30 * 2, dtype=np.float32).reshape(30, 2)
    merged = merge_tta(probs, 10)
    np.testing.assert_allclose(merged, probs.reshape(10, 3, 2).mean(axis=0))
    for bad in (-1, 24):
        with pytest.raises(ValueError, match="shift"):
            tta_views(x, shift=bad)
    with pytest.raises(ValueError, match="views"):
        merge_tta(probs[:29], 10)
    with pytest.raises(ValueError, match="N, H, W, C"):
        tta_views(x[0], mirror=True)


def test_shift_tta_averages_all_views(models: dict[str, Path]) -> None:
    clf = KerasClassifier(model_path=str(models["keras"]))
    rng = np.random.default_rng(6)
    crops = [rng.integers(0, 255, (60, 60), dtype=np.uint8) for _ in range(2)]
    x = preprocess_faces(crops)
    clf.tta_mirror, clf.tta_shift = True, 2
    tta, valid = clf.classify(crops)
    views = [_shifted(base, dy, dx) for base in (x, x[:, :, ::-1])
             for dy, dx in ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))]
    expected = np.mean([clf.predict(v) for v in views], axis=0)
    assert valid.all()
    np.testing.assert_allclose(tta, expected / expected.sum(1, keepdims=True), atol=1e-5)
    clf.tta_mirror = False
    only_shift, _ = clf.classify(crops)
    np.testing.assert_allclose(only_shift, np.mean([clf.predict(v) for v in views[:5]], 0),
                               atol=1e-5)
    assert np.abs(only_shift - tta).max() > 1e-4


def _truncated_copies(src: Path, folder: Path) -> list[Path]:
    """Copies of a .keras file cut at several points, emptied, and with a flipped byte."""
    data = src.read_bytes()
    out = []
    for frac in (0.0, 0.1, 0.5, 0.99):
        path = folder / f"cut_{int(frac * 100)}.keras"
        path.write_bytes(data[:int(len(data) * frac)])
        out.append(path)
    flipped = bytearray(data)
    # a byte inside the first archive member's data (after its local header): CRC mismatch
    flipped[len(flipped) // 3] ^= 0xFF
    out.append(folder / "flipped.keras")
    out[-1].write_bytes(bytes(flipped))
    return out


def test_truncated_keras_files_are_named_as_truncated_not_missing(tiny_model_path: Path,
                                                                  tmp_path: Path) -> None:
    """Keras says "File not found" for a cut .keras archive; every loader says what is wrong."""
    from emotion_perception.core.model_lookup import check_keras_archive, load_keras_model
    from emotion_perception.core.smoothing.lstm import LstmSmoother
    from emotion_perception.nodes.debug_image_node import load_cam_extractor

    check_keras_archive(tiny_model_path)  # the intact file passes
    assert load_keras_model(tiny_model_path) is not None
    loaders = {"model_path": lambda p: KerasClassifier(model_path=str(p)),
               "lstm.model_path": lambda p: LstmSmoother(model_path=str(p), window=8),
               "cam_model_path": lambda p: load_cam_extractor(str(p))}
    for path in _truncated_copies(tiny_model_path, tmp_path):
        for parameter, load in loaders.items():
            with pytest.raises((ModelError, ValueError)) as info:
                load(path)
            text = str(info.value)
            assert str(path) in text and parameter in text, text
            assert "not found" not in text.lower(), text
            assert any(w in text for w in ("truncated", "corrupt", "empty")), text


def test_non_zip_keras_file_says_what_it_is(tmp_path: Path) -> None:
    from emotion_perception.core.model_lookup import check_keras_archive

    h5 = tmp_path / "legacy.keras"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ValueError, match="HDF5"):
        check_keras_archive(h5)
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a zip archive"):
        check_keras_archive(text)
    check_keras_archive(tmp_path / "ignored.h5")  # other suffixes are left to Keras

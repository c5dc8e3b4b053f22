"""Tests of the temporal pipeline: sequence generation, LSTM training, benchmark and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotion_perception.core.classes import NUM_CLASSES
from emotion_training import temporal as T

keras = pytest.importorskip("keras")

QUIET = {"rotation_deg": 0.0, "zoom": 0.0, "shift": 0.0, "brightness": 0.0, "contrast": 0.0,
         "blur_prob": 0.0, "noise_std_max": 0.0, "occlusion_rate": 0.0}


def synthetic_faces(n: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return n random uint8 48x48 'faces' and labels cycling through the 7 classes.

    The brightness of a face grows with its class, so a classifier can tell them apart.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    base = (labels[:, None, None] * 30 + 20).astype(np.float64)
    images = np.clip(base + rng.normal(0, 8, (n, 48, 48)), 0, 255).astype(np.uint8)
    return images, labels


def brightness_classifier(batch: np.ndarray) -> np.ndarray:
    """A deterministic stand-in classifier: softmax of -(mean brightness - class centre)^2."""
    mean = batch.reshape(len(batch), -1).mean(axis=1) * 255.0
    centres = np.arange(NUM_CLASSES) * 30 + 20
    logits = -((mean[:, None] - centres[None]) / 15.0) ** 2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def tiny_cnn(seed: int = 0):
    """Return a tiny untrained Keras classifier of 48x48x1 faces."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(2, 3, strides=4, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))


def test_sequences_shapes_switching_and_targets() -> None:
    images, labels = synthetic_faces()
    cfg = T.SequenceConfig(frames=20, min_segment=5, switch_prob=0.6)
    seqs = T.make_sequences(images, labels, tiny_cnn().predict_on_batch, 12, cfg, seed=3,
                            chunk=5)
    assert seqs.probs.shape == (12, 20, NUM_CLASSES) and seqs.probs.dtype == np.float32
    assert seqs.labels.shape == seqs.stamps.shape == (12, 20)
    np.testing.assert_allclose(seqs.probs.sum(axis=-1), 1.0, atol=1e-5)
    assert (np.diff(seqs.stamps, axis=1) > 0).all()
    assert (seqs.stamps[:, 0] == 0).all()
    switched = seqs.switch_frame >= 0
    assert 0 < switched.sum() < 12
    for s in range(12):
        a, b = seqs.source[s]
        k = seqs.switch_frame[s]
        if k < 0:
            assert b == -1
            assert (seqs.labels[s] == labels[a]).all()
        else:
            assert 5 <= k <= 15
            assert labels[b] != labels[a]
            assert (seqs.labels[s, :k] == labels[a]).all()
            assert (seqs.labels[s, k:] == labels[b]).all()
    # the perturbation makes every frame different: outputs vary inside a segment
    assert np.ptp(seqs.probs[:, :5], axis=1).max() > 1e-4


def test_probabilities_are_the_classifier_output_on_the_current_frame() -> None:
    images, labels = synthetic_faces()
    cfg = T.SequenceConfig(frames=16, min_segment=4, switch_prob=1.0, **QUIET)
    seqs = T.make_sequences(images, labels, brightness_classifier, 6, cfg, seed=1)
    from emotion_perception.core.preprocessing import preprocess_faces

    for s in range(6):
        a, b = seqs.source[s]
        k = seqs.switch_frame[s]
        # without perturbation each frame is the (possibly mirrored) face; mirroring keeps
        # the mean brightness, so the stand-in's output is the same either way
        want_a = brightness_classifier(preprocess_faces(images[[a]]))[0]
        want_b = brightness_classifier(preprocess_faces(images[[b]]))[0]
        np.testing.assert_allclose(seqs.probs[s, :k], np.tile(want_a, (k, 1)), atol=1e-5)
        np.testing.assert_allclose(seqs.probs[s, k:], np.tile(want_b, (16 - k, 1)), atol=1e-5)
    # and this classifier gets them right
    assert (seqs.probs.argmax(-1) == seqs.labels).all()


def test_sequences_are_reproducible_and_seed_dependent() -> None:
    images, labels = synthetic_faces()
    cfg = T.SequenceConfig(frames=12, min_segment=3)
    one = T.make_sequences(images, labels, brightness_classifier, 5, cfg, seed=7)
    two = T.make_sequences(images, labels, brightness_classifier, 5, cfg, seed=7)
    other = T.make_sequences(images, labels, brightness_classifier, 5, cfg, seed=8)
    for name in ("probs", "labels", "stamps", "switch_frame", "source"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert not np.array_equal(one.probs, other.probs)


def test_sequence_set_round_trip(tmp_path) -> None:
    images, labels = synthetic_faces()
    seqs = T.make_sequences(images, labels, brightness_classifier, 3,
                            T.SequenceConfig(frames=10, min_segment=2), seed=0, split="X")
    seqs.save(tmp_path / "s.npz")
    back = T.SequenceSet.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.probs, seqs.probs)
    np.testing.assert_array_equal(back.stamps, seqs.stamps)
    assert back.meta["split"] == "X" and back.meta["config"]["frames"] == 10
    with pytest.raises(FileNotFoundError, match="make"):
        T.SequenceSet.load(tmp_path / "missing.npz")


def test_stamps_follow_fps_with_jitter_and_drops() -> None:
    rng = np.random.default_rng(0)
    cfg = T.SequenceConfig(fps=10.0, stamp_jitter=0.1, drop_prob=0.2)
    t = T.make_stamps(rng, 2000, cfg)
    gaps = np.diff(t)
    assert gaps.min() >= 0.09 - 1e-12
    regular = gaps[gaps < 0.15]
    assert abs(regular.mean() - 0.1) < 0.005
    assert 0.15 < np.mean(gaps > 0.15) < 0.25


@pytest.mark.parametrize("kwargs", [{"frames": 1}, {"min_segment": 31}, {"fps": 0},
                                    {"class_sampling": "rare"}, {"occlusion_frames": (5, 2)}])
def test_sequence_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        T.SequenceConfig(**kwargs)


def test_config_yaml_matches_the_dataclasses(tmp_path) -> None:
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "configs" / "temporal.yaml"
    cfg = T.TemporalConfig.from_yaml(shipped)
    assert cfg.lstm.window == 16 and cfg.sequences.occlusion_frames == (3, 10)
    assert cfg.tta_mirror is True  # as the live classifier's default
    assert cfg.tta_mirror_over_time is True
    with pytest.raises(ValueError, match="tta_mirror"):
        T.TemporalConfig(tta_mirror="yes")
    assert cfg.tta_shift == 0
    for bad in (True, -1, 9, 1.5):
        with pytest.raises(ValueError, match="tta_shift"):
            T.TemporalConfig(tta_shift=bad)
    (tmp_path / "bad.yaml").write_text("lstm: {windw: 3}\n")
    with pytest.raises(ValueError, match="windw"):
        T.TemporalConfig.from_yaml(tmp_path / "bad.yaml")


def noisy_set(n: int, frames: int = 30, seed: int = 0) -> T.SequenceSet:
    """Return sequences with one switch and noisy probabilities favouring the truth."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, frames), np.int64)
    switch = rng.integers(frames // 4, frames - frames // 4, n)
    for s in range(n):
        a, b = rng.choice(NUM_CLASSES, 2, replace=False)
        labels[s] = np.where(np.arange(frames) < switch[s], a, b)
    logits = rng.normal(0, 1.0, (n, frames, NUM_CLASSES))
    logits += 1.5 * np.eye(NUM_CLASSES)[labels]
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    stamps = np.tile(np.arange(frames) / 15.0, (n, 1))
    source = np.zeros((n, 2), np.int64)
    return T.SequenceSet(probs.astype(np.float32), labels, stamps, switch, source,
                         {"split": "Training"})


def test_training_windows_match_the_runtime_layout() -> None:
    seqs = noisy_set(3, frames=10)
    x, y = T.training_windows(seqs, 4)
    assert x.shape == (30, 4, NUM_CLASSES) and y.shape == (30,)
    np.testing.assert_array_equal(x[0, :3], 0)                 # first frame: 3 padding rows
    np.testing.assert_array_equal(x[0, 3], seqs.probs[0, 0])
    np.testing.assert_array_equal(x[12, 0], 0)                 # frame 2: one padding row
    np.testing.assert_array_equal(x[12, 1:], seqs.probs[1, :3])
    np.testing.assert_array_equal(x[29], seqs.probs[2, 6:10])
    np.testing.assert_array_equal(y[10:20], seqs.labels[1])


def test_split_sequences_is_disjoint_and_seeded() -> None:
    tr, va = T.split_sequences(20, 0.25, seed=3)
    assert len(va) == 5 and len(tr) == 15 and not set(tr) & set(va)
    tr2, va2 = T.split_sequences(20, 0.25, seed=3)
    np.testing.assert_array_equal(va, va2)


def test_two_epochs_of_lstm_training_lower_the_loss(tmp_path) -> None:
    seqs = noisy_set(40, frames=30, seed=1)
    cfg = T.LstmConfig(window=8, units=8, epochs=2, batch_size=64, learning_rate=1e-2,
                       patience=5, val_fraction=0.2)
    model, summary = T.train_lstm(seqs, cfg, seed=0, out=tmp_path)
    h = summary["history"]
    assert summary["epochs_run"] == 2
    assert h["loss"][-1] < summary["initial_train_loss"]
    assert summary["best_val_loss"] < summary["initial_val_loss"]
    assert (tmp_path / T.LSTM_FILE).is_file()
    assert (tmp_path / "history.csv").read_text().count("\n") == 3
    # the saved model is what the runtime smoother loads
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    sm = LstmSmoother(model_path=str(tmp_path / T.LSTM_FILE), window=8)
    out = sm.update(0, 0.0, seqs.probs[0, 0])
    assert out.shape == (NUM_CLASSES,) and abs(out.sum() - 1) < 1e-5


def test_bench_compares_all_smoothers(tmp_path) -> None:
    train = noisy_set(30, seed=2)
    T.train_lstm(train, T.LstmConfig(window=8, units=8, epochs=2), seed=0, out=tmp_path)
    test = noisy_set(10, seed=3)
    result = T.bench(test, tmp_path / T.LSTM_FILE, T.BenchConfig(ema_tau=0.3))
    m = result["metrics"]
    assert list(m) == list(T.METHODS)
    for name in T.METHODS:
        assert result["outputs"][name].shape == test.probs.shape
        assert m[name]["transitions"] == 10
        assert m[name]["us_per_update"] > 0
    # smoothing cuts the flicker of these noisy sequences
    assert m["ema"]["flicker_per_s"] < m["none"]["flicker_per_s"] / 2
    assert m["hysteresis"]["flicker_per_s"] < m["none"]["flicker_per_s"] / 2
    np.testing.assert_allclose(result["outputs"]["none"], test.probs, atol=1e-6)
    table = T.markdown_table(m)
    assert table.count("\n") == 5 and "| lstm |" in table


def _tensorflow_backend() -> bool:
    from emotion_training.export import require_tensorflow_backend

    try:
        require_tensorflow_backend()
    except RuntimeError:
        return False
    return True


@pytest.mark.slow
def test_cli_end_to_end(tmp_path) -> None:
    images, labels = synthetic_faces(70, seed=4)
    usage = np.array(["Training"] * 49 + ["PublicTest"] * 21)
    np.savez(tmp_path / "faces.npz", images=images, labels=labels, usage=usage)
    tiny_cnn().save(tmp_path / "cnn.keras")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("train_sequences: 8\ntest_sequences: 4\n"
                   "sequences: {frames: 12, min_segment: 3}\n"
                   "lstm: {window: 6, units: 4, epochs: 1}\n")
    work = tmp_path / "work"
    rc = T.main(["all", "--config", str(cfg), "--out", str(work), "--data",
                 str(tmp_path / "faces.npz"), "--classifier", str(tmp_path / "cnn.keras"),
                 "--export", str(tmp_path / "export")])
    assert rc == 0
    for rel in ("sequences/train.npz", "sequences/test.npz", "sequences/example_frames.png",
                "lstm/emotion_lstm.keras", "lstm/train_summary.json", "bench/bench.json",
                "bench/bench.txt", "bench/bench.png"):
        assert (work / rel).is_file(), rel
    train = T.SequenceSet.load(work / "sequences" / "train.npz")
    test = T.SequenceSet.load(work / "sequences" / "test.npz")
    assert train.meta["split"] == "Training" and test.meta["split"] == "PublicTest"
    assert train.probs.shape == (8, 12, NUM_CLASSES) and len(test) == 4
    card = json.loads((tmp_path / "export" / "emotion_lstm.model_card.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert set(card["metrics"]) == set(T.METHODS)
    assert card["train_sequences"]["classifier_sha256"] == T.sha256_of(tmp_path / "cnn.keras")
    assert card["train_sequences"]["classifier_tta_mirror"] is True
    assert card["train_sequences"]["classifier"] == "cnn.keras"  # no local paths in cards
    assert card["benchmark_sequences"]["data"] == "faces.npz"
    assert (tmp_path / "export" / "emotion_lstm.keras").is_file()
    assert "| hysteresis |" in (tmp_path / "export" / "emotion_lstm.model_card.md").read_text()
    if _tensorflow_backend():  # the runtime's .tflite is exported and carded too
        card = json.loads((tmp_path / "export" / "emotion_lstm.model_card.json").read_text())
        tflite = tmp_path / "export" / "emotion_lstm.tflite"
        assert card["tflite"]["sha256"] == T.sha256_of(tflite)
    # benchmarking on training sequences is refused
    rc = T.main(["bench", "--out", str(work), "--test-sequences-file",
                 str(work / "sequences" / "train.npz")])
    assert rc == 2


def test_file_classifier_runs_keras_and_tflite_and_mirror_tta(tmp_path,
                                                              tflite_converter: None) -> None:
    from emotion_training.export import convert_to_tflite

    model = tiny_cnn(seed=3)
    model.save(tmp_path / "cnn.keras")
    (tmp_path / "cnn.tflite").write_bytes(convert_to_tflite(model, "float32"))
    faces = np.random.default_rng(1).random((5, 48, 48, 1), dtype=np.float32)
    plain = T.file_classifier(tmp_path / "cnn.keras")(faces)
    np.testing.assert_allclose(plain, model.predict_on_batch(faces), atol=1e-6)
    mirrored = T.file_classifier(tmp_path / "cnn.keras")(faces[:, :, ::-1])
    tta = T.file_classifier(tmp_path / "cnn.keras", tta_mirror=True)(faces)
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the model is not mirror-symmetric
    np.testing.assert_allclose(tta, 0.5 * (plain + mirrored), atol=1e-6)
    lite = T.file_classifier(tmp_path / "cnn.tflite", batch_size=2, tta_mirror=True)(faces)
    np.testing.assert_allclose(lite, tta, atol=1e-5)
    shifted = T.file_classifier(tmp_path / "cnn.keras", tta_mirror=True, tta_shift=1)(faces)
    from emotion_perception.core.preprocessing import tta_views
    views = model.predict_on_batch(tta_views(faces, True, 1))
    np.testing.assert_allclose(shifted, np.reshape(views, (10, 5, 7)).mean(0), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="absent"):
        T.file_classifier(tmp_path / "absent.tflite")


def test_over_time_sequences_match_the_live_classifiers_spread_mirror_tta(tmp_path):
    """The sequences the LSTM learns from spread mirror TTA over frames as the live node does."""
    from emotion_perception.core.classifiers.base import EmotionClassifier
    from emotion_perception.core.mirror_over_time import MirrorOverTime
    from emotion_perception.core.preprocessing import preprocess_faces

    model = tiny_cnn(seed=4)
    model.save(tmp_path / "cnn.keras")
    rng = np.random.default_rng(2)
    # two faces, each over 4 frames with a little noise; the second track switches to the
    # first face at its 3rd frame (a cut: both views again, as live)
    base = rng.integers(0, 256, (2, 48, 48)).astype(np.float32)
    which = [0, 0, 0, 0, 1, 1, 0, 0]
    crops = [np.clip(base[w] + rng.normal(0, 8, (48, 48)), 0, 255).astype(np.uint8)
             for w in which]
    batch = preprocess_faces(crops)
    spread = T.file_classifier(tmp_path / "cnn.keras", tta_mirror=True,
                               over_time_frames=4)(batch).reshape(2, 4, 7)

    class Live(EmotionClassifier):
        tta_mirror = True

        calls: list[int] = []

        def predict(self, x):
            self.calls.append(len(x))
            return model.predict_on_batch(x)

    live, mot = Live(), MirrorOverTime()
    for s in range(2):  # two tracks, one after the other
        for t in range(4):
            probs, valid = mot.classify(live, [crops[4 * s + t]], [("", s + 1)], [t / 15.0])
            assert valid.all()
            np.testing.assert_allclose(probs[0], spread[s, t], atol=1e-5)
    full = T.file_classifier(tmp_path / "cnn.keras", tta_mirror=True)(batch).reshape(2, 4, 7)
    np.testing.assert_allclose(spread[:, 0], full[:, 0], atol=1e-6)  # a new track: both views
    np.testing.assert_allclose(spread[1, 2], full[1, 2], atol=1e-6)  # the cut: both views
    assert not np.allclose(spread[0, 1:], full[0, 1:], atol=1e-4)
    assert live.calls == [2, 1, 1, 1, 2, 1, 2, 1]
    with pytest.raises(ValueError, match="whole sequences"):
        T.file_classifier(tmp_path / "cnn.keras", tta_mirror=True, over_time_frames=3)(batch)

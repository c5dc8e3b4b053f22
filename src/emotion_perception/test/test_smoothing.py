"""Unit tests of the temporal smoothers (none, ema, hysteresis, lstm)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emotion_perception.core import plugins
from emotion_perception.core.classes import NUM_CLASSES
from emotion_perception.core.classifiers.base import ModelError
from emotion_perception.core.smoothing.base import Smoother
from emotion_perception.core.smoothing.simple import (
    EmaSmoother, HysteresisSmoother, NoSmoother, run_sequence)

FPS = 15.0


def noisy_sequence(seed: int, n: int = 90, switch: int = 45, a: int = 3, b: int = 4,
                   noise: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (stamps, probs (n, 7), true labels): class a, then b from ``switch`` on.

    Logits favour the true class by 1.5 and carry Gaussian noise, so the per-frame argmax is
    right most of the time and flickers often.
    """
    rng = np.random.default_rng(seed)
    truth = np.where(np.arange(n) < switch, a, b)
    logits = rng.normal(0.0, noise, (n, NUM_CLASSES))
    logits[np.arange(n), truth] += 1.5
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    stamps = np.arange(n) / FPS
    return stamps, probs, truth


def changes(labels: np.ndarray) -> int:
    """Return the number of label changes between consecutive frames."""
    return int(np.sum(labels[1:] != labels[:-1]))


def assert_prob_vector(p: np.ndarray) -> None:
    """Assert that ``p`` is a finite float32 (7,) probability vector."""
    assert p.shape == (NUM_CLASSES,)
    assert p.dtype == np.float32
    assert np.isfinite(p).all()
    assert (p >= 0).all()
    assert abs(float(p.sum()) - 1.0) < 1e-5


SIMPLE = [NoSmoother, EmaSmoother, HysteresisSmoother]
SMOOTHING = [lambda: EmaSmoother(tau=0.3), lambda: HysteresisSmoother(window=7)]


@pytest.mark.parametrize("make", SMOOTHING, ids=["ema", "hysteresis"])
def test_smoothers_cut_label_changes(make) -> None:
    total_raw = total_smooth = 0
    hits_raw = hits_smooth = 0
    for seed in range(5):
        stamps, probs, truth = noisy_sequence(seed)
        raw = run_sequence(NoSmoother(), stamps, probs).argmax(axis=1)
        smooth = run_sequence(make(), stamps, probs).argmax(axis=1)
        total_raw += changes(raw)
        total_smooth += changes(smooth)
        hits_raw += int((raw == truth).sum())
        hits_smooth += int((smooth == truth).sum())
        # the smoother follows the true change: the last 20 frames (1.3 s) are mostly right
        assert (smooth[-20:] == truth[-1]).mean() >= 0.9
    assert total_raw > 100  # the test data really flickers (about 60 changes per sequence)
    assert total_smooth < total_raw / 4
    assert hits_smooth > hits_raw


@pytest.mark.parametrize("cls", SIMPLE)
def test_outputs_are_probability_vectors(cls) -> None:
    rng = np.random.default_rng(1)
    sm = cls()
    for i in range(50):
        p = rng.dirichlet(np.full(NUM_CLASSES, 0.3)) * rng.uniform(0.5, 2.0)  # not normalised
        p[rng.integers(NUM_CLASSES)] = 0.0
        if p.sum() == 0:
            p[0] = 1.0
        assert_prob_vector(sm.update(i % 3, i / FPS, p))
    # an extreme one-hot and a nearly-zero vector
    assert_prob_vector(sm.update(0, 100.0, np.eye(NUM_CLASSES)[2]))
    assert_prob_vector(sm.update(0, 100.05, np.full(NUM_CLASSES, 1e-30)))


@pytest.mark.parametrize("cls", SIMPLE)
@pytest.mark.parametrize("bad", [
    [math.nan] + [0.1] * 6, [math.inf] + [0.1] * 6, [-0.1] + [0.2] * 6, [0.0] * 7, [0.5] * 6])
def test_invalid_vectors_raise_and_leave_state(cls, bad) -> None:
    sm = cls()
    first = sm.update(1, 0.0, np.eye(NUM_CLASSES)[0])
    with pytest.raises(ValueError):
        sm.update(1, 0.1, np.array(bad))
    # the state is untouched: the same next observation gives the same output as on a
    # smoother that never saw the bad vector
    ref = cls()
    ref.update(1, 0.0, np.eye(NUM_CLASSES)[0])
    p = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    np.testing.assert_array_equal(sm.update(1, 0.2, p), ref.update(1, 0.2, p))
    assert first.argmax() == 0


def test_nan_stamp_raises() -> None:
    with pytest.raises(ValueError, match="stamp"):
        EmaSmoother().update(0, math.nan, np.eye(NUM_CLASSES)[0])


def test_ema_time_constant_with_irregular_dt() -> None:
    tau = 0.4
    sm = EmaSmoother(tau=tau, max_gap=10.0)
    a, b = np.eye(NUM_CLASSES)[0], np.eye(NUM_CLASSES)[1]
    np.testing.assert_allclose(sm.update(7, 10.0, a), a)  # first observation passes through
    stamps = [10.0, 10.05, 10.3, 10.31, 10.9, 11.0]
    expected = a.copy()
    for prev, now in zip(stamps[:-1], stamps[1:]):
        alpha = 1.0 - math.exp(-(now - prev) / tau)
        expected = expected + alpha * (b - expected)
        np.testing.assert_allclose(sm.update(7, now, b), expected, rtol=1e-6, atol=1e-7)
    # after a total time T of constant input, the old class keeps exp(-T / tau) of its mass
    assert math.isclose(expected[0], math.exp(-(stamps[-1] - stamps[0]) / tau), rel_tol=1e-9)
    # an equal stamp carries no weight
    np.testing.assert_allclose(sm.update(7, 11.0, a), expected, rtol=1e-6)


def test_ema_step_response_is_frame_rate_independent() -> None:
    a, b = np.eye(NUM_CLASSES)[0], np.eye(NUM_CLASSES)[5]
    results = []
    for fps in (8.0, 30.0):
        sm = EmaSmoother(tau=0.5)
        sm.update(0, 0.0, a)
        n = int(round(0.5 * fps))
        for i in range(1, n + 1):
            out = sm.update(0, i / fps, b)
        results.append(out[5])
    np.testing.assert_allclose(results, 1.0 - math.exp(-1.0), rtol=1e-5)


@pytest.mark.parametrize("cls", [EmaSmoother, HysteresisSmoother])
def test_gap_and_backwards_stamp_restart_the_track(cls) -> None:
    a, b = np.eye(NUM_CLASSES)[0], np.eye(NUM_CLASSES)[1]
    sm = cls(max_gap=0.5)
    for i in range(10):
        sm.update(3, i * 0.1, a)
    # within max_gap the old state dominates
    assert sm.update(3, 1.0, b).argmax() == 0
    # a gap longer than max_gap: the new vector passes through as on a fresh track
    np.testing.assert_allclose(sm.update(3, 1.6, b), b, atol=1e-6)
    assert sm.resets == 1
    for i in range(5):
        sm.update(3, 1.7 + i * 0.1, b)
    # a stamp going backwards: fresh again
    np.testing.assert_allclose(sm.update(3, 0.2, a), a, atol=1e-6)
    assert sm.resets == 2


def test_gap_equal_to_max_gap_is_kept() -> None:
    sm = EmaSmoother(tau=0.5, max_gap=0.5)
    a, b = np.eye(NUM_CLASSES)[0], np.eye(NUM_CLASSES)[1]
    sm.update(0, 0.0, a)
    out = sm.update(0, 0.5, b)
    assert sm.resets == 0
    np.testing.assert_allclose(out[1], 1.0 - math.exp(-1.0), rtol=1e-6)


@pytest.mark.parametrize("cls", [EmaSmoother, HysteresisSmoother])
def test_tracks_are_independent_drop_and_prune(cls) -> None:
    sm = cls(max_gap=1.0)
    a, b = np.eye(NUM_CLASSES)[0], np.eye(NUM_CLASSES)[1]
    for i in range(5):
        sm.update(1, i * 0.1, a)
        sm.update(2, i * 0.1, b)
    assert sm.update(1, 0.5, b).argmax() == 0
    assert sm.update(2, 0.5, a).argmax() == 1
    sm.drop(1)
    sm.drop(99)  # unknown ids are fine
    assert sm.track_ids == [2]
    np.testing.assert_allclose(sm.update(1, 0.6, b), b, atol=1e-6)  # fresh after drop
    sm.update(2, 1.2, a)
    sm.prune(2.0)   # track 1 last seen at 0.6 (> 1 s ago), track 2 at 1.2 (0.8 s ago)
    assert sm.track_ids == [2]
    sm.prune(2.3)
    assert len(sm) == 0


@pytest.mark.parametrize("cls", [EmaSmoother, HysteresisSmoother])
def test_many_tracks_are_bounded_lru(cls) -> None:
    sm = cls(max_tracks=4)
    p = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    for fid in range(4):
        sm.update(fid, 0.0, p)
    sm.update(0, 0.1, p)         # 0 becomes the most recently updated
    for fid in range(10, 110):
        sm.update(fid, 0.2, p)
        assert len(sm) <= 4
    assert sm.track_ids == [106, 107, 108, 109]
    assert sm.evictions == 100
    sm2 = cls(max_tracks=3)
    for fid in range(4):
        sm2.update(fid, 0.0, p)
    sm2.update(1, 0.1, p)
    sm2.update(50, 0.2, p)        # evicts the least recently updated: 2
    assert sm2.track_ids == [3, 1, 50]


def test_no_smoother_keeps_no_state() -> None:
    sm = NoSmoother()
    p = np.array([1, 2, 3, 4, 5, 6, 7], float)
    for i in range(20):
        np.testing.assert_allclose(sm.update(i, 0.0, p), p / p.sum(), rtol=1e-6)
    assert len(sm) == 0
    sm.prune(10.0)
    sm.drop(3)


def test_update_many_matches_update() -> None:
    stamps, probs, _ = noisy_sequence(3, n=20)
    for cls in SIMPLE:
        one, many = cls(), cls()
        for t, p in zip(stamps, probs):
            expected = [one.update(1, t, p), one.update(2, t, p[::-1])]
            got = many.update_many([(1, t, p), (2, t, p[::-1])])
            for e, g in zip(expected, got):
                np.testing.assert_array_equal(e, g)


def test_hysteresis_holds_until_majority_and_reports_held_label() -> None:
    sm = HysteresisSmoother(window=5, margin=1.0)  # margin 1: only the majority rule switches
    a = np.array([0.6, 0.4, 0, 0, 0, 0, 0])
    b = np.array([0.4, 0.6, 0, 0, 0, 0, 0])
    for i in range(5):
        assert sm.update(0, i * 0.1, a).argmax() == 0
    labels = [int(sm.update(0, 0.5 + i * 0.1, b).argmax()) for i in range(5)]
    # [a a a a b], [a a a b b]: hold 0; [a a b b b]: 3 of 5 frames vote 1 -> switch
    assert labels == [0, 0, 1, 1, 1]
    # held label 0 against a mean favouring 1 (no majority, margin 1): the minimal convex mix
    sm2 = HysteresisSmoother(window=4, margin=1.0)
    a2 = np.array([0.5, 0.4, 0.1, 0, 0, 0, 0])
    b2 = np.array([0.0, 1.0, 0.0, 0, 0, 0, 0])
    for i, p in enumerate([a2, a2, b2, b2]):
        out = sm2.update(0, i * 0.1, p)
    mean = np.mean([a2, a2, b2, b2], axis=0)  # [0.25, 0.7, 0.05, ...]
    d = mean[1] - mean[0]
    eps = HysteresisSmoother.TIE_BREAK
    w = (d + eps) / (1 + d + eps)
    expected = (1 - w) * mean
    expected[0] += w
    assert out.argmax() == 0
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert 0 < out[0] - out[1] < 2 * eps


def test_hysteresis_margin_rule_and_plain_mean() -> None:
    sm = HysteresisSmoother(window=3, margin=0.2)
    a = np.array([0.5, 0.3, 0.2, 0, 0, 0, 0])
    c = np.array([0.0, 0.0, 1.0, 0, 0, 0, 0])
    sm.update(0, 0.0, a)
    sm.update(0, 0.1, a)
    out = sm.update(0, 0.2, c)  # mean [1/3, 0.2, 0.467]: 0.467 - 0.333 = 0.133 <= 0.2, hold
    assert out.argmax() == 0
    out = sm.update(0, 0.3, 0.5 * a + 0.5 * c)  # mean [0.25, 0.15, 0.6]: 0.35 > 0.2, switch
    np.testing.assert_allclose(out, np.mean([a, c, 0.5 * a + 0.5 * c], axis=0), rtol=1e-6)
    assert out.argmax() == 2


@pytest.mark.parametrize("kwargs", [
    {"max_gap": 0}, {"max_tracks": 0}, {"tau": 0}, {"tau": -1}, {"tau": math.inf}])
def test_ema_rejects_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        EmaSmoother(**kwargs)


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"window": 2.5}, {"margin": -0.1},
                                    {"margin": 1.5}])
def test_hysteresis_rejects_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HysteresisSmoother(**kwargs)


@pytest.mark.parametrize("name", ["none", "ema", "hysteresis"])
def test_plugins_load_builtin_smoothers(name) -> None:
    sm = plugins.create("smoother", name, max_gap=2.0)
    assert isinstance(sm, Smoother)
    assert sm.name == name
    assert sm.max_gap == 2.0


# ------------------------------------------------------------------------------- lstm
def tiny_lstm(window: int | None = 8, units: int = 4, seed: int = 0):
    """Build an untrained many-to-one masked LSTM over (window, 7) probability vectors."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(seed)
    inp = keras.Input((window, NUM_CLASSES))
    x = keras.layers.Masking(mask_value=0.0)(inp)
    x = keras.layers.LSTM(units)(x)
    out = keras.layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def lstm_file(tmp_path_factory):
    """Save a tiny window-8 LSTM; return its path."""
    path = tmp_path_factory.mktemp("lstm") / "tiny_lstm.keras"
    tiny_lstm(8).save(path)
    return path


def test_lstm_smoother_outputs_and_batching(lstm_file) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother, sliding_windows

    sm = LstmSmoother(model_path=str(lstm_file), window=8)
    keras = pytest.importorskip("keras")
    ref = keras.saving.load_model(lstm_file, compile=False)
    stamps, probs, _ = noisy_sequence(2, n=20)
    outs = []
    for t, p in zip(stamps, probs):
        got = sm.update_many([(1, t, p), (2, t, p[::-1])])
        for o in got:
            assert_prob_vector(o)
        outs.append(got[0])
    # the smoother's windows are exactly the training windows, and its output the model's
    windows = sliding_windows(probs, 8)
    np.testing.assert_allclose(sm.window_of(1), windows[-1], rtol=1e-6)
    expected = np.asarray(ref(windows, training=False))
    np.testing.assert_allclose(np.stack(outs), expected, rtol=1e-4, atol=1e-6)
    # single updates give the same as batched ones
    single = LstmSmoother(model_path=str(lstm_file), window=8)
    single_out = [single.update(1, t, p) for t, p in zip(stamps, probs)]
    np.testing.assert_allclose(np.stack(single_out), np.stack(outs), rtol=1e-5, atol=1e-7)


def test_lstm_window_matches_sliding_windows_after_wrap(lstm_file) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother, sliding_windows

    sm = LstmSmoother(model_path=str(lstm_file), window=8)
    _, probs, _ = noisy_sequence(4, n=13)
    windows = sliding_windows(probs, 8)
    for i, p in enumerate(probs):
        sm.update(0, i / FPS, p)
        np.testing.assert_allclose(sm.window_of(0), windows[i], rtol=1e-6)
    assert (windows[2, :5] == 0).all() and (windows[2, 5:] != 0).any()


def test_lstm_duplicate_ids_in_one_batch_are_sequential(lstm_file) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    _, probs, _ = noisy_sequence(5, n=3)
    a = LstmSmoother(model_path=str(lstm_file), window=8)
    b = LstmSmoother(model_path=str(lstm_file), window=8)
    got = a.update_many([(0, 0.0, probs[0]), (0, 0.1, probs[1]), (4, 0.1, probs[2])])
    want = [b.update(0, 0.0, probs[0]), b.update(0, 0.1, probs[1]), b.update(4, 0.1, probs[2])]
    np.testing.assert_allclose(np.stack(got), np.stack(want), rtol=1e-5, atol=1e-7)


def test_lstm_resets_bounds_and_validation(lstm_file) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    sm = LstmSmoother(model_path=str(lstm_file), window=8, max_gap=0.5, max_tracks=3)
    p = np.full(NUM_CLASSES, 1.0 / NUM_CLASSES)
    for i in range(5):
        sm.update(0, i * 0.1, p)
    sm.update(0, 2.0, p)       # gap: the window restarts with one frame
    assert (sm.window_of(0)[:-1] == 0).all()
    sm.update(0, 1.0, p)       # backwards: restarts again
    assert sm.resets == 2
    sm.update_many([(fid, 1.1, p) for fid in range(1, 10)])
    assert len(sm) == 3
    with pytest.raises(ValueError):
        sm.update_many([(20, 1.2, p), (21, 1.2, np.full(NUM_CLASSES, math.nan))])
    assert 20 not in sm.track_ids  # validated before any state changed
    assert sm.update_many([]) == []


def test_lstm_variable_length_model_accepts_any_window(tmp_path) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    path = tmp_path / "free.keras"
    tiny_lstm(None).save(path)
    sm = LstmSmoother(model_path=str(path), window=5)
    assert_prob_vector(sm.update(0, 0.0, np.eye(NUM_CLASSES)[3]))


def test_lstm_rejects_models_of_the_wrong_shape(tmp_path, lstm_file) -> None:
    from emotion_perception.core.smoothing.lstm import LstmSmoother

    keras = pytest.importorskip("keras")
    with pytest.raises(ModelError, match="tiny_lstm.keras"):
        LstmSmoother(model_path=str(lstm_file), window=16)  # the model is fixed at 8
    inp = keras.Input((8, 5))
    bad = keras.Model(inp, keras.layers.Dense(NUM_CLASSES)(keras.layers.Flatten()(inp)))
    bad.save(tmp_path / "five_classes.keras")
    with pytest.raises(ModelError, match="five_classes.keras"):
        LstmSmoother(model_path=str(tmp_path / "five_classes.keras"), window=8)
    inp = keras.Input((8, NUM_CLASSES))
    bad = keras.Model(inp, keras.layers.Dense(3)(keras.layers.LSTM(2)(inp)))
    bad.save(tmp_path / "three_out.keras")
    with pytest.raises(ModelError, match="three_out.keras"):
        LstmSmoother(model_path=str(tmp_path / "three_out.keras"), window=8)
    (tmp_path / "garbage.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="garbage.keras"):
        LstmSmoother(model_path=str(tmp_path / "garbage.keras"), window=8)
    with pytest.raises(FileNotFoundError, match="model_path"):
        LstmSmoother(model_path=str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match="window"):
        LstmSmoother(model_path=str(lstm_file), window=0)


def test_lstm_plugin_loads(lstm_file) -> None:
    sm = plugins.create("smoother", "lstm", model_path=str(lstm_file), window=8)
    assert sm.name == "lstm"
    assert_prob_vector(sm.update(0, 0.0, np.eye(NUM_CLASSES)[1]))

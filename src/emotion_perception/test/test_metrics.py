"""Unit tests of the metrics: temporal stability on hand-made sequences with known answers,
classification against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from emotion_perception.core.metrics import (
    accuracy, flicker_counts, flicker_rate, format_table, frame_durations,
    mean_transition_lag, summarize_sequences, transition_lag, transition_lags)


def stamps_at(fps: float, n: int, t0: float = 0.0) -> np.ndarray:
    """Return n regular stamps at ``fps``."""
    return t0 + np.arange(n) / fps


def test_flicker_example_from_the_definition() -> None:
    # 5 frames at 10 fps last 0.5 s; 2 changes (0->1, 1->0) within constant truth 0 -> 4 / s
    labels, truth = [0, 0, 1, 0, 0], [0] * 5
    assert flicker_counts(labels, stamps_at(10, 5), truth) == (2, pytest.approx(0.5))
    assert flicker_rate(labels, stamps_at(10, 5), truth) == pytest.approx(4.0)


def test_change_at_a_true_transition_is_not_flicker() -> None:
    truth = [0, 0, 0, 1, 1, 1]
    assert flicker_rate([0, 0, 0, 1, 1, 1], stamps_at(2, 6), truth) == 0.0
    # a late but clean switch is lag, not flicker
    assert flicker_counts([0, 0, 0, 0, 1, 1], stamps_at(2, 6), truth) == (0, pytest.approx(3.0))
    # the change at the transition (0 -> 2) is not counted; 2 -> 1 reaches the truth: needed
    assert flicker_counts([0, 0, 0, 2, 1, 1], stamps_at(2, 6), truth)[0] == 0
    # a detour through a wrong class: 2 changes in the segment, 1 of them needed
    assert flicker_counts([0, 0, 0, 0, 2, 1], stamps_at(2, 6), truth)[0] == 1
    assert flicker_counts([0, 0, 0, 2, 1, 2], stamps_at(2, 6), truth)[0] == 1
    # never reaching the true label: every change in the segment is flicker
    assert flicker_counts([0, 0, 0, 2, 0, 2], stamps_at(2, 6), truth)[0] == 2
    # an early switch: one change inside the first segment
    assert flicker_counts([0, 0, 1, 1, 1, 1], stamps_at(2, 6), truth)[0] == 1
    # a wrong start of the first segment that is then corrected is needed too
    assert flicker_counts([5, 0, 0, 1, 1, 1], stamps_at(2, 6), truth)[0] == 0
    # the examples of the module docstring, at 10 fps
    g = [0, 1, 1, 1, 1]
    assert flicker_rate([0, 0, 0, 1, 1], stamps_at(10, 5), g) == 0.0
    assert flicker_rate([0, 0, 2, 1, 1], stamps_at(10, 5), g) == pytest.approx(2.0)


def test_frame_durations_irregular() -> None:
    d = frame_durations([0.0, 0.1, 0.3, 0.4])
    np.testing.assert_allclose(d, [0.1, 0.2, 0.1, 0.1])
    assert frame_durations([5.0]).tolist() == [0.0]
    with pytest.raises(ValueError, match="increasing"):
        frame_durations([0.0, 0.2, 0.1])
    assert math.isnan(flicker_rate([1], [0.0], [1]))


def test_transition_lag_known_answers() -> None:
    truth = [0] * 4 + [2] * 8
    # switched exactly with the truth: lag 0
    assert transition_lag([0] * 4 + [2] * 8, truth) == ([0], 0)
    # 3 frames late
    assert transition_lag([0] * 7 + [2] * 5, truth) == ([3], 0)
    # right at frame 4 but not held for 3 frames: the first 3-frame run starts at frame 7
    y = [0, 0, 0, 0, 2, 2, 0, 2, 2, 2, 0, 0]
    assert transition_lag(y, truth, hold=3) == ([3], 0)
    assert transition_lag(y, truth, hold=1) == ([0], 0)
    assert transition_lag(y, truth, hold=2) == ([0], 0)
    # never reaches the new class: unresolved
    assert transition_lag([0] * 12, truth) == ([], 1)
    # only 2 right frames before the end of the sequence: unresolved with hold 3
    assert transition_lag([0] * 10 + [2] * 2, truth) == ([], 1)
    assert mean_transition_lag([0] * 7 + [2] * 5, truth) == 3.0
    assert math.isnan(mean_transition_lag([0] * 12, truth))
    # no transition at all
    assert transition_lag([1, 2, 3], [0, 0, 0]) == ([], 0)
    # per transition, in order, None where unresolved
    truth2 = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert transition_lags([0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2], truth2) == [None, 1]


def test_transition_lag_stops_at_the_next_transition() -> None:
    truth = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
    # class 1 is only reached in the class-2 segment: transition 0->1 is unresolved
    y = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    lags, unresolved = transition_lag(y, truth, hold=2)
    assert lags == [3]          # 1->2 at frame 5, first 2-frame run of 2 starts at frame 8
    assert unresolved == 1
    with pytest.raises(ValueError, match="hold"):
        transition_lag(y, truth, hold=0)
    with pytest.raises(ValueError, match="length"):
        transition_lag(y[:-1], truth)


def test_accuracy() -> None:
    assert accuracy([0, 1, 2, 3], [0, 1, 0, 0]) == 0.5
    assert accuracy(np.array([[1, 1], [1, 0]]), np.ones((2, 2))) == 0.75
    with pytest.raises(ValueError):
        accuracy([0, 1], [0, 1, 2])


def test_summarize_sequences_pools_counts_and_accepts_probabilities() -> None:
    truth = np.array([[0, 0, 0, 0, 0], [1, 1, 2, 2, 2]])
    stamps = np.stack([stamps_at(10, 5), stamps_at(10, 5, t0=3.0)])
    raw = np.array([[0, 1, 0, 1, 0], [1, 1, 1, 2, 2]])  # 4 flicker changes + 0; lag 1
    smooth = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]])  # never switches: unresolved
    probs = np.eye(7)[raw] * 0.9 + 0.1 / 7
    s = summarize_sequences(truth, stamps, {"raw": raw, "probs": probs, "smooth": smooth},
                            hold=2)
    np.testing.assert_equal(s["raw"], s["probs"])  # NaN counts as equal here
    r = s["raw"]
    assert r["changes"] == 4
    assert r["seconds"] == pytest.approx(1.0)
    assert r["flicker_per_s"] == pytest.approx(4.0)
    assert r["accuracy"] == pytest.approx(7 / 10)
    assert r["mean_lag_frames"] == 1.0
    assert r["mean_lag_s"] == pytest.approx(0.1)
    assert (r["transitions"], r["unresolved"]) == (1, 0)
    m = s["smooth"]
    assert m["changes"] == 0 and m["flicker_per_s"] == 0.0
    assert (m["transitions"], m["unresolved"]) == (1, 1)
    assert math.isnan(m["mean_lag_frames"])
    # lag over the transitions every method resolves: none here (smooth resolves nothing)
    assert r["common_transitions"] == 0 and math.isnan(r["mean_lag_common_frames"])
    both = summarize_sequences(truth, stamps, {"raw": raw, "late": np.array(
        [[0, 0, 0, 0, 0], [1, 1, 1, 1, 2]])}, hold=1)
    assert both["late"]["mean_lag_frames"] == 2.0
    assert both["raw"]["mean_lag_common_frames"] == 1.0
    assert both["late"]["mean_lag_common_s"] == pytest.approx(0.2)
    # a single sequence may be given as 1-D arrays
    one = summarize_sequences(truth[0], stamps[0], {"raw": raw[0]})
    assert one["raw"]["changes"] == 4
    with pytest.raises(ValueError, match="raw"):
        summarize_sequences(truth, stamps, {"raw": raw[:, :4]})


def test_format_table_is_aligned() -> None:
    truth = np.array([[0, 0, 1, 1, 1, 1]])
    stamps = stamps_at(5, 6)[None]
    s = summarize_sequences(truth, stamps, {"none": np.array([[0, 1, 0, 1, 1, 1]]),
                                            "hysteresis": np.zeros((1, 6), int)})
    table = format_table(s)
    lines = table.splitlines()
    assert lines[0].split()[0] == "method"
    assert len({len(line) for line in lines}) == 1      # every line equally wide
    assert lines[3].startswith("hysteresis") and "n/a" in lines[3]
    assert "flicker/s" in lines[0]


# --- classification metrics: the one implementation, checked against scikit-learn -----------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=80))
def test_classification_metrics_equal_scikit_learn(pairs) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    from emotion_perception.core.metrics import classification_metrics, confusion_matrix

    y_true = np.array([a for a, _ in pairs])
    y_pred = np.array([b for _, b in pairs])
    m = classification_metrics(confusion_matrix(y_true, y_pred))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro",
                                                      zero_division=0))
    labels = list(range(7))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                    zero_division=0)
    for i, name in enumerate(m["per_class"]):
        got = m["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (p[i], r[i], f[i], s[i]))
    np.testing.assert_array_equal(m["confusion_counts"],
                                  sk.confusion_matrix(y_true, y_pred, labels=labels))


def test_bag_and_training_evaluation_use_the_same_metrics() -> None:
    from emotion_perception.bags import evaluate as bag_eval
    from emotion_perception.core import metrics

    assert bag_eval.metrics.classification_metrics is metrics.classification_metrics
    training = pytest.importorskip("emotion_training.evaluate")
    assert training.classification_metrics is metrics.classification_metrics

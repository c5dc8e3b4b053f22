"""Metrics of emotion labels (pure NumPy): classification and temporal stability.

**Classification** (:func:`confusion_matrix`, :func:`classification_metrics`): the one
implementation used by training-side evaluation and bag evaluation. Macro-F1 is scikit-learn's
``f1_score(average="macro")``: the mean F1 over the classes that occur in the labels or the
predictions; a class never predicted has precision 0 (a test checks it against scikit-learn).

**Temporal stability**:

Definitions, for one sequence of ``T`` frames with predicted labels ``y``, true labels ``g``
and stamps ``t`` (seconds, increasing):

* **Segment**: a maximal run of frames over which the true label is constant.
* **Frame duration**: frame ``i`` lasts ``t[i+1] - t[i]``; the last frame lasts the median
  frame interval of the sequence. So 5 frames at 10 fps last 0.5 s.
* **Flicker** (:func:`flicker_rate`): the number of *unnecessary* predicted-label changes per
  second. Within each segment, count the changes ``y[i] != y[i-1]`` between two consecutive
  frames of that segment; if the segment's first prediction is wrong and the prediction reaches
  the segment's true label later, one change was needed to get there (that is lag, not
  flicker) and is not counted. Changes exactly at a true transition are not counted either.
  The count is divided by the summed duration of all frames. Examples at 10 fps:
  ``y = [0, 0, 1, 0, 0]``, ``g = [0] * 5``: 2 changes in 0.5 s = 4 changes/s;
  ``y = [0, 0, 0, 1, 1]``, ``g = [0, 1, 1, 1, 1]`` (a late but clean switch): 0 changes/s;
  ``y = [0, 0, 2, 1, 1]``, same ``g``: 1 of the 2 changes is flicker, 2 changes/s.
* **Transition lag** (:func:`transition_lags`, :func:`transition_lag`): for each true
  transition at frame ``k`` (where ``g[k] != g[k-1]``), the smallest ``j >= 0`` such that
  ``y[k+j : k+j+hold] == g[k]`` for all ``hold`` frames, inside the segment that starts at
  ``k``. A transition whose segment ends (next transition or end of sequence) before that
  happens is *unresolved* and reported separately, never averaged in.
* **Accuracy**: the fraction of frames with ``y == g``.

:func:`summarize_sequences` pools these over many sequences (sums of changes and durations,
all lags) for several prediction sets at once, e.g. raw vs smoothed; :func:`format_table`
prints the result as an aligned text table.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .classes import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Return the (classes, classes) count matrix; rows are true classes, columns predictions."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} must be in [0, {num_classes - 1}]")
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def classification_metrics(cm: np.ndarray, class_names: Sequence[str] = CLASS_NAMES
                           ) -> dict[str, Any]:
    """Derive accuracy, macro-F1 and per-class metrics from a count confusion matrix.

    Per class: precision, recall, F1, ``error_rate`` = 1 - recall (share of that class's faces
    classified as something else; None without support) and support. A class without
    predictions has precision 0.
    Macro-F1 averages F1 over the classes that occur in the labels or the predictions.
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]),
               "error_rate": float(1.0 - recall[i]) if support[i] > 0 else None,
               "support": int(support[i])}
        for i, name in enumerate(class_names)}
    rows = cm.sum(axis=1, keepdims=True)
    proportions = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    return {
        "n": int(total),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class": per_class,
        "confusion_counts": cm.astype(np.int64).tolist(),
        "confusion_proportions": np.round(proportions, 6).tolist(),
    }


def _labels(x: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"sequences differ in length: {lengths}")
    return next(iter(lengths.values()))


def frame_durations(stamps: np.ndarray | Sequence[float]) -> np.ndarray:
    """Return each frame's duration: the gap to the next stamp; the last gets the median gap."""
    t = np.asarray(stamps, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"stamps must be 1-D, got shape {t.shape}")
    if len(t) < 2:
        return np.zeros(len(t))
    gaps = np.diff(t)
    if not np.isfinite(t).all() or (gaps <= 0).any():
        raise ValueError("stamps must be finite and strictly increasing")
    return np.append(gaps, np.median(gaps))


def flicker_counts(labels: np.ndarray | Sequence[int], stamps: np.ndarray | Sequence[float],
                   true_labels: np.ndarray | Sequence[int]) -> tuple[int, float]:
    """Return (unnecessary label changes within constant-truth segments, total seconds)."""
    y, g = _labels(labels, "labels"), _labels(true_labels, "true_labels")
    t = np.asarray(stamps, dtype=np.float64)
    _same_length(labels=y, true_labels=g, stamps=t)
    seconds = float(frame_durations(t).sum())
    if len(y) == 0:
        return 0, seconds
    starts = np.concatenate([[0], np.flatnonzero(g[1:] != g[:-1]) + 1])
    ends = np.append(starts[1:], len(y))
    changes = 0
    for k, end in zip(starts, ends):
        seg = y[k:end]
        changes += int(np.sum(seg[1:] != seg[:-1]))
        if seg[0] != g[k] and (seg == g[k]).any():
            changes -= 1  # the one change needed to reach the true label is lag, not flicker
    return changes, seconds


def flicker_rate(labels: np.ndarray | Sequence[int], stamps: np.ndarray | Sequence[float],
                 true_labels: np.ndarray | Sequence[int]) -> float:
    """Return unnecessary predicted-label changes per second (see the module docstring).

    NaN when the sequence has no duration (fewer than two frames).
    """
    changes, seconds = flicker_counts(labels, stamps, true_labels)
    return changes / seconds if seconds > 0 else math.nan


def transition_lags(labels: np.ndarray | Sequence[int],
                    true_labels: np.ndarray | Sequence[int], hold: int = 3) -> list[int | None]:
    """Return the lag in frames of every true transition in order, None where unresolved.

    See the module docstring for the exact definition; ``hold`` >= 1 frames.
    """
    if hold < 1:
        raise ValueError(f"hold must be >= 1 frames, got {hold}")
    y, g = _labels(labels, "labels"), _labels(true_labels, "true_labels")
    n = _same_length(labels=y, true_labels=g)
    starts = np.flatnonzero(g[1:] != g[:-1]) + 1
    ends = np.append(starts[1:], n)
    out: list[int | None] = []
    for k, end in zip(starts, ends):
        hit = (y[k:end] == g[k]).astype(np.int64)
        if len(hit) < hold:
            out.append(None)
            continue
        # run[j] = number of hits in hit[j : j + hold]; resolved at the first full run
        csum = np.concatenate([[0], np.cumsum(hit)])
        run = csum[hold:] - csum[:-hold]
        full = np.flatnonzero(run == hold)
        out.append(int(full[0]) if len(full) else None)
    return out


def transition_lag(labels: np.ndarray | Sequence[int], true_labels: np.ndarray | Sequence[int],
                   hold: int = 3) -> tuple[list[int], int]:
    """Return (lags in frames of the resolved true transitions, number unresolved)."""
    lags = transition_lags(labels, true_labels, hold)
    resolved = [lag for lag in lags if lag is not None]
    return resolved, len(lags) - len(resolved)


def mean_transition_lag(labels: np.ndarray | Sequence[int],
                        true_labels: np.ndarray | Sequence[int], hold: int = 3) -> float:
    """Return the mean lag in frames of the resolved transitions (NaN if there are none)."""
    lags, _ = transition_lag(labels, true_labels, hold)
    return float(np.mean(lags)) if lags else math.nan


def accuracy(labels: np.ndarray | Sequence[int], true_labels: np.ndarray | Sequence[int]
             ) -> float:
    """Return the fraction of frames whose label equals the true label (NaN when empty)."""
    y = np.asarray(labels)
    g = np.asarray(true_labels)
    if y.shape != g.shape:
        raise ValueError(f"labels {y.shape} and true_labels {g.shape} differ in shape")
    return float(np.mean(y == g)) if y.size else math.nan


def _as_label_array(pred: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(pred)
    if arr.ndim == len(shape) + 1:
        arr = arr.argmax(axis=-1)
    if arr.shape != shape:
        raise ValueError(f"predictions {name!r} have shape {np.asarray(pred).shape}; expected "
                         f"labels {shape} or probabilities {shape + (7,)}")
    return arr


def summarize_sequences(true_labels: np.ndarray, stamps: np.ndarray,
                        predictions: Mapping[str, np.ndarray], hold: int = 3
                        ) -> dict[str, dict[str, float]]:
    """Pool the metrics over S sequences for each named prediction set.

    ``true_labels`` and ``stamps`` are (S, T) (or (T,) for one sequence); each prediction is
    (S, T) labels or (S, T, C) probabilities (argmax taken). Returns, per name: ``accuracy``,
    ``flicker_per_s`` (pooled changes / pooled seconds), ``changes``, ``seconds``,
    ``mean_lag_frames`` and ``median_lag_frames`` (over the transitions this prediction
    resolves), ``mean_lag_s`` (mean lag times the median frame interval), ``transitions``,
    ``unresolved``, and ``mean_lag_common_frames`` / ``mean_lag_common_s`` over the
    ``common_transitions`` that *every* prediction set resolves: methods that resolve more
    (harder) transitions are not penalised in that comparison.
    """
    g = np.asarray(true_labels)
    t = np.asarray(stamps, dtype=np.float64)
    if g.ndim == 1:
        g, t = g[None], t[None]
        predictions = {k: np.asarray(v)[None] for k, v in predictions.items()}
    if g.ndim != 2 or t.shape != g.shape:
        raise ValueError(f"true_labels {g.shape} and stamps {t.shape} must both be (S, T)")
    if not predictions:
        raise ValueError("predictions must name at least one prediction set")
    dt = float(np.median(np.diff(t, axis=1))) if g.shape[1] > 1 else math.nan
    out: dict[str, dict[str, float]] = {}
    all_lags: dict[str, list[int | None]] = {}
    for name, pred in predictions.items():
        y = _as_label_array(pred, g.shape, name)
        changes, seconds, lags_all = 0, 0.0, []
        for s in range(len(g)):
            c, sec = flicker_counts(y[s], t[s], g[s])
            changes += c
            seconds += sec
            lags_all += transition_lags(y[s], g[s], hold)
        all_lags[name] = lags_all
        lags = [lag for lag in lags_all if lag is not None]
        mean_lag = float(np.mean(lags)) if lags else math.nan
        out[name] = {
            "accuracy": accuracy(y, g),
            "flicker_per_s": changes / seconds if seconds > 0 else math.nan,
            "changes": int(changes),
            "seconds": float(seconds),
            "mean_lag_frames": mean_lag,
            "median_lag_frames": float(np.median(lags)) if lags else math.nan,
            "mean_lag_s": mean_lag * dt,
            "transitions": int(len(lags_all)),
            "unresolved": int(len(lags_all) - len(lags)),
        }
    n_trans = len(next(iter(all_lags.values())))
    common = [i for i in range(n_trans) if all(v[i] is not None for v in all_lags.values())]
    for name, lags_all in all_lags.items():
        m = float(np.mean([lags_all[i] for i in common])) if common else math.nan
        out[name]["common_transitions"] = len(common)
        out[name]["mean_lag_common_frames"] = m
        out[name]["mean_lag_common_s"] = m * dt
    return out


TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "accuracy", "{:.3f}"),
    ("flicker_per_s", "flicker/s", "{:.3f}"),
    ("mean_lag_frames", "lag (frames)", "{:.2f}"),
    ("mean_lag_common_frames", "lag common", "{:.2f}"),
    ("mean_lag_common_s", "lag common (s)", "{:.3f}"),
    ("unresolved", "unresolved", "{:d}"),
    ("transitions", "transitions", "{:d}"),
)


def format_table(summary: Mapping[str, Mapping[str, float]],
                 columns: Sequence[tuple[str, str, str]] = TABLE_COLUMNS) -> str:
    """Return ``summarize_sequences`` output as an aligned text table, one row per name."""
    header = ["method"] + [title for _, title, _ in columns]
    rows = [header]
    for name, m in summary.items():
        row = [name]
        for key, _, fmt in columns:
            v = m.get(key, math.nan)
            if isinstance(v, float) and math.isnan(v):
                row.append("n/a")
            else:
                row.append(fmt.format(int(v) if "d" in fmt else v))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for j, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def json_safe(x: Any) -> Any:
    """Return ``x`` with non-finite floats replaced by None (strict JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x

"""The smoother benchmark: runtime smoother classes on held-out sequences, table and plot."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from emotion_perception.core.classes import CLASS_NAMES, NUM_CLASSES
from emotion_perception.core.metrics import TABLE_COLUMNS

from .config import BenchConfig
from .synth import SequenceSet


def make_smoothers(lstm_path: str | Path | None, cfg: BenchConfig, max_tracks: int
                   ) -> dict[str, Any]:
    """Return the smoothers to compare, keyed by plugin name (``lstm`` only with a path)."""
    from emotion_perception.core.smoothing.simple import (
        EmaSmoother, HysteresisSmoother, NoSmoother)

    common = {"max_gap": cfg.max_gap, "max_tracks": max_tracks}
    out: dict[str, Any] = {
        "none": NoSmoother(**common),
        "ema": EmaSmoother(tau=cfg.ema_tau, **common),
        "hysteresis": HysteresisSmoother(window=cfg.hysteresis_window,
                                         margin=cfg.hysteresis_margin, **common),
    }
    if lstm_path:
        from emotion_perception.core.smoothing.lstm import LstmSmoother

        out["lstm"] = LstmSmoother(model_path=str(lstm_path), window=lstm_window(lstm_path),
                                   **common)
    return out


def lstm_window(path: str | Path) -> int:
    """Return the fixed window length a saved LSTM smoother model takes."""
    import keras

    model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    window = model.inputs[0].shape[1]
    if window is None:
        raise ValueError(f"{path}: the model takes any window length; expected a fixed one")
    return int(window)


def run_smoother(smoother: Any, seqs: SequenceSet, progress: bool = False
                 ) -> tuple[np.ndarray, float]:
    """Run all sequences as concurrent tracks, one ``update_many`` per frame.

    Returns the (S, T, 7) outputs and the mean wall time per track update in microseconds.
    """
    n, t_len = seqs.labels.shape
    out = np.zeros((n, t_len, NUM_CLASSES), np.float32)
    ids = list(range(n))
    frames = range(t_len)
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, desc=f"bench {smoother.name}", unit="frame", leave=False)
    elapsed = 0.0
    for t in frames:
        items = list(zip(ids, seqs.stamps[:, t].tolist(), seqs.probs[:, t]))
        t0 = time.perf_counter()
        res = smoother.update_many(items)
        elapsed += time.perf_counter() - t0
        out[:, t] = np.stack(res)
    return out, elapsed / (n * t_len) * 1e6


def bench(seqs: SequenceSet, lstm_path: str | Path | None, cfg: BenchConfig | None = None,
          progress: bool = False) -> dict[str, Any]:
    """Compare the smoothers on ``seqs``; return the metrics per method and their outputs."""
    from emotion_perception.core.metrics import summarize_sequences

    cfg = cfg or BenchConfig()
    smoothers = make_smoothers(lstm_path, cfg, max_tracks=len(seqs) + 1)
    outputs, timing = {}, {}
    for name, sm in smoothers.items():
        outputs[name], timing[name] = run_smoother(sm, seqs, progress)
    summary = summarize_sequences(seqs.labels, seqs.stamps, outputs, hold=cfg.hold)
    for name in summary:
        summary[name]["us_per_update"] = timing[name]
    return {"metrics": summary, "outputs": outputs}


BENCH_COLUMNS = TABLE_COLUMNS + (("us_per_update", "us/update", "{:.1f}"),)


def markdown_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Return the benchmark metrics as a Markdown table."""
    head = "| method | " + " | ".join(t for _, t, _ in BENCH_COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(BENCH_COLUMNS)
    rows = [head, sep]
    for name, m in metrics.items():
        cells = []
        for key, _, fmt in BENCH_COLUMNS:
            v = m.get(key, math.nan)
            cells.append("n/a" if isinstance(v, float) and math.isnan(v)
                         else fmt.format(int(v) if "d" in fmt else v))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_bench(seqs: SequenceSet, outputs: Mapping[str, np.ndarray],
               metrics: Mapping[str, Mapping[str, float]], path: Path, examples: int = 4
               ) -> None:
    """Write a PNG: labels over time of a few switching sequences, and the metric bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.flatnonzero(seqs.switch_frame >= 0)[:examples]
    if len(picks) == 0:
        picks = np.arange(min(examples, len(seqs)))
    names = list(outputs)
    fig, axes = plt.subplots(len(picks) + 1, 1, figsize=(10, 2.2 * (len(picks) + 1)),
                             squeeze=False)
    for ax, s in zip(axes[:-1, 0], picks):
        t = seqs.stamps[s]
        ax.step(t, seqs.labels[s], where="post", color="k", lw=3, alpha=0.35, label="truth")
        for j, name in enumerate(names):
            ax.step(t, outputs[name][s].argmax(axis=1) + 0.08 * (j - len(names) / 2),
                    where="post", lw=1.2, label=name)
        ax.set_yticks(range(NUM_CLASSES), CLASS_NAMES, fontsize=7)
        ax.set_title(f"sequence {s}", fontsize=9)
        ax.set_xlabel("s", fontsize=8)
    handles, legend_labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, fontsize=8, ncol=len(names) + 1, loc="upper center")
    ax = axes[-1, 0]
    x = np.arange(len(names))
    flicker = [metrics[n]["flicker_per_s"] for n in names]
    lag = [metrics[n]["mean_lag_frames"] for n in names]
    ax.bar(x - 0.2, flicker, 0.4, label="flicker (changes/s)")
    ax.bar(x + 0.2, lag, 0.4, label="mean lag (frames)")
    ax.set_xticks(x, [f"{n}\nacc {metrics[n]['accuracy']:.3f}" for n in names], fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Write an evaluation's outputs: report.json, predictions.json, summary.md and PNG plots.

The input is the JSON-ready report of :func:`.evaluate.score` and the per-frame predictions of
:func:`.evaluate.predictions_json`; plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

PLOTS = ("confusion.png", "recall.png", "latency.png", "timeline.png")


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return format(float(value), spec)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.1f} %"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _config_lines(report: dict[str, Any]) -> list[str]:
    cfg = report.get("config") or {}
    lines: list[str] = []
    if report.get("mode") == "predictions":
        lines.append(f"- Outputs recorded from the live graph: "
                     f"`{cfg.get('predictions_bag', '?')}` (`{cfg.get('emotion_topic', '')}`"
                     + (f", raw `{cfg['raw_topic']}`" if cfg.get("raw_topic") else "") + ")"
                     + (f", playback {cfg['playback']}" if cfg.get("playback") else ""))
        if not cfg.get("graph_params"):
            return lines
        cfg = cfg["graph_params"]
    det = cfg.get("face_detector", {})
    cls = cfg.get("emotion_classifier", {})
    smo = cfg.get("emotion_smoother", {})
    lines += [f"- Detector: `{det.get('detector', '?')}` (max_side {det.get('max_side')}, "
              f"crop_margin {det.get('crop_margin')}, tracking min_hits "
              f"{det.get('tracking.min_hits')}, max_misses {det.get('tracking.max_misses')})",
              f"- Classifier: `{cls.get('classifier', '?')}` (model "
              f"`{cls.get('model_path') or 'shipped default'}`)"]
    if report.get("smoother"):
        name = smo.get("smoother", report["smoother"])
        extra = ", ".join(f"{k} {v}" for k, v in smo.items() if k.startswith(f"{name}."))
        lines.append(f"- Smoother: `{name}`" + (f" ({extra})" if extra else ""))
    else:
        lines.append("- Smoother: none (per-frame outputs scored)")
    return lines


def summary_markdown(report: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """Return the markdown summary a team would read."""
    names = report["class_names"]
    counts = report["counts"]
    sets = report["metrics"]
    final = report["final_output"]
    lines = [f"# Emotion perception on `{Path(report['bag']).name}`", "",
             f"- Bag: `{report['bag']}` (images `{report['image_topic']}`, labels "
             f"`{report['label_topic'] or 'none'}`)",
             f"- Mode: {report['mode']} "
             + ("(the core run on the bag's images)" if report["mode"] == "offline" else
                "(outputs of the live graph, recorded during replay)")]
    lines += _config_lines(report)
    lines += [f"- Matching: {report['matching']}; unlabelled frames are not scored.", "",
              "## Results", ""]
    rows = []
    for name, m in sets.items():
        rows.append([name, _pct(m["accuracy"]), _pct(m["end_to_end_accuracy"]),
                     _pct(m["detection_rate"]), _pct(m["balanced_accuracy"]),
                     _fmt(m["macro_f1"]), _fmt(m["flicker_per_s"]),
                     _fmt(m["mean_lag_frames"], ".2f"), _fmt(m["mean_lag_s"]),
                     f"{m['unresolved']} / {m['transitions']}"])
    lines += _table(["output", "accuracy", "end-to-end acc.", "detection rate",
                     "balanced acc.", "macro F1", "flicker / s", "lag (frames)", "lag (s)",
                     "unresolved / transitions"], rows)
    lines += ["", "accuracy: over labelled frames with a detected face; end-to-end: frames "
              "without a face count as wrong. Flicker: unnecessary label changes per second "
              "within constant-label segments; lag: frames until a new true label is held for "
              f"{sets['raw']['lag_hold_frames']} frames.", "", "## Frames", ""]
    lines += _table(["frames", "labelled", "labelled 'no face'", "unlabelled", "no face found",
                     "one face", "several faces", "rejected images", "without output"],
                    [[counts["frames"], counts["labelled_frames"],
                      counts["labelled_no_face_frames"], counts["unlabelled_frames"],
                      counts["frames_no_face"], counts["frames_one_face"],
                      counts["frames_several_faces"], counts["frames_rejected"],
                      counts["frames_without_output"]]])
    m = sets[final]
    lines += ["", f"## Per class ({final} output)", ""]
    lines += _table(["class", "support", "precision", "recall", "F1", "missed (no face)"],
                    [[c, m["per_class"][c]["support"], _fmt(m["per_class"][c]["precision"]),
                      _fmt(m["per_class"][c]["recall"]), _fmt(m["per_class"][c]["f1"]),
                      m["per_class"][c]["missed"]] for c in names])
    lines += ["", f"## Confusion matrix ({final} output; rows true, columns predicted)", ""]
    conf = m["confusion"]
    lines += _table(["true \\ predicted"] + list(names) + ["no face"],
                    [[names[i]] + list(conf[i]) + [m["missed_per_class"][i]]
                     for i in range(len(names))])
    if report.get("latency_ms"):
        lines += ["", "## Latency per stage (ms, per frame)", ""]
        lines += _table(["stage", "mean", "p50", "p90", "p95", "p99", "max"],
                        [[stage] + [_fmt(v[k], ".2f") for k in
                                    ("mean", "p50", "p90", "p95", "p99", "max")]
                         for stage, v in report["latency_ms"].items()])
        lines += ["", f"Throughput: {_fmt(report.get('frames_per_s'), '.1f')} frames/s over "
                  f"{_fmt(report.get('elapsed_s'), '.1f')} s (this machine, one process)."]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def console_summary(report: dict[str, Any], out_dir: str | Path) -> str:
    """Return a few lines for the terminal."""
    counts = report["counts"]
    lines = [f"evaluated {counts['frames']} frames ({counts['labelled_frames']} labelled) of "
             f"{report['bag']} [{report['mode']}]"]
    for name, m in report["metrics"].items():
        lines.append(f"  {name:9s} accuracy {_pct(m['accuracy'])}, end-to-end "
                     f"{_pct(m['end_to_end_accuracy'])}, detection {_pct(m['detection_rate'])},"
                     f" flicker {_fmt(m['flicker_per_s'])}/s, lag "
                     f"{_fmt(m['mean_lag_frames'], '.2f')} frames")
    total = (report.get("latency_ms") or {}).get("total")
    if total:
        lines.append(f"  latency per frame: p50 {total['p50']:.1f} ms, p95 {total['p95']:.1f} ms")
    lines += [f"  note: {n}" for n in report.get("notes", [])]
    lines.append(f"  report: {Path(out_dir) / 'summary.md'}")
    return "\n".join(lines)


# -- plots ------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(report: dict[str, Any], path: Path) -> None:
    """Plot the final output's row-normalised confusion matrix with counts and no-face column."""
    plt = _plt()
    m = report["metrics"][report["final_output"]]
    conf = np.array(m["confusion"], np.float64)
    full = np.concatenate([conf, np.array(m["missed_per_class"], np.float64)[:, None]], axis=1)
    rows = full.sum(axis=1, keepdims=True)
    norm = np.divide(full, rows, out=np.zeros_like(full), where=rows > 0)
    names = report["class_names"]
    fig, ax = plt.subplots(figsize=(8, 6.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names) + 1), list(names) + ["no face"], rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(full.shape[0]):
        for j in range(full.shape[1]):
            if full[i, j]:
                ax.text(j, i, f"{int(full[i, j])}\n{norm[i, j]:.2f}", ha="center", va="center",
                        fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    ax.set_title(f"Confusion ({report['final_output']}), accuracy "
                 f"{_pct(m['accuracy'])}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_recall(report: dict[str, Any], path: Path) -> None:
    """Plot per-class recall bars of every output set."""
    plt = _plt()
    names = report["class_names"]
    sets = report["metrics"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(sets)
    for k, (name, m) in enumerate(sets.items()):
        values = [m["per_class"][c]["recall"] for c in names]
        values = [np.nan if v is None else v for v in values]
        ax.bar(np.arange(len(names)) + (k - (len(sets) - 1) / 2) * width, values, width,
               label=name)
    support = [sets["raw"]["per_class"][c]["support"] for c in names]
    ax.set_xticks(range(len(names)), [f"{c}\n(n={s})" for c, s in zip(names, support)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("recall")
    ax.set_title("Per-class recall (labelled frames with a detected face)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(timings_ms: dict[str, Sequence[float]], path: Path) -> None:
    """Plot a histogram of the per-frame time of every stage."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    data = {k: np.asarray(v, np.float64) for k, v in timings_ms.items() if len(v)}
    top = max(float(np.percentile(v, 99.5)) for v in data.values())
    bins = np.linspace(0, max(top, 1e-3), 60)
    for stage, values in data.items():
        ax.hist(np.clip(values, 0, bins[-1]), bins=bins, histtype="step", linewidth=1.5,
                label=f"{stage} (p50 {np.median(values):.1f} ms)")
    ax.set_xlabel("ms per frame (clipped at p99.5)")
    ax.set_ylabel("frames")
    ax.set_title("Latency per stage")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(predictions: dict[str, Any], path: Path, max_frames: int = 3000) -> None:
    """Plot the true vs the predicted label (largest face) over time, per frame and final."""
    plt = _plt()
    names = predictions["class_names"]
    frames = predictions["frames"][:max_frames]
    if not frames:
        return
    t0 = frames[0]["stamp_ns"]
    t = np.array([(f["stamp_ns"] - t0) * 1e-9 for f in frames])

    def top(faces: list[dict[str, Any]] | None) -> float:
        if not faces:
            return np.nan
        best = max(range(len(faces)), key=lambda i: (faces[i]["box"][2] * faces[i]["box"][3], -i))
        return float(faces[best]["label"])

    truth = np.array([np.nan if f["label"] is None else f["label"] for f in frames], float)
    raw = np.array([top(f["raw_faces"]) for f in frames])
    final = np.array([top(f["faces"]) for f in frames])
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.step(t, truth, where="post", color="black", linewidth=2.5, alpha=0.5, label="true")
    ax.plot(t, raw, ".", markersize=3, color="tab:orange", label="per-frame")
    if predictions.get("smoother"):
        ax.step(t, final, where="post", color="tab:blue", linewidth=1.2,
                label=f"smoothed ({predictions['smoother']})")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.5, len(names) - 0.5)
    ax.set_xlabel("time since first frame (s)")
    ax.set_title("Label timeline (largest face)" + (f", first {max_frames} frames"
                                                    if len(predictions["frames"]) > max_frames
                                                    else ""))
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: dict[str, Any], predictions: dict[str, Any], out_dir: str | Path,
                  plots: bool = True, timings_ms: dict[str, Sequence[float]] | None = None
                  ) -> list[Path]:
    """Write report.json, predictions.json, summary.md and the plots; return the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    made: list[str] = []
    if plots:
        plot_confusion(report, out / "confusion.png")
        plot_recall(report, out / "recall.png")
        made += ["confusion.png", "recall.png"]
        if timings_ms and any(len(v) for v in timings_ms.values()):
            plot_latency(timings_ms, out / "latency.png")
            made.append("latency.png")
        if predictions["frames"]:
            plot_timeline(predictions, out / "timeline.png")
            made.append("timeline.png")
        written += [out / name for name in made]
    for name, data in (("report.json", report), ("predictions.json", predictions)):
        path = out / name
        path.write_text(json.dumps(data, indent=1 if name == "report.json" else None,
                                   allow_nan=False) + "\n")
        written.append(path)
    summary = out / "summary.md"
    summary.write_text(summary_markdown(report, made))
    written.append(summary)
    return written

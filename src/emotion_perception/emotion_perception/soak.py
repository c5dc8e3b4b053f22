"""Soak run of the real graph: ``python -m emotion_perception.soak --frames 20000``.

Runs the perception graph (face detector, emotion classifier, smoother) in this process over
DDS and feeds it tens of thousands of synthetic frames (a few precomputed scenes cycled, stamped
with the current time). Every ``--every`` frames it prints frames sent / processed / results
received, resident memory, the latency p50/p95 of that window and the frames each node dropped;
at the end a verdict table: memory slope (MB per 1000 frames, linear fit over the second half),
latency drift (median of the last windows vs median of the early windows after a warm-up),
frames unanswered (frames sent without an /emotion result: lost in transport or dropped by a
node; at most ``--max-unanswered``, 1 % by default) and results lost (frames the classifier
processed whose /emotion message never arrived and which the smoother did not count as
dropped either: vanished without a trace, must be 0). ``--json`` and ``--plot`` keep the
figures.

This is a tool for long runs on the target machine, not a CI test (``test/test_soak.py`` runs a
short version). Without ``--model-path`` and without a shipped model it uses a tiny untrained
Keras model made on the fly (printed as a notice): memory and message flow are still real.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .graph_harness import (make_tiny_model, resolve_model,  # noqa: F401 (re-exported)
                            run_graph_command, scene_messages)
from .probe import ProbedGraph

#: nodes of the soak graph whose counters are reported, with their short names
NODE_SHORT = {"face_detector": "det", "emotion_classifier": "clf", "emotion_smoother": "smo"}


def rss_mb() -> float:
    """Return this process's resident memory in MiB (psutil, else /proc/self/status)."""
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2.0 ** 20
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values else float("nan")


def _counter(stats: dict[str, dict[str, float]], node: str, key: str) -> int:
    return int(stats.get(node, {}).get(key, 0))


def drain(graph: ProbedGraph, timeout: float = 15.0, quiet_s: float = 1.0) -> None:
    """Wait until the graph is idle: no counter changed for ``quiet_s`` and nothing in flight."""
    deadline = time.monotonic() + timeout
    last: tuple = ()
    since = time.monotonic()
    while time.monotonic() < deadline:
        stats = graph.node_stats()
        now = (tuple(_counter(stats, n, "processed") for n in NODE_SHORT)
               + (graph.received_count(),))
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.05)


def run_soak(graph: ProbedGraph, frames: int, fps: float = 30.0, n_faces: int = 1,
             every: int = 1000, on_window: Callable[[dict[str, Any]], None] | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Feed ``frames`` frames at ``fps`` (0 = as fast as possible); return all figures.

    ``on_window`` gets each window's record (every ``every`` frames and at the end). Ctrl-C
    stops the feed early; the frames sent so far are still drained and evaluated.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if fps < 0:
        raise ValueError(f"fps must be >= 0 (0 = unpaced), got {fps}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    msgs = scene_messages(n_faces)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=frames, unit="frame", disable=None, leave=False)
    windows: list[dict[str, Any]] = []
    period = 1.0 / fps if fps > 0 else 0.0
    sent, interrupted = 0, False
    t0 = time.monotonic()
    graph.take_latencies()

    def close_window() -> None:
        stats = graph.node_stats()
        lat = graph.take_latencies()
        rec = {"sent": sent, "elapsed_s": time.monotonic() - t0, "rss_mb": rss_mb(),
               "detector_received": _counter(stats, "face_detector", "received"),
               "detector_processed": _counter(stats, "face_detector", "processed"),
               "classifier_processed": _counter(stats, "emotion_classifier", "processed"),
               "results_received": graph.received_count(),
               "latency_ms_p50": _pct(lat, 50), "latency_ms_p95": _pct(lat, 95),
               "results_in_window": len(lat),
               "dropped": {NODE_SHORT[n]: _counter(stats, n, "dropped") for n in NODE_SHORT},
               "errors": {NODE_SHORT[n]: _counter(stats, n, "errors") for n in NODE_SHORT}}
        windows.append(rec)
        if on_window is not None:
            on_window(rec)

    try:
        while sent < frames:
            graph.publish_now(msgs[sent % len(msgs)])
            sent += 1
            if bar is not None:
                bar.update(1)
            if sent % every == 0 or sent == frames:
                close_window()
            if period:
                wait = t0 + sent * period - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    feed_s = time.monotonic() - t0
    drain(graph)
    if not windows or windows[-1]["sent"] != sent:
        close_window()
    stats = graph.node_stats()
    processed = _counter(stats, "emotion_classifier", "processed")
    received = graph.received_count()
    # the smoother drops (newest-wins, stale) and counts it: dropped, not lost
    smoother_dropped = _counter(stats, "emotion_smoother", "dropped")
    result: dict[str, Any] = {
        "frames_requested": frames, "frames_sent": sent, "interrupted": interrupted,
        "offered_fps": fps, "faces_per_frame": n_faces, "feed_seconds": feed_s,
        "classifier_processed": processed, "results_received": received,
        "smoother_dropped": smoother_dropped,
        "results_lost": processed - received - smoother_dropped, "node_stats": stats,
        "windows": windows,
    }
    result.update(analyse(windows))
    return result


def latency_windows(n: int) -> tuple[int, int]:
    """Return (warm-up windows skipped, windows per median) for ``n`` timed windows.

    The first tenth of the windows (at least one) is warm-up: model tracing, allocator growth
    and DDS discovery make it slow, and a slow baseline would hide any drift. Baseline and end
    are each the median of up to five windows (a third of the rest, at least one), so one slow
    window at either end neither hides nor fakes a drift.
    """
    warm = max(1, n // 10)
    return warm, min(5, max(1, (n - warm) // 3))


def analyse(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Return memory slope (fit over the second half) and latency drift of the windows.

    The verdict uses the least-squares slope; the median of pairwise slopes is reported next
    to it because a single step (an allocator growing once) moves it far less. Latency drift
    compares the median p50 of the last windows with the median p50 of the early steady
    windows after a warm-up (:func:`latency_windows`); with fewer than three timed windows it
    is not judged (``latency_windows`` 0).
    """
    out: dict[str, Any] = {"memory_slope_mb_per_1000": float("nan"),
                           "latency_first_p50_ms": float("nan"),
                           "latency_last_p50_ms": float("nan"),
                           "latency_warmup_windows": 0, "latency_windows": 0}
    half = windows[len(windows) // 2:]
    xs = np.array([w["sent"] for w in half], np.float64)
    ys = np.array([w["rss_mb"] for w in half], np.float64)
    if len(half) >= 2 and np.ptp(xs) > 0 and np.isfinite(ys).all():
        out["memory_slope_mb_per_1000"] = float(np.polyfit(xs, ys, 1)[0] * 1000.0)
        # for information: the median of pairwise slopes, which one step (an allocator
        # growing its pool once) moves far less than the least-squares fit
        i, j = np.triu_indices(len(xs), 1)
        ok = xs[j] != xs[i]
        out["memory_slope_median_mb_per_1000"] = float(
            np.median((ys[j] - ys[i])[ok] / (xs[j] - xs[i])[ok]) * 1000.0)
    timed = [w["latency_ms_p50"] for w in windows if math.isfinite(w["latency_ms_p50"])]
    if len(timed) >= 3:
        warm, k = latency_windows(len(timed))
        out["latency_first_p50_ms"] = float(np.median(timed[warm:warm + k]))
        out["latency_last_p50_ms"] = float(np.median(timed[-k:]))
        out["latency_warmup_windows"], out["latency_windows"] = warm, k
    if windows:
        out["rss_first_mb"], out["rss_last_mb"] = windows[0]["rss_mb"], windows[-1]["rss_mb"]
    return out


def verdict(result: dict[str, Any], max_slope: float = 1.0, max_drift: float = 1.5,
            drift_floor_ms: float = 10.0, max_unanswered: float = 0.01
            ) -> list[dict[str, Any]]:
    """Return the checks: memory slope, latency drift, frames unanswered, results lost.

    Each check has ``ok``; a check that cannot be judged (memory slope with fewer than four
    windows, latency drift with fewer than three timed windows) has ``skipped`` set and ``ok``
    True, and the table says SKIP. Latency drift
    passes when the median p50 of the last windows is at most ``max_drift`` times that of the
    early steady windows, or at most ``drift_floor_ms`` above it (tiny latencies may double
    without mattering). Frames unanswered are frames sent without an /emotion result, whether
    lost in transport (best-effort images), dropped by a node's newest-wins slot or lost on the
    way out: at most ``max_unanswered`` (a fraction of the frames sent) may be.
    """
    slope = result["memory_slope_mb_per_1000"]
    first, last = result["latency_first_p50_ms"], result["latency_last_p50_ms"]
    judged = math.isfinite(first) and math.isfinite(last) and first > 0
    ratio = last / first if judged else float("nan")
    lost = int(result["results_lost"])
    sent = int(result["frames_sent"])
    unanswered = max(0, sent - int(result["results_received"]))
    frac = unanswered / sent if sent else 0.0
    k, warm = result.get("latency_windows", 0), result.get("latency_warmup_windows", 0)
    drift = {"check": "latency drift (p50)", "limit": f"x <= {max_drift:.2f} or "
             f"+{drift_floor_ms:.0f} ms"}
    if judged:
        drift.update(value=f"{first:.1f} -> {last:.1f} ms (x{ratio:.2f}; medians of {k} "
                     f"window(s) after {warm} warm-up, and of the last {k})",
                     ok=bool(ratio <= max_drift or last - first <= drift_floor_ms))
    else:
        drift.update(value="not judged: fewer than 3 windows with results", ok=True,
                     skipped=True)
    memory = {"check": "memory slope", "limit": f"<= {max_slope:.2f}"}
    if math.isfinite(slope):
        memory.update(value=f"{slope:+.3f} MB / 1000 frames (median pairwise "
                      f"{result.get('memory_slope_median_mb_per_1000', float('nan')):+.3f})",
                      ok=bool(slope <= max_slope))
    else:
        memory.update(value="not judged: fewer than 4 windows", ok=True, skipped=True)
    return [
        memory,
        drift,
        {"check": "frames unanswered", "value": f"{unanswered} of {sent} sent ({100 * frac:.2f} "
         f"%: {_loss_breakdown(result)})", "limit": f"<= {100 * max_unanswered:.2f} %",
         "ok": bool(frac <= max_unanswered)},
        {"check": "results lost", "value": f"{lost} of {result['classifier_processed']} "
         "processed (neither delivered nor counted as dropped)", "limit": "== 0",
         "ok": lost == 0},
    ]


def _loss_breakdown(result: dict[str, Any]) -> str:
    """Where the unanswered frames went: transport loss and each node's dropped counter."""
    stats = result.get("node_stats", {})
    parts = []
    det = stats.get("face_detector")
    if det is not None:
        parts.append(f"not delivered {max(0, int(result['frames_sent']) - int(det['received']))}")
    parts += [f"{NODE_SHORT[n]} dropped {int(stats[n].get('dropped', 0))}"
              for n in NODE_SHORT if n in stats]
    return ", ".join(parts) or "no node counters"


def format_window(rec: dict[str, Any], total: int) -> str:
    """Return one progress line."""
    drops = " ".join(f"{k} {v}" for k, v in rec["dropped"].items())
    errs = sum(rec["errors"].values())
    return (f"[{rec['sent']:>7d}/{total}] det {rec['detector_processed']:>7d}  "
            f"clf {rec['classifier_processed']:>7d}  results {rec['results_received']:>7d}  "
            f"rss {rec['rss_mb']:7.1f} MB  latency p50 {rec['latency_ms_p50']:6.1f} "
            f"p95 {rec['latency_ms_p95']:6.1f} ms  dropped {drops}"
            + (f"  errors {errs}" if errs else ""))


def format_verdict(result: dict[str, Any], checks: list[dict[str, Any]]) -> str:
    """Return the final table."""
    rows = [["check", "value", "limit", "verdict"]]
    rows += [[c["check"], c["value"], c["limit"],
              "SKIP" if c.get("skipped") else "PASS" if c["ok"] else "FAIL"] for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    stats = result["node_stats"]
    lines.append("")
    lines.append(f"frames sent {result['frames_sent']}"
                 + (" (interrupted)" if result["interrupted"] else "")
                 + f" in {result['feed_seconds']:.0f} s; memory "
                 f"{result.get('rss_first_mb', 0):.0f} -> {result.get('rss_last_mb', 0):.0f} MB")
    det = stats.get("face_detector")
    if det:
        lines.append(f"  images not delivered to the detector (best-effort image QoS): "
                     f"{result['frames_sent'] - int(det['received'])}")
    for name in NODE_SHORT:
        s = stats.get(name)
        if s:
            lines.append(f"  {name:<20s} received {int(s['received']):>7d}  processed "
                         f"{int(s['processed']):>7d}  dropped {int(s['dropped']):>6d}  "
                         f"rejected {int(s['rejected'])}  errors {int(s['errors'])}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Write memory and latency per window to a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = result["windows"]
    x = [r["sent"] for r in w]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(x, [r["rss_mb"] for r in w], marker=".")
    ax1.set_ylabel("RSS (MB)")
    ax1.set_title(f"soak: memory slope {result['memory_slope_mb_per_1000']:+.3f} MB/1000 frames")
    ax2.plot(x, [r["latency_ms_p50"] for r in w], marker=".", label="p50")
    ax2.plot(x, [r["latency_ms_p95"] for r in w], marker=".", label="p95")
    ax2.set_ylabel("latency image -> /emotion (ms)")
    ax2.set_xlabel("frames sent")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=20000, help="frames to feed (default 20000)")
    p.add_argument("--faces", type=int, default=1, help="faces per synthetic frame (1-4)")
    p.add_argument("--fps", type=float, default=30.0, help="offered frame rate (0 = unpaced)")
    p.add_argument("--every", type=int, default=0, help="print a line every N frames "
                   "(default: frames / 20)")
    p.add_argument("--classifier", default="tflite", help="classifier plugin: tflite, keras")
    p.add_argument("--model-path", default="", help="classifier model (default: the shipped "
                   "one, else a tiny untrained Keras model made on the fly)")
    p.add_argument("--no-smoothing", action="store_true", help="run without the smoother")
    p.add_argument("--params-file", type=Path, help="parameter YAML (default: the installed "
                   "config/emotion_perception.yaml)")
    p.add_argument("--max-slope", type=float, default=1.0, help="memory slope limit "
                   "(MB per 1000 frames)")
    p.add_argument("--max-drift", type=float, default=1.5, help="latency drift limit "
                   "(median p50 of the last windows / of the early steady windows)")
    p.add_argument("--max-unanswered", type=float, default=0.01, help="fraction of the frames "
                   "sent that may end without an /emotion result (default 0.01; an unpaced "
                   "feed, --fps 0, drops frames by design: raise it there)")
    p.add_argument("--json", type=Path, help="write all figures to this JSON file")
    p.add_argument("--plot", type=Path, help="write memory/latency per window to this PNG")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print the verdict; exit status 1 when a check fails."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    a = build_parser().parse_args(argv)
    if a.frames < 1 or a.fps < 0 or a.every < 0 or not 1 <= a.faces <= 4 \
            or not 0.0 <= a.max_unanswered <= 1.0:
        print("soak: need --frames >= 1, --fps >= 0, --every >= 0, --faces in 1..4 and "
              "--max-unanswered in 0..1", file=sys.stderr)
        return 2
    every = a.every or max(50, a.frames // 20)

    def body(graph: ProbedGraph, classifier: str, model: str) -> dict[str, Any]:
        print(f"soak: {a.frames} frames, {a.faces} face(s), {a.fps:g} fps offered, "
              f"classifier {classifier} ({model}); a line every {every} frames", flush=True)
        return run_soak(graph, a.frames, a.fps, a.faces, every, progress=True,
                        on_window=lambda r: _write(format_window(r, a.frames)))

    run = run_graph_command("soak", a.classifier, a.model_path, body, namespace="/soak",
                            smoothing=not a.no_smoothing, params_file=a.params_file)
    if run.status:
        return run.status
    result, classifier, model = run.result, run.classifier, run.model
    result["classifier"], result["model_path"] = classifier, model
    checks = verdict(result, a.max_slope, a.max_drift,
                     max_unanswered=a.max_unanswered)
    result["verdict"] = checks
    print()
    print(format_verdict(result, checks))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2, default=float))
        print(f"\nwrote {a.json}")
    if a.plot:
        plot(result, a.plot)
        print(f"wrote {a.plot}")
    return 0 if all(c["ok"] for c in checks) else 1


def _write(line: str) -> None:
    try:
        from tqdm import tqdm
        tqdm.write(line)
    except ImportError:
        print(line, flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())

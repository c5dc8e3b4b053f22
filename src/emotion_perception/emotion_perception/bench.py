"""Benchmark suite: ``ros2 run emotion_perception bench`` (``python -m emotion_perception.bench``).

Prints, in one run, median and p95 of every stage next to a naive baseline measured in the same
run, as a ratio: detector ms/frame at 640x480 per detector plugin (downscaled vs
full-resolution detection), classifier ms/face at batch 1 and 4 per runtime (Keras eager,
compiled tf.function, TFLite float32/float16/int8 via LiteRT; baseline: per-face
``model.predict``), and the real graph over DDS: end-to-end latency (image stamp -> /emotion)
and sustained throughput with 1 and 4 faces, CPU use and peak memory. ``--json`` writes all
figures for tracking. Figures are measurements of this machine at this moment; nothing here is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
            "n": int(a.size)}


def _time(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return _pct(samples)


def _models_dir(explicit: str) -> Path:
    if explicit:
        return Path(explicit)
    from .core.model_lookup import find_model, DEFAULT_KERAS_MODEL
    return find_model(DEFAULT_KERAS_MODEL).parent


def bench_detectors(repeat: int, yunet_model: str) -> dict[str, Any]:
    """Detector ms/frame on a 640x480 frame with one face, per plugin and setting."""
    from .core import plugins
    from .core.sample_input import synthetic_scene

    frame = synthetic_scene(1, size=(480, 640))
    out: dict[str, Any] = {}
    configs = [("haar", {"max_side": 320}, {"max_side": 0})]
    if yunet_model:
        configs.append(("yunet", {"model_path": yunet_model, "max_side": 320},
                        {"model_path": yunet_model, "max_side": 0}))
    for name, fast, naive in configs:
        det_fast = plugins.create("detector", name, **fast)
        det_naive = plugins.create("detector", name, **naive)
        r_fast = _time(lambda: det_fast.detect(frame), repeat)
        r_naive = _time(lambda: det_naive.detect(frame), repeat)
        out[name] = {"ours": r_fast, "baseline_full_resolution": r_naive,
                     "speedup": r_naive["median_ms"] / r_fast["median_ms"],
                     "faces_found": [len(det_fast.detect(frame)), len(det_naive.detect(frame))]}
    return out


def bench_classifiers(models: Path, repeat: int) -> dict[str, Any]:
    """Classifier ms/face at batch 1 and 4 per runtime, with per-face model.predict baseline."""
    from .core.classifiers.tflite_classifier import TFLiteClassifier

    rng = np.random.default_rng(0)
    batches = {b: rng.random((b, 48, 48, 1), dtype=np.float32) for b in (1, 4)}
    out: dict[str, Any] = {}
    keras_path = models / "emotion_net.keras"
    runtimes: dict[str, Callable[[np.ndarray], Any]] = {}
    if keras_path.is_file():
        import keras

        from .core.classifiers.keras_classifier import KerasClassifier

        model = keras.saving.load_model(str(keras_path), compile=False, safe_mode=True)
        compiled = KerasClassifier(str(keras_path))
        runtimes["baseline_predict_per_face"] = \
            lambda x: [model.predict(x[i:i + 1], verbose=0) for i in range(len(x))]
        runtimes["keras_eager"] = lambda x: model(x, training=False)
        runtimes["keras_tf_function"] = compiled.predict
    for kind in ("float32", "float16", "int8"):
        path = models / f"emotion_net_{kind}.tflite"
        if path.is_file():
            clf = TFLiteClassifier(str(path), num_threads=2)
            runtimes[f"tflite_{kind}"] = clf.predict
    for name, fn in runtimes.items():
        out[name] = {}
        for b, x in batches.items():
            r = _time(lambda: fn(x), repeat)
            r["per_face_median_ms"] = r["median_ms"] / b
            r["per_face_p95_ms"] = r["p95_ms"] / b
            out[name][f"batch{b}"] = r
    base = out.get("baseline_predict_per_face")
    if base:
        for name, res in out.items():
            for b in ("batch1", "batch4"):
                res[b]["speedup_vs_baseline"] = \
                    base[b]["per_face_median_ms"] / res[b]["per_face_median_ms"]
    return out


def feed_at_rate(graph, frames: list[np.ndarray], fps: float, seconds: float
                 ) -> dict[str, Any]:
    """Publish ``frames`` (cycled) into a ProbedGraph at ``fps`` for ``seconds``.

    Returns throughput, latency percentiles and the CPU this process used meanwhile.
    """
    from .nodes.convert import array_to_image

    msgs = [array_to_image(f, "bgr8") for f in frames]
    graph.take_latencies()
    received0, faces0 = graph.counts()
    cpu0, t0 = os.times(), time.monotonic()
    sent, period = 0, 1.0 / fps
    while time.monotonic() - t0 < seconds:
        graph.publish_now(msgs[sent % len(msgs)])
        sent += 1
        wait = t0 + sent * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    time.sleep(0.5)  # let the last frames arrive
    wall, cpu1 = time.monotonic() - t0, os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    lat = graph.take_latencies()
    received, faces = (a - b for a, b in zip(graph.counts(), (received0, faces0)))
    res = {"sent": sent, "received": received, "offered_fps": fps,
           "throughput_fps": received / (wall - 0.5), "faces_per_frame":
           faces / max(1, received), "cpu_percent": 100.0 * cpu / wall,
           "cpu_cores_used": cpu / wall}
    if lat:
        res["latency"] = _pct(lat)
    return res


def bench_graph(seconds: float, classifier: str) -> dict[str, Any]:
    """End-to-end figures of the real graph over DDS with 1 and 4 faces, ours vs naive."""
    import rclpy

    from .core.sample_input import synthetic_scene
    from .probe import ProbedGraph

    rclpy.init()
    out: dict[str, Any] = {}
    try:
        settings = {
            "ours": {"face_detector": {"max_side": 320, "tracking.min_hits": 1},
                     "emotion_classifier": {"classifier": classifier}},
            "baseline": {"face_detector": {"max_side": 0, "tracking.min_hits": 1},
                         "emotion_classifier": {"classifier": "keras"}},
        }
        for name, overrides in settings.items():
            graph = ProbedGraph(namespace=f"/bench_{name}", overrides=overrides)
            try:
                graph.wait_ready()
                for faces, fps in ((1, 30.0), (4, 15.0)):
                    frames = [synthetic_scene(faces, size=(480, 640), t=i / fps)
                              for i in range(30)]
                    out[f"{name}_{faces}face"] = feed_at_rate(graph, frames, fps, seconds)
            finally:
                graph.close()
    finally:
        rclpy.try_shutdown()
    return out


def _fmt_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    """Return the human-readable tables."""
    parts = []
    det = results.get("detectors", {})
    if det:
        rows = [["detector (640x480)", "ours median/p95 ms", "full-res median/p95 ms",
                 "speed-up"]]
        for name, r in det.items():
            rows.append([name, f"{r['ours']['median_ms']:.2f} / {r['ours']['p95_ms']:.2f}",
                         f"{r['baseline_full_resolution']['median_ms']:.2f} / "
                         f"{r['baseline_full_resolution']['p95_ms']:.2f}",
                         f"{r['speedup']:.1f}x"])
        parts.append(_fmt_table(rows))
    clf = results.get("classifiers", {})
    if clf:
        rows = [["classifier runtime", "b1 ms/face (p95)", "b4 ms/face (p95)", "vs predict()"]]
        for name, r in clf.items():
            b1, b4 = r["batch1"], r["batch4"]
            rows.append([name, f"{b1['per_face_median_ms']:.3f} ({b1['per_face_p95_ms']:.3f})",
                         f"{b4['per_face_median_ms']:.3f} ({b4['per_face_p95_ms']:.3f})",
                         f"{b1.get('speedup_vs_baseline', float('nan')):.1f}x / "
                         f"{b4.get('speedup_vs_baseline', float('nan')):.1f}x"])
        parts.append(_fmt_table(rows))
    g = results.get("graph", {})
    if g:
        rows = [["graph over DDS", "offered fps", "throughput fps", "latency p50/p95 ms",
                 "CPU cores"]]
        for name, r in g.items():
            lat = r.get("latency", {})
            rows.append([name, f"{r['offered_fps']:.0f}", f"{r['throughput_fps']:.1f}",
                         f"{lat.get('median_ms', float('nan')):.1f} / "
                         f"{lat.get('p95_ms', float('nan')):.1f}",
                         f"{r['cpu_cores_used']:.2f}"])
        parts.append(_fmt_table(rows))
    parts.append(f"peak memory (max RSS): {results['peak_rss_mb']:.0f} MB")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the tables."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--processes" in argv:  # the graph as separate processes (ros2 launch's way)
        from .bench_processes import main as processes_main
        return processes_main([a for a in argv if a != "--processes"])
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", default="", help="folder with emotion_net.keras and "
                   "emotion_net_{float32,float16,int8}.tflite (default: the shipped models)")
    p.add_argument("--yunet-model", default="", help="YuNet .onnx to include that detector")
    p.add_argument("--repeat", type=int, default=200, help="timed calls per figure")
    p.add_argument("--graph-seconds", type=float, default=10.0,
                   help="seconds of each end-to-end graph run (0 = skip the graph)")
    p.add_argument("--graph-classifier", default="tflite", help="classifier plugin of the "
                   "optimised graph")
    p.add_argument("--json", type=Path, help="write all figures to this JSON file")
    a = p.parse_args(argv)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python":
                                           platform.python_version(),
                                           "processor": platform.processor() or
                                           platform.machine()},
                               "date": time.strftime("%Y-%m-%d %H:%M")}
    print("benchmarking detectors ...", file=sys.stderr, flush=True)
    results["detectors"] = bench_detectors(a.repeat // 2 or 1, a.yunet_model)
    print("benchmarking classifiers ...", file=sys.stderr, flush=True)
    results["classifiers"] = bench_classifiers(_models_dir(a.models_dir), a.repeat)
    if a.graph_seconds > 0:
        print("benchmarking the graph over DDS ...", file=sys.stderr, flush=True)
        results["graph"] = bench_graph(a.graph_seconds, a.graph_classifier)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(report(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

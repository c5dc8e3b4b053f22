"""Benchmark suite: ``ros2 run emotion_perception bench`` (``python -m emotion_perception.bench``).

Prints, in one run, median and p95 of every stage next to a naive baseline measured in the same
run, as a ratio: detector ms/frame at 640x480 per detector plugin and setting against Haar at
full resolution, each beside its recall and false positives on frames with known faces,
classifier ms/face at batch 1 and 4 per runtime (Keras eager,
compiled tf.function, TFLite float32/float16/int8 via LiteRT; each against the compiled
``tf.function``, the fastest way to run the trained model unexported, and against per-face
``model.predict``), and the real graph over DDS: end-to-end latency (image stamp -> /emotion)
and sustained throughput with 1 and 4 faces, CPU use and peak memory. ``--json`` writes all
figures for tracking. Figures are measurements of this machine at this moment; nothing here is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .machine import machine, machine_line


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


def recall_faces(npz: str, count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (square face images, labels, description) for the detector recall frames.

    PublicTest faces of a FER npz when ``npz`` is given, else ``count`` copies of the demo
    portrait's face (the embedded astronaut, public domain) cut as tightly as a FER face.
    """
    if npz:
        from .bags.detector_eval import load_faces

        images, labels = load_faces(Path(npz), "PublicTest", count)
        return images, labels, f"{len(images)} PublicTest faces of {Path(npz).name}"
    from .core.sample_input import PORTRAIT_FACE_BOX, astronaut_face

    b = PORTRAIT_FACE_BOX
    pad = int(round(0.1 * b.w))
    face = astronaut_face()[b.y - pad:b.y + b.h + pad, b.x - pad:b.x + b.w + pad]
    images = np.repeat(face[None], count, axis=0)
    return images, np.zeros(count, np.int64), f"{count} copies of the demo portrait's face"


def detector_recall(detector: Any, scenes: list) -> dict[str, float]:
    """Return the share of known faces ``detector`` finds in ``scenes``, and more.

    Also its false positives per frame; faces are matched as ``emotion_eval_detectors`` does.
    """
    from .bags.detector_eval import match_faces

    faces = found = extra = 0
    for scene in scenes:
        matched, unmatched = match_faces(scene.faces, detector.detect(scene.frame))
        faces += len(matched)
        found += sum(m is not None for m in matched)
        extra += unmatched
    return {"recall": found / max(faces, 1), "false_positives_per_frame":
            extra / max(len(scenes), 1), "faces": faces, "frames": len(scenes)}


def tracked_detector(full_scan_every: int, scenes: list, steps: int = 6, speed: float = 3.0,
                     overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the default detector's ms/frame and recall on moving faces, tracked.

    Each scene becomes ``steps`` frames that move ``speed`` px a frame (right and down), run
    through a detect-only :class:`FramePipeline` with the default parameters and
    ``full_scan_every`` (so between full-frame scans it looks only near its tracks); recall
    and false positives count every detection of every frame (confirmed tracks or not), as
    :func:`detector_recall` does on stills. A fresh tracker per scene. ``overrides``:
    other face_detector parameters (e.g. ``{"blazeface.region_side": 0}``).
    """
    from dataclasses import replace

    import cv2

    from .bags.detector_eval import match_faces
    from .builders import build_pipeline
    from .core.params import merge_params

    values = merge_params(["face_detector"], overrides={
        "face_detector": {**(overrides or {}), "full_scan_every": full_scan_every}})
    pipe = build_pipeline(values["face_detector"])
    faces = found = extra = 0
    samples = []
    for scene in scenes:
        pipe.tracker.reset()
        pipe.tracker.pop_retired()  # no track: the scene's first frame is a full scan
        for k in range(steps):
            dx = dy = k * speed
            frame = cv2.warpAffine(scene.frame, np.float32([[1, 0, dx], [0, 1, dy]]),
                                   scene.frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            moved = [replace(f, center=(f.center[0] + dx, f.center[1] + dy))
                     for f in scene.faces]
            t0 = time.perf_counter()
            pipe.detect(frame)
            samples.append(time.perf_counter() - t0)
            matched, unmatched = match_faces(moved, pipe.last_tracked)
            faces += len(matched)
            found += sum(m is not None for m in matched)
            extra += unmatched
    return {"ms": _pct(samples), "recall": found / max(faces, 1),
            "false_positives_per_frame": extra / max(len(samples), 1), "faces": faces,
            "frames": len(samples), "scans": dict(pipe.scans),
            "region_side": getattr(pipe.detector, "region_side", None),
            "mirror_pass": getattr(pipe.detector, "mirror_pass", None)}


def bench_detectors(repeat: int, yunet_model: str, recall_npz: str = "",
                    recall_count: int = 150) -> dict[str, Any]:
    """Return detector ms/frame at 640x480 per plugin and setting, beside its recall.

    Milliseconds on a 640x480 frame with one face; recall on frames with known faces (turned,
    80-320 px, textured backgrounds, see ``bags/scenes.py``), so that a faster setting that
    misses faces cannot look like a win.

    The baseline is Haar at full resolution; a detector that cannot be created here (no
    mediapipe wheel for blazeface) is listed with the reason.
    """
    from .bags.scenes import make_scenes
    from .core import plugins
    from .core.detectors.blazeface import FIRST_PASS, SINGLE_LOOK, WITHOUT_CHECK
    from .core.params import merge_params
    from .core.sample_input import synthetic_scene

    frame = synthetic_scene(1, size=(480, 640))
    images, labels, source = recall_faces(recall_npz, recall_count)
    scenes = list(make_scenes(images, labels, seed=0))
    first_pass = {**FIRST_PASS, "verify_threshold": 0.0}  # the network alone: no check either
    configs = [("haar, full resolution (baseline)", "haar", {"max_side": 0}),
               ("haar, max_side 320", "haar", {"max_side": 320}),
               ("blazeface short, input_side 128", "blazeface",
                {"input_side": 128, **first_pass}),
               ("blazeface short, input_side 192", "blazeface",
                {"input_side": 192, **first_pass}),
               ("blazeface short, input_side 256", "blazeface",
                {"input_side": 256, **first_pass}),
               ("blazeface 256 + second pass, no face check", "blazeface",
                {"input_side": 256, **WITHOUT_CHECK}),
               ("blazeface 256 + second pass + face check (sessions 13-14)", "blazeface",
                {"input_side": 256, **SINGLE_LOOK}),
               ("blazeface 256 + mirrored scan + 96 px second pass (default)", "blazeface",
                {"input_side": 256}),
               ("blazeface full (192x192)", "blazeface", {"model": "full", **first_pass})]
    if yunet_model:
        configs += [("yunet, full resolution", "yunet",
                     {"model_path": yunet_model, "max_side": 0}),
                    ("yunet, max_side 320", "yunet",
                     {"model_path": yunet_model, "max_side": 320})]
    out: dict[str, Any] = {"_recall_frames": {"source": source, "frames": len(scenes)}}
    detectors, skipped = {}, {}
    for label, name, kwargs in configs:
        try:
            detectors[label] = plugins.create("detector", name, **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:  # missing model files, plugins
            skipped[label] = {"skipped": str(exc)}
    # round robin: one call of each detector in turn, so that a load change on a shared
    # machine slows every row alike instead of the rows that happen to run during it
    samples: dict[str, list[float]] = {label: [] for label in detectors}
    for i in range(repeat + 3):
        for label, det in detectors.items():
            t0 = time.perf_counter()
            det.detect(frame)
            if i >= 3:  # the first calls warm up
                samples[label].append(time.perf_counter() - t0)
    for label, _, _ in configs:
        det = detectors.get(label)
        out[label] = skipped[label] if det is None else {"ms": _pct(samples[label]),
                                                         **detector_recall(det, scenes)}
    default = merge_params(["face_detector"])["face_detector"]["full_scan_every"]
    tracked = [(f"default, tracked moving faces, full_scan_every {every}"
                + (" (default)" if every == default else ""), every, {}) for every in (1, default)]
    # the region tiles at the model's own 128 (the default before session 14) against 96
    tracked.insert(1, (f"tracked, full_scan_every {default}, region tiles 128", default,
                       {"blazeface.region_side": 0}))
    # the full scans as they were in sessions 13-14 (one look, 128 px second-pass tiles)
    tracked.insert(2, (f"tracked, full_scan_every {default}, sessions 13-14 full scans",
                       default, {f"blazeface.{k}": v for k, v in SINGLE_LOOK.items()}))
    for label, every, overrides in tracked:
        try:
            out[label] = tracked_detector(every, scenes, overrides=overrides)
        except (OSError, ValueError, RuntimeError) as exc:
            out[label] = {"skipped": str(exc)}
    base = out.get(configs[0][0], {}).get("ms")
    for label, res in out.items():
        if base and "ms" in res:
            res["speedup_vs_baseline"] = base["median_ms"] / res["ms"]["median_ms"]
    return out


#: the model file of the shipped ``accurate`` preset (config/accurate.yaml)
ACCURATE_MODEL = "emotion_net_ensemble_int8.tflite"


def bench_classifiers(models: Path, repeat: int) -> dict[str, Any]:
    """Classifier ms/face at batch 1 and 4 per runtime, against compiled Keras and predict()."""
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
    for kind in ("float32", "float16", "int8", "ensemble_int8"):
        # ensemble_int8: the ``accurate`` preset's model (config/accurate.yaml), where shipped
        path = models / (f"emotion_net_{kind}.tflite" if kind != "ensemble_int8"
                         else ACCURATE_MODEL)
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
    # two references: the compiled Keras model, the fastest reasonable way to run the
    # trained model without an export (the honest baseline), and per-face model.predict,
    # the naive one
    for key, ref in (("speedup_vs_compiled", "keras_tf_function"),
                     ("speedup_vs_baseline", "baseline_predict_per_face")):
        base = out.get(ref)
        if base:
            for res in out.values():
                for b in ("batch1", "batch4"):
                    res[b][key] = base[b]["per_face_median_ms"] / res[b]["per_face_median_ms"]
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


def _preset_shipped(preset: str) -> bool:
    from .graph import preset_file

    try:
        preset_file(preset)
    except FileNotFoundError:
        return False
    return True


def bench_graph(seconds: float, classifier: str) -> dict[str, Any]:
    """End-to-end figures of the real graph over DDS with 1 and 4 faces, ours vs naive."""
    import rclpy

    from .core.sample_input import synthetic_scene
    from .probe import ProbedGraph

    rclpy.init()
    out: dict[str, Any] = {}
    try:
        ours = {"face_detector": {"max_side": 320, "tracking.min_hits": 1},
                "emotion_classifier": {"classifier": classifier}}
        settings = {  # name: (preset, overrides)
            "ours": ("", ours),
            # the same with both mirror views every frame (tta_mirror_over_time off): what
            # spreading them over a track's frames saves
            "ours_both_views": ("", {**ours, "emotion_classifier": {
                **ours["emotion_classifier"], "tta_mirror_over_time": False}}),
            # the shipped low_cpu preset layered over the defaults (config/low_cpu.yaml)
            "low_cpu": ("low_cpu", ours),
            # the shipped accurate preset: the ensemble model (config/accurate.yaml)
            "accurate": ("accurate", ours),
            # the naive graph: Haar at full resolution (the old default detector) + Keras
            "baseline": ("", {"face_detector": {"detector": "haar", "max_side": 0,
                                                "tracking.min_hits": 1},
                              "emotion_classifier": {"classifier": "keras"}}),
        }
        for name, (preset, overrides) in settings.items():
            if preset and not _preset_shipped(preset):
                continue
            graph = ProbedGraph(namespace=f"/bench_{name}", overrides=overrides, preset=preset)
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
    """Return the human-readable tables, headed by the machine and the command."""
    parts = []
    if "machine" in results:
        after = results.get("load_average_after") or []
        parts.append(f"{results.get('command', 'bench')}  ({results.get('date', '')})\n"
                     f"{machine_line(results['machine'])}"
                     f"{' -> ' + ' '.join(f'{v:.2f}' for v in after) if after else ''}")
    det = results.get("detectors", {})
    if det:
        rows = [["detector (640x480, 1 face)", "median / p95 ms", "speed-up", "recall %",
                 "false pos./frame"]]
        for name, r in det.items():
            if name.startswith("_"):
                continue
            if "skipped" in r:
                rows.append([name, "skipped", "-", "-", r["skipped"][:60]])
                continue
            rows.append([name, f"{r['ms']['median_ms']:.2f} / {r['ms']['p95_ms']:.2f}",
                         f"{r.get('speedup_vs_baseline', float('nan')):.1f}x",
                         f"{100 * r['recall']:.1f}", f"{r['false_positives_per_frame']:.2f}"])
        table = _fmt_table(rows)
        frames = det.get("_recall_frames")
        if frames:
            table += (f"\nrecall: {frames['source']} in {frames['frames']} 640x480 frames, "
                      "turned up to 25 deg, 80-320 px, textured backgrounds, brightness and "
                      "contrast changed (bags/scenes.py, seed 0); the tracked rows: each of "
                      "those frames moving 3 px a frame for 6 frames, through the detector "
                      "node's pipeline (every detection counted, confirmed or not)")
        parts.append(table)
    clf = results.get("classifiers", {})
    if clf:
        rows = [["classifier runtime", "b1 ms/face (p95)", "b4 ms/face (p95)",
                 "vs compiled Keras", "vs predict()"]]
        for name, r in clf.items():
            b1, b4 = r["batch1"], r["batch4"]
            rows.append([name, f"{b1['per_face_median_ms']:.3f} ({b1['per_face_p95_ms']:.3f})",
                         f"{b4['per_face_median_ms']:.3f} ({b4['per_face_p95_ms']:.3f})"]
                        + [f"{b1.get(key, float('nan')):.1f}x / {b4.get(key, float('nan')):.1f}x"
                           for key in ("speedup_vs_compiled", "speedup_vs_baseline")])
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
    if "--multi" in argv:  # many cameras on one classifier vs one graph per camera
        from .bench_multi import main as multi_main
        return multi_main([a for a in argv if a != "--multi"])
    if "--processes" in argv:  # the graph as separate processes (ros2 launch's way)
        from .bench_processes import main as processes_main
        return processes_main([a for a in argv if a != "--processes"])
    if "--peer" in argv:  # the default per-frame pipeline beside the fer package
        from .bench_peer import main as peer_main
        return peer_main([a for a in argv if a != "--peer"])
    if "--targets" in argv:  # the CPU-budget targets, checked against saved --json figures
        from .bench_targets import main as targets_main
        return targets_main([a for a in argv if a != "--targets"])
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--models-dir", default="", help="folder with emotion_net.keras and "
                   "emotion_net_{float32,float16,int8}.tflite (default: the shipped models)")
    p.add_argument("--yunet-model", default="", help="YuNet .onnx to include that detector")
    p.add_argument("--recall-npz", default="", help="FER npz: measure detector recall on its "
                   "PublicTest faces (default: on the demo portrait's face)")
    p.add_argument("--recall-faces", type=int, default=150,
                   help="faces in the detector recall frames (default 150)")
    p.add_argument("--repeat", type=int, default=200, help="timed calls per figure")
    p.add_argument("--graph-seconds", type=float, default=10.0,
                   help="seconds of each end-to-end graph run (0 = skip the graph)")
    p.add_argument("--graph-classifier", default="tflite", help="classifier plugin of the "
                   "optimised graph")
    p.add_argument("--json", type=Path, help="write all figures to this JSON file")
    a = p.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                               "command": " ".join(["bench", *argv])}
    print("benchmarking detectors ...", file=sys.stderr, flush=True)
    results["detectors"] = bench_detectors(a.repeat // 2 or 1, a.yunet_model, a.recall_npz,
                                           a.recall_faces)
    print("benchmarking classifiers ...", file=sys.stderr, flush=True)
    results["classifiers"] = bench_classifiers(_models_dir(a.models_dir), a.repeat)
    if a.graph_seconds > 0:
        print("benchmarking the graph over DDS ...", file=sys.stderr, flush=True)
        results["graph"] = bench_graph(a.graph_seconds, a.graph_classifier)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    results["load_average_after"] = machine()["load_average"]
    print(report(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

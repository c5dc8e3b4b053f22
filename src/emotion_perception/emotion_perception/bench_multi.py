"""Many-camera benchmark: ``bench --multi`` (``python -m emotion_perception.bench_multi``).

    bench --multi [--cameras 4] [--fps 15] [--faces 1] [--seconds 20] [--json FILE]

Feeds ``--cameras`` cameras at ``--fps`` each (their frames evenly staggered, as free-running
cameras are) with ``--faces`` faces per frame into two graphs, one after the other, both in
this process: **shared**, the many-camera graph (``graph.multi_graph_spec``: a face detector
per camera, one classifier batching the faces of all waiting cameras, one smoother), and
**independent**, one single-camera graph per camera (``probe.ProbedGraph``: detector,
classifier and smoother each). It prints throughput (each camera's /emotion messages per
second, summed), latency (image stamp -> that camera's /emotion) p50/p95, the CPU cores this
process used, and the classifier's inference calls per second and faces per call. It also
prints the bytes per message of what crosses the network in the fleet split (README, Across
machines): the FaceArray (with its crops) and the EmotionArray, next to the raw bgr8 image.
Figures are measurements of this machine at this moment; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .machine import machine, machine_line

#: detector and classifier settings of both graphs (as ``bench``'s optimised graph)
OVERRIDES = {"face_detector": {"tracking.min_hits": 1},
             "emotion_classifier": {"classifier": "tflite"}}


class CountingProxy:
    """Wraps a classifier: counts ``classify`` calls and the rows (crops) they carried.

    The many-camera classifier pads its batches (``core.multicam.BatchSizer``): rows include
    the padding; the faces per call come from the classifier node's own counters.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.node: Any = None  # the classifier node (set by wrap_classifier)
        self.calls = self.crops = self.faces = self._faces0 = 0
        self._lock = threading.Lock()

    def classify(self, crops):
        """Count, then classify with the wrapped classifier."""
        with self._lock:
            self.calls += 1
            self.crops += len(crops)
        return self.inner.classify(crops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def mark(self) -> None:
        """Start counting (the classifier node's faces too)."""
        with self._lock:
            self.calls = self.crops = 0
        self._faces0 = self._node_faces()
        self.faces = 0

    def measure(self) -> None:
        """Set ``faces``: what the node classified since ``mark`` (crops without padding)."""
        self.faces = self._node_faces() - self._faces0

    def _node_faces(self) -> int:
        node = self.node
        if getattr(node, "cameras", None):
            return int(node.batched_faces)
        return self.crops  # a single-camera node never pads


class MultiProbedGraph:
    """The many-camera graph (no camera nodes) with a probe per camera, in this process.

    rclpy must be initialised. Camera ``c``'s images go to ``<namespace>/<c>/image``; its
    ``<namespace>/<c>/emotion`` messages are counted with their latency. The probe also takes
    every ``<c>/faces`` and ``<c>/emotion`` message serialized (raw) to measure its bytes.
    """

    def __init__(self, cameras: list[str], namespace: str = "/bench_multi",
                 overrides: dict[str, dict[str, Any]] | None = None,
                 smoothing: bool = True) -> None:
        import rclpy
        from emotion_msgs.msg import EmotionArray, FaceArray
        from sensor_msgs.msg import Image

        from .graph import default_params_file, load_params_file, multi_graph_spec
        from .live import create_nodes
        from .nodes.base import IMAGE_PUB_QOS, RESULT_QOS
        from .nodes.runner import BackgroundSpin

        params = load_params_file(default_params_file())
        for node, values in (overrides or {}).items():
            params.setdefault(node, {}).update(values)
        specs = multi_graph_spec(cameras, smoothing=smoothing, image_topic="image")
        self.cameras = list(cameras)
        self.nodes = create_nodes(specs, params, namespace)
        self.probe = rclpy.create_node("multi_probe", namespace=namespace)
        self._lock = threading.Lock()
        self.received = {c: 0 for c in cameras}
        self._latency: list[float] = []
        self.sizes: dict[str, list[int]] = {"faces": [], "emotion": []}
        self.pubs = {c: self.probe.create_publisher(Image, f"{namespace}/{c}/image",
                                                    IMAGE_PUB_QOS) for c in cameras}
        self.emotion_topics = [f"{namespace}/{c}/emotion" for c in cameras]
        for c in cameras:
            self.probe.create_subscription(EmotionArray, f"{namespace}/{c}/emotion",
                                           self._on_emotion(c), RESULT_QOS)
            self.probe.create_subscription(FaceArray, f"{namespace}/{c}/faces",
                                           self._on_raw("faces"), RESULT_QOS, raw=True)
            self.probe.create_subscription(EmotionArray, f"{namespace}/{c}/emotion",
                                           self._on_raw("emotion"), RESULT_QOS, raw=True)
        self._spin = BackgroundSpin(self.nodes + [self.probe], name="multi_probe_spin")

    def _on_emotion(self, camera: str):
        def on(msg) -> None:
            now = time.time()
            stamp = msg.header.stamp
            with self._lock:
                self.received[camera] += 1
                self._latency.append(now - (stamp.sec + stamp.nanosec * 1e-9))
        return on

    def _on_raw(self, kind: str):
        def on(data: bytes) -> None:
            with self._lock:
                self.sizes[kind].append(len(data))
        return on

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every node is active and each camera's probe is connected."""
        from .probe import wait_graph_ready

        wait_graph_ready(self.nodes, lambda: all(
            p.get_subscription_count() >= 1 for p in self.pubs.values()) and all(
            self.probe.count_publishers(t) >= 1 for t in self.emotion_topics), timeout)

    def node(self, name: str):
        """Return the graph's node called ``name`` (the first, for per-camera nodes)."""
        return next(n for n in self.nodes if n.get_name() == name)

    def publish_now(self, camera: str, msg) -> None:
        """Stamp ``msg`` with the current time and publish it as ``camera``'s image."""
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1.0) * 1e9)
        self.pubs[camera].publish(msg)

    def take(self) -> tuple[int, list[float]]:
        """Return and forget (messages received, latencies) since the last call."""
        with self._lock:
            n, lat = sum(self.received.values()), self._latency
            self.received = {c: 0 for c in self.cameras}
            self._latency = []
        return n, lat

    def close(self) -> None:
        """Stop the graph (rclpy stays initialised)."""
        self._spin.stop(shutdown_rclpy=False)


class FacesProbe:
    """Only the classifier and smoother: the probe publishes each camera's FaceArray.

    ``groups``: ``(namespace, cameras)`` per graph: ``cameras`` non-empty is one
    many-camera classifier + smoother (``<namespace>/<cam>/faces``), empty is one
    single-camera pair (``<namespace>/faces``). Each graph spins on its own executor thread,
    as ``ProbedGraph`` does. This isolates what sharing the classifier changes: the detectors
    (the same work in both set-ups) are left out.
    """

    def __init__(self, groups: list[tuple[str, list[str]]],
                 overrides: dict[str, dict[str, Any]] | None = None) -> None:
        import rclpy
        from emotion_msgs.msg import EmotionArray, FaceArray

        from .graph import default_params_file, graph_spec, load_params_file, multi_graph_spec
        from .live import create_nodes
        from .nodes.base import RESULT_QOS
        from .nodes.runner import BackgroundSpin

        params = load_params_file(default_params_file())
        for node, values in (overrides or {}).items():
            params.setdefault(node, {}).update(values)
        stage = ("emotion_classifier", "emotion_smoother")
        self.nodes: list = []
        self._spins = []
        self.probe = rclpy.create_node("faces_probe")
        self.topics: list[str] = []
        self.pubs = []
        self._lock = threading.Lock()
        self.received = 0
        self._latency: list[float] = []
        for ns, cams in groups:
            specs = multi_graph_spec(cams) if cams else graph_spec(image_topic="image")
            nodes = create_nodes([s for s in specs if s.name in stage], params, ns)
            self.nodes += nodes
            for prefix in ([f"{ns}/{c}" for c in cams] if cams else [ns]):
                self.pubs.append(self.probe.create_publisher(FaceArray, f"{prefix}/faces",
                                                             RESULT_QOS))
                self.topics.append(f"{prefix}/emotion")
                self.probe.create_subscription(EmotionArray, f"{prefix}/emotion",
                                               self._on_emotion, RESULT_QOS)
            self._spins.append(BackgroundSpin(nodes, name=f"faces_probe_{len(self._spins)}"))
        self._spins.append(BackgroundSpin([self.probe], name="faces_probe"))

    def _on_emotion(self, msg) -> None:
        now = time.time()
        stamp = msg.header.stamp
        with self._lock:
            self.received += 1
            self._latency.append(now - (stamp.sec + stamp.nanosec * 1e-9))

    def wait_ready(self, timeout: float = 120.0) -> list[CountingProxy]:
        """Wait for every match; return the classifiers wrapped in CountingProxy objects."""
        deadline = time.monotonic() + timeout
        while not (all(p.get_subscription_count() >= 1 for p in self.pubs)
                   and all(self.probe.count_publishers(t) >= 1 for t in self.topics)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"graph not ready after {timeout:.0f} s")
            time.sleep(0.05)
        return [wrap_classifier(n) for n in self.nodes
                if n.get_name() == "emotion_classifier"]

    def publisher(self, i: int):
        """Return a function that stamps a FaceArray now and publishes it as camera ``i``."""
        pub = self.pubs[i]

        def publish(msg) -> None:
            now = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1.0) * 1e9)
            pub.publish(msg)
        return publish

    def take(self) -> tuple[int, list[float]]:
        """Return and forget (messages received, latencies) since the last call."""
        with self._lock:
            n, lat = self.received, self._latency
            self.received, self._latency = 0, []
        return n, lat

    def close(self) -> None:
        """Stop every graph (rclpy stays initialised)."""
        for spin in self._spins:
            spin.stop(shutdown_rclpy=False)


def face_arrays(faces: int, fps: float, count: int = 30) -> list:
    """Return ``count`` FaceArray messages of the synthetic scene, crops as the detector cuts."""
    from .core.preprocessing import crop_face
    from .core.sample_input import scene_boxes, synthetic_scene
    from .core.types import TrackedFace
    from .nodes.convert import faces_to_msg
    from std_msgs.msg import Header

    out = []
    for i in range(count):
        image = synthetic_scene(faces, size=(480, 640), t=i / fps)
        tracked = [TrackedFace(face_id=k + 1, box=b, score=0.9, confirmed=True)
                   for k, b in enumerate(scene_boxes(faces, size=(480, 640), t=i / fps))]
        crops = [crop_face(image, f.box.as_tuple(), 0.1) for f in tracked]
        out.append(faces_to_msg(Header(frame_id="camera"), image, "bgr8", tracked, crops))
    return out


def bench_stage(cameras: int, fps: float, faces: int, seconds: float) -> dict[str, Any]:
    """Return the classifier stage's figures: one shared pair vs one pair per camera."""
    import rclpy

    msgs = face_arrays(faces, fps)
    names = [f"cam{i}" for i in range(cameras)]
    out: dict[str, Any] = {}
    rclpy.init()
    try:
        for label, groups in (("shared", [("/stage_multi", names)]),
                              ("independent", [(f"/stage_{i}", []) for i in names])):
            probe = FacesProbe(groups, overrides=OVERRIDES)
            try:
                proxies = probe.wait_ready()
                pubs = [probe.publisher(i) for i in range(cameras)]
                out[label] = _run(pubs, probe.take, proxies, msgs, fps, seconds)
                out[label]["nodes"] = _node_stats(probe.nodes)
            finally:
                probe.close()
    finally:
        rclpy.try_shutdown()
    return out


def wrap_classifier(node, timeout: float = 120.0) -> CountingProxy:
    """Wrap ``node``'s classifier in a CountingProxy once the node is active."""
    deadline = time.monotonic() + timeout
    while getattr(node, "classifier", None) is None or node._worker is None:
        if getattr(node, "configure_error", ""):
            raise RuntimeError(f"{node.get_name()}: {node.configure_error}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node.get_name()} not active after {timeout:.0f} s")
        time.sleep(0.05)
    with node.state_lock:
        proxy = CountingProxy(node.classifier)
        proxy.node = node
        node.classifier = proxy
    return proxy


def _feed(publish: list, frames: list, fps: float, seconds: float) -> int:
    """Publish ``frames`` to every camera at ``fps``, camera i offset by i/(n*fps); return sent."""
    n = len(publish)
    period = 1.0 / fps
    t0 = time.monotonic()
    sent = 0
    k = 0
    while time.monotonic() - t0 < seconds:
        for i, pub in enumerate(publish):
            due = t0 + k * period + i * period / n
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pub(frames[k % len(frames)])
            sent += 1
        k += 1
    return sent


def _figures(sent: int, received: int, lat: list[float], wall: float, cpu: float,
             proxies: list[CountingProxy], seconds: float) -> dict[str, Any]:
    a = np.asarray(lat, dtype=np.float64) * 1e3
    calls = sum(p.calls for p in proxies)
    crops = sum(p.crops for p in proxies)
    faces = sum(p.faces for p in proxies)
    out: dict[str, Any] = {"sent": sent, "received": received,
                           "throughput_fps": received / seconds,
                           "cpu_cores_used": cpu / wall,
                           "inference_calls_per_s": calls / seconds,
                           "rows_per_call": crops / calls if calls else 0.0,
                           "faces_per_call": faces / calls if calls else 0.0}
    if a.size:
        out["latency"] = {"median_ms": float(np.median(a)),
                          "p95_ms": float(np.percentile(a, 95)), "n": int(a.size)}
    return out


def _node_stats(nodes: list) -> dict[str, dict[str, float]]:
    """Return each node's counters and processing p50 (ms), keyed by its full name."""
    keep = ("received", "processed", "dropped", "stale", "processing_ms_p50")
    return {n.get_fully_qualified_name(): {k: v for k, v in n.stats.snapshot().items()
                                           if k in keep}
            for n in nodes if hasattr(n, "stats")}


def _run(publishers: list, take, proxies: list[CountingProxy], frames: list, fps: float,
         seconds: float) -> dict[str, Any]:
    """Warm up for 2 s, then feed for ``seconds`` and measure."""
    _feed(publishers, frames, fps, 2.0)
    time.sleep(0.5)
    take()
    for p in proxies:
        p.mark()
    cpu0, t0 = os.times(), time.monotonic()
    sent = _feed(publishers, frames, fps, seconds)
    time.sleep(0.5)  # the last frames' results
    for p in proxies:
        p.measure()
    wall, cpu1 = time.monotonic() - t0, os.times()
    received, lat = take()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return _figures(sent, received, lat, wall, cpu, proxies, seconds)


def bench_multi(cameras: int, fps: float, faces: int, seconds: float) -> dict[str, Any]:
    """Return the shared and the independent graphs' figures and the message sizes."""
    import rclpy
    from rclpy.serialization import serialize_message

    from .core.sample_input import synthetic_scene
    from .nodes.convert import array_to_image
    from .probe import ProbedGraph

    frames = [array_to_image(synthetic_scene(faces, size=(480, 640), t=i / fps), "bgr8")
              for i in range(30)]
    names = [f"cam{i}" for i in range(cameras)]
    rclpy.init()
    out: dict[str, Any] = {"cameras": cameras, "fps": fps, "faces": faces, "seconds": seconds}
    try:
        graph = MultiProbedGraph(names, overrides=OVERRIDES)
        try:
            graph.wait_ready()
            proxy = wrap_classifier(graph.node("emotion_classifier"))
            pubs = [lambda m, c=c: graph.publish_now(c, m) for c in names]
            out["shared"] = _run(pubs, graph.take, [proxy], frames, fps, seconds)
            out["shared"]["nodes"] = _node_stats(graph.nodes)
            with graph._lock:
                sizes = {k: list(v) for k, v in graph.sizes.items()}
        finally:
            graph.close()
        graphs = [ProbedGraph(classifier="tflite", namespace=f"/bench_ind{i}",
                              overrides=OVERRIDES) for i in range(cameras)]
        try:
            proxies = []
            for g in graphs:
                g.wait_ready(120.0)
                proxies.append(wrap_classifier(g.node("emotion_classifier")))

            def take_all():
                counts = [g.counts()[0] for g in graphs]
                lat = [x for g in graphs for x in g.take_latencies()]
                n = sum(counts) - take_all.last
                take_all.last = sum(counts)
                return n, lat
            take_all.last = 0
            pubs = [g.publish_now for g in graphs]
            out["independent"] = _run(pubs, take_all, proxies, frames, fps, seconds)
            out["independent"]["nodes"] = _node_stats([n for g in graphs for n in g.nodes])
        finally:
            for g in graphs:
                g.close()
    finally:
        rclpy.try_shutdown()
    image_bytes = len(serialize_message(frames[0]))
    out["bytes_per_message"] = {
        "image_raw": image_bytes,
        "faces": float(np.median(sizes["faces"])) if sizes["faces"] else float("nan"),
        "emotion": float(np.median(sizes["emotion"])) if sizes["emotion"] else float("nan")}
    return out


def report(res: dict[str, Any]) -> str:
    """Return the human-readable table."""
    lines = _table(res, res, "graph")
    if res.get("stage"):
        lines += [""] + _table(res, res["stage"], "classifier stage only")
    b = res.get("bytes_per_message", {})
    if b:
        fps = res["fps"]
        lines.append("")
        lines.append(f"bytes per message ({res['faces']} face, 640x480): "
                     + ", ".join(f"{k} {v:,.0f} B ({v * fps / 1e3:,.1f} kB/s at {fps:g} fps)"
                                 for k, v in b.items()))
    return "\n".join(lines)


def _table(res: dict[str, Any], figures: dict[str, Any], what: str) -> list[str]:
    rows = [[f"{what}: {res['cameras']} cameras x {res['fps']:g} fps x {res['faces']} face",
             "offered fps", "throughput fps", "latency p50/p95 ms", "CPU cores",
             "inference calls/s", "faces/call (rows)"]]
    for name in ("shared", "independent"):
        r = figures.get(name)
        if not r:
            continue
        lat = r.get("latency", {})
        label = ("one classifier + smoother (multi)" if name == "shared"
                 else f"{res['cameras']} independent graphs")
        if what != "graph":
            label = ("one classifier + smoother" if name == "shared"
                     else f"{res['cameras']} classifier + smoother pairs")
        rows.append([label, f"{res['cameras'] * res['fps']:.0f}", f"{r['throughput_fps']:.1f}",
                     f"{lat.get('median_ms', float('nan')):.1f} / "
                     f"{lat.get('p95_ms', float('nan')):.1f}", f"{r['cpu_cores_used']:.2f}",
                     f"{r['inference_calls_per_s']:.1f}",
                     f"{r['faces_per_call']:.2f} ({r['rows_per_call']:.2f})"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the many-camera benchmark and print its table."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = argparse.ArgumentParser(prog="bench --multi", description=__doc__.split("\n\n")[0])
    p.add_argument("--cameras", type=int, default=4, help="number of cameras (default 4)")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second per camera")
    p.add_argument("--faces", type=int, default=1, help="faces per frame (1-4)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per graph")
    p.add_argument("--json", type=Path, help="write the figures to this JSON file")
    a = p.parse_args(argv)
    if a.cameras < 1 or not 1 <= a.faces <= 4 or a.fps <= 0 or a.seconds <= 0:
        p.error("--cameras >= 1, --faces 1-4, --fps and --seconds > 0")
    res = bench_multi(a.cameras, a.fps, a.faces, a.seconds)
    res["stage"] = bench_stage(a.cameras, a.fps, a.faces, a.seconds)
    res["machine"] = machine()
    res["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(f"bench --multi {' '.join(argv or [])}  ({res['date']})\n{machine_line(res['machine'])}"
          "\n")
    print(report(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

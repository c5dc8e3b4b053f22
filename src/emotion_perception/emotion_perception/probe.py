"""The perception graph in this process with a probe node that feeds it and listens.

Shared by the benchmark (``bench``), the soak run (``soak``) and tests: the nodes come from the
same graph spec and parameter file as ``live`` and the launch files; the probe publishes
``sensor_msgs/Image`` on ``<namespace>/image`` and counts ``<namespace>/emotion`` messages with
their latency (receive time - image stamp).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable


def wait_graph_ready(nodes: list, connected: Callable[[], bool], timeout: float) -> None:
    """Wait until ``connected()``; raise RuntimeError as soon as a node failed to configure.

    TimeoutError after ``timeout`` seconds. Shared by the probes here and in ``bench_multi``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors = {n.get_name(): n.configure_error for n in nodes
                  if getattr(n, "configure_error", "")}
        if errors:
            raise RuntimeError(f"graph failed to start: {errors}")
        if connected():
            return
        time.sleep(0.05)
    raise TimeoutError(f"graph not ready after {timeout:.0f} s")


class ProbedGraph:
    """The graph (no camera) in this process, with a probe feeding and listening.

    rclpy must be initialised. Images go to ``<namespace>/image``; every /emotion message is
    counted, and its latency (receive time - image stamp) kept until ``take_latencies``.
    ``model_path`` (with ``classifier``) overrides the parameter file's classifier model;
    ``preset`` (a shipped preset's name or a YAML, as ``live --preset``) is layered over the
    parameter file, ``overrides`` (node name -> parameters) over both. ``debug_image`` adds the
    debug image node (publishing ``<namespace>/debug_image``); it is off for benchmarks.
    """

    def __init__(self, model_path: str = "", classifier: str = "keras",
                 namespace: str = "/probe", params_file: Path | None = None,
                 smoothing: bool = True,
                 overrides: dict[str, dict[str, Any]] | None = None,
                 debug_image: bool = False, preset: str = "") -> None:
        import rclpy
        from emotion_msgs.msg import EmotionArray
        from sensor_msgs.msg import Image

        from .graph import default_params_file, graph_spec, load_params_files
        from .live import create_nodes
        from .nodes.base import IMAGE_PUB_QOS, RESULT_QOS
        from .nodes.runner import BackgroundSpin

        if not namespace.startswith("/"):
            raise ValueError(f"namespace must be absolute (start with '/'), got {namespace!r}")
        self.namespace = namespace
        params = load_params_files(params_file or default_params_file(), preset)
        if model_path:
            params.setdefault("emotion_classifier", {}).update(
                {"classifier": classifier, "model_path": str(model_path)})
        for node, values in (overrides or {}).items():
            params.setdefault(node, {}).update(values)
        specs = graph_spec(image_topic=f"{namespace}/image", smoothing=smoothing,
                           debug_image=debug_image)
        self.nodes = create_nodes(specs, params, namespace)
        self.probe = rclpy.create_node("graph_probe", namespace=namespace)
        self.pub = self.probe.create_publisher(Image, f"{namespace}/image", IMAGE_PUB_QOS)
        self.emotion_topic = f"{namespace}/emotion"
        self._lock = threading.Lock()
        self.received = 0
        self.faces = 0
        self._latency: list[float] = []
        self.recent_stamps: deque[tuple[int, int]] = deque(maxlen=256)
        self.probe.create_subscription(EmotionArray, self.emotion_topic, self._on_emotion,
                                       RESULT_QOS)
        self._spin = BackgroundSpin(self.nodes + [self.probe], name="probe_spin")

    def _on_emotion(self, msg) -> None:
        now = time.time()
        stamp = msg.header.stamp
        with self._lock:
            self.received += 1
            self.faces += len(msg.emotions)
            self._latency.append(now - (stamp.sec + stamp.nanosec * 1e-9))
            self.recent_stamps.append((stamp.sec, stamp.nanosec))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every node is active and the probe is connected; raise if one failed."""
        wait_graph_ready(self.nodes, lambda: self.pub.get_subscription_count() >= 1
                         and self.probe.count_publishers(self.emotion_topic) >= 1, timeout)

    def node(self, name: str):
        """Return the graph's node called ``name``."""
        for n in self.nodes:
            if n.get_name() == name:
                return n
        raise KeyError(f"no node {name!r}; nodes: {[n.get_name() for n in self.nodes]}")

    def node_stats(self) -> dict[str, dict[str, float]]:
        """Return every node's StageStats snapshot (counters, rate, latency percentiles)."""
        return {n.get_name(): n.stats.snapshot() for n in self.nodes if hasattr(n, "stats")}

    def take_latencies(self) -> list[float]:
        """Return and forget the latencies (s) collected since the last call."""
        with self._lock:
            out, self._latency = self._latency, []
        return out

    def received_count(self) -> int:
        """Return the number of /emotion messages received so far."""
        with self._lock:
            return self.received

    def counts(self) -> tuple[int, int]:
        """Return (/emotion messages, faces in them) received so far."""
        with self._lock:
            return self.received, self.faces

    def publish_now(self, msg) -> tuple[int, int]:
        """Stamp the image message with the current time, publish it; return (sec, nanosec).

        Latency is measured from this stamp to the /emotion message that carries it.
        """
        now = time.time()
        stamp = (int(now), int((now % 1.0) * 1e9))
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
        self.pub.publish(msg)
        return stamp

    def alive(self) -> bool:
        """Return True while the graph's executor thread runs (an escaped error ends it)."""
        return self._spin.alive()

    def close(self) -> None:
        """Stop the graph's workers and destroy its nodes (rclpy stays initialised)."""
        self._spin.stop(shutdown_rclpy=False)

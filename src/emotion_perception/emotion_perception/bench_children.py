"""The child processes of :mod:`.bench_processes`: their handle and the transport roles.

:class:`Child` runs and watches one process; the plain rclpy image publisher and
subscriber roles are those of the transport benchmark. They run as
``python -m emotion_perception.bench_processes --role publisher|subscriber`` (that module's
parser holds their options) and talk to the orchestrator over stdin / stdout lines
(``READY``, ``go``, ``RESULT {json}``, ``quit``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np


def latency_percentiles(values: list[float]) -> dict[str, float]:
    """Return p50, p95 and max of latencies in ms (empty for no values)."""
    if not values:
        return {}
    a = np.asarray(values, dtype=np.float64)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max())}


# -- child roles (run as `python -m emotion_perception.bench_processes --role ...`) -----------
def stdin_lines() -> Any:
    """Yield this process's stdin lines, stripped."""
    for line in sys.stdin:
        yield line.strip()


def role_publisher(a: argparse.Namespace) -> int:
    """Child role: publish ``a.frames`` images at ``a.fps`` on ``a.topic`` after "go"."""
    import rclpy
    from sensor_msgs.msg import Image

    from .nodes.base import IMAGE_PUB_QOS
    from .nodes.convert import array_to_image

    rclpy.init(args=[])
    node = rclpy.create_node("bench_image_publisher")
    pub = node.create_publisher(Image, a.topic, IMAGE_PUB_QOS)
    rng = np.random.default_rng(0)
    msgs = [array_to_image(rng.integers(0, 256, (a.height, a.width, 3), dtype=np.uint8), "bgr8")
            for _ in range(8)]
    print("READY", flush=True)
    for line in stdin_lines():  # the orchestrator says go once every subscriber is matched
        if line == "go":
            break
    period, t0, sent = 1.0 / a.fps, time.monotonic(), 0
    late = 0
    while sent < a.frames:
        msg = msgs[sent % len(msgs)]
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = str(sent)
        pub.publish(msg)
        sent += 1
        wait = t0 + sent * period - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        else:
            late += 1
    wall = time.monotonic() - t0
    print("RESULT " + json.dumps({"published": sent, "seconds": wall,
                                  "achieved_fps": sent / wall, "late": late}), flush=True)
    for line in stdin_lines():
        if line == "quit":
            break
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def role_subscriber(a: argparse.Namespace) -> int:
    """Child role: count the images on ``a.topic`` and their latency until "quit"."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init(args=[])
    node = rclpy.create_node(f"bench_image_subscriber_{os.getpid()}")
    latencies: list[float] = []
    seen: set[str] = set()

    def on_image(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latencies.append((now - stamp) * 1e-6)
        seen.add(msg.header.frame_id)
        np.frombuffer(msg.data, np.uint8)  # what a node does first with the pixels

    sub = node.create_subscription(Image, a.topic, on_image, qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    deadline = time.monotonic() + 60
    while sub.get_publisher_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    print("READY" if sub.get_publisher_count() else "UNMATCHED", flush=True)
    for line in stdin_lines():
        if line == "quit":
            break
    n = len(latencies)
    print("RESULT " + json.dumps({"received": n, "distinct": len(seen),
                                  "latency": latency_percentiles(list(latencies))}), flush=True)
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# -- orchestration --------------------------------------------------------------------------
class Child:
    """One child process whose stdout lines are collected on a thread."""

    def __init__(self, cmd: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float) -> str | None:
        """Return the first stdout line starting with ``prefix`` (None on timeout/exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None and not self._thread.is_alive():
                return None
            time.sleep(0.02)
        return None

    def send(self, line: str) -> None:
        """Write one line to the child's stdin."""
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def cpu_seconds(self) -> float:
        """Return user + system CPU seconds of the child so far (psutil)."""
        import psutil

        try:
            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT the child (its session), then kill it if it lingers; return its exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    def tail(self, n: int = 20) -> str:
        """Return the last ``n`` output lines."""
        return "\n".join(self.lines[-n:])


def child_result(child: Child, timeout: float = 20.0) -> dict[str, Any]:
    """Return the JSON of the child's ``RESULT`` line; RuntimeError if none comes."""
    line = child.wait_line("RESULT ", timeout)
    if line is None:
        raise RuntimeError(f"{child.name} gave no result:\n{child.tail()}")
    return json.loads(line[len("RESULT "):])

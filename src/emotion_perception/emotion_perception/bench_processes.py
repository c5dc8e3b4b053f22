"""Multi-process benchmark: images between processes, the way ``ros2 launch`` runs the graph.

    bench --processes [--profile shipped|none|FILE] [--fps 30] [--seconds 20]
    python -m emotion_perception.bench_processes [same options]
        [--mode transport|graph|both|launch] [--publisher-profile none]

``transport``: one plain rclpy publisher process sends 640x480 bgr8 ``sensor_msgs/Image`` at
``--fps`` to ``--subscribers`` plain rclpy processes subscribed with sensor-data QoS (best
effort), as the face detector and the debug image node subscribe to the camera; each counts
what arrived and the latency (publish stamp -> callback).

``graph``: the real node executables (camera, face detector, classifier, smoother, debug
image), each its own process with the shipped parameter file, the camera on the demo clip at
``--fps``; the figures are the nodes' own /diagnostics counters (published, received,
dropped, p95 latency) plus an /emotion probe here, and the CPU the node processes used.
``launch``: the same graph started by ``ros2 launch emotion_perception live.launch.py`` (where
ROS 2 launch is installed), the profile chosen by its ``dds_profile`` argument.

All run with the Fast DDS profile the launch files use (``config/fastdds_shm.xml``) or
without (``--profile none``), set in every child's environment. Subscribers are matched
before the first frame is sent (no sleep-and-hope). Figures are measurements of this machine
at this moment; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .bench_children import (Child, child_result, latency_percentiles, role_publisher,
                             role_subscriber)
from .graph import graph_spec
from .machine import machine, machine_line

PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_NAME = "fastdds_shm.xml"


def shipped_profile() -> Path:
    """Return the installed config/fastdds_shm.xml (or the source tree's)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory("emotion_perception")) / "config"
        if (installed / PROFILE_NAME).is_file():
            return installed / PROFILE_NAME
    except Exception:  # not installed: fall back to the source tree
        pass
    here = Path(__file__).resolve().parent.parent / "config" / PROFILE_NAME
    if here.is_file():
        return here
    raise FileNotFoundError(f"config/{PROFILE_NAME} not found in the emotion_perception share "
                            "directory nor in the source tree")


def child_env(profile: str) -> dict[str, str]:
    """Return the environment of a child process with ``profile`` (path, or "none")."""
    env = dict(os.environ)
    for var in PROFILE_VARS:
        env.pop(var, None)
    if profile != "none":
        path = str(shipped_profile() if profile == "shipped" else Path(profile).resolve())
        for var in PROFILE_VARS:
            env[var] = path
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def bench_transport(profile: str, fps: float, seconds: float, subscribers: int = 2,
                    width: int = 640, height: int = 480, publisher_profile: str = ""
                    ) -> dict[str, Any]:
    """Send frames from a publisher process to best-effort subscriber processes; count them.

    ``publisher_profile`` (default: ``profile``) is the publisher's own: the ``image_topic:=``
    case, where the camera is someone else's process, started without our profile.
    """
    env = child_env(profile)
    pub_env = child_env(publisher_profile or profile)
    topic = f"/bench_processes_{os.getpid()}/image"
    base = [sys.executable, "-m", "emotion_perception.bench_processes", "--topic", topic,
            "--width", str(width), "--height", str(height), "--fps", str(fps),
            "--frames", str(max(1, int(round(fps * seconds))))]
    subs = [Child(base + ["--role", "subscriber"], env, f"subscriber {i}")
            for i in range(subscribers)]
    pub = Child(base + ["--role", "publisher"], pub_env, "publisher")
    children = subs + [pub]
    try:
        for c in children:
            line = c.wait_line("READY", 60) or c.wait_line("UNMATCHED", 1)
            if line != "READY":
                raise RuntimeError(f"{c.name} did not get ready:\n{c.tail()}")
        cpu0 = {c.name: c.cpu_seconds() for c in children}
        t0 = time.monotonic()
        pub.send("go")
        sent = child_result(pub, seconds * 3 + 30)
        # drain: until no subscriber's count moved for 0.5 s (they print nothing until quit,
        # so give the in-flight frames a fixed short moment; frames cannot arrive later than
        # the transport's own latency)
        time.sleep(0.5)
        wall = time.monotonic() - t0
        cpu = {c.name: c.cpu_seconds() - cpu0[c.name] for c in children}
        for c in children:
            c.send("quit")
        got = [child_result(s) for s in subs]
    finally:
        for c in children:
            c.stop()
    return {"profile": profile, "publisher_profile": publisher_profile or profile, "fps": fps,
            "width": width, "height": height, "published": sent["published"],
            "achieved_fps": sent["achieved_fps"],
            "received": [g["received"] for g in got],
            "delivered_percent": [100.0 * g["received"] / max(1, sent["published"])
                                  for g in got],
            "latency": [g["latency"] for g in got],
            "cpu_cores": sum(cpu.values()) / wall, "cpu_cores_per_process": {
                k: v / wall for k, v in cpu.items()}}


# -- the real graph as separate processes ---------------------------------------------------
#: the node each one's input comes from (None: the camera's images)
UPSTREAM = {"face_detector": None, "emotion_debug_image": None,
            "emotion_classifier": "face_detector", "emotion_smoother": "emotion_classifier"}


def interpolate_count(series: list[tuple[float, float]], t: float) -> float:
    """Return a counter's value at time ``t`` from its (stamp, value) reports (linear).

    Every node reports its counters once per diagnostics period; the camera publishes at a
    steady rate, so its count at another node's report time is well approximated between
    its own two reports around that time.
    """
    if not series:
        return float("nan")
    if t <= series[0][0]:
        return series[0][1]
    for (t0, v0), (t1, v1) in zip(series, series[1:]):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
    return series[-1][1]


def _launch_params(fps: float, model_path: str, folder: Path) -> Path:
    """Write the shipped parameter file with the benchmark's camera settings into ``folder``."""
    import yaml

    from .graph import default_params_file

    raw = yaml.safe_load(default_params_file().read_text())
    for key, body in raw.items():
        params = body.setdefault("ros__parameters", {})
        params["diagnostics_period"] = 1.0
        name = str(key).rstrip("/").split("/")[-1]
        if name == "camera":
            params.update(source="demo", fps=float(fps), width=640, height=480)
        if name == "emotion_classifier" and model_path:
            params["model_path"] = model_path
        if name == "emotion_debug_image":  # draw every frame, as if viewed (see bench_graph)
            params["lazy"] = False
    path = folder / "bench_params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def bench_graph(profile: str, fps: float, seconds: float, model_path: str = "",
                debug_image: bool = True, via_launch: bool = False) -> dict[str, Any]:
    """Run the node executables as separate processes; report their own counters.

    ``via_launch``: start them with ``ros2 launch emotion_perception live.launch.py`` (its
    ``dds_profile`` argument then sets the profile) instead of one by one from here.
    Delivery per node: the images (or upstream messages) it received between two of its own
    diagnostics reports, over what its source sent in the same interval (the camera's count
    interpolated at those report times; for classifier and smoother, the upstream node's
    processed count, one message each).
    """
    import tempfile
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from emotion_msgs.msg import EmotionArray
    from rclpy.executors import SingleThreadedExecutor

    from .graph import default_params_file

    env = child_env(profile)
    params = str(default_params_file())
    ns = f"/bench_graph_{os.getpid()}"
    every = ["diagnostics_period:=1.0"]
    # the debug image node draws only while viewed (lazy); nobody views it here, but its
    # delivery and CPU are what a robot with rqt_image_view open pays: keep it drawing
    overrides = {"camera": ["source:=demo", f"fps:={fps}", "width:=640", "height:=480"],
                 "emotion_classifier": [f"model_path:={model_path}"] if model_path else [],
                 "emotion_debug_image": ["lazy:=false"]}
    specs = graph_spec("", smoothing=True, debug_image=debug_image)
    children = []
    tmp = tempfile.TemporaryDirectory(prefix="bench_processes_")
    if via_launch:
        if shutil.which("ros2") is None:
            raise RuntimeError("--mode launch needs ros2 launch (ROS 2 launch and ros2cli)")
        choice = {"shipped": "auto", "none": "none"}.get(profile, str(Path(profile).resolve()))
        cmd = ["ros2", "launch", "emotion_perception", "live.launch.py", f"namespace:={ns}",
               f"params_file:={_launch_params(fps, model_path, Path(tmp.name))}",
               "source:=demo", f"debug_image:={str(debug_image).lower()}",
               f"dds_profile:={choice}"]
        children.append(Child(cmd, child_env("none"), "ros2 launch"))
    else:
        for spec in specs:
            cmd = [sys.executable, "-c", _node_main(spec.module), "--ros-args",
                   "-r", f"__node:={spec.name}", "-r", f"__ns:={ns}", "--params-file", params]
            for key, value in spec.remappings.items():
                cmd += ["-r", f"{key}:={value}"]
            for item in every + overrides.get(spec.name, []):
                cmd += ["-p", item]
            children.append(Child(cmd, env, spec.name))

    # The probe (this process) takes the same profile. Fast DDS reads the XML once per
    # process, so a second run in this process keeps the first one's; the probe only
    # receives small messages (diagnostics, emotions), for which the transports do not differ.
    for var in PROFILE_VARS:
        if env.get(var):
            os.environ[var] = env[var]
        else:
            os.environ.pop(var, None)
    rclpy.init(args=[])
    node = rclpy.create_node("bench_graph_probe", namespace=ns)
    history: dict[str, list[tuple[float, dict[str, str]]]] = {}
    emotion_lat: list[float] = []
    lock = threading.Lock()
    measuring = threading.Event()

    def on_diag(msg: DiagnosticArray) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        for st in msg.status:
            if st.name.endswith(f"{ns}/{st.hardware_id}"):
                with lock:
                    history.setdefault(st.hardware_id, []).append(
                        (stamp, {kv.key: kv.value for kv in st.values}))

    def on_emotion(msg: EmotionArray) -> None:
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with lock:
            if measuring.is_set() or not emotion_lat:
                emotion_lat.append((now - stamp) * 1e-6)

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    node.create_subscription(EmotionArray, f"{ns}/emotion", on_emotion, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    names = [spec.name for spec in specs]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # every node active, reporting, and output flowing
            with lock:
                if all(n in history for n in names) and emotion_lat:
                    break
            dead = [c for c in children if c.proc.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].tail()}")
            time.sleep(0.1)
        else:
            missing = [n for n in names if n not in history]
            raise RuntimeError(f"graph did not start (no diagnostics from {missing})")
        time.sleep(2.0)  # past start-up
        with lock:
            emotion_lat.clear()
        measuring.set()
        t_start = time.time()
        cpu0 = _cpu_by_node(children, names)
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        cpu1 = _cpu_by_node(children, names)
        cpu = {n: (cpu1.get(n, 0.0) - cpu0.get(n, 0.0)) / wall for n in cpu1}
        t_end = time.time()
        measuring.clear()
        time.sleep(2.2)  # every node reports after t_end, the camera once more after that
        with lock:
            hist = {n: list(history[n]) for n in names}
            lat = list(emotion_lat)
    finally:
        for c in children:
            c.stop(timeout=30.0)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
        tmp.cleanup()

    def window(name: str) -> tuple[tuple[float, dict], tuple[float, dict]]:
        """Return the node's first report at/after t_start and first at/after t_end."""
        reports = hist[name]
        first = next(r for r in reports if r[0] >= t_start)
        last = next((r for r in reports if r[0] >= t_end), reports[-1])
        return first, last

    def count(report: dict, key: str) -> int:
        return int(float(report.get(key, 0)))

    camera_series = [(t, float(r.get("published", "nan"))) for t, r in hist["camera"]]
    per_node: dict[str, dict[str, Any]] = {}
    (ca, cra), (cb, crb) = window("camera")
    published = count(crb, "published") - count(cra, "published")
    for n in names:
        if n == "camera":
            continue
        (ta, ra), (tb, rb) = window(n)
        received = count(rb, "received") - count(ra, "received")
        source = UPSTREAM.get(n)
        if source is None:
            sent = interpolate_count(camera_series, tb) - interpolate_count(camera_series, ta)
        else:
            sa = interpolate_count([(t, float(r.get("processed", 0))) for t, r in hist[source]],
                                   ta)
            sb = interpolate_count([(t, float(r.get("processed", 0))) for t, r in hist[source]],
                                   tb)
            sent = sb - sa
        per_node[n] = {"input_from": source or "camera", "sent": sent, "received": received,
                       "delivered_percent": 100.0 * received / sent if sent > 0 else
                       float("nan"),
                       "processed": count(rb, "processed") - count(ra, "processed"),
                       "dropped": count(rb, "dropped") - count(ra, "dropped"),
                       "latency_p95_ms": float(rb.get("latency_ms_p95", "nan")),
                       "cpu_cores": cpu[n]}
    return {"profile": profile, "fps": fps, "seconds": cb - ca, "published": published,
            "camera_fps": published / (cb - ca) if cb > ca else float("nan"),
            "camera_cpu_cores": cpu.get("camera", float("nan")), "nodes": per_node,
            "emotion_latency": latency_percentiles(lat), "emotion_messages": len(lat),
            "cpu_cores": sum(cpu.values()), "via": "ros2 launch" if via_launch else "processes"}


def _cpu_by_node(children: list[Child], names: list[str]) -> dict[str, float]:
    """Return CPU seconds per graph node: each child, or the node processes under launch."""
    import psutil

    if len(children) == len(names):
        return {c.name: c.cpu_seconds() for c in children}
    out: dict[str, float] = {}
    try:  # ros2 launch: its node processes are its children, named by their executables
        procs = psutil.Process(children[0].proc.pid).children(recursive=True)
    except psutil.Error:
        return out
    executables = {s.executable: s.name for s in graph_spec("", True, True) if s.name in names}
    for proc in procs:
        try:
            cmdline = " ".join(proc.cmdline())
            t = proc.cpu_times()
        except psutil.Error:
            continue
        for exe, name in executables.items():
            if f"/{exe} " in cmdline + " ":
                out[name] = out.get(name, 0.0) + t.user + t.system
    return out


def _node_main(module: str) -> str:
    mod, cls = module.split(":")
    return (f"import sys; from emotion_perception.nodes.runner import run_single; "
            f"from {mod} import {cls}; run_single({cls}, sys.argv)")


def report(results: dict[str, Any]) -> str:
    """Return the human-readable tables."""
    lines = []
    for r in results.get("transport", []):
        rx = ", ".join(f"{n} ({p:.1f} %)" for n, p in zip(r["received"],
                                                          r["delivered_percent"]))
        p95 = ", ".join(f"{lt.get('p95_ms', float('nan')):.1f}" for lt in r["latency"])
        pub = "" if r["publisher_profile"] == r["profile"] else \
            f" (publisher: {r['publisher_profile']})"
        lines.append(f"transport {r['width']}x{r['height']} bgr8 @ {r['fps']:.0f} fps, profile "
                     f"{r['profile']}{pub}: published {r['published']}, received {rx}; "
                     f"p95 latency ms {p95}; CPU {r['cpu_cores']:.2f} cores (all processes)")
    for r in results.get("graph", []):
        how = "under ros2 launch" if r.get("via") == "ros2 launch" else "as processes"
        lines.append(f"graph {how}, camera at {r['fps']:.0f} fps (640x480 bgr8), profile "
                     f"{r['profile']}: camera published {r['published']} in {r['seconds']:.1f} s "
                     f"({r['camera_fps']:.1f} fps, CPU {r['camera_cpu_cores']:.2f}); /emotion p95 "
                     f"{r['emotion_latency'].get('p95_ms', float('nan')):.1f} ms; CPU "
                     f"{r['cpu_cores']:.2f} cores (all node processes)")
        for n, v in r["nodes"].items():
            lines.append(f"  {n:20s} received {v['received']:5d} of {v['sent']:6.0f} from "
                         f"{v['input_from']:18s} ({v['delivered_percent']:5.1f} %)  processed "
                         f"{v['processed']:5d}  dropped (newest wins) {v['dropped']:4d}  p95 "
                         f"{v['latency_p95_ms']:6.1f} ms  CPU {v['cpu_cores']:.2f}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="bench --processes", description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("transport", "graph", "both", "launch"), default="both",
                   help="transport: plain rclpy processes; graph: the node executables "
                        "started from here; both (default): the two; launch: the graph "
                        "under `ros2 launch emotion_perception live.launch.py` (needs it)")
    p.add_argument("--profile", action="append", default=None,
                   help="shipped (config/fastdds_shm.xml, the launch files' default), none, or "
                        "a Fast DDS XML file; repeat to compare (default: shipped and none)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    p.add_argument("--subscribers", type=int, default=2, help="transport: subscriber processes")
    p.add_argument("--publisher-profile", default="",
                   help="transport: the publisher's own profile (default: as --profile); "
                        "none measures someone else's camera started without ours")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--model-path", default="", help="graph: classifier model (default shipped)")
    p.add_argument("--json", type=Path, help="write the figures to this JSON file")
    # child roles
    p.add_argument("--role", choices=("publisher", "subscriber"), help=argparse.SUPPRESS)
    p.add_argument("--topic", default="/bench_processes/image", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the multi-process benchmarks and print the figures."""
    a = parser().parse_args(argv)
    if a.role == "publisher":
        return role_publisher(a)
    if a.role == "subscriber":
        return role_subscriber(a)
    if a.fps <= 0 or a.seconds <= 0 or a.subscribers < 1:
        print("bench --processes: --fps, --seconds and --subscribers must be positive",
              file=sys.stderr)
        return 2
    profiles = a.profile or ["shipped", "none"]
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(
        ["bench", "--processes", *(argv if argv is not None else sys.argv[1:])]),
        "transport": [], "graph": []}
    print(machine_line(results["machine"]), flush=True)
    for prof in profiles:
        if a.mode in ("transport", "both"):
            print(f"transport, profile {prof} ...", file=sys.stderr, flush=True)
            results["transport"].append(bench_transport(prof, a.fps, a.seconds, a.subscribers,
                                                        a.width, a.height,
                                                        a.publisher_profile))
        if a.mode in ("graph", "both", "launch"):
            print(f"graph as processes, profile {prof} ...", file=sys.stderr, flush=True)
            results["graph"].append(bench_graph(prof, a.fps, a.seconds, a.model_path,
                                                via_launch=a.mode == "launch"))
    print(report(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""In-process runner of the live graph: ``ros2 run emotion_perception live``.

Composes the same nodes as ``launch/live.launch.py`` with the same YAML in one process, for
machines without ``ros2 launch`` and as the README's main command. It prints what it sees and
writes an annotated video. With no camera (``source: auto``) it runs on the embedded demo clip.

Example: ``ros2 run emotion_perception live --frames 150 --video out.mp4``

The video has one frame size, the first annotated image's: a later image of another size
(a camera whose ``width``/``height`` changed at runtime, an image folder of mixed sizes) is
letterboxed into it (scaled to fit, aspect kept, black bars), so one playable file holds every
frame; the summary counts the frames in the finished file and how many were letterboxed. A
camera source that cannot exist (a missing file or folder) stops ``live`` at once, and a run in
which no /emotion message arrived exits with status 1 and the camera's state and last error.

``--cameras front,back`` runs the many-camera graph of ``launch/multi.launch.py``
(``graph.multi_graph_spec``): a camera and a face detector per namespace, all on ``--source``,
one classifier and smoother for all; the summary counts each camera's /emotion messages.
``--only NODE,...`` runs a part of the graph (the robot's camera and detector here, the
classifier on another host: README, Across machines).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .graph import (NodeSpec, default_params_file, graph_spec, join_namespace,
                    load_params_files, multi_graph_spec, parse_value)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="live", description=__doc__.split("\n\n")[0])
    p.add_argument("--params-file", type=Path, help="parameter YAML (default: the installed "
                   "config/emotion_perception.yaml)")
    p.add_argument("--preset", default="", help="parameter preset layered over the parameter "
                   "file: a shipped name (low_cpu: fits a small CPU, README Performance) or a "
                   "YAML file")
    p.add_argument("--source", help="camera source: device index, file, URL, folder, demo, auto")
    p.add_argument("--image-topic", default="", help="use this camera topic instead of running "
                   "our camera node")
    p.add_argument("--detector", help="detector plugin (haar, yunet, ...)")
    p.add_argument("--classifier", help="classifier plugin (auto, keras, tflite, ...)")
    p.add_argument("--model-path", help="classifier model file")
    p.add_argument("--smoother", help="smoother plugin (none, ema, hysteresis, lstm)")
    p.add_argument("--no-smoothing", action="store_true", help="publish per-frame emotions "
                   "on /emotion (no smoother node)")
    p.add_argument("--no-debug-image", action="store_true", help="do not run the annotated "
                   "debug image node (then no video is written)")
    p.add_argument("--hri", action="store_true", help="also publish ROS4HRI faces: "
                   "/humans/faces/tracked and /humans/faces/<id>/{expression,roi,cropped} "
                   "(needs hri_msgs)")
    p.add_argument("--hri-input", action="store_true", help="classify the faces of a running "
                   "ROS4HRI detector (/humans/faces/...) instead of our camera and detector, "
                   "and publish their expressions (needs hri_msgs)")
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override one parameter, e.g. face_detector.max_side=480")
    p.add_argument("--namespace", default="", help="namespace of all nodes")
    p.add_argument("--cameras", default="", help="camera namespaces (front,back): a camera "
                   "and detector each, one classifier and smoother serving all (no debug "
                   "image, no video)")
    p.add_argument("--only", default="", help="run only these nodes of the graph, comma "
                   "separated (e.g. camera,face_detector on the robot)")
    p.add_argument("--frames", type=int, default=0, help="stop after this many /emotion "
                   "messages (0 = run until Ctrl-C; default 150 on the demo input)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    p.add_argument("--video", default="emotion_live.mp4",
                   help="annotated video to write ('' to skip)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def video_path(args: argparse.Namespace) -> Path | None:
    """Return the annotated video to write, None for ``--video ''`` or ``--no-debug-image``.

    ``--video`` stays a string until here: ``Path('')`` is ``.``, a directory, not "none".
    """
    if args.no_debug_image or not str(args.video).strip():
        return None
    return Path(args.video)


def node_params(args: argparse.Namespace, specs: list[NodeSpec]) -> dict[str, dict[str, Any]]:
    """Return every parameter of the graph's nodes: defaults, the YAML file, the options.

    The merge and the checks are ``core.params.merge_params`` (the offline bag evaluation's
    too), so a bad value is refused here, naming the parameter, before any node is created.
    """
    from .core.params import merge_params

    path = args.params_file or default_params_file()
    loaded = load_params_files(path, args.preset)
    overrides: dict[str, dict[str, Any]] = {}
    if args.source is not None:
        overrides.setdefault("camera", {})["source"] = args.source
    if args.detector:
        overrides.setdefault("face_detector", {})["detector"] = args.detector
    if args.classifier:
        overrides.setdefault("emotion_classifier", {})["classifier"] = args.classifier
    if args.model_path:
        overrides.setdefault("emotion_classifier", {})["model_path"] = args.model_path
    if args.smoother:
        overrides.setdefault("emotion_smoother", {})["smoother"] = args.smoother
    for item in args.set:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set expects NODE.PARAM=VALUE, got {item!r}")
        overrides.setdefault(node, {})[name] = parse_value(value)
    return merge_params([s.name for s in specs], loaded, overrides, overrides_name="--set")


def create_nodes(specs: list[NodeSpec], params: dict[str, dict[str, Any]], namespace: str = ""
                 ) -> list:
    """Instantiate the graph's nodes in this process (rclpy must be initialised)."""
    from rclpy.parameter import Parameter

    nodes = []
    for spec in specs:
        module, _, cls_name = spec.module.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        cli = ["--ros-args"]
        for src, dst in spec.remappings.items():
            cli += ["-r", f"{src}:={dst}"]
        values = {**params.get(spec.name, {}), **spec.parameters}
        overrides = [Parameter(k, value=v) for k, v in values.items()]
        ns = join_namespace(namespace, spec.namespace) if spec.namespace else namespace
        nodes.append(cls(spec.name, namespace=ns, cli_args=cli, parameter_overrides=overrides))
    return nodes


def select_nodes(specs: list[NodeSpec], only: str) -> list[NodeSpec]:
    """Return the specs named in ``only`` (comma separated; empty: all); unknown names raise."""
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    if not wanted:
        return specs
    known = {s.name for s in specs}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ValueError(f"--only: no node {unknown} in this graph; nodes: {sorted(known)}")
    return [s for s in specs if s.name in wanted]


class Monitor:
    """Subscribes to /emotion and /debug_image: prints, counts, writes the video."""

    def __init__(self, node, video: Path | None, quiet: bool, fps: float,
                 topics: tuple[str, ...] = ("emotion",)) -> None:
        from emotion_msgs.msg import EmotionArray
        from sensor_msgs.msg import Image

        from .nodes.base import IMAGE_PUB_QOS, RESULT_QOS

        self.node = node
        self.quiet = quiet
        self.fps = fps
        self.video_path = video
        self.writer = None
        self.video_size: tuple[int, int] | None = None  # (width, height) of the video
        self.frames = 0
        self.video_frames = 0
        self.letterboxed = 0
        self.file_frames = -1  # frames in the finished file, read back after close (-1: none)
        self.faces = 0
        self.labels: Counter[str] = Counter()
        self.per_frame_id: Counter[str] = Counter()  # /emotion messages per camera frame_id
        self.ids: set[int] = set()
        self.latencies: list[float] = []
        self.done = threading.Event()
        self.limit = 0
        self.closed = False
        self._lock = threading.Lock()
        self._last_print = 0.0
        for topic in topics:
            node.create_subscription(EmotionArray, topic, self._on_emotion, RESULT_QOS)
        if video is not None:
            node.create_subscription(Image, "debug_image", self._on_image, IMAGE_PUB_QOS)

    def _on_emotion(self, msg) -> None:
        from .nodes.base import stamp_seconds

        now = self.node.get_clock().now().nanoseconds * 1e-9
        with self._lock:
            if self.limit and self.frames >= self.limit:
                return  # --frames reached: what arrives while the graph stops is not counted
            self.frames += 1
            self.per_frame_id[msg.header.frame_id] += 1
            self.latencies.append(now - stamp_seconds(msg.header.stamp))
            for e in msg.emotions:
                self.faces += 1
                self.labels[e.label_name] += 1
                self.ids.add(int(e.face_id))
            if self.limit and self.frames >= self.limit:
                self.done.set()
        if not self.quiet and time.monotonic() - self._last_print >= 0.5:
            self._last_print = time.monotonic()
            faces = ", ".join(f"face {e.face_id}: {e.label_name} {e.confidence:.2f}"
                              f"{' (smoothed)' if e.smoothed else ''}" for e in msg.emotions)
            where = f" {msg.header.frame_id}" if len(self.per_frame_id) > 1 else ""
            print(f"[{self.frames:5d}]{where} {faces or 'no face'}", flush=True)

    def _on_image(self, msg) -> None:
        import cv2

        from .core.image_conversion import image_to_array, to_bgr8

        frame = to_bgr8(image_to_array(msg), msg.encoding)
        with self._lock:
            if self.closed or self.video_path is None:
                return
            if self.limit and self.video_frames >= self.limit:
                return  # the video holds the --frames frames the summary counts
            if self.writer is None:
                try:
                    self.video_path.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(self.video_path),
                                             cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                             (frame.shape[1], frame.shape[0]))
                    if not writer.isOpened():
                        raise OSError("OpenCV cannot open it for writing")
                except OSError as exc:  # an unwritable path must not stop the graph
                    print(f"live: cannot write video {self.video_path}: {exc}; continuing "
                          "without video", file=sys.stderr, flush=True)
                    self.video_path = None
                    return
                self.writer = writer
                self.video_size = (frame.shape[1], frame.shape[0])
            if (frame.shape[1], frame.shape[0]) != self.video_size:
                # OpenCV drops a frame of another size with only a warning: fit it instead
                frame = letterbox(frame, self.video_size)
                self.letterboxed += 1
            self.writer.write(frame)
            self.video_frames += 1

    def close(self) -> None:
        """Finish the video file so it is complete and playable; count its frames."""
        with self._lock:
            self.closed = True
            if self.writer is not None:
                self.writer.release()
                self.writer = None
                self.file_frames = count_video_frames(self.video_path)


def letterbox(frame, size: tuple[int, int]):
    """Return ``frame`` scaled to fit ``size`` (width, height), aspect kept, black bars."""
    import cv2
    import numpy as np

    w, h = size
    fh, fw = frame.shape[:2]
    scale = min(w / fw, h / fh)
    nw, nh = max(1, min(w, round(fw * scale))), max(1, min(h, round(fh * scale)))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def count_video_frames(path: Path | None) -> int:
    """Return the frame count a finished video file declares, -1 if it cannot be opened.

    The count comes from the container's index (exact for the MP4 written here), so a long
    recording is not decoded again at exit.
    """
    import cv2

    if path is None or not Path(path).is_file():
        return -1
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()


def main(argv: list[str] | None = None) -> int:
    """Run the live graph in this process (the ``live`` command).

    As a command (``argv`` None) the process leaves with ``os._exit`` once the graph is shut
    down, the video closed and the summary flushed: one fresh-clone CI run saw the process
    crash with SIGSEGV *after* its last line, in the interpreter's teardown of TensorFlow
    (Keras classifier) and rclpy's threads, turning a correct exit status into -11. Nothing
    is left to clean up by then. Called with ``argv`` (from Python) it returns the status.
    """
    status = run(argv)
    if argv is None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def run(argv: list[str] | None = None) -> int:
    """Run the live graph in this process; return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        if args.cameras:
            if args.image_topic or args.hri or args.hri_input:
                raise ValueError("--cameras runs our cameras: not with --image-topic, --hri "
                                 "or --hri-input")
            specs = multi_graph_spec(args.cameras, smoothing=not args.no_smoothing)
            args.no_debug_image = True
        else:
            specs = graph_spec(args.image_topic, smoothing=not args.no_smoothing,
                               debug_image=not args.no_debug_image, hri=args.hri,
                               hri_input=args.hri_input)
        params = node_params(args, specs)
        specs = select_nodes(specs, args.only)
    except (ValueError, OSError) as exc:
        print(f"live: {exc}", file=sys.stderr)
        return 2
    cam = params.get("camera", {})
    source = str(cam.get("source", "auto"))
    own_camera = any(s.name == "camera" for s in specs)
    if own_camera:
        from .core.sources import SourceError, check_source
        try:  # a missing file would only be retried for ever, with no frame ever
            check_source(source)
        except SourceError as exc:
            print(f"live: camera: {exc}", file=sys.stderr)
            return 2
    demo = own_camera and (source == "demo"
                           or (source == "auto" and not Path("/dev/video0").exists()))
    limit = args.frames or (150 if demo and not args.duration else 0)
    if own_camera:  # started once the graph listens (_start_camera), not before
        params.setdefault("camera", {})["autostart"] = False

    import rclpy

    from .nodes.runner import BackgroundSpin, shutdown_nodes

    rclpy.init()
    nodes: list = []
    monitor = None
    spin = None
    interrupted = False
    failed = ""
    t0 = time.monotonic()
    try:
        try:
            nodes = create_nodes(specs, params, args.namespace)
        except ValueError as exc:
            print(f"live: {exc}", file=sys.stderr)
            return 2
        mon_node = rclpy.create_node("emotion_live_monitor", namespace=args.namespace)
        video = video_path(args)
        topics = tuple(f"{c}/emotion" for c in specs_cameras(specs)) or ("emotion",)
        monitor = Monitor(mon_node, video, args.quiet, float(cam.get("fps", 15.0)), topics)
        monitor.limit = limit
        nodes.append(mon_node)
        spin = BackgroundSpin(nodes, name="live_spin")
        failed = _start_camera(nodes)
        print(f"live: {len(specs)} nodes running (source {source!r}{', demo clip' if demo else ''}"
              f"); {'stopping after ' + str(limit) + ' frames' if limit else 'Ctrl-C to stop'}",
              flush=True)
        failed = failed or _wait(nodes, monitor, args.duration, spin)
    except KeyboardInterrupt:
        interrupted = True
        print("\nlive: interrupted", flush=True)
    finally:
        interrupted = interrupted or not rclpy.ok()  # rclpy's own signal handler
        no_output = "" if monitor is None or monitor.frames else _why_no_output(nodes)
        if monitor is not None:
            monitor.close()
        if spin is not None:
            spin.stop(shutdown_rclpy=True)
        else:
            shutdown_nodes(nodes)
    _summary(monitor, time.monotonic() - t0)
    if failed:
        print(f"live: {failed}", file=sys.stderr)
        return 1
    if monitor is not None and not monitor.frames:
        print(f"live: no /emotion message arrived{' before the interrupt' if interrupted else ''}"
              f"; {no_output}", file=sys.stderr)
        return 1
    return 0


def _why_no_output(nodes: list) -> str:
    """Say what the camera (if ours) and the nodes report, for a run without any result."""
    parts = []
    for n in nodes:
        state = getattr(n, "source_state", "not started")
        stats = getattr(n, "stats", None)
        if n is _camera_of(nodes):
            parts.append(f"camera source {n.get_parameter('source').value!r} is {state!r}, "
                         f"{getattr(n, 'published', 0)} frames published")
        if stats is not None and stats.last_error:
            parts.append(f"{n.get_name()}: last error: {stats.last_error}")
    return "; ".join(parts) or "no node reported an error (is the image topic published?)"


def _camera_of(nodes: list):
    """Return our camera node among ``nodes``, or None (``--image-topic``)."""
    return next((n for n in nodes if getattr(n, "NODE_NAME", "") == "camera"), None)


def _start_camera(nodes: list, timeout: float = 300.0) -> str:
    """Activate our camera once every other node subscribes; return an error or "".

    Under autostart the camera would publish while the detector is still loading its model,
    and a short clip or folder would be over before anything listens. Returns the first
    configure error instead if a node fails to start.
    """
    import rclpy

    cameras = [n for n in nodes if getattr(n, "NODE_NAME", "") == "camera"]
    if not cameras:
        return ""
    others = [n for n in nodes if n not in cameras]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and rclpy.ok():
        for n in others:
            err = getattr(n, "configure_error", "")
            if err:
                return f"node {n.get_name()} failed to start: {err}"
        if all(list(n.subscriptions) for n in others):
            break
        time.sleep(0.05)
    for camera in cameras:  # every camera of a --cameras graph
        camera.trigger_configure()
        if camera.configure_error:
            return f"node {camera.get_name()} failed to start: {camera.configure_error}"
        camera.trigger_activate()
    return ""


def specs_cameras(specs: list[NodeSpec]) -> list[str]:
    """Return the camera namespaces a many-camera graph's classifier or detectors serve."""
    found: list[str] = []
    for s in specs:
        for cam in str(s.parameters.get("cameras", "")).split(","):
            if cam and cam not in found:
                found.append(cam)
        if s.namespace and s.namespace not in found:
            found.append(s.namespace)
    return found


def _wait(nodes: list, monitor: Monitor, duration: float, spin=None) -> str:
    import rclpy

    start = time.monotonic()
    camera = _camera_of(nodes)
    last_count, quiet_since = -1, time.monotonic()
    while not monitor.done.wait(0.2):
        if not rclpy.ok():  # rclpy's SIGINT/SIGTERM handler shut the context down: stop cleanly
            print("\nlive: interrupted", flush=True)
            return ""
        if spin is not None and not spin.alive():
            return "the executor stopped after an error (see above)"
        for n in nodes:
            err = getattr(n, "configure_error", "")
            if err:
                return f"node {n.get_name()} failed to start: {err}"
        if duration and time.monotonic() - start >= duration:
            break
        if monitor.frames != last_count:
            last_count, quiet_since = monitor.frames, time.monotonic()
        state = getattr(camera, "source_state", "")
        if state in ("ended", "failed", "max_frames reached") \
                and time.monotonic() - quiet_since >= 2.0:
            # the camera stopped for good and the graph has drained: nothing more will come
            # (a parameter change may restart it, but live has no way to ask for one)
            if state == "failed":
                return (f"camera source {camera.get_parameter('source').value!r} failed: "
                        f"{camera.stats.last_error}")
            print(f"live: camera source {state}", flush=True)
            break
    # let the debug image of the last frames reach the video before it is closed
    deadline = time.monotonic() + 2.0
    while monitor.video_path is not None and monitor.video_frames < monitor.frames \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return ""


def _summary(monitor: Monitor | None, elapsed: float) -> None:
    if monitor is None:
        return
    import numpy as np

    lat = np.array(monitor.latencies) * 1e3
    print(f"live: {monitor.frames} frames in {elapsed:.1f} s, {monitor.faces} face estimates, "
          f"face ids {sorted(monitor.ids)}", flush=True)
    if len(monitor.per_frame_id) > 1:
        print("live: /emotion messages per camera frame_id: " + ", ".join(
            f"{k} {v}" for k, v in sorted(monitor.per_frame_id.items())))
    if monitor.labels:
        print("live: labels " + ", ".join(f"{k} {v}" for k, v in monitor.labels.most_common()))
    if lat.size:
        print(f"live: latency image stamp -> /emotion: median {np.median(lat):.1f} ms, "
              f"p95 {np.percentile(lat, 95):.1f} ms")
    if monitor.video_frames:
        boxed = f", {monitor.letterboxed} of them letterboxed into " \
            f"{monitor.video_size[0]}x{monitor.video_size[1]}" if monitor.letterboxed else ""
        if monitor.file_frames >= 0:
            print(f"live: annotated video {monitor.video_path} ({monitor.file_frames} frames"
                  f"{boxed})")
        if monitor.file_frames != monitor.video_frames:
            print(f"live: warning: {monitor.video_frames} frames were handed to the video "
                  f"writer but the file holds {max(0, monitor.file_frames)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

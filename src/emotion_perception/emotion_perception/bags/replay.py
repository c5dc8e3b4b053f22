"""Replay bags into the live graph and record its outputs (rclpy).

Three commands:

* ``emotion-play-bag BAG [--rate 1.0] [--topic-remap old:=new] [--loop] [--lockstep]``: a
  player node publishing the bag's image topic and label topic (or ``--topics``) with their
  recorded timing scaled by ``1 / rate``; header stamps stay as recorded. It waits for
  ``--wait-subscribers N`` subscribers on the image topic first. With ``--lockstep`` it sends
  the next image only after the graph's result for the current one arrived on ``/emotion``
  (matched by header stamp), so no frame is dropped whatever the machine's speed.
* ``emotion-record-bag OUT_BAG [--topics /emotion /emotion_raw /faces] [--duration S]
  [--until-idle S]``: a recorder node writing those topics (CDR bytes exactly as
  ``rclpy.serialization.serialize_message`` produces them, received through raw
  subscriptions, under the typestore's type names) to a new bag. It subscribes as soon as a
  topic's publisher is discovered, matching its QoS; one writer thread does all file I/O, so
  callbacks never block on the disk. It closes the bag cleanly on Ctrl-C, SIGTERM,
  ``--duration`` or ``--until-idle``, so the file is always complete.
* ``python -m emotion_perception.bags.replay run BAG --out OUT_BAG``: composes the live graph in
  this process (the nodes of ``graph_spec`` with the package's parameter YAML, like
  ``ros2 run emotion_perception live``), plays the bag in lockstep (default; ``--no-lockstep``
  for timed playback), records the outputs and writes the scored report
  (``emotion-eval-bag BAG --predictions-bag OUT_BAG``).

With a ROS 2 installation, ``ros2 bag play BAG`` and ``ros2 bag record`` work in place of the
player and recorder (the bags are standard rosbag2); ``ros2 bag play`` has no lockstep mode,
so on a slow machine the graph drops frames (they count as "without output" in the report).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from .io import BagError, BagReader, ThreadedBagWriter
from .typestore import EMOTION_ARRAY_TYPE, LABEL_TOPIC

DEFAULT_RECORD_TOPICS = ("/emotion", "/emotion_raw", "/faces")
RESULT_TOPIC = "/emotion"


def ros_message_class(msgtype: str) -> Any:
    """Return the rclpy message class of ``pkg/msg/Name``."""
    pkg, kind, name = (msgtype.split("/") + ["", ""])[:3]
    if kind != "msg" or not pkg or not name:
        raise ValueError(f"expected a message type 'package/msg/Name', got {msgtype!r}")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype} is not available in this ROS environment "
                         f"({exc})") from exc


def cdr_header_stamp_ns(raw: bytes | memoryview) -> int:
    """Return the header stamp (ns) of a CDR message whose first field is a std_msgs/Header."""
    data = bytes(raw[:12])
    if len(data) < 12:
        raise ValueError("CDR message too short to hold a header")
    little = data[1] == 1  # encapsulation 0x0001 = CDR little endian, 0x0000 = big endian
    sec, nanosec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return sec * 1_000_000_000 + nanosec


def parse_remaps(items: Sequence[str]) -> dict[str, str]:
    """Return {old: new} of ``old:=new`` items."""
    out = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"--topic-remap expects OLD:=NEW, got {item!r}")
        out[old] = new
    return out


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def _reliable_qos(depth: int = 10) -> Any:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)


@dataclass
class PlayStats:
    """What a playback did."""

    images: int = 0
    messages: int = 0
    results: int = 0
    resent: int = 0
    timeouts: list[int] = field(default_factory=list)  # stamps without a result
    seconds: float = 0.0


@lru_cache(maxsize=1)
def _player_node_class() -> type:
    from rclpy.node import Node

    class BagPlayer(Node):
        """Publishes a bag's image and label topics (see the module docstring)."""

        def __init__(self, bag: str | Path, *, rate: float = 1.0,
                     remaps: dict[str, str] | None = None, loop: bool = False,
                     image_topic: str | None = None, topics: Sequence[str] | None = None,
                     result_topic: str = RESULT_TOPIC, node_name: str = "emotion_bag_player",
                     **kwargs: Any) -> None:
            if not rate > 0:
                raise ValueError(f"rate must be > 0, got {rate}")
            super().__init__(node_name, **kwargs)
            self.bag = Path(bag)
            self.rate = float(rate)
            self.loop = bool(loop)
            self.remaps = {_absolute(k): _absolute(v) for k, v in (remaps or {}).items()}
            with BagReader(self.bag) as reader:
                self.image_topic = reader.image_topic(image_topic)
                names = list(topics) if topics else [self.image_topic] + (
                    [LABEL_TOPIC] if LABEL_TOPIC in reader.info.topics else [])
                for name in names:
                    reader.require_topic(name)
                self.types = {t: reader.info.topics[t].msgtype for t in names}
                self.counts = {t: reader.info.topics[t].count for t in names}
            self._pubs = {}
            for topic, msgtype in self.types.items():
                self._pubs[topic] = self.create_publisher(
                    ros_message_class(msgtype), self.out_topic(topic), _reliable_qos())
            self._results: set[int] = set()
            self._result_cond = threading.Condition()
            self.result_topic = result_topic
            self._result_sub = self.create_subscription(
                ros_message_class(EMOTION_ARRAY_TYPE), result_topic, self._on_result,
                _reliable_qos(50), raw=True)

        def out_topic(self, topic: str) -> str:
            """Return the topic a bag topic is published on (after remapping)."""
            return self.remaps.get(topic, topic)

        @property
        def image_publisher(self) -> Any:
            """Return the image topic's publisher."""
            return self._pubs[self.image_topic]

        def _on_result(self, raw: bytes) -> None:
            try:
                stamp = cdr_header_stamp_ns(raw)
            except ValueError:
                return
            with self._result_cond:
                self._results.add(stamp)
                self._result_cond.notify_all()

        def graph_ready(self, subscribers: int = 1, result_publishers: int = 0,
                        topic_subscribers: dict[str, int] | None = None) -> bool:
            """Return True when the image topic, result topic and named topics are connected."""
            if self.image_publisher.get_subscription_count() < subscribers:
                return False
            if self._result_sub.get_publisher_count() < result_publishers:
                return False
            return all(self.count_subscribers(t) >= n
                       for t, n in (topic_subscribers or {}).items())

        def wait_ready(self, subscribers: int = 1, result_publishers: int = 0,
                       topic_subscribers: dict[str, int] | None = None,
                       timeout: float | None = None, stop: threading.Event | None = None
                       ) -> bool:
            """Poll :meth:`graph_ready` until true, the timeout, or ``stop``; return it."""
            deadline = None if timeout is None else time.monotonic() + timeout
            last_log = 0.0
            while not self.graph_ready(subscribers, result_publishers, topic_subscribers):
                if stop is not None and stop.is_set():
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                if time.monotonic() - last_log > 5.0:
                    last_log = time.monotonic()
                    self.get_logger().info(
                        f"waiting for {subscribers} subscriber(s) on "
                        f"{self.out_topic(self.image_topic)}"
                        + (f" and a publisher on {self.result_topic}" if result_publishers
                           else "")
                        + (f" and subscribers {topic_subscribers}" if topic_subscribers
                           else ""))
                time.sleep(0.02)
            return True

        def wait_acked(self, timeout: float = 5.0) -> bool:
            """Wait until reliable subscribers acknowledged everything published; return it."""
            from rclpy.duration import Duration

            return all(pub.wait_for_all_acked(Duration(nanoseconds=int(timeout * 1e9)))
                       for pub in self._pubs.values())

        def _messages(self) -> Any:
            with BagReader(self.bag) as reader:
                yield from reader.raw_messages(list(self.types))

        def play(self, stop: threading.Event | None = None,
                 progress: Callable[[int], None] | None = None) -> PlayStats:
            """Publish everything with the recorded timing scaled by 1 / rate (blocking)."""
            stats = PlayStats()
            start = time.monotonic()
            offset = 0.0
            while True:
                first_ns = None
                last = 0.0
                for topic, _, log_ns, raw in self._messages():
                    if stop is not None and stop.is_set():
                        stats.seconds = time.monotonic() - start
                        return stats
                    if first_ns is None:
                        first_ns = log_ns
                    last = (log_ns - first_ns) * 1e-9 / self.rate
                    delay = start + offset + last - time.monotonic()
                    if delay > 0:
                        if stop is not None:
                            if stop.wait(delay):
                                continue
                        else:
                            time.sleep(delay)
                    self._pubs[topic].publish(bytes(raw))
                    stats.messages += 1
                    if topic == self.image_topic:
                        stats.images += 1
                        if progress:
                            progress(1)
                if not self.loop or first_ns is None:
                    break
                offset += last + 1.0 / 15.0 / self.rate
            stats.seconds = time.monotonic() - start
            return stats

        def play_lockstep(self, timeout: float = 10.0, retries: int = 1,
                          stop: threading.Event | None = None,
                          progress: Callable[[int], None] | None = None) -> PlayStats:
            """Publish image by image, each after the previous one's result (blocking).

            Every other topic's messages go out in record order between the images; those
            recorded at the same time as an image (its label) go out just before it. An image
            whose result does not come within ``timeout`` s is sent again up to ``retries``
            times, then given up (its stamp is listed in ``timeouts``).
            """
            stats = PlayStats()
            start = time.monotonic()
            stopped = (lambda: stop is not None and stop.is_set())  # noqa: E731
            while True:
                pending: tuple[bytes, int] | None = None  # image waiting for same-time messages
                for topic, _, log_ns, raw in self._messages():
                    if stopped():
                        break
                    if topic != self.image_topic:
                        if pending is not None and log_ns != pending[1]:
                            self._send_image(pending[0], timeout, retries, stop, stats, progress)
                            pending = None
                        self._pubs[topic].publish(bytes(raw))  # e.g. the image's label
                        stats.messages += 1
                        continue
                    if pending is not None:
                        self._send_image(pending[0], timeout, retries, stop, stats, progress)
                    pending = (bytes(raw), log_ns)
                if pending is not None and not stopped():
                    self._send_image(pending[0], timeout, retries, stop, stats, progress)
                if not self.loop or stopped():
                    break
            stats.seconds = time.monotonic() - start
            return stats

        def _send_image(self, data: bytes, timeout: float, retries: int,
                        stop: threading.Event | None, stats: PlayStats,
                        progress: Callable[[int], None] | None) -> None:
            """Publish one image and wait for its result (resending on timeout)."""
            stamp = cdr_header_stamp_ns(data)
            with self._result_cond:
                self._results.discard(stamp)
            got = False
            for attempt in range(retries + 1):
                self._pubs[self.image_topic].publish(data)
                stats.messages += 1
                stats.resent += attempt > 0
                got = self._wait_result(stamp, timeout, stop)
                if got or (stop is not None and stop.is_set()):
                    break
            stats.images += 1
            if got:
                stats.results += 1
            elif not (stop is not None and stop.is_set()):
                stats.timeouts.append(stamp)
                self.get_logger().warning(
                    f"no result on {self.result_topic} for the image stamped "
                    f"{stamp * 1e-9:.6f} within {timeout} s; going on")
            if progress:
                progress(1)

        def _wait_result(self, stamp: int, timeout: float, stop: threading.Event | None
                         ) -> bool:
            deadline = time.monotonic() + timeout
            with self._result_cond:
                while stamp not in self._results:
                    left = deadline - time.monotonic()
                    if left <= 0 or (stop is not None and stop.is_set()):
                        return False
                    self._result_cond.wait(min(left, 0.1))
                return True

    return BagPlayer


@lru_cache(maxsize=1)
def _recorder_node_class() -> type:
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    class BagRecorder(Node):
        """Records topics into a new bag (see the module docstring)."""

        def __init__(self, out: str | Path, topics: Sequence[str] = DEFAULT_RECORD_TOPICS, *,
                     storage: str = "mcap", overwrite: bool = False, compress: bool = True,
                     node_name: str = "emotion_bag_recorder", **kwargs: Any) -> None:
            if not topics:
                raise ValueError("topics must name at least one topic")
            super().__init__(node_name, **kwargs)
            self.topics = [_absolute(t) for t in topics]
            self._lock = threading.Lock()
            self._writer = ThreadedBagWriter(
                out, storage=storage, overwrite=overwrite,
                compress=compress and storage == "mcap",
                custom_data={"emotion_perception.recorder": node_name})
            self.path = self._writer.path
            self._subs: dict[str, Any] = {}
            self.counts: dict[str, int] = {t: 0 for t in self.topics}
            self.first_time: float | None = None
            self.last_time: float | None = None
            self.closed = False
            self._discover()
            self._timer = self.create_timer(0.1, self._discover)

        def _discover(self) -> None:
            if self.closed:
                return
            missing = [t for t in self.topics if t not in self._subs]
            if not missing:
                return
            types = dict(self.get_topic_names_and_types())
            for topic in missing:
                names = types.get(topic)
                if not names:
                    continue
                msgtype = names[0]
                infos = self.get_publishers_info_by_topic(topic)
                if not infos:
                    continue
                best_effort = all(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                                  for i in infos)
                qos = QoSProfile(depth=100)
                qos.reliability = (ReliabilityPolicy.BEST_EFFORT if best_effort
                                   else ReliabilityPolicy.RELIABLE)
                try:
                    cls = ros_message_class(msgtype)
                    self._writer.add_topic(topic, msgtype)
                except (BagError, ValueError) as exc:
                    self.get_logger().error(f"not recording {topic}: {exc}")
                    self.topics.remove(topic)
                    continue
                self._subs[topic] = self.create_subscription(
                    cls, topic, self._callback(topic), qos, raw=True)
                self.get_logger().info(f"recording {topic} ({msgtype})")

        def _callback(self, topic: str) -> Callable[[bytes], None]:
            def write(raw: bytes) -> None:
                now = self.get_clock().now().nanoseconds
                with self._lock:
                    if self.closed:
                        return
                    self._writer.write(topic, now, raw)
                    self.counts[topic] += 1
                    self.last_time = time.monotonic()
                    if self.first_time is None:
                        self.first_time = self.last_time
            return write

        def connected(self) -> bool:
            """Return True when every recorded topic is subscribed and matched to a publisher."""
            return all(t in self._subs and self._subs[t].get_publisher_count() > 0
                       for t in self.topics)

        def idle_for(self) -> float:
            """Return seconds since the last recorded message (inf before the first)."""
            return float("inf") if self.last_time is None else time.monotonic() - self.last_time

        def close(self) -> dict[str, int]:
            """Stop recording and finish the bag file (idempotent); return message counts."""
            if not self.closed:
                self.destroy_timer(self._timer)
                for sub in self._subs.values():
                    self.destroy_subscription(sub)
                with self._lock:
                    self.closed = True
                self._writer.close()  # writes what is queued; raises BagError on failure
            return dict(self.counts)

    return BagRecorder


def __getattr__(name: str) -> Any:
    """Create the rclpy node classes on first access (the module imports without rclpy)."""
    if name == "BagPlayer":
        return _player_node_class()
    if name == "BagRecorder":
        return _recorder_node_class()
    raise AttributeError(name)


# -- command line helpers -----------------------------------------------------------------------
class _Stop:
    """SIGINT / SIGTERM set an event instead of killing the process (files get closed)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, lambda *_: self.event.set())
        return self.event

    def __exit__(self, *exc: Any) -> None:
        # Once a stop was asked for, later signals (Ctrl-C under ros2 launch arrives twice: from
        # the terminal and forwarded by launch) must not interrupt the clean-up that follows,
        # so they stay swallowed; otherwise the old handlers come back.
        for sig, handler in self._old.items():
            signal.signal(sig, _ignore_signal if self.event.is_set() else handler)


def _ignore_signal(*_: Any) -> None:
    """Signal handler that does nothing (a repeated SIGINT/SIGTERM during clean-up)."""


def _init_rclpy(argv: Sequence[str] | None = None) -> None:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=[sys.argv[0], *(argv or [])],
               signal_handler_options=SignalHandlerOptions.NO)


def _split_ros_args(argv: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Return (our arguments, ROS arguments): each ``--ros-args ... [--]`` block goes to ROS.

    Only explicit ``--ros-args`` blocks are ROS's (as ``ros2 run``/launch pass them), so our
    own ``OLD:=NEW`` options are not mistaken for the deprecated remap syntax.
    """
    full = list(sys.argv[1:] if argv is None else argv)
    ours: list[str] = []
    ros: list[str] = []
    inside = False
    for item in full:
        if item == "--ros-args":
            inside = True
            ros.append(item)
        elif inside and item == "--":
            inside = False
        elif inside:
            ros.append(item)
        else:
            ours.append(item)
    return ours, ros


def _bar(total: int, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc=desc, disable=quiet, file=sys.stderr)


def play_parser() -> argparse.ArgumentParser:
    """Return the parser of emotion-play-bag."""
    p = argparse.ArgumentParser(prog="emotion-play-bag",
                                description="Publish a bag's images (and labels) into ROS 2.")
    p.add_argument("bag", type=Path)
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    p.add_argument("--topic-remap", action="append", default=[], metavar="OLD:=NEW",
                   help="publish bag topic OLD on NEW")
    p.add_argument("--loop", action="store_true", help="start over at the end")
    p.add_argument("--image-topic", help="the bag's image topic (default: its only one)")
    p.add_argument("--topics", nargs="+", help="bag topics to play (default: image + label)")
    p.add_argument("--wait-subscribers", type=int, default=1, metavar="N",
                   help="wait for N subscribers on the image topic first (default 1; 0 = no)")
    p.add_argument("--wait-topic-subscribers", action="append", default=[],
                   metavar="TOPIC=N", help="also wait for N subscribers on TOPIC (e.g. "
                   "/emotion=2 for the player and a recorder)")
    p.add_argument("--lockstep", action="store_true", help="send each image only after the "
                   "previous one's result arrived on --result-topic (no drops)")
    p.add_argument("--result-topic", default=RESULT_TOPIC, help="lockstep: result topic")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="lockstep: seconds to wait for a result before resending / going on")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _topic_counts(items: Sequence[str]) -> dict[str, int]:
    out = {}
    for item in items:
        topic, sep, n = item.rpartition("=")
        if not sep or not topic or not n.isdigit():
            raise ValueError(f"--wait-topic-subscribers expects TOPIC=N, got {item!r}")
        out[_absolute(topic)] = int(n)
    return out


def play_main(argv: list[str] | None = None) -> int:
    """Run emotion-play-bag (``--ros-args`` are passed to rclpy)."""
    ours, full = _split_ros_args(argv)
    args = play_parser().parse_args(ours)
    try:
        remaps = parse_remaps(args.topic_remap)
        waits = _topic_counts(args.wait_topic_subscribers)
        if not args.rate > 0 or args.wait_subscribers < 0 or not args.timeout > 0:
            raise ValueError("--rate and --timeout must be > 0, --wait-subscribers >= 0")
    except ValueError as exc:
        print(f"emotion-play-bag: error: {exc}", file=sys.stderr)
        return 2
    _init_rclpy(full)
    player = None
    executor = None
    try:
        try:
            player = _player_node_class()(args.bag, rate=args.rate, remaps=remaps,
                                          loop=args.loop, image_topic=args.image_topic,
                                          topics=args.topics, result_topic=args.result_topic)
        except ValueError as exc:  # BagError included
            print(f"emotion-play-bag: error: {exc}", file=sys.stderr)
            return 2
        from ..nodes.runner import BackgroundSpin

        executor = BackgroundSpin([player], name="replay_spin")
        with _Stop() as stop:
            if not player.wait_ready(args.wait_subscribers, 1 if args.lockstep else 0, waits,
                                     stop=stop):
                return 1
            bar = _bar(player.counts[player.image_topic], "play", args.quiet)
            try:
                if args.lockstep:
                    stats = player.play_lockstep(args.timeout, stop=stop, progress=bar.update)
                else:
                    stats = player.play(stop=stop, progress=bar.update)
            finally:
                bar.close()
            player.wait_acked()  # do not exit before reliable subscribers have everything
        print(f"emotion-play-bag: published {stats.images} images ({stats.messages} messages) "
              f"in {stats.seconds:.1f} s"
              + (f"; {stats.results} results, {len(stats.timeouts)} timed out"
                 if args.lockstep else ""))
        return 0 if not stats.timeouts else 1
    finally:
        if executor is not None:
            executor.stop(shutdown_rclpy=True)
        else:
            import rclpy
            rclpy.try_shutdown()


def record_parser() -> argparse.ArgumentParser:
    """Return the parser of emotion-record-bag."""
    p = argparse.ArgumentParser(prog="emotion-record-bag",
                                description="Record topics of the live graph into a new bag.")
    p.add_argument("out", type=Path, help="bag directory to create")
    p.add_argument("--topics", nargs="+", default=list(DEFAULT_RECORD_TOPICS),
                   help=f"topics (default {' '.join(DEFAULT_RECORD_TOPICS)})")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    p.add_argument("--until-idle", type=float, default=0.0, metavar="S",
                   help="stop when nothing arrived for S seconds (after the first message)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    return p


def record_main(argv: list[str] | None = None) -> int:
    """Run emotion-record-bag until Ctrl-C, SIGTERM, --duration or --until-idle."""
    ours, full = _split_ros_args(argv)
    args = record_parser().parse_args(ours)
    if args.duration < 0 or args.until_idle < 0:
        print("emotion-record-bag: error: --duration and --until-idle must be >= 0",
              file=sys.stderr)
        return 2
    _init_rclpy(full)
    try:
        recorder = _recorder_node_class()(args.out, args.topics, storage=args.storage,
                                          overwrite=args.overwrite)
    except ValueError as exc:
        print(f"emotion-record-bag: error: {exc}", file=sys.stderr)
        import rclpy
        rclpy.try_shutdown()
        return 2
    from ..nodes.runner import BackgroundSpin

    executor = BackgroundSpin([recorder], name="replay_spin")
    start = time.monotonic()
    try:
        with _Stop() as stop:  # held while the bag is finished: no signal can interrupt that
            try:
                print(f"emotion-record-bag: recording {' '.join(recorder.topics)} to "
                      f"{args.out}; Ctrl-C to stop", flush=True)
                while not stop.wait(0.1):
                    if args.duration and time.monotonic() - start >= args.duration:
                        break
                    if args.until_idle and recorder.idle_for() >= args.until_idle:
                        break
            finally:
                stop.set()  # from here on a SIGINT/SIGTERM changes nothing
                counts = recorder.close()
    finally:
        executor.stop(shutdown_rclpy=True)
    print("emotion-record-bag: wrote " + str(args.out) + ": "
          + ", ".join(f"{t} {n} msgs" for t, n in counts.items()))
    return 0


# -- in-process replay of the whole graph ---------------------------------------------------
def graph_params(image_topic: str, params_file: str | Path | None,
                 overrides: dict[str, dict[str, Any]], smoothing: bool, lockstep: bool
                 ) -> tuple[list, dict[str, dict[str, Any]]]:
    """Return (node specs, per-node parameters) of the graph fed from ``image_topic``."""
    from ..graph import default_params_file, graph_spec, load_params_file

    specs = graph_spec(image_topic, smoothing=smoothing, debug_image=False)
    params = load_params_file(params_file or default_params_file())
    known = {s.name for s in specs}
    for spec in specs:  # a bag's stamps are the recording's, whatever their age: every frame
        # counts (a lockstep replay slower than the recording would otherwise go stale)
        params.setdefault(spec.name, {})["max_age"] = 0.0
    for node, values in overrides.items():
        if node not in known:
            raise ValueError(f"no node {node!r} in this graph; nodes: {sorted(known)}")
        params.setdefault(node, {}).update(values)
    if lockstep:  # one image in flight at a time: deliver it reliably
        params.setdefault("face_detector", {})["image_qos"] = "reliable"
    return specs, params


def _subscriptions_matched(node: Any) -> bool:
    """Return True when the node has subscriptions and each is matched to a publisher."""
    subs = list(node.subscriptions)
    return bool(subs) and all(s.get_publisher_count() > 0 for s in subs)


def wait_graph_ready(player: Any, recorder: Any | None, nodes: Sequence[Any],
                     timeout: float = 60.0, lockstep: bool = True) -> None:
    """Wait until the whole chain is connected, endpoint by endpoint.

    Ready means: every graph node is active with each of its subscriptions matched to a
    publisher (image -> detector -> classifier -> smoother), the player's image publisher
    has a subscriber and (lockstep) its result subscription a publisher, and the recorder is
    matched on all its topics. Raises RuntimeError saying what is missing after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        errors = [f"{n.get_name()}: {n.configure_error}" for n in nodes
                  if getattr(n, "configure_error", "")]
        if errors:
            raise RuntimeError("node failed to start: " + "; ".join(errors))
        waiting = [n.get_name() for n in nodes if not _subscriptions_matched(n)]
        graph = player.graph_ready(1, 1 if lockstep else 0)
        rec = recorder is None or recorder.connected()
        if graph and rec and not waiting:
            return
        if time.monotonic() >= deadline:
            what = []
            if waiting:
                what.append(f"node(s) {', '.join(waiting)} not active or not connected")
            if not graph:
                what.append(f"nothing subscribes to {player.out_topic(player.image_topic)}"
                            + (f" or nothing publishes {player.result_topic}" if lockstep
                               else ""))
            if not rec:
                what.append(f"the recorder is not connected to all of {recorder.topics}")
            raise RuntimeError(f"graph not ready after {timeout} s: " + "; ".join(what))
        time.sleep(0.02)


def wait_recorded(recorder: Any, topic: str, count: int, timeout: float = 10.0) -> bool:
    """Wait until ``recorder`` holds ``count`` messages of ``topic``; return whether it does."""
    deadline = time.monotonic() + timeout
    while recorder.counts.get(topic, 0) < count:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def run_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``run`` command."""
    p = argparse.ArgumentParser(prog="python -m emotion_perception.bags.replay run",
                                description="Replay a bag through the live graph in this "
                                "process, record its outputs and score them.")
    p.add_argument("bag", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output bag to record into")
    p.add_argument("--report-dir", type=Path, help="report folder (default <OUT>_eval)")
    p.add_argument("--image-topic", help="the bag's image topic (default: its only one)")
    p.add_argument("--params-file", type=Path, help="parameter YAML (default: the package's)")
    p.add_argument("--detector")
    p.add_argument("--classifier")
    p.add_argument("--model-path")
    p.add_argument("--smoother")
    p.add_argument("--no-smoothing", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE")
    p.add_argument("--no-lockstep", dest="lockstep", action="store_false",
                   help="timed playback at --rate instead of frame-by-frame lockstep")
    p.add_argument("--rate", type=float, default=1.0, help="timed playback speed factor")
    p.add_argument("--timeout", type=float, default=10.0, help="lockstep: seconds per frame")
    p.add_argument("--record-topics", nargs="+", default=list(DEFAULT_RECORD_TOPICS))
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    p.add_argument("--lag-hold", type=int, default=3)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def run_replay(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Compose the graph, replay, record, score; return (report, report folder)."""
    from ..live import create_nodes
    from .evaluate import evaluate_predictions, overrides_from_args, predictions_json, score
    from .report import write_outputs

    with BagReader(args.bag) as reader:
        image_topic = reader.image_topic(args.image_topic)
    smoothing = not args.no_smoothing
    specs, params = graph_params(image_topic, args.params_file, overrides_from_args(args),
                                 smoothing, args.lockstep)
    topics = [t for t in args.record_topics if smoothing or _absolute(t) != "/emotion_raw"]
    _init_rclpy()
    everything: list = []
    executor = None
    try:
        nodes = create_nodes(specs, params)
        everything += nodes
        player = _player_node_class()(args.bag, rate=args.rate, image_topic=image_topic)
        everything.append(player)
        recorder = _recorder_node_class()(args.out, topics, storage=args.storage,
                                          overwrite=args.overwrite)
        everything.append(recorder)
        from ..nodes.runner import BackgroundSpin

        executor = BackgroundSpin(everything, name="replay_spin")
        with _Stop() as stop:
            wait_graph_ready(player, recorder, nodes, lockstep=args.lockstep)
            bar = _bar(player.counts[image_topic], "replay", args.quiet)
            try:
                if args.lockstep:
                    stats = player.play_lockstep(args.timeout, stop=stop, progress=bar.update)
                    if RESULT_TOPIC in recorder.topics:
                        wait_recorded(recorder, RESULT_TOPIC, stats.results)
                else:
                    stats = player.play(stop=stop, progress=bar.update)
                    while recorder.idle_for() < 2.0 and not stop.is_set():
                        time.sleep(0.1)  # let the graph finish the last frames
            finally:
                bar.close()
        recorder.close()
    finally:
        for node in everything:
            if hasattr(node, "close") and not getattr(node, "closed", True):
                node.close()  # the recorder: finish the bag file even after an error
        if executor is not None:
            executor.stop(shutdown_rclpy=True)
        else:
            import rclpy
            for node in everything:
                node.destroy_node()
            rclpy.try_shutdown()
    run = evaluate_predictions(args.bag, args.out, image_topic=image_topic)
    run.config.update({"playback": "lockstep" if args.lockstep else f"timed x{args.rate}",
                       "graph_params": {k: v for k, v in params.items()
                                        if k in {s.name for s in specs}}})
    if stats.timeouts:
        run.notes.append(f"{len(stats.timeouts)} image(s) got no result within "
                         f"{args.timeout} s")
    report = score(run, hold=args.lag_hold)
    out_dir = args.report_dir or Path(f"{args.out}_eval")
    write_outputs(report, predictions_json(run), out_dir, plots=not args.no_plots)
    return report, out_dir


def run_main(argv: list[str] | None = None) -> int:
    """Run the ``run`` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = run_parser().parse_args(argv)
    try:
        report, out_dir = run_replay(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"replay run: error: {exc}", file=sys.stderr)
        return 2
    from .report import console_summary

    print(console_summary(report, out_dir))
    return 0


COMMANDS = {"play": play_main, "record": record_main, "run": run_main}


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``play``, ``record`` or ``run``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m emotion_perception.bags.replay {play,record,run} ...",
              file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())

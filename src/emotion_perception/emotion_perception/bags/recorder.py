"""The bag recorder node and ``emotion_record_bag`` (see :mod:`.replay` for the commands)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from .io import BagError, ThreadedBagWriter
from .replay_common import (DEFAULT_RECORD_TOPICS, StopOnSignal, absolute_topic, init_rclpy,
                            ros_message_class, split_ros_args)


class BagRecorder(Node):
    """Records topics into a new bag (the record command in :mod:`.replay`)."""

    def __init__(self, out: str | Path, topics: Sequence[str] = DEFAULT_RECORD_TOPICS, *,
                 storage: str = "mcap", overwrite: bool = False, compress: bool = True,
                 node_name: str = "emotion_bag_recorder", **kwargs: Any) -> None:
        if not topics:
            raise ValueError("topics must name at least one topic")
        super().__init__(node_name, **kwargs)
        self.topics = [absolute_topic(t) for t in topics]
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


def record_parser() -> argparse.ArgumentParser:
    """Return the parser of emotion_record_bag."""
    p = argparse.ArgumentParser(prog="emotion_record_bag",
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
    """Run emotion_record_bag until Ctrl-C, SIGTERM, --duration or --until-idle."""
    ours, full = split_ros_args(argv)
    args = record_parser().parse_args(ours)
    if args.duration < 0 or args.until_idle < 0:
        print("emotion_record_bag: error: --duration and --until-idle must be >= 0",
              file=sys.stderr)
        return 2
    init_rclpy(full)
    try:
        recorder = BagRecorder(args.out, args.topics, storage=args.storage,
                               overwrite=args.overwrite)
    except ValueError as exc:
        print(f"emotion_record_bag: error: {exc}", file=sys.stderr)
        import rclpy
        rclpy.try_shutdown()
        return 2
    from ..nodes.runner import BackgroundSpin

    executor = BackgroundSpin([recorder], name="replay_spin")
    start = time.monotonic()
    try:
        with StopOnSignal() as stop:  # held while the bag is finished: no signal interrupts that
            try:
                print(f"emotion_record_bag: recording {' '.join(recorder.topics)} to "
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
    print("emotion_record_bag: wrote " + str(args.out) + ": "
          + ", ".join(f"{t} {n} msgs" for t, n in counts.items()))
    return 0

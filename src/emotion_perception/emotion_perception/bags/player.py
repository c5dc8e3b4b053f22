"""The bag player node and ``emotion_play_bag`` (see :mod:`.replay` for the commands)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rclpy.node import Node

from .io import BagReader
from .replay_common import (RESULT_TOPIC, PlayStats, StopOnSignal, absolute_topic,
                            cdr_header_stamp_ns, init_rclpy, parse_remaps, progress_bar,
                            reliable_qos, ros_message_class, split_ros_args)
from .typestore import EMOTION_ARRAY_TYPE, LABEL_TOPIC


class BagPlayer(Node):
    """Publishes a bag's image and label topics (the play command in :mod:`.replay`)."""

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
        self.remaps = {absolute_topic(k): absolute_topic(v) for k, v in (remaps or {}).items()}
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
                ros_message_class(msgtype), self.out_topic(topic), reliable_qos())
        self._results: set[int] = set()
        self._result_cond = threading.Condition()
        self.result_topic = result_topic
        self._result_sub = self.create_subscription(
            ros_message_class(EMOTION_ARRAY_TYPE), result_topic, self._on_result,
            reliable_qos(50), raw=True)

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


def play_parser() -> argparse.ArgumentParser:
    """Return the parser of emotion_play_bag."""
    p = argparse.ArgumentParser(prog="emotion_play_bag",
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
        out[absolute_topic(topic)] = int(n)
    return out


def play_main(argv: list[str] | None = None) -> int:
    """Run emotion_play_bag (``--ros-args`` are passed to rclpy)."""
    ours, full = split_ros_args(argv)
    args = play_parser().parse_args(ours)
    try:
        remaps = parse_remaps(args.topic_remap)
        waits = _topic_counts(args.wait_topic_subscribers)
        if not args.rate > 0 or args.wait_subscribers < 0 or not args.timeout > 0:
            raise ValueError("--rate and --timeout must be > 0, --wait-subscribers >= 0")
    except ValueError as exc:
        print(f"emotion_play_bag: error: {exc}", file=sys.stderr)
        return 2
    init_rclpy(full)
    player = None
    executor = None
    try:
        try:
            player = BagPlayer(args.bag, rate=args.rate, remaps=remaps, loop=args.loop,
                               image_topic=args.image_topic, topics=args.topics,
                               result_topic=args.result_topic)
        except ValueError as exc:  # BagError included
            print(f"emotion_play_bag: error: {exc}", file=sys.stderr)
            return 2
        from ..nodes.runner import BackgroundSpin

        executor = BackgroundSpin([player], name="replay_spin")
        with StopOnSignal() as stop:
            if not player.wait_ready(args.wait_subscribers, 1 if args.lockstep else 0, waits,
                                     stop=stop):
                return 1
            bar = progress_bar(player.counts[player.image_topic], "play", args.quiet)
            try:
                if args.lockstep:
                    stats = player.play_lockstep(args.timeout, stop=stop, progress=bar.update)
                else:
                    stats = player.play(stop=stop, progress=bar.update)
            finally:
                bar.close()
            player.wait_acked()  # do not exit before reliable subscribers have everything
        print(f"emotion_play_bag: published {stats.images} images ({stats.messages} messages) "
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

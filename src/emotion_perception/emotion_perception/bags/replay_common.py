"""What the bag player, the recorder and the replay commands share (imports without rclpy)."""

from __future__ import annotations

import importlib
import signal
import struct
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

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


def absolute_topic(topic: str) -> str:
    """Return ``topic`` with a leading slash."""
    return topic if topic.startswith("/") else "/" + topic


def reliable_qos(depth: int = 10) -> Any:
    """Return a reliable keep-last QoS profile of ``depth``."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)


@dataclass
class PlayStats:
    """What a playback did (the player's summary line and the replay report read it)."""

    #: image messages published (in lockstep: each once, however often it was resent)
    images: int = 0
    #: messages published, of every recorded topic (images and their resends included)
    messages: int = 0
    #: images whose /emotion result arrived (lockstep only)
    results: int = 0
    #: images published again because their result did not come in time (lockstep only)
    resent: int = 0
    #: header stamps (ns) of the images that never got a result
    timeouts: list[int] = field(default_factory=list)
    #: wall-clock seconds of the playback
    seconds: float = 0.0


class StopOnSignal:
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
            signal.signal(sig, ignore_signal if self.event.is_set() else handler)


def ignore_signal(*_: Any) -> None:
    """Signal handler that does nothing (a repeated SIGINT/SIGTERM during clean-up)."""


def init_rclpy(argv: Sequence[str] | None = None) -> None:
    """Initialise rclpy with ``argv`` as ROS arguments and without its signal handlers."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=[sys.argv[0], *(argv or [])],
               signal_handler_options=SignalHandlerOptions.NO)


def split_ros_args(argv: Sequence[str] | None) -> tuple[list[str], list[str]]:
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


def progress_bar(total: int, desc: str, quiet: bool) -> Any:
    """Return a tqdm bar of ``total`` frames on stderr (disabled when ``quiet``)."""
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc=desc, disable=quiet, file=sys.stderr)

"""What the classifier and smoother nodes need to serve many cameras (parameter ``cameras``).

With ``cameras: "front,back"`` a node subscribes to ``front/<input>`` and ``back/<input>``
and publishes each camera's results on ``front/<output>`` / ``back/<output>`` with that
camera's header. Each camera has its own newest-wins slot (:func:`camera_slot`): a
newer message of a camera replaces that camera's waiting one (counted as dropped, for the
node and for the camera), never another camera's, and the worker takes every waiting slot at
once, so the classifier can batch the faces of all of them into one inference call.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from emotion_msgs.msg import EmotionArray

from ..core.multicam import parse_cameras
from .base import RESULT_QOS
from .worker import KeyedSlot

#: per-camera counters shown in diagnostics as ``<camera>.<counter>``
CAMERA_COUNTERS = ("received", "dropped", "stale", "published")


def camera_slot(camera_stats: "CameraCounters | None" = None) -> KeyedSlot:
    """Return the per-camera newest-wins slot for ``PerceptionNode.add_worker``.

    ``submit((camera, item))`` on the worker replaces only that camera's waiting item (counted
    as dropped for the node and, with ``camera_stats``, for the camera); the worker hands its
    function all waiting items at once as ``{camera: item}``.
    """
    if camera_stats is None:
        return KeyedSlot()
    return KeyedSlot(lambda camera: camera_stats.count(camera, "dropped"))


class CameraIO:
    """Mixin of a PerceptionNode that serves one camera or many: its I/O (classifier, smoother).

    List it before PerceptionNode (``class N(CameraIO, PerceptionNode)``) and call
    :meth:`setup_cameras` in ``setup``. Without ``cameras`` the node has one input, one output
    and a :class:`~.base.SingleSlot` worker; with them, both per camera namespace and one
    worker with a per-camera slot (:func:`camera_slot`).
    """

    def setup_cameras(self, values: dict[str, Any]) -> None:
        """Read ``cameras`` (empty: one camera); create the per-camera counters."""
        self.cameras = parse_cameras(values["cameras"])
        self.camera_stats = CameraCounters(self.cameras)
        #: per camera: its output publisher (multi-camera mode only)
        self._camera_pubs: dict[str, Any] = {}

    def open_camera_io(self, in_type: Any, in_topic: str, out_topic: str,
                       screen: Callable[[Any], Any], process: Callable[[Any], None],
                       process_cameras: Callable[[dict[str, Any]], None]) -> None:
        """Subscribe to ``in_topic`` and publish EmotionArray on ``out_topic`` (per camera).

        Each input is counted and passed through ``screen`` in the callback (cheap checks,
        before the newest-wins slot); the worker then runs ``process(item)``, or with
        ``cameras`` ``process_cameras({camera: item})`` for every camera waiting.
        """
        if not self.cameras:
            self._pub = self.add_publisher(EmotionArray, out_topic, RESULT_QOS)
            self._worker = self.add_worker(process)
            self.add_subscription(in_type, in_topic, self.input_callback(screen), RESULT_QOS)
            return
        for cam in self.cameras:
            self._camera_pubs[cam] = self.add_publisher(EmotionArray, f"{cam}/{out_topic}",
                                                        RESULT_QOS)
        self._worker = self.add_worker(process_cameras, camera_slot(self.camera_stats))
        for cam in self.cameras:
            self.add_subscription(in_type, f"{cam}/{in_topic}", self.input_callback(screen, cam),
                                  RESULT_QOS)

    def input_callback(self, screen: Callable[[Any], Any],
                       camera: str | None = None) -> Callable[[Any], None]:
        """Return the subscription callback: count, ``screen``, hand over to the worker."""
        def on_input(msg: Any) -> None:
            self.stats.count("received")
            if camera is not None:
                self.camera_stats.count(camera, "received")
            item = screen(msg)
            worker = self._worker
            if worker is not None:
                worker.submit(item if camera is None else (camera, item))
        on_input.__name__ = f"on_input_{camera}" if camera else "on_input"
        return on_input

    def close_io(self) -> None:
        """Destroy the I/O (the per-camera publishers too)."""
        super().close_io()
        self._camera_pubs = {}

    def camera_diagnostics(self) -> dict[str, Any]:
        """Return the camera list and per-camera counters ({} without ``cameras``)."""
        if not self.cameras:
            return {}
        return {"cameras": ",".join(self.cameras), **self.camera_stats.snapshot()}


class CameraCounters:
    """Thread-safe per-camera counters (received, dropped, stale, published)."""

    def __init__(self, cameras: list[str]) -> None:
        self._lock = threading.Lock()
        self.counts = {cam: dict.fromkeys(CAMERA_COUNTERS, 0) for cam in cameras}

    def count(self, camera: str, key: str, n: int = 1) -> None:
        """Add ``n`` to ``camera``'s counter ``key``."""
        with self._lock:
            self.counts[camera][key] = self.counts[camera].get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        """Return ``{"<camera>.<counter>": value}`` for diagnostics."""
        with self._lock:
            return {f"{cam}.{key}": v for cam, c in self.counts.items() for key, v in c.items()}

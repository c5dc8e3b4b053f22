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

from .base import KeyedSlot

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

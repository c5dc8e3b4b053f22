"""What the classifier and smoother nodes need to serve many cameras (parameter ``cameras``).

With ``cameras: "front,back"`` a node subscribes to ``front/<input>`` and ``back/<input>``
and publishes each camera's results on ``front/<output>`` / ``back/<output>`` with that
camera's header. Each camera has its own newest-wins slot (:class:`LatestPerCameraWorker`): a
newer message of a camera replaces that camera's waiting one (counted as dropped, for the
node and for the camera), never another camera's, and the worker takes every waiting slot at
once, so the classifier can batch the faces of all of them into one inference call.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from .base import LatestWorker, StageStats

#: per-camera counters shown in diagnostics as ``<camera>.<counter>``
CAMERA_COUNTERS = ("received", "dropped", "stale", "published")


class LatestPerCameraWorker(LatestWorker):
    """A LatestWorker with one newest-wins slot per camera; ``fn`` gets {camera: item}.

    ``submit((camera, item))`` replaces only that camera's waiting item (counted as dropped in
    ``stats`` and in ``camera_stats``). The worker hands ``fn`` all waiting items at once, in
    the order their cameras were first submitted. ``base.PerceptionNode.close_io`` stops it
    like any LatestWorker.
    """

    def __init__(self, fn: Callable[[dict[str, Any]], None], stats: StageStats, name: str,
                 camera_stats: "CameraCounters | None" = None) -> None:
        self._items: dict[str, Any] = {}
        self._camera_stats = camera_stats
        super().__init__(fn, stats, name)

    def submit(self, item: tuple[str, Any]) -> None:
        """Hand over the newest item of one camera: ``(camera, item)``."""
        camera, value = item
        with self._cond:
            if camera in self._items:
                self._stats.count("dropped")
                if self._camera_stats is not None:
                    self._camera_stats.count(camera, "dropped")
            self._items[camera] = value
            self._has_item = True
            self._cond.notify()

    def waiting(self) -> list[str]:
        """Return the cameras whose item waits for the worker (not yet taken)."""
        with self._cond:
            return list(self._items)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_item and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                items, self._items, self._has_item = self._items, {}, False
                self._busy = True
            try:
                self._fn(items)
            except Exception as exc:  # the node must survive any single bad batch
                self._stats.error(f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False


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

"""The nodes' newest-wins worker threads and their counters (no ROS in here).

Every node hands its inputs to a :class:`LatestWorker` through a slot: :class:`SingleSlot`
keeps the newest item only, :class:`KeyedSlot` the newest per key (one per camera), so a slow
step drops stale inputs (counted) instead of queueing them and never blocks the executor.
:class:`StageStats` holds the counters, rate and latency percentiles the nodes publish on
/diagnostics; :class:`RateLimitedLog` keeps a flood of bad inputs from flooding the log.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np


class RateLimitedLog:
    """Log a message at most once per ``period`` seconds per key, counting the suppressed."""

    def __init__(self, log: Callable[[str], Any], period: float = 5.0) -> None:
        self._log = log
        self._period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, key: str, message: str) -> None:
        """Log ``message`` unless ``key`` was logged within the period."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self._period:
            n = self._suppressed.pop(key, 0)
            self._log(message + (f" ({n} similar suppressed)" if n else ""))
            self._last[key] = now
        else:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1


class StageStats:
    """Thread-safe counters and latency samples of one processing stage."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, int] = {"received": 0, "processed": 0, "dropped": 0,
                                         "rejected": 0, "errors": 0, "published": 0}
        self._latency: deque[float] = deque(maxlen=window)
        self._proc: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=window)
        self.last_error = ""

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    def processed(self, latency_s: float | None, processing_s: float) -> None:
        """Record one processed item with its end-to-end and processing times.

        ``latency_s`` None (a stamp of another clock) leaves the latency percentiles alone.
        """
        with self._lock:
            self.counters["processed"] += 1
            if latency_s is not None:
                self._latency.append(latency_s)
            self._proc.append(processing_s)
            self._times.append(time.monotonic())

    def error(self, message: str) -> None:
        """Count an error and remember its message."""
        with self._lock:
            self.counters["errors"] += 1
            self.last_error = message

    def snapshot(self) -> dict[str, float]:
        """Return counters, output rate (Hz) and latency percentiles (ms)."""
        with self._lock:
            out: dict[str, float] = dict(self.counters)
            times = list(self._times)
            lat = np.array(self._latency, dtype=np.float64)
            proc = np.array(self._proc, dtype=np.float64)
        now = time.monotonic()
        recent = [t for t in times if now - t <= 5.0]
        out["rate_hz"] = (len(recent) - 1) / (recent[-1] - recent[0]) \
            if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        for name, arr in (("latency", lat), ("processing", proc)):
            if arr.size:
                out[f"{name}_ms_p50"] = float(np.percentile(arr, 50) * 1e3)
                out[f"{name}_ms_p95"] = float(np.percentile(arr, 95) * 1e3)
        return out


class SingleSlot:
    """One newest-wins slot: a new item replaces the waiting one (LatestWorker's default).

    A slot is what a :class:`LatestWorker` keeps its waiting input in; the worker calls it
    with its lock held, so a slot needs no lock of its own.
    """

    def __init__(self) -> None:
        self._item: Any = None
        self._full = False

    def put(self, item: Any) -> bool:
        """Store ``item``; return True when it replaced a waiting one (a drop)."""
        replaced = self._full
        self._item, self._full = item, True
        return replaced

    def take(self) -> Any:
        """Return the waiting item and empty the slot."""
        item, self._item, self._full = self._item, None, False
        return item

    def waiting(self) -> list:
        """Return ``[None]`` while an item waits, else ``[]`` (the keys of a keyed slot)."""
        return [None] if self._full else []


class KeyedSlot:
    """One newest-wins slot per key: ``put((key, item))`` replaces only that key's item.

    ``take`` returns every waiting item at once as ``{key: item}``, in the order the keys were
    first put since the last take (the classifier batches all cameras' faces into one call).
    ``on_replace(key)`` is called for each replaced item (per-camera drop counters).
    """

    def __init__(self, on_replace: Callable[[Any], None] | None = None) -> None:
        self._items: dict[Any, Any] = {}
        self._on_replace = on_replace

    def put(self, item: tuple[Any, Any]) -> bool:
        """Store ``(key, value)``; return True when it replaced that key's waiting value."""
        key, value = item
        replaced = key in self._items
        if replaced and self._on_replace is not None:
            self._on_replace(key)
        self._items[key] = value
        return replaced

    def take(self) -> dict[Any, Any]:
        """Return ``{key: item}`` of all waiting items and empty the slot."""
        items, self._items = self._items, {}
        return items

    def waiting(self) -> list:
        """Return the keys whose item waits (not yet taken)."""
        return list(self._items)


class LatestWorker:
    """Process only the newest input on a worker thread; a newer one replaces a waiting one.

    Which inputs replace which is the ``slot``'s business: :class:`SingleSlot` (the default,
    one input) or :class:`KeyedSlot` (one per camera; ``fn`` then gets ``{camera: item}``).
    ``submit`` never blocks the executor; a replaced input counts as dropped.
    """

    def __init__(self, fn: Callable[[Any], None], stats: StageStats, name: str,
                 slot: SingleSlot | KeyedSlot | None = None) -> None:
        self._fn = fn
        self._stats = stats
        self._slot = slot if slot is not None else SingleSlot()
        self._cond = threading.Condition()
        self._has_item = False
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        """Hand over the newest item (``(key, item)`` for a KeyedSlot)."""
        with self._cond:
            if self._slot.put(item):
                self._stats.count("dropped")
            self._has_item = True
            self._cond.notify()

    def waiting(self) -> list:
        """Return the keys whose item waits for the worker (see the slot's ``waiting``)."""
        with self._cond:
            return self._slot.waiting()

    def idle(self) -> bool:
        """Return True when nothing is waiting or being processed."""
        with self._cond:
            return not self._has_item and not self._busy

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the item in progress and stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_item and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item, self._has_item = self._slot.take(), False
                self._busy = True
            try:
                self._fn(item)
            except Exception as exc:  # the node must survive any single bad item
                self._stats.error(f"{type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._busy = False

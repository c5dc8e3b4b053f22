"""Simple temporal smoothers: ``none``, ``ema`` and ``hysteresis`` (no TensorFlow needed).

All of them follow the contract of :class:`~.base.Smoother` and share the per-track
bookkeeping of :class:`TrackedSmoother`:

* State lives in one dict per smoother, keyed by face id, in least-recently-updated order.
  Creating a track when ``max_tracks`` tracks exist evicts the least recently updated one.
* A track starts afresh when its new stamp is more than ``max_gap`` seconds after its last one,
  or earlier than its last one (a replayed bag, a clock jump). An *equal* stamp is the same
  instant again: it is folded in with ``dt = 0`` (the EMA gives it no weight, the hysteresis
  window counts it as a frame).
* ``prune(now)`` forgets every track whose last stamp is more than ``max_gap`` before ``now``.
* Input vectors must have shape (7,), be finite and non-negative with a positive sum; they are
  renormalised to sum to 1. Anything else raises ``ValueError`` (the classifier stage already
  drops non-finite rows, see ``classifiers.base.sanitize_probabilities``; the caller must skip
  such faces, a smoother never silently absorbs them). A rejected vector leaves the state
  untouched.
* Outputs are float32 (7,) vectors, finite, non-negative, summing to 1 (to float32 rounding).
* ``update_many(items)`` folds several (face_id, stamp, probs) observations of one frame and
  returns their outputs in order; here it simply loops over ``update``, the LSTM smoother
  batches the model call.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Iterable, Sequence

import numpy as np

from ..classes import NUM_CLASSES
from .base import Smoother

Observation = tuple[int, float, np.ndarray]


def validate_probs(probs: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Return ``probs`` as a float64 (num_classes,) vector renormalised to sum to 1.

    Raises ``ValueError`` for a wrong shape, non-finite or negative values, or a zero sum.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (num_classes,):
        raise ValueError(f"probs must have shape ({num_classes},), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"probs must be finite, got {p.tolist()}")
    if (p < 0).any():
        raise ValueError(f"probs must be >= 0, got {p.tolist()}")
    total = p.sum()
    if total <= 0:
        raise ValueError("probs must have a positive sum")
    return p / total


def finish(p: np.ndarray) -> np.ndarray:
    """Return ``p`` as a float32 vector that sums to 1 (the output form of every smoother)."""
    out = np.asarray(p, dtype=np.float32)
    return out / out.sum(dtype=np.float32)


class TrackedSmoother(Smoother):
    """A smoother with per-track state, gap/rewind resets, LRU eviction and ``update_many``.

    Subclasses implement :meth:`_new_state` (state of a fresh track from its first vector)
    and :meth:`_step` (fold a vector into existing state, given ``dt``); each returns the
    smoothed float64 vector.
    """

    def __init__(self, max_gap: float = 1.0, max_tracks: int = 256) -> None:
        super().__init__(max_gap=max_gap, max_tracks=max_tracks)
        # face_id -> (last stamp, subclass state); order = least recently updated first
        self._tracks: OrderedDict[int, list[Any]] = OrderedDict()
        self.resets = 0      # tracks restarted because of a gap or a stamp going backwards
        self.evictions = 0   # tracks forgotten because max_tracks was reached

    # -- public API ---------------------------------------------------------------------
    def update(self, face_id: int, stamp: float, probs: np.ndarray) -> np.ndarray:
        """Fold one observation into the track's state; return the smoothed (7,) vector."""
        p = validate_probs(probs)
        stamp = _check_stamp(stamp)
        entry = self._begin(int(face_id), stamp)
        if entry is None:
            state = self._new_state(p)
            out = self._output(state)
            self._insert(int(face_id), stamp, state)
        else:
            dt = stamp - entry[0]
            out = self._step(entry[1], p, dt)
            entry[0] = stamp
        return finish(out)

    def update_many(self, items: Iterable[Observation]) -> list[np.ndarray]:
        """Update several tracks (typically all faces of one frame); return outputs in order."""
        return [self.update(fid, stamp, probs) for fid, stamp, probs in items]

    def drop(self, face_id: int) -> None:
        """Forget the state of one track (no error if unknown)."""
        self._tracks.pop(int(face_id), None)

    def prune(self, now: float) -> None:
        """Forget every track whose last stamp is more than ``max_gap`` before ``now``."""
        stale = [fid for fid, entry in self._tracks.items() if now - entry[0] > self.max_gap]
        for fid in stale:
            del self._tracks[fid]

    def clear(self) -> None:
        """Forget all tracks."""
        self._tracks.clear()

    @property
    def track_ids(self) -> list[int]:
        """Return the ids of the tracks held, least recently updated first."""
        return list(self._tracks)

    def __len__(self) -> int:
        """Return the number of tracks held."""
        return len(self._tracks)

    # -- bookkeeping ----------------------------------------------------------------------
    def _begin(self, face_id: int, stamp: float) -> list[Any] | None:
        """Return the live entry of ``face_id`` (moved to most recent), or None to restart."""
        entry = self._tracks.get(face_id)
        if entry is None:
            return None
        dt = stamp - entry[0]
        if dt < 0 or dt > self.max_gap:
            del self._tracks[face_id]
            self.resets += 1
            return None
        self._tracks.move_to_end(face_id)
        return entry

    def _insert(self, face_id: int, stamp: float, state: Any) -> None:
        while len(self._tracks) >= self.max_tracks:
            self._tracks.popitem(last=False)
            self.evictions += 1
        self._tracks[face_id] = [stamp, state]

    # -- subclass hooks -----------------------------------------------------------------
    def _new_state(self, p: np.ndarray) -> Any:
        raise NotImplementedError

    def _output(self, state: Any) -> np.ndarray:
        raise NotImplementedError

    def _step(self, state: Any, p: np.ndarray, dt: float) -> np.ndarray:
        raise NotImplementedError


def _check_stamp(stamp: float) -> float:
    s = float(stamp)
    if not math.isfinite(s):
        raise ValueError(f"stamp must be finite, got {stamp}")
    return s


class NoSmoother(TrackedSmoother):
    """``none``: pass every vector through (renormalised); keeps no state at all."""

    name = "none"

    def update(self, face_id: int, stamp: float, probs: np.ndarray) -> np.ndarray:
        """Return ``probs`` as a float32 vector summing to 1."""
        _check_stamp(stamp)
        return finish(validate_probs(probs))


class EmaSmoother(TrackedSmoother):
    """``ema``: exponential moving average with a time constant in seconds.

    With ``dt`` the time since the track's previous observation (from the header stamps, so
    irregular frame rates are handled), ``alpha = 1 - exp(-dt / tau)`` and
    ``s <- s + alpha * (p - s)``. A track's first observation passes through unchanged.
    The step response reaches 63 % after ``tau`` seconds whatever the frame rate. The output is
    a convex combination of probability vectors, so it stays a probability vector.
    """

    name = "ema"

    def __init__(self, tau: float = 0.5, max_gap: float = 1.0, max_tracks: int = 256) -> None:
        super().__init__(max_gap=max_gap, max_tracks=max_tracks)
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a finite number of seconds > 0, got {tau!r}")
        self.tau = float(tau)

    def alpha(self, dt: float) -> float:
        """Return the weight of a new observation arriving ``dt`` seconds after the last."""
        return 1.0 - math.exp(-max(0.0, dt) / self.tau)

    def _new_state(self, p: np.ndarray) -> np.ndarray:
        return p.copy()

    def _output(self, state: np.ndarray) -> np.ndarray:
        return state

    def _step(self, state: np.ndarray, p: np.ndarray, dt: float) -> np.ndarray:
        state += self.alpha(dt) * (p - state)
        return state


class _Window:
    """Last ``size`` vectors of one track (preallocated ring) and the held label."""

    __slots__ = ("buf", "pos", "count", "held")

    def __init__(self, size: int, p: np.ndarray) -> None:
        self.buf = np.zeros((size, len(p)), np.float64)
        self.buf[0] = p
        self.pos = 1 % size
        self.count = 1
        self.held = int(np.argmax(p))

    def push(self, p: np.ndarray) -> None:
        self.buf[self.pos] = p
        self.pos = (self.pos + 1) % len(self.buf)
        self.count = min(self.count + 1, len(self.buf))

    def rows(self) -> np.ndarray:
        return self.buf[:self.count]


class HysteresisSmoother(TrackedSmoother):
    """``hysteresis``: hold a label until another one clearly wins over a sliding window.

    The window holds the track's last ``window`` probability vectors (fewer right after the
    track starts). A fresh track holds the argmax of its first vector. After each update, with
    ``mean`` the window's mean vector, ``n`` the number of frames in it and ``votes[c]`` the
    number of those frames whose argmax is ``c``, the held label ``h`` changes to

    1. the label ``c != h`` with a strict majority, ``votes[c] > n / 2``, if there is one;
    2. otherwise the label ``c = argmax_{c != h} mean[c]`` if ``mean[c] - mean[h] > margin``;

    and stays ``h`` otherwise. The output is ``mean`` when ``h`` is its unique argmax. When it
    is not (the held label is the previous winner while the evidence is still mixed), the
    output is the convex mix ``(1 - w) * mean + w * onehot(h)`` with the smallest weight that
    puts ``h`` strictly on top by a fixed ``1e-5``: with ``d = max_{c != h} mean[c] - mean[h]``
    (``d >= 0``), ``w = (d + 1e-5) / (1 + d + 1e-5)``. So the reported label is always the held
    one, the vector stays a probability vector, and it equals the plain window mean whenever
    the two agree.
    """

    name = "hysteresis"
    TIE_BREAK = 1e-5

    def __init__(self, window: int = 7, margin: float = 0.25, max_gap: float = 1.0,
                 max_tracks: int = 256) -> None:
        super().__init__(max_gap=max_gap, max_tracks=max_tracks)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be an integer >= 1 frames, got {window!r}")
        if not (isinstance(margin, (int, float)) and 0.0 <= margin <= 1.0):
            raise ValueError(f"margin must be in [0, 1], got {margin!r}")
        self.window = int(window)
        self.margin = float(margin)

    def _new_state(self, p: np.ndarray) -> _Window:
        return _Window(self.window, p)

    def _output(self, state: _Window) -> np.ndarray:
        return self._held_output(state.rows().mean(axis=0), state.held)

    def _step(self, state: _Window, p: np.ndarray, dt: float) -> np.ndarray:
        state.push(p)
        rows = state.rows()
        mean = rows.mean(axis=0)
        votes = np.bincount(rows.argmax(axis=1), minlength=len(p))
        h = state.held
        votes[h] = -1
        challenger = int(np.argmax(votes))
        if 2 * votes[challenger] > len(rows):
            state.held = challenger
        else:
            others = mean.copy()
            others[h] = -np.inf
            best = int(np.argmax(others))
            if mean[best] - mean[h] > self.margin:
                state.held = best
        return self._held_output(mean, state.held)

    @classmethod
    def _held_output(cls, mean: np.ndarray, held: int) -> np.ndarray:
        others = np.delete(mean, held)
        d = float(others.max()) - float(mean[held]) if len(others) else -1.0
        if d < 0:
            return mean
        w = (d + cls.TIE_BREAK) / (1.0 + d + cls.TIE_BREAK)
        out = (1.0 - w) * mean
        out[held] += w
        return out


def run_sequence(smoother: Smoother, stamps: Sequence[float], probs: np.ndarray,
                 face_id: int = 0) -> np.ndarray:
    """Feed one track's (T, 7) vectors through ``smoother``; return the (T, 7) outputs."""
    return np.stack([smoother.update(face_id, float(s), p) for s, p in zip(stamps, probs)])

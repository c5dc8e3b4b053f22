"""The temporal-smoother extension point.

Contract: a smoother keeps state per face id. ``update(face_id, stamp, probs)`` takes the
per-frame probability vector (7,) of one tracked face at time ``stamp`` (seconds, from the
image header) and returns the smoothed (7,) vector, summing to 1. A gap longer than
``max_gap`` seconds or a stamp going backwards starts the face's state afresh. ``drop(face_id)``
forgets a retired track; ``prune(now)`` forgets tracks not updated for ``max_gap`` seconds, so
memory stays bounded. Third-party smoothers register under ``emotion_perception.smoothers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Smoother(ABC):
    """Base class of per-track temporal smoothers."""

    name: str = ""

    def __init__(self, max_gap: float = 1.0, max_tracks: int = 256) -> None:
        if max_gap <= 0:
            raise ValueError(f"max_gap must be > 0 seconds, got {max_gap}")
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
        self.max_gap = float(max_gap)
        self.max_tracks = int(max_tracks)

    @abstractmethod
    def update(self, face_id: int, stamp: float, probs: np.ndarray) -> np.ndarray:
        """Fold one observation into the track's state; return the smoothed vector."""

    @abstractmethod
    def drop(self, face_id: int) -> None:
        """Forget the state of one track."""

    @abstractmethod
    def prune(self, now: float) -> None:
        """Forget every track not updated within ``max_gap`` seconds of ``now``."""

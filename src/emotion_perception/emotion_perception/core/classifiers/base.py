"""The emotion-classifier extension point.

Contract: ``predict(batch)`` takes preprocessed faces, float32 (N, H, W, 1) in [0, 1] as made
by :func:`emotion_perception.core.preprocessing.preprocess_faces`, and returns float32 (N, 7)
class probabilities in the order of :data:`emotion_perception.core.classes.CLASS_NAMES`, all
faces in one call. ``classify(crops)`` preprocesses raw crops with the shared function and
checks the result: non-finite rows are reported as such (never passed on as probabilities).
Third-party classifiers register under the entry-point group
``emotion_perception.classifiers``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from ..classes import NUM_CLASSES
from ..preprocessing import (MODEL_INPUT_SIZE, merge_tta, preprocess_faces, tta_view_count,
                             tta_views)


class ModelError(RuntimeError):
    """A model file is missing, unreadable, or does not fit the expected interface."""


class EmotionClassifier(ABC):
    """Base class of emotion classifiers (see the module docstring for the contract)."""

    name: str = ""
    input_size: tuple[int, int] = MODEL_INPUT_SIZE
    #: average each face's probabilities with those of its mirror image (test-time
    #: augmentation; doubles the inference work, same single batched call)
    tta_mirror: bool = False
    #: also average over the face moved by this many pixels (of the model input) up, down,
    #: left and right: 5x the views (10x with ``tta_mirror``), 0 = off
    tta_shift: int = 0

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Return (N, 7) probabilities for a (N, H, W, 1) float32 batch."""

    def classify(self, crops: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Preprocess ``crops`` and classify them in one batch.

        Returns ``(probabilities, valid)``: (N, 7) float32 rows renormalised to sum to 1, and a
        boolean mask that is False for rows the model returned non-finite or negative values
        for (those rows are zeros and must not be published).
        """
        if len(crops) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32), np.zeros(0, bool)
        batch = preprocess_faces(crops, self.input_size)
        n_views = tta_view_count(self.tta_mirror, self.tta_shift)
        batch = tta_views(batch, self.tta_mirror, self.tta_shift)
        probs = np.asarray(self.predict(batch), dtype=np.float32)
        if probs.shape != (len(batch), NUM_CLASSES):
            raise ModelError(f"classifier {self.name!r} returned shape {probs.shape}, "
                             f"expected ({len(batch)}, {NUM_CLASSES})")
        return sanitize_probabilities(merge_tta(probs, n_views))


def sanitize_probabilities(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (renormalised probabilities, valid mask); invalid rows become zeros."""
    probs = np.asarray(probs, dtype=np.float32)
    totals = probs.sum(axis=1)
    valid = np.isfinite(probs).all(axis=1) & (probs >= 0).all(axis=1) & (totals > 0)
    out = np.zeros_like(probs)
    out[valid] = probs[valid] / totals[valid, None]
    return out, valid

"""The face-detector extension point.

Contract: ``detect(image)`` takes one image as a NumPy array, uint8, either (H, W) grayscale or
(H, W, 3) BGR, and returns the faces in it as :class:`FaceDetection` with boxes in that image's
pixel coordinates, clipped to it, scores in [0, 1], best first. It never keeps a reference to
the image. Constructors take keyword parameters only and raise ``ValueError`` naming the
parameter when one is out of range, ``FileNotFoundError`` naming the file when a model file is
missing. Third-party detectors register under the entry-point group
``emotion_perception.detectors``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..types import FaceDetection


class FaceDetector(ABC):
    """Base class of face detectors (see the module docstring for the contract)."""

    #: plugin name, set by subclasses
    name: str = ""

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Return the faces in ``image`` (uint8 gray or BGR), best first."""

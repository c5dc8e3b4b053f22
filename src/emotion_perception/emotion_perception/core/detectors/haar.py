"""OpenCV Haar-cascade face detector (plugin ``haar``): no model download, runs anywhere.

The cascade works on a grayscale copy of the frame, optionally downscaled so that its longer
side is at most ``max_side`` pixels (much faster; boxes are mapped back to full resolution) and
histogram-equalised. ``detectMultiScale3`` returns per-box level weights (the boosted sum of the
last stage); they are squashed into a [0, 1] score with a logistic function.

``equalize`` applies contrast-limited adaptive histogram equalisation (CLAHE) before detection.
It helps on dim or low-contrast frames; plain global equalisation is not used because a large
uniform background (a wall, the synthetic scenes) makes it wash the faces out.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..classifiers.base import ModelError
from ..types import Box, FaceDetection
from .base import FaceDetector

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
# Logistic squash of the level weight: weight _WEIGHT_MID maps to 0.5, _WEIGHT_SCALE sets the
# slope. Frontal faces typically have weights of 3..8 (score 0.8..1.0); borderline
# detections around 0..1.
_WEIGHT_MID = 1.0
_WEIGHT_SCALE = 1.5


def weight_to_score(weight: float) -> float:
    """Squash a cascade level weight into a score in [0, 1] (logistic; monotonic)."""
    z = (weight - _WEIGHT_MID) / _WEIGHT_SCALE
    z = max(-60.0, min(60.0, z)) if math.isfinite(z) else (60.0 if z > 0 else -60.0)
    return float(1.0 / (1.0 + math.exp(-z)))


def check_downscale(downscale: bool, max_side: int) -> float:
    """Validate the shared ``downscale``/``max_side`` parameters; return max_side (0 = off)."""
    if not isinstance(downscale, (bool, np.bool_)):
        raise ValueError(f"downscale must be a bool, got {downscale!r}")
    if max_side != 0 and max_side < 32:
        raise ValueError(f"max_side must be 0 (off) or >= 32 pixels, got {max_side}")
    return float(max_side) if downscale and max_side > 0 else 0.0


def check_image(image: np.ndarray) -> np.ndarray:
    """Check that ``image`` is a non-empty uint8 gray, BGR or BGRA array; return it."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"detector input must be uint8, got {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"detector input must be (H, W) gray or (H, W, 3) BGR, got shape "
                         f"{image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"detector input is empty: shape {image.shape}")
    return image


def scale_for_detection(image: np.ndarray, max_side: float) -> tuple[np.ndarray, float]:
    """Downscale ``image`` so its longer side is at most ``max_side`` (0 = off).

    Returns (image to detect on, scale factor <= 1 from full resolution to that image).
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def box_to_full(x: float, y: float, w: float, h: float, scale: float,
                shape: Sequence[int]) -> Box:
    """Map a box found on a frame downscaled by ``scale`` back to the full image, clipped."""
    inv = 1.0 / scale
    x0, y0 = int(round(x * inv)), int(round(y * inv))
    x1, y1 = int(round((x + w) * inv)), int(round((y + h) * inv))
    return Box(x0, y0, x1 - x0, y1 - y0).clipped(int(shape[1]), int(shape[0]))


def _resolve_cascade(cascade: str) -> Path:
    if not cascade:
        raise ValueError("cascade must name a cascade XML file, got an empty string")
    path = Path(cascade).expanduser()
    if not path.is_absolute() and len(path.parts) == 1:
        path = Path(cv2.data.haarcascades) / path
    if not path.is_file():
        raise FileNotFoundError(f"cascade {cascade!r}: file {path} not found (give a file name "
                                f"in {cv2.data.haarcascades} or an absolute path)")
    return path


class HaarDetector(FaceDetector):
    """Frontal-face Haar cascade (OpenCV 4.x) with a logistic score from the level weights.

    ``min_size``/``max_size`` are face sides in full-resolution pixels. When downscaling, the
    cascade's 24 px window sets a floor: faces smaller than 24 / scale pixels (48 px for a
    640x480 frame at ``max_side`` 320) are not found whatever ``min_size`` says.
    """

    name = "haar"
    #: measured with ``emotion_eval_detectors --calibrate --split Training --limit 2000
    #: --seed 1``: the FER2013 face square is 1.02 box sides, centred on the box
    crop_framing = (0.01, 0.0)

    def __init__(self, cascade: str = DEFAULT_CASCADE, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 40, max_size: int = 0,
                 downscale: bool = True, max_side: int = 320, equalize: bool = False) -> None:
        if not scale_factor > 1.0 or not math.isfinite(scale_factor):
            raise ValueError(f"scale_factor must be > 1.0, got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        if min_size < 8:
            raise ValueError(f"min_size must be >= 8 pixels, got {min_size}")
        if max_size != 0 and max_size < min_size:
            raise ValueError(f"max_size must be 0 (no limit) or >= min_size ({min_size}), got "
                             f"{max_size}")
        if not isinstance(equalize, (bool, np.bool_)):
            raise ValueError(f"equalize must be a bool, got {equalize!r}")
        self._max_side = check_downscale(downscale, max_side)
        self.path = _resolve_cascade(cascade)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        self.equalize = bool(equalize)
        self._cascade = cv2.CascadeClassifier()
        try:
            ok = self._cascade.load(str(self.path))
        except cv2.error as exc:
            raise ModelError(f"cannot read cascade file {self.path}: {exc}") from exc
        if not ok or self._cascade.empty():
            raise ModelError(f"cascade file {self.path} is not a valid OpenCV cascade")
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Return the faces in ``image`` (uint8 gray or BGR), best first."""
        image = check_image(image)
        gray = image if image.ndim == 2 else (
            image[:, :, 0] if image.shape[2] == 1 else cv2.cvtColor(
                image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY))
        small, scale = scale_for_detection(gray, self._max_side)
        min_side = max(1, int(round(self.min_size * scale)))
        max_side = int(round(self.max_size * scale)) if self.max_size else 0
        with self._lock:
            if self.equalize:
                small = self._clahe.apply(np.ascontiguousarray(small))
            rects, _levels, weights = self._cascade.detectMultiScale3(
                np.ascontiguousarray(small), scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors, minSize=(min_side, min_side),
                maxSize=(max_side, max_side), outputRejectLevels=True)
        rects = np.asarray(rects).reshape(-1, 4)
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        if weights.shape[0] != rects.shape[0]:
            weights = np.full(rects.shape[0], np.inf)  # no weights: treat as certain
        faces = []
        for (x, y, w, h), weight in zip(rects.tolist(), weights.tolist()):
            box = box_to_full(x, y, w, h, scale, image.shape)
            if box.area == 0:
                continue
            faces.append(FaceDetection(box=box, score=weight_to_score(weight)))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces

"""Plain dataclasses passed between the core stages (no ROS types here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels: top-left corner (x, y), width w, height h."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        """Return w * h."""
        return max(0, self.w) * max(0, self.h)

    @property
    def center(self) -> tuple[float, float]:
        """Return the centre (cx, cy)."""
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    def iou(self, other: "Box") -> float:
        """Return the intersection over union with ``other`` (0 when disjoint)."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.w, other.x + other.w)
        y1 = min(self.y + self.h, other.y + other.h)
        inter = max(0, x1 - x0) * max(0, y1 - y0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clipped(self, width: int, height: int) -> "Box":
        """Return this box clipped to an image of the given size."""
        x0, y0 = min(max(self.x, 0), width), min(max(self.y, 0), height)
        x1 = min(max(self.x + self.w, 0), width)
        y1 = min(max(self.y + self.h, 0), height)
        return Box(x0, y0, x1 - x0, y1 - y0)

    def as_tuple(self) -> tuple[int, int, int, int]:
        """Return (x, y, w, h)."""
        return self.x, self.y, self.w, self.h


@dataclass
class FaceDetection:
    """One face found by a detector in one image.

    ``landmarks`` (optional): (K, 2) float32 keypoints in the image's pixel coordinates.
    Whatever the detector, when present row 0 is the subject's right eye and row 1 the left
    eye (the person's right: the left one in an unmirrored image), row 2 (when K >= 3) the
    nose tip; further rows are detector specific and named in ``landmark_names`` (one name
    per row when given). The aligned crops use the two eyes (:meth:`eyes`).
    """

    box: Box
    score: float = 1.0
    landmarks: np.ndarray | None = None
    landmark_names: tuple[str, ...] = ()

    def eyes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return (right eye, left eye) pixel positions, or None without landmarks."""
        return eye_points(self.landmarks)


def eye_points(landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Return rows 0 and 1 (right, left eye) of ``landmarks`` as float64, or None.

    None when there are no landmarks, fewer than two, or they are not finite.
    """
    if landmarks is None:
        return None
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] != 2 \
            or not np.isfinite(points[:2]).all():
        return None
    return points[0], points[1]


@dataclass
class TrackedFace:
    """A detection associated to a track with a stable id."""

    face_id: int
    box: Box
    score: float
    confirmed: bool
    hits: int = 1
    misses: int = 0
    landmarks: np.ndarray | None = None  # this frame's detection keypoints (FaceDetection)


@dataclass
class EmotionEstimate:
    """The emotion of one face at one time; what becomes an ``emotion_msgs/Emotion``."""

    face_id: int
    probabilities: np.ndarray            # (7,) float32, sums to 1
    box: Box
    detection_score: float = 1.0
    stamp: float = 0.0                   # seconds, from the source image header
    smoothed: bool = False
    smoother: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def label(self) -> int:
        """Return the index of the most probable class."""
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        """Return the probability of the top class."""
        return float(self.probabilities[self.label])

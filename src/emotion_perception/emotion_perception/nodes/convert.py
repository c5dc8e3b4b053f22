"""Conversions between emotion_msgs / sensor_msgs messages and core dataclasses.

Images: :func:`image_to_numpy` and :func:`array_to_image` (what every node uses) go through
one :class:`~..core.image_conversion.ImageConverter` per process (:func:`image_converter`):
``cv_bridge.CvBridge`` when ``cv_bridge`` imports (a ROS install from apt), this package's own
conversion otherwise (the PyPI wheels have no cv_bridge). Both paths validate the message
first with the same checks and errors and give the same arrays and messages; which one runs is
logged once at debug level and readable as ``image_converter().uses_cv_bridge``.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from typing import Sequence

import numpy as np
from emotion_msgs.msg import Emotion, EmotionArray, Face, FaceArray
from sensor_msgs.msg import Image, RegionOfInterest

from ..core.classes import CLASS_NAMES, NUM_CLASSES, VALENCE_AROUSAL
from ..core.image_conversion import (ImageConversionError, ImageConverter, check_image_fields,
                                     encoding_info)
from ..core.types import Box, EmotionEstimate, TrackedFace

_LOG = logging.getLogger(__name__)
_VA = np.array(VALENCE_AROUSAL, dtype=np.float32)

#: Largest ROI coordinate (x + width, y + height) accepted when the image size is unknown:
#: far beyond any real image, far below the int32 range OpenCV's drawing takes.
ROI_LIMIT = 1 << 24


def roi_from_box(box: Box) -> RegionOfInterest:
    """Return a RegionOfInterest for a core Box."""
    return RegionOfInterest(x_offset=int(box.x), y_offset=int(box.y), width=int(box.w),
                            height=int(box.h), do_rectify=False)


def box_from_roi(roi: RegionOfInterest) -> Box:
    """Return a core Box for a RegionOfInterest."""
    return Box(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))


def checked_box(roi: RegionOfInterest, width: int = 0, height: int = 0) -> Box:
    """Return a face ROI as a Box clipped to a ``width`` x ``height`` image.

    Raises ValueError for a ROI that starts outside the image (or, when the size is unknown
    (0), reaches beyond ``ROI_LIMIT``): such a box locates nothing and cannot be drawn.
    """
    x, y, w, h = (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
    width, height = int(width), int(height)
    if width > 0 and height > 0:
        if x >= width or y >= height:
            raise ValueError(f"face roi (x {x}, y {y}, w {w}, h {h}) lies outside the "
                             f"{width}x{height} image")
        return Box(x, y, w, h).clipped(width, height)
    if x + w > ROI_LIMIT or y + h > ROI_LIMIT:
        raise ValueError(f"face roi (x {x}, y {y}, w {w}, h {h}) reaches beyond "
                         f"{ROI_LIMIT} pixels")
    return Box(x, y, w, h)


def check_score(score: float) -> float:
    """Return a detection score; raise ValueError unless it is finite and in [0, 1]."""
    score = float(score)
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise ValueError(f"detection_score {score} is not a number in [0, 1]")
    return score


def check_image_msg(msg: Image, max_pixels: int) -> None:
    """Validate an image cheaply (no pixel is read): fields, sizes, step, data length, pixels.

    Raises ImageConversionError naming what is wrong. Nodes call this in their subscription
    callbacks, before the newest-wins slot, so a malformed message never displaces a good one.
    """
    check_image_fields(msg, max_pixels)
    dtype, channels = encoding_info(msg.encoding)
    if channels == 2:
        raise ImageConversionError(f"encoding {msg.encoding!r} has no colour meaning; cannot "
                                   "convert it to BGR or gray")


@lru_cache(maxsize=1)
def image_converter() -> ImageConverter:
    """Return the process's image converter: cv_bridge when importable, own code otherwise."""
    conv = ImageConverter()
    _LOG.debug("image conversion through %s",
               "cv_bridge" if conv.uses_cv_bridge else "emotion_perception's own code")
    return conv


def array_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """Build a sensor_msgs/Image from an array (header copied when given)."""
    return image_converter().from_array(array, encoding, factory=Image, header=header)


def image_to_numpy(msg: Image, max_pixels: int) -> np.ndarray:
    """Return the image's pixels (validated against ``max_pixels``) as an array."""
    return image_converter().to_array(msg, max_pixels=max_pixels)


def faces_to_msg(header, image: np.ndarray, encoding: str, faces: Sequence[TrackedFace],
                 crops: Sequence[np.ndarray]) -> FaceArray:
    """Build the detector's FaceArray for one image."""
    out = FaceArray(header=header, image_width=int(image.shape[1]),
                    image_height=int(image.shape[0]))
    for face, crop in zip(faces, crops):
        # the message says [0, 1]; a plugin's score outside it is clipped (NaN stays NaN and
        # is rejected by the classifier)
        score = float(face.score)
        score = min(1.0, max(0.0, score)) if math.isfinite(score) else score
        out.faces.append(Face(face_id=int(face.face_id), roi=roi_from_box(face.box),
                              detection_score=score,
                              crop=array_to_image(np.ascontiguousarray(crop), encoding, header)))
    return out


def estimate_to_msg(header, est: EmotionEstimate) -> Emotion:
    """Build an Emotion message (valence/arousal from the class circumplex anchors)."""
    probs = np.asarray(est.probabilities, dtype=np.float32)
    label = int(np.argmax(probs))
    va = probs @ _VA
    return Emotion(header=header, face_id=int(est.face_id), label=label,
                   label_name=CLASS_NAMES[label], confidence=float(probs[label]),
                   probabilities=probs.tolist(), roi=roi_from_box(est.box),
                   detection_score=float(est.detection_score), valence=float(va[0]),
                   arousal=float(va[1]), smoothed=bool(est.smoothed), smoother=est.smoother)


def estimates_to_msg(header, estimates: Sequence[EmotionEstimate]) -> EmotionArray:
    """Build the EmotionArray of one image."""
    return EmotionArray(header=header, emotions=[estimate_to_msg(header, e) for e in estimates])


def msg_to_estimate(msg: Emotion, stamp: float) -> EmotionEstimate:
    """Return the core view of an Emotion message."""
    return EmotionEstimate(face_id=int(msg.face_id),
                           probabilities=np.asarray(msg.probabilities, dtype=np.float32),
                           box=box_from_roi(msg.roi), detection_score=float(msg.detection_score),
                           stamp=stamp, smoothed=bool(msg.smoothed), smoother=msg.smoother)


def emotion_problem(msg: Emotion) -> str:
    """Return why an Emotion cannot be used ("" when it can).

    Usable: one probability per class, each finite and >= 0, summing to 1; finite confidence;
    a finite detection score in [0, 1]; a ROI within ``ROI_LIMIT``.
    """
    probs = np.asarray(msg.probabilities, dtype=np.float64)
    if probs.shape != (NUM_CLASSES,):
        return f"{probs.size} probabilities instead of {NUM_CLASSES}"
    if not np.isfinite(probs).all():
        return "non-finite probabilities"
    if (probs < 0).any() or abs(probs.sum() - 1.0) >= 1e-3:
        return (f"probabilities are not a distribution (sum {probs.sum():.4g}, "
                f"min {probs.min():.4g})")
    if not math.isfinite(msg.confidence):
        return "non-finite confidence"
    try:
        check_score(msg.detection_score)
        checked_box(msg.roi)
    except ValueError as exc:
        return str(exc)
    return ""


def is_finite_emotion(msg: Emotion) -> bool:
    """Return True when every number of the message is finite and valid (see emotion_problem)."""
    return not emotion_problem(msg)

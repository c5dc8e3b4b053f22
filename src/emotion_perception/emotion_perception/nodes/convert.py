"""Conversions between emotion_msgs / sensor_msgs messages and core dataclasses."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from emotion_msgs.msg import Emotion, EmotionArray, Face, FaceArray
from sensor_msgs.msg import Image, RegionOfInterest

from ..core.classes import CLASS_NAMES, VALENCE_AROUSAL
from ..core.image_conversion import array_to_image_fields, image_to_array
from ..core.types import Box, EmotionEstimate, TrackedFace

_VA = np.array(VALENCE_AROUSAL, dtype=np.float32)


def roi_from_box(box: Box) -> RegionOfInterest:
    """Return a RegionOfInterest for a core Box."""
    return RegionOfInterest(x_offset=int(box.x), y_offset=int(box.y), width=int(box.w),
                            height=int(box.h), do_rectify=False)


def box_from_roi(roi: RegionOfInterest) -> Box:
    """Return a core Box for a RegionOfInterest."""
    return Box(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))


def array_to_image(array: np.ndarray, encoding: str, header=None) -> Image:
    """Build a sensor_msgs/Image from an array (header copied when given)."""
    msg = Image(**array_to_image_fields(array, encoding))
    if header is not None:
        msg.header = header
    return msg


def image_to_numpy(msg: Image, max_pixels: int) -> np.ndarray:
    """Return the image's pixels (validated) as an array."""
    return image_to_array(msg, max_pixels=max_pixels)


def faces_to_msg(header, image: np.ndarray, encoding: str, faces: Sequence[TrackedFace],
                 crops: Sequence[np.ndarray]) -> FaceArray:
    """Build the detector's FaceArray for one image."""
    out = FaceArray(header=header, image_width=int(image.shape[1]),
                    image_height=int(image.shape[0]))
    for face, crop in zip(faces, crops):
        out.faces.append(Face(face_id=int(face.face_id), roi=roi_from_box(face.box),
                              detection_score=float(face.score),
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


def is_finite_emotion(msg: Emotion) -> bool:
    """Return True when every number of the message is finite and probabilities are valid."""
    probs = np.asarray(msg.probabilities, dtype=np.float64)
    return bool(np.isfinite(probs).all() and (probs >= 0).all()
                and abs(probs.sum() - 1.0) < 1e-3 and math.isfinite(msg.confidence))

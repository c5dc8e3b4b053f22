"""Draw emotion estimates onto an image for the debug view and demo videos.

Each face gets its box in the colour of its top class, a caption with face id, label and
confidence, and a small bar chart of all seven class probabilities beside the box. Sizes are
chosen to stay readable on 640x480 frames; the input image is never modified.

Boxes are clipped to the image before anything is drawn (a box wholly outside it is skipped),
so no box, however absurd its coordinates, reaches OpenCV's int32 drawing calls unclipped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import cv2
import numpy as np

from .classes import CLASS_NAMES
from .types import EmotionEstimate

# BGR colour per class, in CLASS_NAMES order.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (40, 40, 220),    # angry: red
    (40, 140, 60),    # disgust: dark green
    (160, 60, 150),   # fear: purple
    (40, 200, 250),   # happy: yellow
    (200, 120, 40),   # sad: blue
    (20, 150, 250),   # surprise: orange
    (190, 190, 190),  # neutral: gray
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_ROW_H = 13
_LABEL_W = 30
_BAR_W = 56
_PCT_W = 30
_PAD = 4


def _blend_rect(image: np.ndarray, x0: int, y0: int, x1: int, y1: int,
                color: tuple[int, int, int], alpha: float) -> None:
    """Blend a filled rectangle into ``image`` in place (clipped to the image)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    region = image[y0:y1, x0:x1]
    region[:] = (region * (1.0 - alpha) + np.array(color, np.float32) * alpha).astype(
        image.dtype)


def _caption(image: np.ndarray, est: EmotionEstimate, names: Sequence[str],
             color: tuple[int, int, int]) -> None:
    box = est.box
    name = names[est.label] if est.label < len(names) else str(est.label)
    text = f"#{est.face_id} {name} {est.confidence:.2f}"
    if est.smoothed:
        text += f" ({est.smoother})" if est.smoother else " (smoothed)"
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.5, 1)
    height, width = image.shape[:2]
    x = min(max(0, box.x), max(0, width - tw - 2 * _PAD))
    y = box.y - th - base - 2 * _PAD
    if y < 0:  # no room above the box: put the caption inside its top edge
        y = max(0, box.y)
    cv2.rectangle(image, (x, y), (x + tw + 2 * _PAD, y + th + base + 2 * _PAD), color, -1)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + _PAD, y + _PAD + th), _FONT, 0.5, ink, 1, cv2.LINE_AA)


def _bars(image: np.ndarray, est: EmotionEstimate, names: Sequence[str]) -> None:
    box = est.box
    height, width = image.shape[:2]
    probs = np.asarray(est.probabilities, dtype=np.float32).reshape(-1)
    n = len(probs)
    panel_w = _LABEL_W + _BAR_W + _PCT_W + 2 * _PAD
    panel_h = n * _ROW_H + 2 * _PAD
    if box.x + box.w + _PAD + panel_w <= width:
        x = box.x + box.w + _PAD
    elif box.x - _PAD - panel_w >= 0:
        x = box.x - _PAD - panel_w
    else:
        x = max(0, min(width - panel_w, box.x + box.w - panel_w))
    y = max(0, min(height - panel_h, box.y))
    _blend_rect(image, x, y, x + panel_w, y + panel_h, (20, 20, 20), 0.6)
    top = int(np.argmax(probs)) if n else -1
    for i, p in enumerate(probs):
        row_y = y + _PAD + i * _ROW_H
        name = names[i][:3] if i < len(names) else str(i)
        ink = (255, 255, 255) if i == top else (200, 200, 200)
        cv2.putText(image, name, (x + _PAD, row_y + _ROW_H - 3), _FONT, 0.38, ink, 1,
                    cv2.LINE_AA)
        bx = x + _PAD + _LABEL_W
        length = int(round(float(np.clip(p, 0.0, 1.0)) * _BAR_W)) if np.isfinite(p) else 0
        cv2.rectangle(image, (bx, row_y + 2), (bx + _BAR_W, row_y + _ROW_H - 2), (70, 70, 70),
                      1)
        if length > 0:
            color = CLASS_COLORS[i % len(CLASS_COLORS)]
            cv2.rectangle(image, (bx, row_y + 2), (bx + length, row_y + _ROW_H - 2), color, -1)
        pct = f"{100.0 * float(p):3.0f}%" if np.isfinite(p) else " nan"
        cv2.putText(image, pct, (bx + _BAR_W + 3, row_y + _ROW_H - 3), _FONT, 0.35, ink, 1,
                    cv2.LINE_AA)


def draw_annotations(image_bgr: np.ndarray, estimates: Sequence[EmotionEstimate],
                     class_names: Sequence[str] = CLASS_NAMES) -> np.ndarray:
    """Return a BGR copy of ``image_bgr`` (uint8 BGR, BGRA or gray) with the estimates drawn."""
    image = np.asarray(image_bgr)
    if image.dtype != np.uint8:
        raise ValueError(f"image_bgr must be uint8, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        out = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        out = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim == 3 and image.shape[2] == 3:
        out = image.copy()
    else:
        raise ValueError(f"image_bgr must be (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    height, width = out.shape[:2]
    for est in estimates:
        b = est.box.clipped(width, height)
        if b.w <= 0 or b.h <= 0 or np.asarray(est.probabilities).size == 0:
            continue  # outside the image, or nothing to show
        est = replace(est, box=b)
        color = CLASS_COLORS[est.label % len(CLASS_COLORS)]
        cv2.rectangle(out, (b.x, b.y), (b.x + b.w - 1, b.y + b.h - 1), color, 2)
        _bars(out, est, class_names)
        _caption(out, est, class_names, color)
    return out

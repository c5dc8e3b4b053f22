"""The embedded default input: synthetic scenes built from a public-domain portrait.

The portrait is scikit-image's ``astronaut`` image (NASA photograph of Eileen Collins, public
domain), which ships inside the scikit-image wheel, so nothing is downloaded. A scene is a plain
background with ``n_faces`` copies of the portrait's head (odd copies mirrored), laid out on a
grid and drifting slowly with time ``t``; the ground-truth face boxes are known exactly, which
makes the scenes usable as camera input without hardware and as test fixtures with known
answers.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterator

import cv2
import numpy as np

from .types import Box

# Head region of the astronaut image (x, y, side) in the 512x512 original, and the face box
# inside that crop (measured once with the frontal Haar cascade on the full image: face at
# (177, 66, 95, 95), i.e. (42, 40) inside the crop).
_CROP_X, _CROP_Y, _CROP_SIDE = 135, 26, 180
PORTRAIT_FACE_BOX = Box(42, 40, 95, 95)
BACKGROUND_BGR = (96, 112, 104)
_MIN_FACE_PX = 56  # smallest face side we lay out (the Haar window at the default downscale)


@lru_cache(maxsize=1)
def _portrait_crop() -> np.ndarray:
    from skimage import data  # imported lazily: only the demo input needs scikit-image
    rgb = data.astronaut()
    crop = rgb[_CROP_Y:_CROP_Y + _CROP_SIDE, _CROP_X:_CROP_X + _CROP_SIDE]
    bgr = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR)
    bgr.setflags(write=False)
    return bgr


@lru_cache(maxsize=8)
def _scaled(side: int, mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (BGR float32 head of ``side`` px, feathered elliptic alpha mask (side, side, 1))."""
    crop = _portrait_crop()
    if side != crop.shape[0]:
        interp = cv2.INTER_AREA if side < crop.shape[0] else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (side, side), interpolation=interp)
    if mirrored:
        crop = crop[:, ::-1]
    mask = np.zeros((side, side), np.float32)
    centre = (side // 2, side // 2)
    cv2.ellipse(mask, centre, (int(side * 0.46), int(side * 0.49)), 0, 0, 360, 1.0, -1)
    blur = max(3, (side // 12) | 1)
    mask = cv2.GaussianBlur(mask, (blur, blur), 0)
    face_box = PORTRAIT_FACE_BOX
    scale = side / _CROP_SIDE
    # the face box itself is always fully opaque, so detection sees the real pixels
    fx0, fy0 = int(face_box.x * scale), int(face_box.y * scale)
    fx1 = int(math.ceil((face_box.x + face_box.w) * scale))
    fy1 = int(math.ceil((face_box.y + face_box.h) * scale))
    if mirrored:
        fx0, fx1 = side - fx1, side - fx0
    mask[fy0:fy1, fx0:fx1] = 1.0
    return crop.astype(np.float32), mask[:, :, None]


def astronaut_face() -> np.ndarray:
    """Return the portrait's head as a (180, 180, 3) uint8 BGR crop (a fresh copy).

    :data:`PORTRAIT_FACE_BOX` is the face box inside it.
    """
    return _portrait_crop().copy()


def _check(n_faces: int, size: tuple[int, int]) -> tuple[int, int]:
    if int(n_faces) != n_faces or n_faces < 0:
        raise ValueError(f"n_faces must be an integer >= 0, got {n_faces}")
    if len(size) != 2 or min(size) < 64:
        raise ValueError(f"size must be (height, width) with both >= 64, got {size}")
    return int(size[0]), int(size[1])


def _layout(n_faces: int, size: tuple[int, int], t: float
            ) -> list[tuple[int, int, int, bool]]:
    """Return (x, y, side, mirrored) of every head pasted into the scene at time ``t``."""
    height, width = _check(n_faces, size)
    if n_faces == 0:
        return []
    cols = max(1, min(n_faces, math.ceil(math.sqrt(n_faces * width / height))))
    rows = math.ceil(n_faces / cols)
    cell_w, cell_h = width / cols, height / rows
    side = int(min(_CROP_SIDE, 0.75 * cell_w, 0.75 * cell_h))
    if side * PORTRAIT_FACE_BOX.w / _CROP_SIDE < _MIN_FACE_PX:
        raise ValueError(f"n_faces={n_faces} faces do not fit a {width}x{height} scene with "
                         f"faces of at least {_MIN_FACE_PX} px; use fewer faces or a larger "
                         "size")
    amp_x = min(30.0, (cell_w - side) / 2.0)
    amp_y = min(15.0, (cell_h - side) / 2.0)
    out = []
    for i in range(n_faces):
        row, col = divmod(i, cols)
        phase = 1.7 * i
        cx = (col + 0.5) * cell_w + amp_x * math.sin(2.0 * math.pi * t / 8.0 + phase)
        cy = (row + 0.5) * cell_h + amp_y * math.sin(2.0 * math.pi * t / 6.0 + phase)
        x = min(max(0, int(round(cx - side / 2.0))), width - side)
        y = min(max(0, int(round(cy - side / 2.0))), height - side)
        out.append((x, y, side, i % 2 == 1))
    return out


def scene_boxes(n_faces: int = 1, size: tuple[int, int] = (480, 640), t: float = 0.0
                ) -> list[Box]:
    """Return the ground-truth face boxes of :func:`synthetic_scene` with the same arguments."""
    boxes = []
    for x, y, side, mirrored in _layout(n_faces, size, t):
        scale = side / _CROP_SIDE
        fb = PORTRAIT_FACE_BOX
        fx = (_CROP_SIDE - fb.x - fb.w) if mirrored else fb.x
        boxes.append(Box(x + int(round(fx * scale)), y + int(round(fb.y * scale)),
                         int(round(fb.w * scale)), int(round(fb.h * scale))))
    return boxes


def synthetic_scene(n_faces: int = 1, size: tuple[int, int] = (480, 640), t: float = 0.0
                    ) -> np.ndarray:
    """Return a (H, W, 3) uint8 BGR frame with ``n_faces`` portrait heads at time ``t``.

    ``size`` is (height, width). The faces' boxes are :func:`scene_boxes` (same arguments).
    """
    height, width = _check(n_faces, size)
    frame = np.empty((height, width, 3), np.float32)
    frame[:] = BACKGROUND_BGR
    for x, y, side, mirrored in _layout(n_faces, size, t):
        head, alpha = _scaled(side, mirrored)
        region = frame[y:y + side, x:x + side]
        region *= 1.0 - alpha
        region += alpha * head
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def synthetic_scene_with_boxes(n_faces: int = 1, size: tuple[int, int] = (480, 640),
                               t: float = 0.0) -> tuple[np.ndarray, list[Box]]:
    """Return (:func:`synthetic_scene`, :func:`scene_boxes`) for the same arguments."""
    return synthetic_scene(n_faces, size, t), scene_boxes(n_faces, size, t)


def demo_frames(n_frames: int | None, fps: float = 15.0, n_faces: int = 1,
                size: tuple[int, int] = (480, 640)) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (t, frame) for ``n_frames`` frames at ``fps`` (None = endlessly), t from 0."""
    if n_frames is not None and (int(n_frames) != n_frames or n_frames < 0):
        raise ValueError(f"n_frames must be None (endless) or an integer >= 0, got {n_frames}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    _check(n_faces, size)
    i = 0
    while n_frames is None or i < n_frames:
        t = i / fps
        yield t, synthetic_scene(n_faces, size, t)
        i += 1

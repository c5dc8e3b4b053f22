"""The one preprocessing function shared by training and inference.

Training (``emotion_training``) and the runtime classifiers both call :func:`preprocess_faces`,
so the two can never disagree: face isolated and cropped, converted to grayscale, resized to the
model input with area interpolation, scaled to float32 in [0, 1], shaped ``(N, H, W, 1)``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import cv2
import numpy as np

MODEL_INPUT_SIZE: tuple[int, int] = (48, 48)  # (height, width) of FER2013 faces


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a 2-D uint8/float grayscale view of a gray, BGR or BGRA image."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {image.shape}")


def _to_unit_float(gray: np.ndarray) -> np.ndarray:
    if gray.dtype == np.uint8:
        return gray.astype(np.float32) * (1.0 / 255.0)
    if gray.dtype == np.uint16:
        return gray.astype(np.float32) * (1.0 / 65535.0)
    out = gray.astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def preprocess_face(face: np.ndarray, size: tuple[int, int] = MODEL_INPUT_SIZE) -> np.ndarray:
    """Turn one cropped face (gray, BGR or BGRA; uint8, uint16 or float) into (H, W, 1) float32.

    The output is in [0, 1]. uint8 input is divided by 255, uint16 by 65535; float input is
    assumed to be in [0, 1] already and clipped.
    """
    if face.size == 0 or face.shape[0] == 0 or face.shape[1] == 0:
        raise ValueError(f"empty face crop of shape {face.shape}")
    gray = to_gray(np.asarray(face))
    height, width = size
    if gray.shape != (height, width):
        interp = cv2.INTER_AREA if gray.shape[0] >= height else cv2.INTER_LINEAR
        gray = cv2.resize(gray, (width, height), interpolation=interp)
    return _to_unit_float(gray)[:, :, None]


def preprocess_faces(faces: Iterable[np.ndarray] | np.ndarray,
                     size: tuple[int, int] = MODEL_INPUT_SIZE) -> np.ndarray:
    """Preprocess a batch of crops into one (N, H, W, 1) float32 array in [0, 1].

    A uint8 array of shape (N, H, W) already at the model size (the FER2013 layout) takes a fast
    vectorised path with exactly the same result as the per-face path.
    """
    if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.shape[1:] == tuple(size):
        return _to_unit_float(faces)[..., None]
    crops = [preprocess_face(f, size) for f in faces]
    if not crops:
        return np.zeros((0, size[0], size[1], 1), np.float32)
    return np.stack(crops)


def tta_view_count(mirror: bool, shift: int) -> int:
    """Return how many views :func:`tta_views` makes per face."""
    return (2 if mirror else 1) * (5 if shift else 1)


def tta_views(batch: np.ndarray, mirror: bool = False, shift: int = 0) -> np.ndarray:
    """Return the test-time-augmentation views of a (N, H, W, C) batch, view-major.

    Views: the face itself; with ``mirror`` also its horizontal flip; with ``shift`` > 0 each of
    those moved by ``shift`` pixels up, down, left and right (borders repeat the edge pixels).
    The result is (V * N, H, W, C) with view ``v`` of face ``i`` at row ``v * N + i``, so one
    batched model call scores every view; :func:`merge_tta` averages them back.
    """
    batch = np.asarray(batch)
    if batch.ndim != 4:
        raise ValueError(f"batch must be (N, H, W, C), got shape {batch.shape}")
    shift = int(shift)
    if shift < 0 or (shift and 2 * shift >= min(batch.shape[1:3])):
        raise ValueError(f"shift must be in [0, {(min(batch.shape[1:3]) - 1) // 2}], "
                         f"got {shift}")
    bases = [batch, batch[:, :, ::-1]] if mirror else [batch]
    if not shift:
        return np.concatenate(bases) if mirror else batch
    h, w = batch.shape[1:3]
    s = shift
    views = []
    for base in bases:
        padded = np.pad(base, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
        for dy, dx in ((0, 0), (s, 0), (-s, 0), (0, s), (0, -s)):
            views.append(padded[:, s + dy:s + dy + h, s + dx:s + dx + w])
    return np.ascontiguousarray(np.concatenate(views))


def merge_tta(probs: np.ndarray, n_views: int) -> np.ndarray:
    """Average (V * N, K) view-major probabilities from :func:`tta_views` into (N, K)."""
    probs = np.asarray(probs)
    if n_views < 1 or len(probs) % n_views:
        raise ValueError(f"{len(probs)} rows cannot be {n_views} views of the same faces")
    if n_views == 1:
        return probs
    return probs.reshape(n_views, len(probs) // n_views, *probs.shape[1:]).mean(axis=0)


def square_crop_box(box: Sequence[float], margin: float, image_shape: Sequence[int],
                    offset: float = 0.0) -> tuple[int, int, int, int]:
    """Grow a face box (x, y, w, h) to a square with a relative margin, clipped to the image.

    FER2013 faces are tightly cropped squares; the detector's box is made square around its
    centre and enlarged by ``margin`` (0.1 = 10 % on each side) so crops resemble training data;
    ``offset`` moves the square down by that fraction of the box side (negative: up).
    Returns integer (x, y, w, h) inside the image; w or h may be 0 for a box fully outside.
    This is the unrotated crop; :func:`crop_geometry` and :func:`crop_face` add the rotation.
    """
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0 + offset * max(w, h)
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x1 = int(round(cx + side / 2.0))
    y1 = int(round(cy + side / 2.0))
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img_w, x1), min(img_h, y1)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def eye_roll(eyes: tuple[Sequence[float], Sequence[float]] | None) -> float:
    """Return the in-plane angle (radians) of the line from the right to the left eye.

    ``eyes`` = (right eye, left eye) pixel positions (the person's right: the left one in an
    unmirrored image), or None (angle 0). 0 is an upright face; positive means the left eye
    is lower in the image (y points down), i.e. the head is turned clockwise on screen.
    """
    if eyes is None:
        return 0.0
    (rx, ry), (lx, ly) = eyes
    dx, dy = float(lx) - float(rx), float(ly) - float(ry)
    if not (math.isfinite(dx) and math.isfinite(dy)) or (dx == 0.0 and dy == 0.0):
        return 0.0
    return math.atan2(dy, dx)


def crop_geometry(box: Sequence[float], margin: float = 0.1, offset: float = 0.0,
                  angle: float = 0.0, anchor: Sequence[float] | None = None
                  ) -> tuple[float, float, float]:
    """Return the face crop square as (centre x, centre y, side) in image pixels.

    The square's side is the box's longer side enlarged by ``margin`` per side; its centre is
    ``anchor`` (default: the box centre) moved by ``offset`` box sides along the face's
    downward axis, which is turned by ``angle`` (radians, :func:`eye_roll`) from the image's.
    With ``anchor`` = the eyes' midpoint (:func:`crop_face`'s ``eye_offset``) the box gives
    only the crop's size and the keypoints place it. That places the FER square more
    tightly than the box does, yet classified less accurately, so it is not the default
    (README, face detectors).
    """
    x, y, w, h = (float(v) for v in box)
    size = max(w, h)
    ax, ay = (x + w / 2.0, y + h / 2.0) if anchor is None else (float(v) for v in anchor)
    return (ax - math.sin(angle) * offset * size,
            ay + math.cos(angle) * offset * size, size * (1.0 + 2.0 * margin))


def crop_matrix(centre: tuple[float, float], side: float, angle: float, out_side: int
                ) -> np.ndarray:
    """Return the 2x3 affine map from crop pixels (out_side square) to image pixels.

    Crop pixel centres ``(u + 0.5, v + 0.5)`` land on the square of ``side`` around
    ``centre`` turned by ``angle``: the crop's x axis follows the eye line, so the face comes
    out upright.
    """
    k = side / out_side
    c, s = math.cos(angle) * k, math.sin(angle) * k
    cx, cy = centre
    half = out_side / 2.0
    # image = centre + R(angle) * k * (crop - half), crop measured at pixel centres
    return np.array([[c, -s, cx - c * (half - 0.5) + s * (half - 0.5) - 0.5],
                     [s, c, cy - s * (half - 0.5) - c * (half - 0.5) - 0.5]], np.float64)


def crop_face(image: np.ndarray, box: Sequence[float], margin: float = 0.1, *,
              offset: float = 0.0, eyes: tuple[Sequence[float], Sequence[float]] | None = None,
              eye_offset: float | None = None) -> np.ndarray:
    """Cut the face crop of ``box`` out of ``image``: the one crop function of every path.

    Without ``eyes``: the square, margin-enlarged (and ``offset``-moved) region of ``box``,
    clipped to the image, as a view. With ``eyes`` = (right eye, left eye) pixel positions
    (a detector's keypoints, ``FaceDetection.eyes()``): the same square turned by the eye
    line's angle, resampled (bilinear) into a new upright square array of the crop's own
    pixel size, the image's edge pixels repeated where the square leaves the image. With
    ``eyes`` and ``eye_offset``: the square's centre is the eyes' midpoint moved
    ``eye_offset`` box sides down the face (``offset`` is then unused), its side still the
    box's (see :func:`crop_geometry`).
    """
    if eyes is None:
        x, y, w, h = square_crop_box(box, margin, image.shape, offset)
        if w == 0 or h == 0:
            raise ValueError(f"face box {tuple(box)} lies outside the image {image.shape[:2]}")
        return image[y:y + h, x:x + w]
    angle = eye_roll(eyes)
    if eye_offset is None:
        cx, cy, side = crop_geometry(box, margin, offset, angle)
    else:
        (rx, ry), (lx, ly) = eyes
        mid = ((float(rx) + float(lx)) / 2.0, (float(ry) + float(ly)) / 2.0)
        if not all(math.isfinite(v) for v in mid):
            raise ValueError(f"eye keypoints {eyes} are not finite")
        cx, cy, side = crop_geometry(box, margin, float(eye_offset), angle, anchor=mid)
    height, width = image.shape[:2]
    reach = side * (abs(math.cos(angle)) + abs(math.sin(angle))) / 2.0
    if not side >= 1.0 or cx + reach <= 0 or cy + reach <= 0 or cx - reach >= width \
            or cy - reach >= height:
        raise ValueError(f"face box {tuple(box)} lies outside the image {image.shape[:2]}")
    out_side = max(1, int(round(side)))
    matrix = crop_matrix((cx, cy), side, angle, out_side)
    crop = cv2.warpAffine(image, matrix, (out_side, out_side),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    if image.ndim == 3 and crop.ndim == 2:  # a one-channel (H, W, 1) image stays 3-D
        crop = crop[:, :, None]
    return crop

"""The one preprocessing function shared by training and inference.

Training (``emotion_training``) and the runtime classifiers both call :func:`preprocess_faces`,
so the two can never disagree: face isolated and cropped, converted to grayscale, resized to the
model input with area interpolation, scaled to float32 in [0, 1], shaped ``(N, H, W, 1)``.
"""

from __future__ import annotations

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


def square_crop_box(box: Sequence[float], margin: float, image_shape: Sequence[int]
                    ) -> tuple[int, int, int, int]:
    """Grow a face box (x, y, w, h) to a square with a relative margin, clipped to the image.

    FER2013 faces are tightly cropped squares; the detector's box is made square around its
    centre and enlarged by ``margin`` (0.1 = 10 % on each side) so crops resemble training data.
    Returns integer (x, y, w, h) inside the image; w or h may be 0 for a box fully outside.
    """
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x1 = int(round(cx + side / 2.0))
    y1 = int(round(cy + side / 2.0))
    img_h, img_w = int(image_shape[0]), int(image_shape[1])
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(img_w, x1), min(img_h, y1)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def crop_face(image: np.ndarray, box: Sequence[float], margin: float = 0.1) -> np.ndarray:
    """Cut the square, margin-enlarged face region of ``box`` out of ``image`` (a view)."""
    x, y, w, h = square_crop_box(box, margin, image.shape)
    if w == 0 or h == 0:
        raise ValueError(f"face box {tuple(box)} lies outside the image {image.shape[:2]}")
    return image[y:y + h, x:x + w]

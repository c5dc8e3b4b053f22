"""Harder test frames from labelled 48x48 faces: rotated, scaled, on textured backgrounds.

Plain FER2013 faces pasted upright in the middle of a flat frame (``emotion_make_bag --npz``)
are easy for any detector. :func:`make_scenes` makes the frames a robot's camera is closer to:
each face scaled to a side drawn from ``sizes`` (80-320 px by default), turned in-plane by up
to ``max_rotation`` degrees, pasted (cubic interpolation, anti-aliased edges) at a random place
on a textured background (a random patch of one of scikit-image's bundled texture and scene
photographs without people, or a generated pattern: smooth colour noise, stripes, checks,
random shapes), sometimes two faces per frame (``two_face_share``), then the whole frame's
brightness and contrast changed (gain, offset, gamma) and a little sensor noise added.

Everything is drawn from one seeded NumPy generator, so the same arguments give the same
frames. The faces are never written anywhere by this module; ``emotion_make_bag --scenes``
writes them into a bag (labels: :class:`SceneFace.box`, the face's unrotated square), and
``emotion_eval_detectors`` scores detectors and crop framings on them in memory.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from ..core.types import Box

#: scikit-image's bundled photographs used as backgrounds (no people, faces or coins' heads)
TEXTURE_IMAGES = ("brick", "grass", "gravel", "coffee", "rocket", "hubble_deep_field", "page",
                  "moon", "retina", "text", "immunohistochemistry")
PATTERNS = ("noise", "stripes", "checks", "shapes")


@dataclass(frozen=True)
class SceneFace:
    """One pasted face: its label, where it is and how it was turned."""

    label: int
    index: int                       # row of the face in the source array
    center: tuple[float, float]      # pixel centre (x, y) in the frame
    side: float                      # pasted side in pixels (before rotation)
    angle: float                     # in-plane rotation in degrees, counter-clockwise on screen

    @property
    def box(self) -> Box:
        """Return the face's unrotated square, rounded to pixels (the bag label's roi)."""
        x0 = int(round(self.center[0] - self.side / 2.0))
        y0 = int(round(self.center[1] - self.side / 2.0))
        side = int(round(self.side))
        return Box(x0, y0, side, side)

    def corners(self) -> np.ndarray:
        """Return the face's turned corners in frame pixels, as a (2, 4) array of columns.

        Columns: top-left, top-right, bottom-right, bottom-left corner of the face image.
        """
        return face_to_frame_matrix(self) @ np.array(
            [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], np.float64).T


def face_to_frame_matrix(face: SceneFace) -> np.ndarray:
    """Return the 2x3 affine matrix from unit face coordinates ([0, 1]^2) to frame pixels."""
    a = math.radians(face.angle)
    # counter-clockwise on screen (y points down): the face's x axis is (cos a, -sin a)
    ux = np.array([math.cos(a), -math.sin(a)]) * face.side
    uy = np.array([math.sin(a), math.cos(a)]) * face.side
    origin = np.asarray(face.center) - (ux + uy) / 2.0
    return np.stack([ux, uy, origin], axis=1)


@dataclass(frozen=True)
class Scene:
    """One frame and the faces pasted on it."""

    frame: np.ndarray                # (H, W, 3) uint8 BGR
    faces: tuple[SceneFace, ...]
    background: str


@lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    from skimage import data  # bundled files only (the wheel ships them); nothing downloaded

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    else:
        image = cv2.cvtColor(image[:, :, :3].astype(np.uint8), cv2.COLOR_RGB2BGR)
    image.setflags(write=False)
    return image


def _photo_background(rng: np.random.Generator, name: str, width: int, height: int
                      ) -> np.ndarray:
    image = _texture(name)
    h, w = image.shape[:2]
    # a random patch of the frame's aspect ratio, 1 to 2.5 times smaller than the largest
    # that fits, scaled to the frame
    largest_w = min(float(w), h * width / height)
    pw = max(16, int(largest_w / rng.uniform(1.0, 2.5)))
    ph = min(h, max(16, int(round(pw * height / width))))
    y0 = int(rng.integers(0, h - ph + 1))
    x0 = int(rng.integers(0, w - pw + 1))
    patch = image[y0:y0 + ph, x0:x0 + pw]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return cv2.resize(np.ascontiguousarray(patch), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def _pattern_background(rng: np.random.Generator, kind: str, width: int, height: int
                        ) -> np.ndarray:
    if kind == "noise":
        frame = np.zeros((height, width, 3), np.float32)
        for cells in (4, 12, 40):
            small = rng.uniform(0, 255, (cells * height // width + 1, cells, 3))
            frame += cv2.resize(small.astype(np.float32), (width, height),
                                interpolation=cv2.INTER_CUBIC) / 3.0
        return np.clip(frame, 0, 255).astype(np.uint8)
    colours = rng.uniform(0, 255, (2, 3))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "stripes":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(8, 60)
        wave = 0.5 + 0.5 * np.sin((xs * math.cos(a) + ys * math.sin(a)) * 2 * math.pi / period)
        return (colours[0] * wave[..., None] + colours[1] * (1 - wave[..., None])
                ).astype(np.uint8)
    if kind == "checks":
        cell = rng.uniform(10, 70)
        mask = ((xs // cell + ys // cell) % 2)[..., None]
        return (colours[0] * mask + colours[1] * (1 - mask)).astype(np.uint8)
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = colours[0].astype(np.uint8)
    for _ in range(int(rng.integers(10, 40))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(10, 120))
        if rng.random() < 0.5:
            cv2.rectangle(frame, (x, y), (x + size, y + int(rng.integers(10, 120))), colour, -1)
        else:
            cv2.circle(frame, (x, y), size // 2, colour, -1)
    return frame


def background(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, str]:
    """Return (a random textured bgr8 background of width x height, its source's name)."""
    names = TEXTURE_IMAGES + PATTERNS
    name = names[int(rng.integers(0, len(names)))]
    if name in PATTERNS:
        return _pattern_background(rng, name, width, height), name
    return _photo_background(rng, name, width, height), name


def paste_face(frame: np.ndarray, face_image: np.ndarray, face: SceneFace) -> None:
    """Paste ``face_image`` (gray or BGR) into ``frame`` in place, as ``face`` says.

    The image is scaled to ``face.side`` and turned by ``face.angle`` about ``face.center``
    (cubic interpolation); its edges are anti-aliased.
    """
    src = np.asarray(face_image)
    if src.ndim == 2:
        src = cv2.cvtColor(src, cv2.COLOR_GRAY2BGR)
    n = src.shape[0]
    if src.shape[1] != n:
        raise ValueError(f"face images must be square, got shape {src.shape}")
    unit = face_to_frame_matrix(face)
    # pixel centres: face pixel (i + 0.5) / n in unit coordinates
    to_frame = unit @ np.array([[1.0 / n, 0, 0.5 / n], [0, 1.0 / n, 0.5 / n], [0, 0, 1]])
    height, width = frame.shape[:2]
    corners = face.corners()
    x0, y0 = (max(0, int(math.floor(v)) - 1) for v in corners.min(axis=1))
    x1 = min(width, int(math.ceil(corners[0].max())) + 2)
    y1 = min(height, int(math.ceil(corners[1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    to_frame[:, 2] -= (x0, y0)  # warp only the face's bounding rectangle
    size = (x1 - x0, y1 - y0)
    pasted = cv2.warpAffine(src, to_frame, size, flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.ones((n, n), np.float32), to_frame, size,
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = mask[..., None]
    region = frame[y0:y1, x0:x1]
    region[:] = (pasted * alpha + region * (1.0 - alpha) + 0.5).astype(np.uint8)


def _place(rng: np.random.Generator, sizes: tuple[float, float], max_rotation: float,
           width: int, height: int, taken: Sequence[tuple[float, float, float]]
           ) -> tuple[tuple[float, float], float, float] | None:
    for _ in range(50):
        side = float(rng.uniform(*sizes))
        angle = float(rng.uniform(-max_rotation, max_rotation))
        a = math.radians(angle)
        half = side * (abs(math.cos(a)) + abs(math.sin(a))) / 2.0
        if 2 * half >= min(width, height):
            continue
        cx = float(rng.uniform(half, width - half))
        cy = float(rng.uniform(half, height - half))
        if all(abs(cx - ox) >= half + oh or abs(cy - oy) >= half + oh for ox, oy, oh in taken):
            return (cx, cy), side, angle
    return None


def _photometric(rng: np.random.Generator, frame: np.ndarray) -> np.ndarray:
    gain = rng.uniform(0.6, 1.4)
    offset = rng.uniform(-40, 40)
    gamma = rng.uniform(0.7, 1.4)
    noise = rng.uniform(0.0, 4.0)
    levels = np.arange(256, dtype=np.float64) * gain + offset
    table = np.clip(255.0 * (np.clip(levels, 0, 255) / 255.0) ** gamma + 0.5, 0, 255)
    out = cv2.LUT(frame, table.astype(np.uint8))
    if noise > 0.5:
        grain = rng.normal(0.0, noise, out.shape[:2] + (1,)).astype(np.float32)
        out = np.clip(out + grain + 0.5, 0, 255).astype(np.uint8)
    return out


def make_scenes(images: np.ndarray, labels: Sequence[int], *, seed: int = 0,
                canvas: tuple[int, int] = (640, 480), sizes: tuple[float, float] = (80, 320),
                max_rotation: float = 25.0, two_face_share: float = 0.3,
                photometric: bool = True) -> Iterator[Scene]:
    """Yield frames with every face of ``images`` (N, h, h) once, in order (see the module).

    A two-face frame takes the next two faces. ``canvas`` is (width, height). The arguments
    are checked at once (ValueError), the frames made as they are taken.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square: (N, S, S) or (N, S, S, 3), got "
                         f"{images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    width, height = canvas
    if not 8 <= sizes[0] <= sizes[1] < min(width, height):
        raise ValueError(f"sizes must satisfy 8 <= min <= max < {min(width, height)}, got "
                         f"{sizes}")
    if not 0.0 <= max_rotation <= 90.0:
        raise ValueError(f"max_rotation must be in [0, 90] degrees, got {max_rotation}")
    if not 0.0 <= two_face_share <= 1.0:
        raise ValueError(f"two_face_share must be in [0, 1], got {two_face_share}")
    return _generate(images, labels, seed, canvas, sizes, max_rotation, two_face_share,
                     photometric)


def _generate(images: np.ndarray, labels: Sequence[int], seed: int, canvas: tuple[int, int],
              sizes: tuple[float, float], max_rotation: float, two_face_share: float,
              photometric: bool) -> Iterator[Scene]:
    width, height = canvas
    rng = np.random.default_rng(seed)
    i = 0
    while i < len(images):
        frame, name = background(rng, width, height)
        frame = np.ascontiguousarray(frame)
        count = 2 if rng.random() < two_face_share and i + 1 < len(images) else 1
        faces: list[SceneFace] = []
        taken: list[tuple[float, float, float]] = []
        for _ in range(count):
            spot = _place(rng, sizes, max_rotation, width, height, taken)
            if spot is None:  # no room left for a second face: it goes into the next frame
                if not faces:
                    raise ValueError(f"cannot place a face of {sizes[0]}-{sizes[1]} px turned "
                                     f"up to {max_rotation} degrees on a {width}x{height} "
                                     "frame")
                break
            (cx, cy), side, angle = spot
            a = math.radians(angle)
            taken.append((cx, cy, side * (abs(math.cos(a)) + abs(math.sin(a))) / 2.0))
            face = SceneFace(int(labels[i]), i, (cx, cy), side, angle)
            paste_face(frame, images[i], face)
            faces.append(face)
            i += 1
        if photometric:
            frame = _photometric(rng, frame)
        yield Scene(frame, tuple(faces), name)


def add_scene_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the frame generator's options (face sizes, rotation, two-face share) to ``parser``."""
    parser.add_argument("--max-rotation", type=float, default=25.0,
                        help="faces turned up to this many degrees (default 25)")
    parser.add_argument("--min-face", type=float, default=80.0,
                        help="smallest pasted face side in pixels (default 80)")
    parser.add_argument("--max-face", type=float, default=320.0,
                        help="largest pasted face side in pixels (default 320)")
    parser.add_argument("--two-face-share", type=float, default=0.3,
                        help="share of frames with two faces (default 0.3)")


def scene_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the :func:`make_scenes` keyword arguments of :func:`add_scene_arguments`' options."""
    return {"sizes": (args.min_face, args.max_face), "max_rotation": args.max_rotation,
            "two_face_share": args.two_face_share}

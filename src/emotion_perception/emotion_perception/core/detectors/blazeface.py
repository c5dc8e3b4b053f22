"""BlazeFace face detector (plugin ``blazeface``): a small SSD-style CNN with six keypoints.

The models are Google MediaPipe's face detectors, run here with LiteRT (``ai_edge_litert``,
which the ``tflite`` classifier uses too); the decoding below is this package's own, written
from the models' published format:

* ``short``: ``face_detection_short_range.tflite``, a 128x128 RGB input; 896 anchors on a
  16x16 grid (stride 8, 2 anchors per cell) and an 8x8 grid (stride 16, 6 per cell). Meant for
  faces that fill a good part of the frame (a person within about 2 m of the camera).
* ``full``: ``face_detection_full_range_sparse.tflite``, a 192x192 input; 2304 anchors on a
  48x48 grid (stride 4, one per cell). Finds smaller faces (up to about 5 m) for more work.

Each model returns, per anchor, 16 regression values (box centre x, y, width, height, then six
keypoints x, y, all in input pixels relative to the anchor centre) and one score logit. The
short-range network is fully convolutional: the frame is scaled (aspect kept, bilinear) to
``input_side`` pixels on its longer side, padded black to multiples of 16, and the anchor grids
follow that input (256x192 for a 640x480 frame at the default 256: 2688 anchors); the
full-range one reshapes to a fixed anchor count, so the frame is letterboxed into its 192x192
input. RGB is scaled to [-1, 1]. Anchors with a sigmoid score >= ``score_threshold`` are
decoded and merged by weighted
non-maximum suppression (each kept face is the score-weighted mean of the candidates that
overlap it by IoU > ``nms_threshold``, as in MediaPipe's graphs), then mapped back to frame
pixels.

Keypoints (``FaceDetection.landmarks``, (6, 2), in :data:`KEYPOINT_NAMES` order): the
subject's right eye, left eye, nose tip, mouth centre, right and left ear tragion ("right" is
the person's right: the left one in an unmirrored image).

Model files: never shipped with this package and never downloaded at run time. By default
they are read from where the ``mediapipe`` wheel installs them (``mediapipe/modules/
face_detection/``), located through the wheel's installed file list without importing
``mediapipe`` (its own dependencies, NumPy < 2 and protobuf < 5, conflict with this
project's TensorFlow, so the bootstrap installs it with ``--no-deps``; see
``requirements/no-deps.txt``). ``model_path`` names another copy of the file instead.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..classifiers.base import ModelError
from ..types import Box, FaceDetection
from .base import FaceDetector
from .haar import check_image

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion",
                  "left_ear_tragion")
MEDIAPIPE_DIR = "mediapipe/modules/face_detection"
MEDIAPIPE_HINT = ("install the mediapipe wheel without its dependencies (pip install "
                  "--no-deps -r requirements/no-deps.txt; scripts/bootstrap.sh does this) or "
                  "set blazeface.model_path to a copy of the file")


@dataclass(frozen=True)
class ModelSpec:
    """The fixed format of one BlazeFace variant."""

    file_name: str
    input_size: int               # square input side in pixels
    strides: tuple[int, ...]      # one entry per anchor layer (MediaPipe's SSD anchor layers)
    two_per_layer: bool           # each layer has 2 anchors per cell (else 1)
    resizable: bool               # fully convolutional: takes other input sizes
    #: (crop margin, crop offset) measured with ``emotion_eval_detectors --calibrate --split
    #: Training --limit 2000 --seed 1``: the FER2013 face square is 1.20-1.22 box sides
    #: (short range, input_side 128-256) or 1.15 (full range) and its centre 0.095 (0.05)
    #: box sides above the box centre
    crop_framing: tuple[float, float] = (0.1, 0.0)
    #: the FER2013 face square's centre below the eyes' midpoint, in box sides along the
    #: eye line's down axis (``crop_face(eye_offset=...)``), measured the same way
    #: (``crop_eye_offset`` in the ``--calibrate`` output); None: not calibrated
    eye_offset: float | None = None


MODELS = {
    "short": ModelSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, True,
                       (0.105, -0.095), 0.123),
    # its graph reshapes to a fixed anchor count: the input stays 192x192 (letterboxed)
    "full": ModelSpec("face_detection_full_range_sparse.tflite", 192, (4,), False, False,
                      (0.075, -0.05)),
}
#: keypoint rows of a mirrored image's face, in KEYPOINT_NAMES order (left and right swap)
_MIRRORED_KEYPOINTS = [1, 0, 2, 3, 5, 4]
_VALUES = 16          # regression values per anchor: box (4) + 6 keypoints x (x, y)
LOGIT_CLIP = 100.0    # score logits are clipped to +-100 before the sigmoid (as MediaPipe)
#: one look as the default had it in sessions 13-14 (the face check, 128-pixel second-pass
#: tiles, no mirrored scan, the stricter thresholds), for comparisons
SINGLE_LOOK = {"score_threshold": 0.5, "refine_threshold": 0.2, "refine_max": 3,
               "refine_accept": 0.5, "refine_side": 0, "mirror_pass": False}
#: the first pass alone: the network as MediaPipe runs it (score 0.5), one look, no second pass
FIRST_PASS = {"score_threshold": 0.5, "refine_threshold": 0.0, "mirror_pass": False}
#: the second pass as it was before the face check (session 12's default), for comparisons
WITHOUT_CHECK = {**SINGLE_LOOK, "verify_threshold": 0.0, "refine_accept": 0.7,
                 "refine_max": 2}


@dataclass(frozen=True)
class _Tiles:
    """An interpreter for square tiles of one side, with its input buffer and anchors."""

    interp: Any
    input: np.ndarray     # (1, side, side, 3) float32
    anchors: np.ndarray   # (N, 2) anchor centres for that side


def make_anchors(spec: ModelSpec, width: int, height: int) -> np.ndarray:
    """Return the (N, 2) anchor centres of ``spec`` for a width x height input, in pixels.

    Consecutive layers with the same stride share one grid; every cell of that grid gets
    the anchors of all those layers (2 or 1 each). The order is grid by grid, row-major over
    the cells, the anchors of one cell together: the order of the model's outputs.
    """
    centres = []
    i = 0
    while i < len(spec.strides):
        stride, per_cell = spec.strides[i], 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            per_cell += 2 if spec.two_per_layer else 1
            i += 1
        cols, rows = int(math.ceil(width / stride)), int(math.ceil(height / stride))
        ys, xs = np.mgrid[0:rows, 0:cols]
        grid = np.stack([(xs + 0.5) * width / cols, (ys + 0.5) * height / rows],
                        axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float64)


def installed_model(file_name: str, directory: str = MEDIAPIPE_DIR) -> Path:
    """Return the path of ``directory/file_name`` inside the installed mediapipe wheel.

    The wheel is found through its installed file list; mediapipe is never imported.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("mediapipe")
    except PackageNotFoundError:
        raise FileNotFoundError(f"MediaPipe model {file_name}: the mediapipe wheel that carries "
                                f"it is not installed; {MEDIAPIPE_HINT}") from None
    path = Path(str(dist.locate_file(f"{directory}/{file_name}")))
    if not path.is_file():
        raise FileNotFoundError(f"MediaPipe model {file_name}: not found at {path} (mediapipe "
                                f"{dist.version} is installed, but its wheel lacks the file; "
                                f"versions 0.10.14-0.10.21 carry it); {MEDIAPIPE_HINT}")
    return path


def warp_to_input(image: np.ndarray, matrix: np.ndarray, out: np.ndarray, scale: float,
                  offset: float = 0.0) -> None:
    """Resample ``image`` into the network input ``out`` ((side, side, 3) float32) as RGB.

    ``matrix`` (2x3) maps input pixels to ``image`` pixels; beyond the image is black. The
    values are ``scale`` * RGB (uint8) + ``offset``. BlazeFace's tiles and the face check's
    crops are made this way.
    """
    side = out.shape[0]
    tile = cv2.warpAffine(image, matrix, (side, side),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)
    code = cv2.COLOR_GRAY2RGB if tile.ndim == 2 else \
        {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}[tile.shape[2]]
    np.multiply(cv2.cvtColor(tile, code), scale, out=out, casting="unsafe")
    if offset:
        out += offset


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Merge overlapping candidates; return [(box, points, score)], best first.

    ``boxes`` (N, 4) as (x0, y0, x1, y1), ``points`` (N, K, 2), ``scores`` (N,). The best
    remaining candidate and every other one overlapping it by IoU > ``iou_threshold`` form a
    cluster; the cluster becomes one face whose box and points are the score-weighted mean of
    its members and whose score is the best member's.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, points, scores = boxes[order], points[order], scores[order]
    sides = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    areas = sides[:, 0] * sides[:, 1]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        rest = np.flatnonzero(alive)
        ix0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        iy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        ix1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        iy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        members = rest[(iou > iou_threshold) | (rest == i)]
        alive[members] = False
        weights = scores[members] / scores[members].sum()
        out.append((weights @ boxes[members], np.tensordot(weights, points[members], 1),
                    float(scores[i])))
    return out


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace (short or full range) through LiteRT; six keypoints per face.

    ``input_side``: the frame is scaled (aspect kept) so that its longer side is this many
    pixels; the short-range model is fully convolutional, so its input is that scaled frame
    padded to multiples of 16 and its anchor grids follow; the full-range one has a fixed
    192x192 input the frame is letterboxed into, whatever ``input_side`` says. 0 = the
    model's own square side (128). A larger input finds smaller faces for more work (about
    proportional to its pixels); the default 256 is the ``blazeface.input_side`` parameter's,
    chosen by measurement (README, face detectors).
    ``refine_threshold`` > 0 (default 0.1, chosen by measurement: README, face detectors)
    adds a second pass on upscaled tiles around up to ``refine_max`` (5) weak candidates
    (:meth:`detect`), resampled to ``refine_side`` (96; 0 = the model's own 128); 0 turns it
    off. ``mirror_pass`` (default true) runs the full scan on the mirrored frame as well and
    merges both scans' candidates before the non-maximum suppression.
    ``verify_threshold`` > 0 (default 0.1; 0 turns it off) asks a second network, MediaPipe's
    face mesh (:mod:`.face_check`, from the same wheel; ``verify_model_path`` names another
    copy), about the doubtful faces: those of the first pass scored below ``verify_below``
    (0.7) and all that the second pass adds; it drops three in four false faces, so the second
    pass can accept weaker tiles (``refine_accept`` 0.4, 0.7 without the check) and the
    first pass weaker faces (``score_threshold`` 0.4). Chosen by measurement (README, face
    detectors).

    ``region_side`` (default 96, a multiple of 16; 0 = the model's own 128) is the input
    side of the tiles :meth:`detect_regions` looks near tracked faces with, between full
    scans; chosen by measurement (README, face detectors).

    ``min_size`` drops faces whose box side is smaller (full-resolution pixels; 0 = keep
    all). ``num_threads`` is the interpreter's thread count (1: the detector is one stage of a
    pipeline running on a small CPU).
    """

    name = "blazeface"
    detects_regions = True

    def __init__(self, model: str = "short", model_path: str = "", input_side: int = 256,
                 score_threshold: float = 0.4, nms_threshold: float = 0.3,
                 min_size: int = 0, num_threads: int = 1, refine_threshold: float = 0.1,
                 refine_max: int = 5, refine_scale: float = 2.0,
                 refine_accept: float = 0.4, verify_threshold: float = 0.1,
                 verify_below: float = 0.7, verify_model_path: str = "",
                 region_side: int = 96, mirror_pass: bool = True,
                 refine_side: int = 96) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
        if int(input_side) != input_side or not (input_side == 0 or 64 <= input_side <= 1024):
            raise ValueError(f"input_side must be 0 (the network's own square side) or an "
                             f"integer in [64, 1024] pixels, got {input_side}")
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in [0, 1], got {nms_threshold}")
        if int(min_size) != min_size or min_size < 0:
            raise ValueError(f"min_size must be an integer >= 0 pixels, got {min_size}")
        if int(num_threads) != num_threads or num_threads < 1:
            raise ValueError(f"num_threads must be an integer >= 1, got {num_threads}")
        if not (refine_threshold == 0.0 or 0.0 < refine_threshold < score_threshold):
            raise ValueError(f"refine_threshold must be 0 (no second pass) or in (0, "
                             f"score_threshold {score_threshold}), got {refine_threshold}")
        if int(refine_max) != refine_max or refine_max < 0:
            raise ValueError(f"refine_max must be an integer >= 0, got {refine_max}")
        if not 1.0 <= refine_scale <= 8.0:
            raise ValueError(f"refine_scale must be in [1, 8] box sides, got {refine_scale}")
        if not 0.0 < refine_accept < 1.0:
            raise ValueError(f"refine_accept must be in (0, 1), got {refine_accept}")
        if not 0.0 <= verify_threshold < 1.0:
            raise ValueError(f"verify_threshold must be in [0, 1) (0 = no check), got "
                             f"{verify_threshold}")
        if not 0.0 <= verify_below <= 1.0:
            raise ValueError(f"verify_below must be in [0, 1], got {verify_below}")
        for key, value in (("region_side", region_side), ("refine_side", refine_side)):
            if int(value) != value or not (
                    value == 0 or (64 <= value <= 256 and value % 16 == 0)):
                raise ValueError(f"{key} must be 0 (the network's own 128) or a multiple "
                                 f"of 16 in [64, 256] pixels, got {value}")
        if not isinstance(mirror_pass, (bool, np.bool_)):
            raise ValueError(f"mirror_pass must be true or false, got {mirror_pass!r}")
        for key, value in (("model_path", model_path), ("verify_model_path", verify_model_path)):
            if not isinstance(value, str):
                raise ValueError(f"{key} must be a string, got {value!r}")
        self.spec = MODELS[model]
        self.model = model
        self.crop_framing = self.spec.crop_framing
        self.crop_eye_offset = self.spec.eye_offset
        # a fixed-input model ignores input_side (so one configuration serves both models)
        self.input_side = (int(input_side) if self.spec.resizable else 0) \
            or self.spec.input_size
        self.score_threshold = float(score_threshold)
        self.mirror_pass = bool(mirror_pass)
        self.nms_threshold = float(nms_threshold)
        self.min_size = int(min_size)
        self._min_logit = math.log(self.score_threshold / (1.0 - self.score_threshold))
        self.refine_threshold = float(refine_threshold)
        self.refine_max = int(refine_max) if self.refine_threshold > 0 else 0
        self.refine_scale = float(refine_scale)
        self.refine_accept = float(refine_accept)
        self._accept_logit = math.log(self.refine_accept / (1.0 - self.refine_accept))
        self._refine_logit = (math.log(self.refine_threshold / (1.0 - self.refine_threshold))
                              if self.refine_max else self._min_logit)
        if model_path.strip():
            self.path = Path(model_path).expanduser()
            if not self.path.is_file():
                raise FileNotFoundError(f"blazeface model_path {model_path!r} does not exist")
        else:
            self.path = installed_model(self.spec.file_name)
        # the project's one LiteRT loader (tf.lite when LiteRT is missing), imported here so
        # that LiteRT loads only when this detector is used
        from ..litert import load_interpreter

        self._interp = load_interpreter("BlazeFace model", path=self.path,
                                        num_threads=int(num_threads), parameter="model_path")
        side = self.spec.input_size
        self._shape = (side, side)
        self._check_io()
        self._input = np.full((1, side, side, 3), -1.0, np.float32)
        self._resize_flag = cv2.INTER_LINEAR
        self._lock = threading.Lock()
        self._num_threads = int(num_threads)
        # tiles by input side: the second pass's at the model's own side, the region
        # passes' at region_side (the fixed-input full-range model: its own), both made now,
        # so that neither loads mid-stream
        self._tiles: dict[int, _Tiles] = {}
        self.region_side = (int(region_side) if self.spec.resizable else 0) or side
        self.refine_side = (int(refine_side) if self.spec.resizable else 0) or side
        if self.refine_max:
            self._tiles_of(self.refine_side)
        self._tiles_of(self.region_side)
        self.verify_threshold = float(verify_threshold)
        self.verify_below = float(verify_below)
        self._check = None
        if self.verify_threshold > 0:
            from .face_check import FacePresence
            self._check = FacePresence(verify_model_path, num_threads=self._num_threads)

    def _tiles_of(self, side: int) -> _Tiles:
        """Return the interpreter, input and anchors for square tiles of ``side`` (made once).

        Tiles (the second pass, :meth:`detect_regions`) run on interpreters of their own, so
        the main one keeps its frame-sized input allocated.
        """
        tiles = self._tiles.get(side)
        if tiles is None:
            from ..litert import load_interpreter

            interp = load_interpreter("BlazeFace model", path=self.path,
                                      num_threads=self._num_threads, parameter="model_path")
            if side != self.spec.input_size:
                interp.resize_tensor_input(self._in_index, (1, side, side, 3))
                interp.allocate_tensors()
            tiles = self._tiles[side] = _Tiles(interp, np.empty((1, side, side, 3), np.float32),
                                               make_anchors(self.spec, side, side))
        return tiles

    def _check_io(self) -> None:
        """Check the model's tensors for the current input shape; find the output indices."""
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        height, width = self._shape
        self._anchors = make_anchors(self.spec, width, height)
        count = len(self._anchors)
        if len(inputs) != 1 or tuple(inputs[0]["shape"]) != (1, height, width, 3) or \
                np.dtype(inputs[0]["dtype"]) != np.float32:
            raise ModelError(f"BlazeFace model {self.path}: expected one float32 (1, {height}, "
                             f"{width}, 3) input for model {self.model!r}, got "
                             f"{[(tuple(d['shape']), np.dtype(d['dtype']).name) for d in inputs]}")
        shapes = sorted(tuple(int(v) for v in d["shape"]) for d in outputs)
        if shapes != [(1, count, 1), (1, count, _VALUES)]:
            raise ModelError(f"BlazeFace model {self.path}: expected outputs (1, {count}, "
                             f"{_VALUES}) and (1, {count}, 1) for model {self.model!r} at "
                             f"{width}x{height}, got {shapes}")
        self._in_index = inputs[0]["index"]
        by_width = {int(d["shape"][2]): d["index"] for d in outputs}
        self._reg_index, self._score_index = by_width[_VALUES], by_width[1]

    def _prepare(self, image: np.ndarray) -> float:
        """Scale ``image`` into the input tensor (resized when needed); return the scale."""
        height, width = image.shape[:2]
        scale = self.input_side / max(height, width)
        new_w = max(1, int(round(width * scale)))
        new_h = max(1, int(round(height * scale)))
        if self.spec.resizable:
            shape = (-(-new_h // 16) * 16, -(-new_w // 16) * 16)
        else:
            shape = self._shape
        if shape != self._shape:
            try:
                self._interp.resize_tensor_input(self._in_index, (1, shape[0], shape[1], 3))
                self._interp.allocate_tensors()
            except Exception as exc:
                raise ModelError(f"BlazeFace model {self.path} cannot take a {shape[1]}x"
                                 f"{shape[0]} input: {type(exc).__name__}: {exc}") from exc
            self._shape = shape
            self._check_io()
            self._input = np.full((1, shape[0], shape[1], 3), -1.0, np.float32)
        small = cv2.resize(image, (new_w, new_h), interpolation=self._resize_flag)
        channels = 1 if small.ndim == 2 else small.shape[2]
        code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}[channels]
        target = self._input[0, :new_h, :new_w]
        np.multiply(cv2.cvtColor(small, code), 1.0 / 127.5, out=target, casting="unsafe")
        target -= 1.0  # the padding (right and bottom) stays -1, black
        self._content = (new_h, new_w)
        return scale

    def _scan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the full-frame network on the prepared input; return its decoded candidates.

        With ``mirror_pass`` the same input is also run mirrored, and the mirror's candidates
        (mapped back, keypoints swapped left for right) join the others before the
        non-maximum suppression merges them: a second look whose errors differ.
        """
        def run() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            self._interp.set_tensor(self._in_index, self._input)
            self._interp.invoke()
            return self._decode(self._interp, self._anchors, self._refine_logit)

        boxes, points, scores = run()
        if not self.mirror_pass:
            return boxes, points, scores
        new_h, new_w = self._content
        content = self._input[0, :new_h, :new_w]
        content[:] = content[:, ::-1].copy()
        m_boxes, m_points, m_scores = run()
        m_boxes = np.stack([new_w - m_boxes[:, 2], m_boxes[:, 1], new_w - m_boxes[:, 0],
                            m_boxes[:, 3]], axis=1)
        m_points = m_points[:, _MIRRORED_KEYPOINTS]
        m_points[:, :, 0] = new_w - m_points[:, :, 0]
        return (np.concatenate([boxes, m_boxes]), np.concatenate([points, m_points]),
                np.concatenate([scores, m_scores]))

    def _decode(self, interp, anchors: np.ndarray, min_logit: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read ``interp``'s outputs; return (boxes, points, scores) above ``min_logit``.

        Boxes (N, 4) as (x0, y0, x1, y1) and points (N, 6, 2) in input pixels.
        """
        logits = interp.get_tensor(self._score_index)[0, :, 0]
        keep = np.flatnonzero(logits >= min_logit)
        raw = interp.get_tensor(self._reg_index)[0, keep].astype(np.float64)
        anchors = anchors[keep]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep].astype(np.float64), -LOGIT_CLIP,
                                              LOGIT_CLIP)))
        centre = raw[:, 0:2] + anchors
        half = np.abs(raw[:, 2:4]) / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:_VALUES].reshape(-1, 6, 2) + anchors[:, None, :]
        return boxes, points, scores

    def _tile(self, image: np.ndarray, box: np.ndarray, accept_logit: float, side_in: int
              ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Run the model on a tile around ``box`` (x0, y0, x1, y1, frame pixels).

        The tile is the square of ``refine_scale`` box sides around the box centre,
        resampled into a ``side_in`` square input (black beyond the frame); what it finds with a
        score logit >= ``accept_logit`` and centred inside ``box`` is returned in frame
        pixels, best first. The second pass (weak candidates, ``refine_accept``) and
        :meth:`detect_regions` (tracked faces, ``score_threshold``) both look this way.
        """
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        tile_side = max(box[2] - box[0], box[3] - box[1]) * self.refine_scale
        k = tile_side / side_in
        x0, y0 = cx - tile_side / 2.0, cy - tile_side / 2.0
        # tile pixel (u, v) centre -> frame point x0 + k (u + 0.5), as pixel index - 0.5
        matrix = np.array([[k, 0.0, x0 + 0.5 * k - 0.5], [0.0, k, y0 + 0.5 * k - 0.5]])
        tiles = self._tiles_of(side_in)
        warp_to_input(image, matrix, tiles.input[0], 1.0 / 127.5, -1.0)
        tiles.interp.set_tensor(self._in_index, tiles.input)
        tiles.interp.invoke()
        boxes, points, scores = self._decode(tiles.interp, tiles.anchors, accept_logit)
        if not len(scores):
            return []
        offset = np.array([x0, y0])
        # only what confirms the candidate: a face centred inside its box, not other
        # things the tile happens to hold (those had their own chance in the first pass)
        out = []
        for b, p, s in weighted_nms(boxes, points, scores, self.nms_threshold):
            b = b * k + np.tile(offset, 2)
            mx, my = (b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0
            if box[0] <= mx <= box[2] and box[1] <= my <= box[3]:
                out.append((b, p * k + offset, s))
        return out

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Return the faces in ``image`` (uint8 gray or BGR), best first, with keypoints.

        With ``refine_threshold`` > 0, a second pass looks again at the (up to
        ``refine_max``) best weak candidates, scored in [refine_threshold,
        score_threshold) and not overlapping a face already found: each is re-run on an
        upscaled tile (:meth:`_tile`) and kept only if the tile scores it as a face.
        With ``verify_threshold`` > 0, first-pass faces scored below ``verify_below`` and
        every face a tile adds are kept only if the face check (:mod:`.face_check`) gives
        them a presence score of ``verify_threshold`` or more.
        """
        image = _checked(image)
        with self._lock:
            scale = self._prepare(image)
            boxes, points, scores = self._scan()
            strong = scores >= self.score_threshold
            found = [(b / scale, p / scale, s) for b, p, s in
                     weighted_nms(boxes[strong], points[strong], scores[strong],
                                  self.nms_threshold)] if strong.any() else []
            # doubtful first-pass faces need the face check's word (before the second pass,
            # so that a false face does not keep a true candidate beside it from a tile)
            found = [f for f in found if self._confirmed(image, f, self.verify_below)]
            if self.refine_max and (~strong).any():
                weak = weighted_nms(boxes[~strong], points[~strong], scores[~strong],
                                    self.nms_threshold)
                tried = 0
                for box, _, _ in weak:
                    if tried == self.refine_max:
                        break
                    box = box / scale
                    if any(_iou(box, f[0]) > 0.0 for f in found):
                        continue
                    tried += 1
                    for cand in self._tile(image, box, self._accept_logit,
                                           self.refine_side):
                        if not any(_iou(cand[0], f[0]) > self.nms_threshold for f in found) \
                                and self._confirmed(image, cand, math.inf):
                            found.append(cand)
        found.sort(key=lambda f: -f[2])
        faces = (self._detection(image.shape, *f) for f in found)
        return [face for face in faces if face is not None]

    def _confirmed(self, image: np.ndarray, face: tuple[np.ndarray, np.ndarray, float],
                   below: float) -> bool:
        """Return whether ``face`` (box, points, score) stands.

        It stands when it scored ``below`` or more, when no face check is configured, or when
        the face check gives it ``verify_threshold`` or more.
        """
        if self._check is None or face[2] >= below:
            return True
        return self._check.score(image, face[0], face[1]) >= self.verify_threshold

    def detect_regions(self, image: np.ndarray, boxes: Sequence[Box]
                       ) -> list[FaceDetection | None]:
        """Return, per box, the best face centred inside it, or None (see the base class).

        Each box is looked at on one tile of ``refine_scale`` box sides resampled into a
        ``region_side`` square (default 96; :meth:`_tile`), with the first pass's
        ``score_threshold``: the face fills about half the tile whatever its size, as in the
        selfie images the short-range model was trained on, for about a fifth of a
        full-frame pass at ``input_side`` 256, and a closer look at small faces.
        """
        image = _checked(image)
        out: list[FaceDetection | None] = []
        with self._lock:
            for box in boxes:
                corners = np.array([box.x, box.y, box.x + box.w, box.y + box.h], np.float64)
                found = (self._tile(image, corners, self._min_logit, self.region_side)
                         if box.area > 0 else [])
                faces = (self._detection(image.shape, *f) for f in found)
                out.append(next((face for face in faces if face is not None), None))
        return out

    def region_cost(self, image_shape: Sequence[int]) -> float:
        """Return the pixels of one region tile over those of the full pass's input.

        The network's work is about proportional to its input pixels: one 96x96 tile is
        0.19 of the 256x192 input of a 640x480 frame at ``input_side`` 256 (the network
        alone, on an AVX2 CPU: 0.9 ms at 96, 1.9 ms at 128), so up to five tracked faces are
        looked at in tiles before a full scan is cheaper.
        """
        side = self.region_side
        if not self.spec.resizable:
            return 1.0  # the full-range model's input is its own square: a tile is no cheaper
        height, width = image_shape[:2]
        scale = self.input_side / max(height, width, 1)
        rows = -(-max(1, int(round(height * scale))) // 16) * 16
        cols = -(-max(1, int(round(width * scale))) // 16) * 16
        return side * side / float(rows * cols)

    def _detection(self, shape: tuple[int, ...], box: np.ndarray, pts: np.ndarray,
                   score: float) -> FaceDetection | None:
        """Return a found face (frame pixels) as a clipped FaceDetection; None if dropped.

        Dropped: a box with nothing left inside the frame, or smaller than ``min_size``.
        """
        height, width = shape[:2]
        x0, y0, x1, y1 = box
        ix0, iy0 = int(round(x0)), int(round(y0))
        full = Box(ix0, iy0, int(round(x1)) - ix0, int(round(y1)) - iy0).clipped(width, height)
        if full.area == 0 or max(x1 - x0, y1 - y0) < self.min_size:
            return None
        return FaceDetection(box=full, score=float(min(1.0, max(0.0, score))),
                             landmarks=pts.astype(np.float32), landmark_names=KEYPOINT_NAMES)


def _checked(image: np.ndarray) -> np.ndarray:
    """Return ``image`` checked (:func:`check_image`), an (H, W, 1) one as (H, W)."""
    image = check_image(image)
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Return the IoU of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0

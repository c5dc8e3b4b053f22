"""A second opinion on doubtful faces: the face-presence score of MediaPipe's face-mesh network.

BlazeFace's own score separates faces from textures poorly in the 0.5-0.7 band, where most of
its false faces lie (gravel, grass, a part of a large face found as a small one) and also its
weakest true faces. MediaPipe's face landmark model (``face_landmark.tflite``, 192x192 RGB in
[0, 1]; two outputs: 468 points x 3, and one face-presence logit) was trained on other data for
another task, and its presence score disagrees with BlazeFace's mistakes: on 1,544 frames of
Training faces pasted on textured backgrounds (``bags/scenes.py``, seed 7) it kept 99.2 % of
the faces BlazeFace found at a threshold of 0.1 and 14 % of its false ones (README, face
detectors).

The crop is the one MediaPipe's own face-mesh graph cuts from a detection: a square of 1.5 box
sides around the box centre, turned so that the eye line is level. Its points are not used.
The model file ships inside the same ``mediapipe`` wheel as BlazeFace's and is found the same
way (never downloaded, never in this repository).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..classifiers.base import ModelError
from .blazeface import LOGIT_CLIP, installed_model, warp_to_input

FACE_MESH_DIR = "mediapipe/modules/face_landmark"
FACE_MESH_FILE = "face_landmark.tflite"
INPUT_SIDE = 192
#: crop side over the detection box's longer side (MediaPipe's face-mesh ROI: scale 1.5)
ENLARGE = 1.5


def crop_matrix(box: np.ndarray, points: np.ndarray | None, side: int = INPUT_SIDE,
                enlarge: float = ENLARGE) -> np.ndarray:
    """Return the 2x3 matrix from crop pixels to frame pixels for a face's check crop.

    ``box`` (x0, y0, x1, y1) and ``points`` (rows 0-1: the subject's right and left eye, as
    :class:`FaceDetection.landmarks`) in frame pixels; without points the crop is not turned.
    The crop's x axis runs along the eye line, its centre is the box centre.
    """
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    k = max(box[2] - box[0], box[3] - box[1]) * enlarge / side
    angle = 0.0
    if points is not None and len(points) >= 2:
        angle = math.atan2(points[1][1] - points[0][1], points[1][0] - points[0][0])
    c, s = math.cos(angle) * k, math.sin(angle) * k
    rot = np.array([[c, -s], [s, c]])
    # crop pixel centre (u + 0.5, v + 0.5) -> frame, as pixel index (- 0.5)
    origin = np.array([cx, cy]) - rot @ np.array([side / 2.0, side / 2.0]) \
        + rot @ np.array([0.5, 0.5]) - 0.5
    return np.hstack([rot, origin[:, None]])


class FacePresence:
    """Face-presence score in [0, 1] of a detected face, from MediaPipe's face-mesh network."""

    def __init__(self, model_path: str = "", num_threads: int = 1) -> None:
        from ..litert import load_interpreter

        if model_path.strip():
            self.path = Path(model_path).expanduser()
            if not self.path.is_file():
                raise FileNotFoundError(f"face check: verify_model_path {model_path!r} does "
                                        f"not exist")
        else:
            try:
                self.path = installed_model(FACE_MESH_FILE, FACE_MESH_DIR)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"face check: {exc}; or set verify_model_path to a "
                                        f"copy of {FACE_MESH_FILE}, or verify_threshold 0 to "
                                        f"detect without the check") from None
        self._interp = load_interpreter("face-mesh model", path=self.path,
                                        num_threads=num_threads, parameter="verify_model_path")
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or tuple(inputs[0]["shape"]) != (1, INPUT_SIDE, INPUT_SIDE, 3) or \
                np.dtype(inputs[0]["dtype"]) != np.float32:
            raise ModelError(f"face-mesh model {self.path}: expected one float32 (1, "
                             f"{INPUT_SIDE}, {INPUT_SIDE}, 3) input, got "
                             f"{[tuple(d['shape']) for d in inputs]}")
        flags = [d["index"] for d in outputs if int(np.prod(d["shape"])) == 1]
        if len(flags) != 1:
            raise ModelError(f"face-mesh model {self.path}: expected one single-value output "
                             f"(the face-presence logit), got "
                             f"{[tuple(d['shape']) for d in outputs]}")
        self._in_index, self._flag_index = inputs[0]["index"], flags[0]
        self._input = np.empty((1, INPUT_SIDE, INPUT_SIDE, 3), np.float32)

    def score(self, image: np.ndarray, box: np.ndarray, points: np.ndarray | None) -> float:
        """Return the presence score of the face in ``box`` of ``image`` (uint8 gray or BGR).

        Not thread-safe: the caller (the detector) holds its lock.
        """
        warp_to_input(image, crop_matrix(box, points), self._input[0], 1.0 / 255.0)
        self._interp.set_tensor(self._in_index, self._input)
        self._interp.invoke()
        logit = float(np.clip(self._interp.get_tensor(self._flag_index).ravel()[0],
                              -LOGIT_CLIP, LOGIT_CLIP))
        return 1.0 / (1.0 + math.exp(-logit))

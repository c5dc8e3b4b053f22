"""OpenCV YuNet CNN face detector (plugin ``yunet``), with five landmarks per face.

More robust than the Haar cascade to pose and lighting. The ONNX model is not shipped and never
downloaded by this package: the user gives its path in ``model_path`` (a bare file name is also
looked up in the package's ``models/`` folder).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from ..classifiers.base import ModelError
from ..model_lookup import find_model
from ..types import FaceDetection
from .base import FaceDetector
from .haar import box_to_full, check_downscale, check_image, scale_for_detection

#: YuNet's landmark order (the person's right/left: right eye is the left one in the image)
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth_corner",
                  "left_mouth_corner")
YUNET_SOURCE = ("the OpenCV model zoo, "
                "https://github.com/opencv/opencv_zoo/tree/main/models/face_detection_yunet "
                "(e.g. face_detection_yunet_2023mar.onnx)")


def _resolve_model(model_path: str) -> Path:
    if not isinstance(model_path, str) or not model_path.strip():
        raise ValueError(f"model_path is empty: the yunet detector needs a YuNet .onnx model; "
                         f"download one from {YUNET_SOURCE} and set model_path to it")
    path = Path(model_path).expanduser()
    if path.is_file():
        return path.resolve()
    if len(path.parts) == 1:  # a bare file name: look in the package's models/ folders
        try:
            return find_model(model_path)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"model_path {model_path!r} not found ({exc}); get a YuNet "
                                    f".onnx model from {YUNET_SOURCE}") from exc
    raise FileNotFoundError(f"model_path {model_path!r} does not exist; get a YuNet .onnx "
                            f"model from {YUNET_SOURCE}")


class YuNetDetector(FaceDetector):
    """cv2.FaceDetectorYN with a user-supplied model; returns (5, 2) landmarks per face.

    Landmark order (YuNet): right eye, left eye, nose tip, right and left mouth corner.
    """

    name = "yunet"

    def __init__(self, model_path: str = "", score_threshold: float = 0.7,
                 nms_threshold: float = 0.3, top_k: int = 50, downscale: bool = True,
                 max_side: int = 320) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 <= nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in [0, 1], got {nms_threshold}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self._max_side = check_downscale(downscale, max_side)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.path = _resolve_model(model_path)
        self._input_size = (320, 320)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.path), "", self._input_size, self.score_threshold,
                self.nms_threshold, self.top_k)
        except cv2.error as exc:
            raise ModelError(f"cannot load YuNet model {self.path} (parameter model_path): "
                             f"{str(exc).strip()}") from exc
        if self._net is None:
            raise ModelError(f"cannot load YuNet model {self.path} (parameter model_path)")
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Return the faces in ``image`` (uint8 gray or BGR), best first, with landmarks."""
        image = check_image(image)
        if image.ndim == 2 or image.shape[2] == 1:
            bgr = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            bgr = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        else:
            bgr = image
        small, scale = scale_for_detection(bgr, self._max_side)
        small = np.ascontiguousarray(small)
        size = (int(small.shape[1]), int(small.shape[0]))
        with self._lock:
            if size != self._input_size:
                self._net.setInputSize(size)
                self._input_size = size
            try:
                _, rows = self._net.detect(small)
            except cv2.error as exc:
                raise ModelError(f"YuNet model {self.path} failed on a {size[0]}x{size[1]} "
                                 f"image: {str(exc).strip()}") from exc
        if rows is None:
            return []
        faces = []
        for row in np.asarray(rows, dtype=np.float64).reshape(-1, 15):
            box = box_to_full(row[0], row[1], row[2], row[3], scale, image.shape)
            if box.area == 0:
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            score = float(np.clip(row[14], 0.0, 1.0))
            faces.append(FaceDetection(box=box, score=score, landmarks=landmarks,
                                       landmark_names=LANDMARK_NAMES))
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces

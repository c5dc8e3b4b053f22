"""The fuzzer's malformed inputs: images, faces, emotions and parameter requests.

:class:`Mutator` makes them from one seeded generator (see :mod:`.fuzz` for what is sent
when); :func:`well_formed_image` says which images the graph must accept.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

VALID_ENCODINGS = ("bgr8", "rgb8", "mono8", "bgra8", "rgba8", "mono16", "8UC1", "8UC3", "16UC1")
ODD_ENCODINGS = ("", "foo", "BGR8", "bgr8 ", "yuv422", "bayer_rggb8", "32FC1", "64FC3", "16UC3",
                 "jpeg", "8UC4", "\x00", "x" * 300)
UINT32_MAX = 2 ** 32 - 1
#: largest data array of one malformed message (keeps the fuzzer's own memory bounded)
MAX_DATA = 2 ** 20


def _channels(encoding: str) -> tuple[int, int]:
    """Return (channels, bytes per channel) a well-formed image of ``encoding`` would have."""
    table = {"bgr8": (3, 1), "rgb8": (3, 1), "mono8": (1, 1), "bgra8": (4, 1), "rgba8": (4, 1),
             "mono16": (1, 2), "8UC1": (1, 1), "8UC3": (3, 1), "16UC1": (1, 2)}
    return table.get(encoding, (3, 1))


def well_formed_image(msg, max_pixels: int = 16_777_216) -> bool:
    """Return True when ``msg`` is an image the graph must accept (a valid frame, if odd)."""
    if msg.encoding not in VALID_ENCODINGS or not msg.width or not msg.height:
        return False
    ch, bpc = _channels(msg.encoding)
    return (msg.width * msg.height <= max_pixels and msg.step >= msg.width * ch * bpc
            and len(msg.data) == msg.step * msg.height)


class Mutator:
    """Makes malformed messages and parameter requests from one seeded generator.

    The same seed (and ``clock``) gives the same messages and requests.
    """

    def __init__(self, rng: np.random.Generator, valid: list, max_faces: int = 500,
                 clock=time.time) -> None:
        self.rng = rng
        self.valid = valid
        self.max_faces = max_faces
        self.clock = clock  # "now" stamps; everything else comes from ``rng``

    # -- small helpers -----------------------------------------------------------------------
    def _pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def _u32(self) -> int:
        return int(self._pick([0, 1, 7, 48, 640, 2 ** 16, 2 ** 31, UINT32_MAX - 1, UINT32_MAX,
                               int(self.rng.integers(0, UINT32_MAX, dtype=np.int64))]))

    def _float(self) -> float:
        return float(self._pick([math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 1.0, 2.0, 1e39,
                                 -1e39, float(self.rng.normal())]))

    def _stamp(self, header) -> None:
        r = self.rng
        choice = int(r.integers(4))
        if choice == 0:  # now
            now = self.clock()
            header.stamp.sec, header.stamp.nanosec = int(now), int((now % 1.0) * 1e9)
        elif choice == 1:  # zero
            header.stamp.sec, header.stamp.nanosec = 0, 0
        else:  # anywhere in the int32 / uint32 ranges, nanosec possibly >= 1e9
            header.stamp.sec = int(r.integers(-2 ** 31, 2 ** 31 - 1, dtype=np.int64))
            header.stamp.nanosec = int(r.integers(0, UINT32_MAX, dtype=np.int64))
        header.frame_id = self._pick(["fuzz", "", "x" * 1000, "camera"])

    def _bytes(self, n: int) -> bytes:
        return self.rng.bytes(min(max(0, n), MAX_DATA))

    # -- messages ----------------------------------------------------------------------------
    def malformed_image(self, tries: int = 20):
        """Return an image :func:`well_formed_image` refuses (``image`` may make valid ones)."""
        for _ in range(tries):
            msg = self.image()
            if not well_formed_image(msg):
                return msg
        msg.encoding = "fuzz"
        return msg

    def image(self):
        """Return a random, mostly malformed sensor_msgs/Image (some valid, some cut short)."""
        from sensor_msgs.msg import Image

        r = self.rng
        if r.random() < 0.15:  # a real frame with its data truncated or padded
            src = self._pick(self.valid)
            msg = Image(height=src.height, width=src.width, encoding=src.encoding,
                        is_bigendian=src.is_bigendian, step=src.step)
            data = bytes(src.data)
            cut = int(r.integers(0, len(data)))
            msg.data = data[:cut] if r.random() < 0.8 else data + self._bytes(cut % 4096 + 1)
            self._stamp(msg.header)
            return msg
        msg = Image()
        self._stamp(msg.header)
        msg.encoding = self._pick(VALID_ENCODINGS + ODD_ENCODINGS)
        small = lambda: int(r.integers(1, 96))  # noqa: E731
        msg.height = small() if r.random() < 0.5 else self._u32()
        msg.width = small() if r.random() < 0.5 else self._u32()
        ch, bpc = _channels(msg.encoding)
        natural = msg.width * ch * bpc
        msg.step = min(UINT32_MAX, int(self._pick([natural, natural, 0, max(0, natural - 1),
                                                   natural + 3, self._u32()])))
        total = msg.step * msg.height
        n = int(self._pick([total, total, 0, total // 2, total + 17,
                            int(r.integers(0, 4096))]))
        msg.data = self._bytes(n)
        msg.is_bigendian = int(r.integers(2))
        return msg

    def _crop(self):
        from sensor_msgs.msg import Image

        r = self.rng
        choice = int(r.integers(4))
        if choice == 0:
            return Image()  # empty (width 0): crops disabled
        if choice == 1:
            return self.image()
        h, w = int(r.integers(1, 64)), int(r.integers(1, 64))
        enc = self._pick(["bgr8", "mono8", "rgb8"])
        ch = 1 if enc == "mono8" else 3
        return Image(height=h, width=w, encoding=enc, step=w * ch, data=self._bytes(h * w * ch))

    def _roi(self, roi) -> None:
        r = self.rng
        if r.random() < 0.3:  # plausible
            roi.x_offset, roi.y_offset = int(r.integers(0, 600)), int(r.integers(0, 400))
            roi.width, roi.height = int(r.integers(0, 200)), int(r.integers(0, 200))
        else:
            roi.x_offset, roi.y_offset = self._u32(), self._u32()
            roi.width, roi.height = self._u32(), self._u32()
        roi.do_rectify = bool(r.integers(2))

    def _count(self) -> int:
        r = self.rng
        x = r.random()
        if x < 0.15:
            return 0
        if x < 0.85:
            return int(r.integers(1, 6))
        return int(r.integers(6, self.max_faces + 1)) if self.max_faces > 6 else self.max_faces

    def faces(self):
        """Return a malformed emotion_msgs/FaceArray."""
        from emotion_msgs.msg import Face, FaceArray

        r = self.rng
        msg = FaceArray()
        self._stamp(msg.header)
        msg.image_width, msg.image_height = self._pick([(640, 480), (0, 0)]) \
            if r.random() < 0.6 else (self._u32(), self._u32())
        n = self._count()
        if n > 5:  # many faces: one small well-formed crop shared, so the message stays small
            crop = self._crop()
            crop.height = crop.width = 8
            crop.encoding, crop.step, crop.data = "bgr8", 24, self._bytes(192)
            ids = r.integers(0, UINT32_MAX, n, dtype=np.int64)
            xy = r.integers(0, 2 ** 31, (n, 4), dtype=np.int64)
            for i in range(n):
                f = Face()
                f.face_id = int(ids[i])
                f.roi.x_offset, f.roi.y_offset = int(xy[i, 0]) % 700, int(xy[i, 1]) % 500
                f.roi.width, f.roi.height = int(xy[i, 2]) % 100 + 1, int(xy[i, 3]) % 100 + 1
                f.crop = crop
                msg.faces.append(f)
            msg.faces[0].detection_score = self._float()
            self._roi(msg.faces[-1].roi)
            return msg
        for _ in range(n):
            f = Face(face_id=self._u32(), detection_score=self._float())
            self._roi(f.roi)
            f.crop = self._crop()
            msg.faces.append(f)
        return msg

    def _probabilities(self) -> np.ndarray:
        r = self.rng
        choice = int(r.integers(7))
        if choice == 0:
            p = np.full(7, np.nan)
        elif choice == 1:
            p = r.normal(size=7)  # negatives
        elif choice == 2:
            p = r.random(7) * 10.0  # unnormalised
        elif choice == 3:
            p = np.zeros(7)
        elif choice == 4:
            p = r.random(7)
            p[int(r.integers(7))] = np.inf
        elif choice == 5:
            p = np.eye(7)[int(r.integers(7))]  # one-hot: valid
        else:
            p = r.random(7)
            p /= p.sum()  # valid
        return p.astype(np.float32)

    def emotions(self):
        """Return a malformed emotion_msgs/EmotionArray."""
        from emotion_msgs.msg import Emotion, EmotionArray

        r = self.rng
        msg = EmotionArray()
        self._stamp(msg.header)
        names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
                 "", "joy", "ANGRY", "x" * 500, "\u00e9motion"]
        n = self._count()
        if n > 5:  # many emotions: cheap entries around one odd one
            probs = self._probabilities()
            ids = r.integers(0, UINT32_MAX, n, dtype=np.int64)
            for i in range(n):
                e = Emotion()
                e.face_id, e.label, e.label_name = int(ids[i]), i % 7, names[i % 7]
                e.probabilities = probs
                e.header = msg.header
                msg.emotions.append(e)
            e = msg.emotions[int(r.integers(n))]
            e.confidence, e.label_name = self._float(), self._pick(names)
            self._roi(e.roi)
            return msg
        for _ in range(n):
            e = Emotion(face_id=self._u32(), label=int(r.integers(0, 256)),
                        label_name=self._pick(names), confidence=self._float(),
                        detection_score=self._float(), valence=self._float(),
                        arousal=self._float(), smoothed=bool(r.integers(2)),
                        smoother=self._pick(["", "ema", "lstm", "?" * 64]))
            e.probabilities = self._probabilities()
            e.header = msg.header
            self._roi(e.roi)
            msg.emotions.append(e)
        return msg

    # -- parameters --------------------------------------------------------------------------
    def parameter(self, node: str):
        """Return (rclpy Parameter, description) for one random set request to ``node``."""
        from rclpy.parameter import Parameter

        from .core.params import NODE_PARAMS

        r = self.rng
        declared = list(NODE_PARAMS[node])
        if r.random() < 0.15:
            name = self._pick(["fuzz_unknown", "haar.bogus", "lstm", "max_image_pixels.x",
                               "a" * 200, "x_" + str(int(r.integers(1000)))])
            value = self._pick([1, 2.5, "text", True, [1, 2], [0.5], ["a"], [True, False]])
            return Parameter(name, value=value), "undeclared"
        p = self._pick(declared)
        kind = self._pick(["in_range", "in_range", "out_of_range", "wrong_type", "special",
                           "not_set"])
        default = p.default
        lo = p.min if p.min is not None else (default - 1000 if not isinstance(default, str)
                                              else 0)
        hi = p.max if p.max is not None else (default + 1000 if not isinstance(default, str)
                                              else 0)
        value: Any
        if kind == "not_set":
            return Parameter(p.name, Parameter.Type.NOT_SET), kind
        if isinstance(default, bool):
            value = bool(r.integers(2)) if kind in ("in_range", "out_of_range") \
                else self._pick([1, "true", 0.0])
        elif isinstance(default, int):
            if kind == "in_range":
                value = int(r.integers(int(lo), int(hi) + 1, dtype=np.int64))
            elif kind == "out_of_range":
                value = int(self._pick([int(lo) - 1, int(hi) + 1, 2 ** 63 - 1, -2 ** 63]))
            elif kind == "wrong_type":
                value = self._pick([float(default) + 0.5, "8", True, [1, 2]])
            else:
                value = self._pick([0, -1, int(hi)])
        elif isinstance(default, float):
            if kind == "in_range":
                value = float(r.uniform(lo, hi))
            elif kind == "out_of_range":
                value = float(self._pick([lo - abs(lo) - 1.0, hi * 10.0 + 1.0, -1e308]))
            elif kind == "wrong_type":
                value = self._pick(["0.5", [0.5, 1.0], False])
            else:
                value = self._pick([math.nan, math.inf, -math.inf, 0.0])
        else:
            if kind == "in_range":
                value = self._pick(list(p.choices)) if p.choices else \
                    self._pick(["", "/nonexistent/model.keras", "camera", "{}", "{\"x\": 1}"])
            elif kind == "wrong_type":
                value = self._pick([3, 1.5, ["a", "b"], False])
            else:
                value = self._pick(["", "\x00", "x" * 5000, "{not json", "../../etc/passwd"])
        return Parameter(p.name, value=value), kind

"""sensor_msgs/Image <-> NumPy without importing ROS.

Messages are duck-typed: any object with ``height``, ``width``, ``encoding``, ``is_bigendian``,
``step`` and ``data`` works (``sensor_msgs.msg.Image``, a test double, a rosbags message).
Building a message goes through a factory callable, so a node passes ``sensor_msgs.msg.Image``
while the core never imports it. Every malformed input fails with
:class:`ImageConversionError` and a message saying what is wrong; nothing else is raised for
bad field values.

:class:`ImageConverter` uses ``cv_bridge.CvBridge`` when it is importable and this module's
own conversion otherwise; both paths run the same validation first, so they accept and reject
the same messages and return the same arrays.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 4096 * 4096

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgra8": (np.dtype(np.uint8), 4),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgr16": (np.dtype(np.uint16), 3),
    "rgb16": (np.dtype(np.uint16), 3),
    "bgra16": (np.dtype(np.uint16), 4),
    "rgba16": (np.dtype(np.uint16), 4),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC2": (np.dtype(np.uint8), 2),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "16UC1": (np.dtype(np.uint16), 1),
    "16UC2": (np.dtype(np.uint16), 2),
    "16UC3": (np.dtype(np.uint16), 3),
    "16UC4": (np.dtype(np.uint16), 4),
}

# How each encoding's channels are to be read when turning it into BGR / gray for the
# detector. Generic nUCk encodings carry no channel order; they are read like OpenCV does
# (1 = gray, 3 = BGR, 4 = BGRA). Two-channel images have no colour meaning.
_COLOR_LAYOUT: dict[str, str] = {
    "mono8": "gray", "mono16": "gray", "8UC1": "gray", "16UC1": "gray",
    "bgr8": "bgr", "bgr16": "bgr", "8UC3": "bgr", "16UC3": "bgr",
    "rgb8": "rgb", "rgb16": "rgb",
    "bgra8": "bgra", "bgra16": "bgra", "8UC4": "bgra", "16UC4": "bgra",
    "rgba8": "rgba", "rgba16": "rgba",
}


class ImageConversionError(ValueError):
    """A message or array that cannot be converted (bad encoding, size, step or data)."""


@dataclass
class RawImage:
    """A ROS-free stand-in for ``sensor_msgs/Image`` (the default message factory)."""

    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b""
    header: Any = None
    extra: dict = field(default_factory=dict)


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    """Return (dtype, channels) of a supported encoding; raise ImageConversionError if unknown."""
    if not isinstance(encoding, str):
        raise ImageConversionError(f"encoding must be a string, got {type(encoding).__name__}")
    info = ENCODINGS.get(encoding)
    if info is None:
        raise ImageConversionError(f"unsupported image encoding {encoding!r}; supported: "
                                   f"{', '.join(ENCODINGS)}")
    return info


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImageConversionError(f"image {name} must be an integer, got {value!r}")
    return int(value)


def _data_buffer(data: Any) -> np.ndarray:
    """Return the message data as a 1-D uint8 array, a view where the type allows it."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageConversionError(f"image data must be uint8, got array of {data.dtype}")
        return data.reshape(-1)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:
        return np.asarray(data, dtype=np.uint8).reshape(-1)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ImageConversionError(f"image data of type {type(data).__name__} is not a byte "
                                   f"sequence: {exc}") from exc


def check_image_fields(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS
                       ) -> tuple[int, int, int, np.dtype, int]:
    """Validate a message's fields; return (height, width, step, dtype, channels).

    Raises ImageConversionError for an unknown encoding, a zero/negative size, an image larger
    than ``max_pixels``, a step shorter than one row of pixels, or a data size other than
    ``step * height``.
    """
    try:
        encoding, height, width = msg.encoding, msg.height, msg.width
        step, data = msg.step, msg.data
    except AttributeError as exc:
        raise ImageConversionError(f"not an image message: {exc}") from exc
    dtype, channels = encoding_info(encoding)
    height, width, step = _as_int(height, "height"), _as_int(width, "width"), \
        _as_int(step, "step")
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size: width {width}, height {height}")
    if height * width > max_pixels:
        raise ImageConversionError(f"image {width}x{height} has {width * height} pixels, more "
                                   f"than the limit of {max_pixels}")
    row = width * channels * dtype.itemsize
    if step < row:
        raise ImageConversionError(f"image step {step} is smaller than width * bytes per pixel "
                                   f"= {width} * {channels * dtype.itemsize} = {row}")
    try:
        size = data.nbytes if isinstance(data, np.ndarray) else len(data)
    except TypeError as exc:
        raise ImageConversionError(f"image data of type {type(data).__name__} has no "
                                   "length") from exc
    if size != step * height:
        raise ImageConversionError(f"image data has {size} bytes, expected step * height = "
                                   f"{step} * {height} = {step * height}")
    return height, width, step, dtype, channels


def image_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the pixels of an Image message as (H, W) or (H, W, C) array of native byte order.

    The result is a zero-copy view of ``msg.data`` whenever the data is a buffer, the byte order
    is native and 16-bit rows are aligned; it is read-only when ``data`` is ``bytes``. Row
    padding (``step`` larger than a row) is skipped through strides.
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    height, width, step, dtype, channels = check_image_fields(msg, max_pixels)
    buf = _data_buffer(msg.data)
    big = bool(msg.is_bigendian) and dtype.itemsize > 1
    view_dtype = dtype.newbyteorder(">" if big else "<")
    item = dtype.itemsize
    arr = np.ndarray(shape=(height, width, channels), dtype=view_dtype, buffer=buf,
                     strides=(step, channels * item, item))
    if not view_dtype.isnative:  # foreign byte order: swap into a copy
        arr = arr.astype(dtype.newbyteorder("="))
    elif not arr.flags.aligned:
        arr = arr.copy()
    if channels == 1:
        arr = arr[:, :, 0]
    return arr


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Return the fields of an Image message holding ``array`` with ``encoding``.

    The dict has height, width, encoding, is_bigendian, step (= width * bytes per pixel) and
    data (``bytes``, tightly packed, native byte order). The array's dtype and channel count
    must match the encoding.
    """
    dtype, channels = encoding_info(encoding)
    array = np.asarray(array)
    if array.ndim == 2:
        got_channels = 1
    elif array.ndim == 3:
        got_channels = array.shape[2]
    else:
        raise ImageConversionError(f"expected a (H, W) or (H, W, C) array, got shape "
                                   f"{array.shape}")
    if got_channels != channels:
        raise ImageConversionError(f"encoding {encoding!r} needs {channels} channel(s), the "
                                   f"array has {got_channels} (shape {array.shape})")
    if array.dtype.newbyteorder("=") != dtype:
        raise ImageConversionError(f"encoding {encoding!r} needs dtype {dtype}, the array is "
                                   f"{array.dtype}")
    height, width = int(array.shape[0]), int(array.shape[1])
    if height == 0 or width == 0:
        raise ImageConversionError(f"array has zero size: shape {array.shape}")
    native = np.ascontiguousarray(array, dtype=dtype.newbyteorder("="))
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big" and dtype.itemsize > 1),
        "step": width * channels * dtype.itemsize,
        "data": native.tobytes(),
    }


def array_to_image(array: np.ndarray, encoding: str,
                   factory: Callable[[], Any] = RawImage, header: Any = None) -> Any:
    """Build an Image message with ``factory()`` (e.g. ``sensor_msgs.msg.Image``) from an array."""
    msg = factory()
    for key, value in array_to_image_fields(array, encoding).items():
        setattr(msg, key, value)
    if header is not None:
        msg.header = header
    return msg


def _scale_to_8bit(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise ImageConversionError(f"cannot convert dtype {array.dtype} to 8 bit")


def _check_layout(array: np.ndarray, encoding: str) -> str:
    dtype, channels = encoding_info(encoding)
    layout = _COLOR_LAYOUT.get(encoding)
    if layout is None:
        raise ImageConversionError(f"encoding {encoding!r} has no colour meaning; cannot "
                                   "convert it to BGR or gray")
    got = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else -1)
    if got != channels or array.dtype.newbyteorder("=") != dtype:
        raise ImageConversionError(f"array of shape {array.shape} and dtype {array.dtype} "
                                   f"does not match encoding {encoding!r}")
    return layout


_TO_BGR = {"gray": cv2.COLOR_GRAY2BGR, "rgb": cv2.COLOR_RGB2BGR, "bgra": cv2.COLOR_BGRA2BGR,
           "rgba": cv2.COLOR_RGBA2BGR}
_TO_GRAY = {"bgr": cv2.COLOR_BGR2GRAY, "rgb": cv2.COLOR_RGB2GRAY, "bgra": cv2.COLOR_BGRA2GRAY,
            "rgba": cv2.COLOR_RGBA2GRAY}


def to_bgr8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Return an (H, W, 3) uint8 BGR image of ``array`` (returned as is when already bgr8).

    16-bit images keep their high byte (value >> 8). Conversion works pixel by pixel, so
    converting a crop gives the same pixels as cropping the converted image.
    """
    layout = _check_layout(array, encoding)
    eight = _scale_to_8bit(array)
    if layout == "bgr":
        return eight
    if eight.ndim == 3 and eight.shape[2] == 1:
        eight = eight[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(eight), _TO_BGR[layout])


def to_gray8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Return an (H, W) uint8 grayscale image of ``array`` (16-bit keeps the high byte)."""
    layout = _check_layout(array, encoding)
    eight = _scale_to_8bit(array)
    if layout == "gray":
        return eight[:, :, 0] if eight.ndim == 3 else eight
    return cv2.cvtColor(np.ascontiguousarray(eight), _TO_GRAY[layout])


@lru_cache(maxsize=1)
def cv_bridge_available() -> bool:
    """Return True when ``cv_bridge`` can be imported (checked once per process)."""
    try:
        import cv_bridge  # noqa: F401
    except Exception:  # ImportError, or a broken binary extension
        return False
    return True


class ImageConverter:
    """Convert between Image messages and arrays, through cv_bridge when it is available.

    ``use_cv_bridge``: None = use it if importable, False = never, True = require it.
    Both paths validate with :func:`check_image_fields` first, so they reject the same
    messages with the same :class:`ImageConversionError`.
    """

    def __init__(self, use_cv_bridge: bool | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.max_pixels = int(max_pixels)
        available = cv_bridge_available()
        if use_cv_bridge and not available:
            raise ValueError("use_cv_bridge is True but cv_bridge cannot be imported")
        self.uses_cv_bridge = available if use_cv_bridge is None else bool(use_cv_bridge)
        self._bridge: Any = None
        if self.uses_cv_bridge:
            from cv_bridge import CvBridge
            self._bridge = CvBridge()

    def to_array(self, msg: Any, max_pixels: int | None = None) -> np.ndarray:
        """Return the message's pixels, (H, W) or (H, W, C), native byte order.

        ``max_pixels`` overrides the converter's limit for this call (a node's parameter).
        Two kinds of message go through the own conversion even with cv_bridge: a ``step``
        that is not a whole number of pixels (cv_bridge derives the row length as ``step /
        bytes per pixel`` and would misread the rows), and 16-bit data in foreign byte order
        (cv_bridge swaps it with ``ndarray.newbyteorder``, which NumPy 2 removed).
        """
        limit = self.max_pixels if max_pixels is None else int(max_pixels)
        if self._bridge is None:
            return image_to_array(msg, limit)
        _, _, step, dtype, channels = check_image_fields(msg, limit)
        foreign = dtype.itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big")
        if step % (channels * dtype.itemsize) or foreign:
            return image_to_array(msg, limit)
        try:
            out = np.asarray(self._bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
        except Exception as exc:  # cv_bridge raises its own CvBridgeError / TypeError
            raise ImageConversionError(f"cv_bridge could not convert the image: {exc}") from exc
        if out.ndim == 3 and out.shape[2] == 1:
            out = out[:, :, 0]
        return out

    def to_bgr8(self, msg: Any) -> np.ndarray:
        """Return the message as an (H, W, 3) uint8 BGR image for the detector."""
        return to_bgr8(self.to_array(msg), msg.encoding)

    def to_gray8(self, msg: Any) -> np.ndarray:
        """Return the message as an (H, W) uint8 grayscale image."""
        return to_gray8(self.to_array(msg), msg.encoding)

    def from_array(self, array: np.ndarray, encoding: str,
                   factory: Callable[[], Any] = RawImage, header: Any = None) -> Any:
        """Build a message holding ``array`` (same checks on both paths).

        The own path builds it with ``factory``; cv_bridge builds a ``sensor_msgs/Image``
        itself. Either way the data is tightly packed in native byte order.
        """
        fields = array_to_image_fields(array, encoding)
        if self._bridge is None:
            msg = factory()
            for key, value in fields.items():
                setattr(msg, key, value)
        else:
            try:
                array = np.asarray(array)
                native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
                msg = self._bridge.cv2_to_imgmsg(native, encoding=encoding)
            except Exception as exc:
                raise ImageConversionError(f"cv_bridge could not convert the array: "
                                           f"{exc}") from exc
        if header is not None:
            msg.header = header
        return msg

"""Tests of the ROS-free sensor_msgs/Image <-> NumPy conversion."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emotion_perception.core import image_conversion as ic
from emotion_perception.core.image_conversion import (
    ENCODINGS, ImageConversionError, ImageConverter, RawImage, array_to_image,
    array_to_image_fields, image_to_array, to_bgr8, to_gray8)

REQUIRED = ("bgr8", "rgb8", "mono8", "bgra8", "rgba8", "mono16", "8UC1", "8UC3", "16UC1")


def _random_array(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def _msg(**fields: object) -> RawImage:
    msg = RawImage()
    for key, value in fields.items():
        setattr(msg, key, value)
    return msg


def test_required_encodings_supported() -> None:
    assert set(REQUIRED) <= set(ENCODINGS)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding: str) -> None:
    array = _random_array(encoding, seed=len(encoding))
    msg = array_to_image(array, encoding)
    dtype, channels = ENCODINGS[encoding]
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    assert msg.step == 7 * channels * dtype.itemsize
    assert len(msg.data) == msg.step * msg.height
    back = image_to_array(msg)
    assert back.dtype == dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("encoding", ["bgr8", "mono8", "mono16", "rgba16", "8UC3"])
@pytest.mark.parametrize("padding", [1, 3, 16])
def test_padded_step_is_a_zero_copy_view(encoding: str, padding: int) -> None:
    array = _random_array(encoding, height=4, width=6, seed=padding)
    dtype, channels = ENCODINGS[encoding]
    row = 6 * channels * dtype.itemsize
    step = row + padding
    data = bytearray(b"\xee" * (step * 4))
    for r in range(4):
        data[r * step:r * step + row] = array[r].tobytes()
    msg = _msg(height=4, width=6, encoding=encoding, is_bigendian=0, step=step, data=data)
    out = image_to_array(msg)
    np.testing.assert_array_equal(out, array)
    if dtype.itemsize == 1 or step % dtype.itemsize == 0:  # aligned rows: no copy needed
        assert np.shares_memory(out, np.frombuffer(data, np.uint8))


def test_bytes_data_gives_read_only_view() -> None:
    array = _random_array("bgr8")
    out = image_to_array(array_to_image(array, "bgr8"))
    assert not out.flags.writeable
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "bgr16"])
def test_big_endian_16_bit(encoding: str) -> None:
    array = _random_array(encoding, seed=3)
    dtype, channels = ENCODINGS[encoding]
    msg = _msg(height=5, width=7, encoding=encoding, is_bigendian=1,
               step=7 * channels * 2, data=array.astype(">u2").tobytes())
    out = image_to_array(msg)
    assert out.dtype.isnative and out.dtype == np.uint16
    np.testing.assert_array_equal(out, array)
    # the same bytes read as little endian give byte-swapped values
    msg.is_bigendian = 0
    np.testing.assert_array_equal(image_to_array(msg), array.byteswap())


def test_big_endian_with_odd_padding() -> None:
    array = _random_array("mono16", height=3, width=4, seed=9)
    step = 4 * 2 + 1
    data = b"".join(array[r].astype(">u2").tobytes() + b"\x00" for r in range(3))
    out = image_to_array(_msg(height=3, width=4, encoding="mono16", is_bigendian=1, step=step,
                              data=data))
    np.testing.assert_array_equal(out, array)


def test_list_and_array_data_accepted() -> None:
    array = _random_array("mono8", height=2, width=3)
    as_list = list(array.tobytes())
    np.testing.assert_array_equal(
        image_to_array(_msg(height=2, width=3, encoding="mono8", step=3, data=as_list)), array)
    np.testing.assert_array_equal(
        image_to_array(_msg(height=2, width=3, encoding="mono8", step=3,
                            data=array.reshape(-1))), array)


@pytest.mark.parametrize("fields, message", [
    (dict(encoding="yuv422"), "unsupported image encoding 'yuv422'"),
    (dict(encoding="BGR8"), "unsupported image encoding"),
    (dict(width=0, step=0, data=b""), "zero size"),
    (dict(height=0, data=b""), "zero size"),
    (dict(height=-2), "zero size"),
    (dict(step=11), "step 11 is smaller than width * bytes per pixel"),
    (dict(data=b"\x00" * (12 * 2 - 1)), "expected step * height"),
    (dict(data=b"\x00" * (12 * 2 + 1)), "expected step * height"),
    (dict(height=2.0), "height must be an integer"),
    (dict(data=None), "has no length"),
])
def test_invalid_messages(fields: dict, message: str) -> None:
    base = dict(height=2, width=4, encoding="bgr8", is_bigendian=0, step=12, data=b"\x00" * 24)
    base.update(fields)
    with pytest.raises(ImageConversionError, match=message.replace("*", r"\*")):
        image_to_array(_msg(**base))


def test_too_many_pixels() -> None:
    msg = _msg(height=10, width=10, encoding="mono8", step=10, data=b"\x00" * 100)
    assert image_to_array(msg, max_pixels=100).shape == (10, 10)
    with pytest.raises(ImageConversionError, match="more than the limit of 99"):
        image_to_array(msg, max_pixels=99)
    with pytest.raises(ValueError, match="max_pixels"):
        image_to_array(msg, max_pixels=0)


def test_default_pixel_limit() -> None:
    side = 4097
    msg = _msg(height=side, width=4096, encoding="mono8", step=4096, data=b"")
    with pytest.raises(ImageConversionError, match="more than the limit"):
        image_to_array(msg)


def test_not_an_image_message() -> None:
    with pytest.raises(ImageConversionError, match="not an image message"):
        image_to_array(object())


@pytest.mark.parametrize("array, encoding, message", [
    (np.zeros((4, 4, 3), np.uint8), "mono8", "needs 1 channel"),
    (np.zeros((4, 4), np.uint16), "mono8", "needs dtype uint8"),
    (np.zeros((4, 4, 3), np.float32), "bgr8", "needs dtype uint8"),
    (np.zeros((4,), np.uint8), "mono8", "expected a"),
    (np.zeros((0, 4), np.uint8), "mono8", "zero size"),
    (np.zeros((4, 4), np.uint8), "jpeg", "unsupported image encoding"),
])
def test_invalid_arrays(array: np.ndarray, encoding: str, message: str) -> None:
    with pytest.raises(ImageConversionError, match=message):
        array_to_image_fields(array, encoding)


def test_fields_of_non_contiguous_and_big_endian_arrays() -> None:
    array = _random_array("mono16", height=6, width=8)
    fields = array_to_image_fields(array[::2, 1::2].astype(">u2"), "mono16")
    assert (fields["height"], fields["width"], fields["step"]) == (3, 4, 8)
    assert fields["is_bigendian"] == int(sys.byteorder == "big")
    out = image_to_array(_msg(**fields))
    np.testing.assert_array_equal(out, array[::2, 1::2])


def test_to_bgr8_and_gray8() -> None:
    rgb = _random_array("rgb8")
    bgr = rgb[:, :, ::-1]
    np.testing.assert_array_equal(to_bgr8(rgb, "rgb8"), bgr)
    same = _random_array("bgr8")
    assert to_bgr8(same, "bgr8") is same
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_bgr8(rgba, "rgba8"), bgr)
    mono = _random_array("mono8")
    np.testing.assert_array_equal(to_bgr8(mono, "mono8"), np.repeat(mono[:, :, None], 3, 2))
    np.testing.assert_array_equal(to_gray8(mono, "8UC1"), mono)
    mono16 = _random_array("mono16")
    np.testing.assert_array_equal(to_gray8(mono16, "mono16"), (mono16 >> 8).astype(np.uint8))
    rgb16 = _random_array("rgb16")
    np.testing.assert_array_equal(to_bgr8(rgb16, "rgb16"),
                                  (rgb16[:, :, ::-1] >> 8).astype(np.uint8))
    gray = to_gray8(rgb, "rgb8")
    assert gray.shape == rgb.shape[:2] and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, to_gray8(bgr.copy(), "bgr8"))
    with pytest.raises(ImageConversionError, match="no colour meaning"):
        to_bgr8(np.zeros((2, 2, 2), np.uint8), "8UC2")
    with pytest.raises(ImageConversionError, match="does not match encoding"):
        to_bgr8(np.zeros((2, 2), np.uint8), "bgr8")


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "bgra8", "rgba16"])
def test_conversion_commutes_with_cropping(encoding: str) -> None:
    array = _random_array(encoding, height=20, width=30)
    crop = (slice(3, 15), slice(7, 19))
    np.testing.assert_array_equal(to_bgr8(array[crop], encoding),
                                  to_bgr8(array, encoding)[crop])


def test_sensor_msgs_image_factory() -> None:
    image_mod = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs not installed")
    array = _random_array("bgr8", height=3, width=4)
    msg = array_to_image(array, "bgr8", factory=image_mod.Image)
    assert isinstance(msg, image_mod.Image)
    out = image_to_array(msg)
    np.testing.assert_array_equal(out, array)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


class _FakeBridge:
    """Stand-in for cv_bridge.CvBridge, built on this module's own conversion."""

    calls: list[str] = []

    def imgmsg_to_cv2(self, msg: object, desired_encoding: str = "passthrough") -> np.ndarray:
        self.calls.append("to_cv2")
        return image_to_array(msg)

    def cv2_to_imgmsg(self, array: np.ndarray, encoding: str) -> RawImage:
        self.calls.append("to_msg")
        return array_to_image(array, encoding)


@pytest.fixture
def fake_cv_bridge(monkeypatch: pytest.MonkeyPatch):
    module = types.ModuleType("cv_bridge")
    module.CvBridge = _FakeBridge
    _FakeBridge.calls = []
    monkeypatch.setitem(sys.modules, "cv_bridge", module)
    ic.cv_bridge_available.cache_clear()
    yield _FakeBridge
    ic.cv_bridge_available.cache_clear()


def test_converter_uses_cv_bridge_when_available(fake_cv_bridge: type) -> None:
    assert ic.cv_bridge_available()
    conv = ImageConverter()
    assert conv.uses_cv_bridge
    array = _random_array("rgb8")
    msg = conv.from_array(array, "rgb8", header="hdr")
    assert msg.header == "hdr"
    np.testing.assert_array_equal(conv.to_array(msg), array)
    np.testing.assert_array_equal(conv.to_bgr8(msg), array[:, :, ::-1])
    assert fake_cv_bridge.calls == ["to_msg", "to_cv2", "to_cv2"]
    # validation runs before cv_bridge, with the same error as the own path
    bad = _msg(height=2, width=2, encoding="rgb8", step=5, data=b"\x00" * 10)
    with pytest.raises(ImageConversionError, match="step 5 is smaller"):
        conv.to_array(bad)
    assert fake_cv_bridge.calls[-1] == "to_cv2" and len(fake_cv_bridge.calls) == 3


def test_converter_without_cv_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # makes "import cv_bridge" fail
    ic.cv_bridge_available.cache_clear()
    try:
        assert not ic.cv_bridge_available()
        with pytest.raises(ValueError, match="use_cv_bridge"):
            ImageConverter(use_cv_bridge=True)
        conv = ImageConverter()
        assert not conv.uses_cv_bridge
        mono = _random_array("mono16")
        msg = conv.from_array(mono, "mono16")
        np.testing.assert_array_equal(conv.to_array(msg), mono)
        np.testing.assert_array_equal(conv.to_gray8(msg), (mono >> 8).astype(np.uint8))
    finally:
        ic.cv_bridge_available.cache_clear()


_ENCODING_CHOICES = sorted(ENCODINGS) + ["", "bgr", "32FC1", "mono 8", "RGB8"]


@st.composite
def _image_fields(draw: st.DrawFn) -> RawImage:
    height = draw(st.integers(min_value=-2, max_value=12))
    width = draw(st.integers(min_value=-2, max_value=12))
    encoding = draw(st.sampled_from(_ENCODING_CHOICES))
    dtype, channels = ENCODINGS.get(encoding, (np.dtype(np.uint8), 1))
    row = max(width, 0) * channels * dtype.itemsize
    step = draw(st.one_of(st.integers(min_value=-3, max_value=120),
                          st.integers(min_value=max(row - 1, 0), max_value=row + 5)))
    exact = max(step, 0) * max(height, 0)
    size = draw(st.one_of(st.just(exact), st.integers(min_value=0, max_value=400)))
    data = draw(st.one_of(st.binary(min_size=size, max_size=size),
                          st.lists(st.integers(min_value=0, max_value=255), min_size=size,
                                   max_size=size)))
    big = draw(st.integers(min_value=0, max_value=1))
    return _msg(height=height, width=width, encoding=encoding, is_bigendian=big, step=step,
                data=data)


def _is_valid(msg: RawImage, max_pixels: int) -> bool:
    """Whether a message meets the documented contract (written apart from the code)."""
    if msg.encoding not in ENCODINGS or msg.height <= 0 or msg.width <= 0:
        return False
    dtype, channels = ENCODINGS[msg.encoding]
    return (msg.height * msg.width <= max_pixels
            and msg.step >= msg.width * channels * dtype.itemsize
            and len(msg.data) == msg.step * msg.height)


@settings(max_examples=300, deadline=None)
@given(_image_fields())
def test_property_image_to_array_returns_or_raises_conversion_error(msg: RawImage) -> None:
    valid = _is_valid(msg, 100)
    try:
        out = image_to_array(msg, max_pixels=100)
    except ImageConversionError as exc:
        assert not valid, f"a valid message was refused: {exc}"
        return
    assert valid, "an invalid message was converted"
    dtype, channels = ENCODINGS[msg.encoding]
    expected = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    assert out.shape == expected
    assert out.dtype == dtype
    assert msg.height * msg.width <= 100
    # every pixel equals the bytes at its place in the buffer
    raw = bytes(msg.data)
    first = np.frombuffer(raw[:channels * dtype.itemsize],
                          dtype=dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    np.testing.assert_array_equal(out.reshape(msg.height, msg.width, channels)[0, 0], first)


@st.composite
def _valid_images(draw: st.DrawFn) -> tuple[RawImage, np.ndarray]:
    """A valid message (any encoding, row padding, either byte order) and its pixels."""
    encoding = draw(st.sampled_from(sorted(ENCODINGS)))
    dtype, channels = ENCODINGS[encoding]
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    shape = (height, width) if channels == 1 else (height, width, channels)
    pixels = np.frombuffer(draw(st.binary(min_size=height * width * channels * dtype.itemsize,
                                          max_size=height * width * channels * dtype.itemsize)),
                           dtype=dtype).reshape(shape)
    big = draw(st.booleans()) and dtype.itemsize > 1
    rows = pixels.astype(dtype.newbyteorder(">" if big else "<")).reshape(height, -1)
    pad = draw(st.integers(0, 5))
    data = b"".join(r.tobytes() + b"\xee" * pad for r in rows)
    list_data = draw(st.booleans())
    msg = _msg(height=height, width=width, encoding=encoding, is_bigendian=int(big),
               step=rows.shape[1] * dtype.itemsize + pad,
               data=list(data) if list_data else data)
    return msg, pixels


@settings(max_examples=200, deadline=None)
@given(_valid_images())
def test_property_valid_messages_convert_to_their_pixels(case: tuple[RawImage, np.ndarray]
                                                         ) -> None:
    msg, pixels = case
    out = image_to_array(msg, max_pixels=100)
    assert out.dtype == pixels.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, pixels)
    # and back: the fields built from the array convert to the same pixels
    np.testing.assert_array_equal(image_to_array(array_to_image(out, msg.encoding)), pixels)

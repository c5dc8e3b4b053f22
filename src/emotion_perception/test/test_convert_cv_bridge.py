"""The nodes' image conversion: cv_bridge when it imports, the own conversion otherwise.

The selection is tested both ways here with a stand-in ``cv_bridge`` module (so both branches
run on every machine); the own conversion is always tested for real; the parity of the two
paths is tested against the real cv_bridge where it is installed (a ROS install from apt).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from emotion_perception.core import image_conversion as ic
from emotion_perception.core.image_conversion import (ENCODINGS, ImageConversionError,
                                                      ImageConverter, array_to_image_fields)

convert = pytest.importorskip("emotion_perception.nodes.convert",
                              reason="sensor_msgs / emotion_msgs not importable")
Image = pytest.importorskip("sensor_msgs.msg").Image

#: encodings cv_bridge converts without a colour conversion (passthrough)
PARITY_ENCODINGS = sorted(ENCODINGS)


def _array(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


class _StandInBridge:
    """Records calls; converts with the package's own code into real sensor_msgs Images."""

    calls: list[str] = []

    def imgmsg_to_cv2(self, msg, desired_encoding: str = "passthrough") -> np.ndarray:
        self.calls.append("to_cv2")
        return ic.image_to_array(msg)

    def cv2_to_imgmsg(self, array: np.ndarray, encoding: str):
        self.calls.append("to_msg")
        return Image(**array_to_image_fields(array, encoding))


@pytest.fixture
def fresh_converter():
    """Forget the cached converter (and cv_bridge probe) before and after the test."""
    ic.cv_bridge_available.cache_clear()
    convert.image_converter.cache_clear()
    yield
    ic.cv_bridge_available.cache_clear()
    convert.image_converter.cache_clear()


def test_nodes_convert_through_cv_bridge_when_it_imports(monkeypatch, fresh_converter) -> None:
    module = types.ModuleType("cv_bridge")
    module.CvBridge = _StandInBridge
    _StandInBridge.calls = []
    monkeypatch.setitem(sys.modules, "cv_bridge", module)
    assert convert.image_converter().uses_cv_bridge
    array = _array("bgr8")
    msg = convert.array_to_image(array, "bgr8", header=None)
    assert isinstance(msg, Image)
    np.testing.assert_array_equal(convert.image_to_numpy(msg, 1000), array)
    assert _StandInBridge.calls == ["to_msg", "to_cv2"]
    # the node's pixel limit and the shared validation apply before cv_bridge is called
    with pytest.raises(ImageConversionError, match="more than the limit of 10"):
        convert.image_to_numpy(msg, 10)
    assert _StandInBridge.calls == ["to_msg", "to_cv2"]
    # a step that is not a whole number of pixels is read by the own code, correctly
    padded = Image(height=2, width=3, encoding="rgb8", step=11,
                   data=bytes(range(22)))
    out = convert.image_to_numpy(padded, 1000)
    assert _StandInBridge.calls == ["to_msg", "to_cv2"]
    np.testing.assert_array_equal(out[1, 0], [11, 12, 13])


def test_nodes_use_the_own_conversion_without_cv_bridge(monkeypatch, fresh_converter) -> None:
    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # "import cv_bridge" fails
    assert not convert.image_converter().uses_cv_bridge
    for encoding in PARITY_ENCODINGS:
        array = _array(encoding, seed=len(encoding))
        msg = convert.array_to_image(array, encoding)
        assert isinstance(msg, Image) and msg.step == array.strides[0]
        np.testing.assert_array_equal(convert.image_to_numpy(msg, 1000), array)
    with pytest.raises(ImageConversionError, match="step 5 is smaller"):
        convert.image_to_numpy(Image(height=2, width=2, encoding="rgb8", step=5,
                                     data=b"\0" * 10), 1000)


def _padded(array: np.ndarray, encoding: str, pad_pixels: int) -> Image:
    """A message of ``array`` with each row padded by whole pixels (cv_bridge reads those)."""
    fields = array_to_image_fields(array, encoding)
    row = fields["step"]
    pad = pad_pixels * (row // array.shape[1])
    rows = [fields["data"][i * row:(i + 1) * row] + b"\x5a" * pad for i in range(array.shape[0])]
    fields.update(step=row + pad, data=b"".join(rows))
    return Image(**fields)


@pytest.mark.parametrize("encoding", PARITY_ENCODINGS)
def test_cv_bridge_and_the_own_conversion_agree(encoding: str, fresh_converter) -> None:
    pytest.importorskip("cv_bridge", reason="cv_bridge not installed (ROS from PyPI wheels): "
                                            "the parity with it is checked where it is")
    bridge, own = ImageConverter(use_cv_bridge=True), ImageConverter(use_cv_bridge=False)
    assert bridge.uses_cv_bridge and not own.uses_cv_bridge
    array = _array(encoding, seed=3)
    a, b = bridge.from_array(array, encoding), own.from_array(array, encoding, factory=Image)
    for name in ("height", "width", "encoding", "is_bigendian", "step"):
        assert getattr(a, name) == getattr(b, name), name
    assert bytes(a.data) == bytes(b.data)
    msgs = [a, _padded(array, encoding, 2)]
    if array.dtype.itemsize > 1:  # 16-bit data sent big-endian
        fields = array_to_image_fields(array, encoding)
        fields.update(is_bigendian=1, data=array.astype(array.dtype.newbyteorder(">")).tobytes())
        msgs.append(Image(**fields))
    for msg in msgs:
        got, want = bridge.to_array(msg), own.to_array(msg)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, array)

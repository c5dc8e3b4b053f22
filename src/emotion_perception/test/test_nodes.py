"""Node behaviour: parameters, plugins, models, bad input, NaN, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import wait_for

pytestmark = pytest.mark.ros


def _node(cls, rclpy_session, name=None, **params):
    from rclpy.parameter import Parameter

    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return cls(name, parameter_overrides=overrides)


def _detector(rclpy_session, **params):
    from emotion_perception.nodes.face_detector_node import FaceDetectorNode

    params.setdefault("autostart", False)
    return _node(FaceDetectorNode, rclpy_session, **params)


def _classifier(rclpy_session, **params):
    from emotion_perception.nodes.classifier_node import EmotionClassifierNode

    params.setdefault("autostart", False)
    return _node(EmotionClassifierNode, rclpy_session, **params)


def test_unknown_plugin_fails_configure_with_available_list(rclpy_session):
    node = _detector(rclpy_session, detector="nosuch")
    try:
        node.trigger_configure()
        assert "unknown detector plugin 'nosuch'" in node.configure_error
        assert "haar" in node.configure_error and "yunet" in node.configure_error
    finally:
        node.destroy_node()


def test_missing_model_file_fails_configure_naming_file(rclpy_session, tmp_path):
    missing = tmp_path / "nope.keras"
    node = _classifier(rclpy_session, model_path=str(missing))
    try:
        node.trigger_configure()
        assert str(missing) in node.configure_error and "model_path" in node.configure_error
    finally:
        node.destroy_node()


def test_yunet_without_model_names_the_parameter(rclpy_session):
    node = _detector(rclpy_session, detector="yunet")
    try:
        node.trigger_configure()
        assert "model_path" in node.configure_error
    finally:
        node.destroy_node()


def test_wrong_class_count_model_refuses_to_activate(rclpy_session, tmp_path):
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    path = tmp_path / "five.keras"
    model.save(path)
    node = _classifier(rclpy_session, model_path=str(path))
    try:
        node.trigger_configure()
        assert str(path) in node.configure_error and "7" in node.configure_error
    finally:
        node.destroy_node()


@pytest.mark.parametrize("param,value,expect", [
    ("haar.min_size", 2, "haar.min_size"),
    ("max_side", -5, "max_side"),
    ("haar.scale_factor", "big", "haar.scale_factor"),
    ("crop_margin", 3.0, "crop_margin"),
])
def test_bad_parameter_at_startup_names_it(rclpy_session, param, value, expect):
    with pytest.raises(ValueError, match=expect):
        _detector(rclpy_session, **{param: value})


def test_bad_parameter_at_runtime_is_rejected_with_reason(rclpy_session):
    from rclpy.parameter import Parameter

    node = _detector(rclpy_session, detector="haar")
    try:
        res = node.set_parameters([Parameter("haar.min_neighbors", value=500)])[0]
        assert not res.successful and "haar.min_neighbors" in res.reason
        res = node.set_parameters([Parameter("haar.min_neighbors", value="many")])[0]
        assert not res.successful
        res = node.set_parameters([Parameter("haar.min_neighbors", value=3)])[0]
        assert res.successful and node.params_changed.is_set()
        res = node.set_parameters([Parameter("detector", value="yunet")])[0]
        assert not res.successful  # read-only: needs a restart
    finally:
        node.destroy_node()


def _image(encoding="bgr8", height=48, width=64, step=None, data=None):
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding)
    msg.step = step if step is not None else width * 3
    msg.data = data if data is not None else bytes(msg.step * height)
    return msg


@pytest.fixture
def active_detector(rclpy_session):
    node = _detector(rclpy_session, **{"tracking.min_hits": 1, "max_image_pixels": 10_000_000})
    node.trigger_configure()
    assert not node.configure_error
    published = []
    node.trigger_activate()
    node._pub.publish = published.append  # capture instead of DDS for callback-level tests
    yield node, published
    node._close_all()
    node.destroy_node()


@pytest.mark.parametrize("msg_kwargs,reason", [
    (dict(encoding="yuv422_weird"), "encoding"),
    (dict(width=0, step=0, data=b""), "width"),
    (dict(step=10), "step"),
    (dict(data=bytes(100)), "data"),
    (dict(height=4000, width=4000, step=12000, data=b"\0"), "pixels"),
])
def test_bad_images_are_rejected_and_counted(active_detector, msg_kwargs, reason):
    node, published = active_detector
    node._process(_image(**msg_kwargs))
    assert node.stats.counters["rejected"] == 1
    assert reason in node.stats.last_error.lower() or reason in node.stats.last_error
    assert not published
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.convert import array_to_image

    node._process(array_to_image(synthetic_scene(1), "bgr8"))  # still works afterwards
    assert len(published) == 1 and len(published[0].faces) == 1


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(encoding=st.sampled_from(["bgr8", "rgb8", "mono8", "mono16", "bgra8", "32FC1", "", "x"]),
       height=st.integers(0, 40), width=st.integers(0, 40), extra=st.integers(-3, 3),
       big=st.booleans())
def test_random_images_never_break_the_detector(active_detector, encoding, height, width,
                                                extra, big):
    node, published = active_detector
    before = node.stats.counters["rejected"] + len(published)
    step = max(0, width * 3 + extra)
    msg = _image(encoding, height, width, step, bytes(max(0, step * height + (7 if big else 0))))
    msg.is_bigendian = int(big)
    node._process(msg)  # must not raise
    assert node.stats.counters["rejected"] + len(published) == before + 1


def test_nan_scores_never_reach_the_output(rclpy_session, tmp_path):
    import keras
    from emotion_msgs.msg import Face, FaceArray

    from emotion_perception.nodes.convert import array_to_image

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(7)
    model = keras.Model(inputs, keras.layers.Softmax()(dense(x)))
    dense.set_weights([np.full((1, 7), np.nan, np.float32), np.zeros(7, np.float32)])
    path = tmp_path / "nan.keras"
    model.save(path)
    node = _classifier(rclpy_session, model_path=str(path))
    try:
        node.trigger_configure()
        assert not node.configure_error, node.configure_error
        node.trigger_activate()
        out = []
        node._pub.publish = out.append
        crop = array_to_image(np.full((50, 50, 3), 128, np.uint8), "bgr8")
        msg = FaceArray(faces=[Face(face_id=1, crop=crop), Face(face_id=2, crop=crop)])
        node._process(msg)
        assert len(out) == 1 and out[0].emotions == []
        assert node.invalid == 2
    finally:
        node._close_all()
        node.destroy_node()


def test_diagnostics_are_published(rclpy_session, spinner):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    node = _detector(rclpy_session, name="diag_detector", autostart=True, diagnostics_period=0.2)
    listener = rclpy.create_node("diag_listener")
    got = []
    listener.create_subscription(DiagnosticArray, "/diagnostics", got.append, 10)
    spinner([node, listener])
    ok = wait_for(lambda: any("diag_detector" in s.name for m in got for s in m.status), 20)
    assert ok, "no diagnostics from the detector"
    status = next(s for m in got for s in m.status if "diag_detector" in s.name)
    keys = {kv.key for kv in status.values}
    assert {"received", "processed", "dropped", "rejected", "detector"} <= keys

"""Class activation maps in the debug image: core.cam.draw_face_cams and the debug node."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from emotion_perception.core.cam import (cam_extractor, draw_face_cams,  # noqa: E402
                                         overlay)
from emotion_perception.core.preprocessing import crop_face, square_crop_box  # noqa: E402

from conftest import wait_for  # noqa: E402


@pytest.fixture(scope="module")
def extractor(tiny_model_path):
    return cam_extractor(keras.saving.load_model(tiny_model_path, compile=False))


def _frame(seed: int = 0, shape=(120, 160, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_each_face_gets_its_label_map_over_its_crop_and_nothing_else(extractor):
    frame = _frame()
    boxes, labels = [(10, 20, 30, 30), (90, 40, 40, 50)], [3, 5]
    out = draw_face_cams(frame, boxes, labels, extractor, margin=0.1, alpha=0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    touched = np.zeros(frame.shape[:2], bool)
    for box, label in zip(boxes, labels):
        x, y, w, h = square_crop_box(box, 0.1, frame.shape)
        cams, _ = extractor.maps([crop_face(frame, box, 0.1)])
        np.testing.assert_array_equal(out[y:y + h, x:x + w],
                                      overlay(frame[y:y + h, x:x + w], cams[0, label], 0.5))
        touched[y:y + h, x:x + w] = True
    np.testing.assert_array_equal(out[~touched], frame[~touched])
    assert not np.array_equal(out[touched], frame[touched])
    np.testing.assert_array_equal(frame, _frame())  # the input is left alone


def test_boxes_outside_the_frame_are_skipped_and_bad_input_is_named(extractor):
    frame = _frame(1)
    out = draw_face_cams(frame, [(500, 500, 20, 20)], [0], extractor)
    np.testing.assert_array_equal(out, frame)
    with pytest.raises(ValueError, match="labels"):
        draw_face_cams(frame, [(0, 0, 20, 20)], [], extractor)
    with pytest.raises(ValueError, match="outside"):
        draw_face_cams(frame, [(0, 0, 20, 20)], [9], extractor)
    with pytest.raises(ValueError, match="uint8"):
        draw_face_cams(frame.astype(np.float32), [(0, 0, 20, 20)], [0], extractor)


def _debug_node(rclpy_session, **params):
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.debug_image_node import DebugImageNode

    params.setdefault("autostart", False)
    return DebugImageNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def _draw_once(node, frame: np.ndarray, box, probs, framing: str = "") -> np.ndarray:
    """Feed one image and its emotions through the node's callbacks; return the drawing."""
    from emotion_msgs.msg import Emotion, EmotionArray
    from sensor_msgs.msg import RegionOfInterest
    from std_msgs.msg import Header, String

    from emotion_perception.nodes.convert import array_to_image, image_to_numpy

    node.trigger_configure()
    assert not node.configure_error, node.configure_error
    node.trigger_activate()
    if framing:  # as the detector announces it on crop_framing
        node._on_framing(String(data=framing))
    out = []
    node._pub.publish = out.append
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    x, y, w, h = box
    emotion = Emotion(header=header, face_id=1, label=int(np.argmax(probs)),
                      probabilities=[float(p) for p in probs], confidence=float(max(probs)),
                      roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
    node._on_emotion(EmotionArray(header=header, emotions=[emotion]))
    node._on_image(array_to_image(frame, "bgr8", header))
    assert wait_for(lambda: len(out) == 1, 60), "the drawing worker published nothing"
    return image_to_numpy(out[0], 10_000_000)


@pytest.mark.ros
def test_debug_node_paints_the_map_of_the_estimated_class(rclpy_session, tiny_model_path,
                                                          extractor):
    frame, box = _frame(2, (480, 640, 3)), (250, 200, 80, 80)  # room for the bars
    probs = np.array([0.05, 0.05, 0.05, 0.05, 0.05, 0.7, 0.05], np.float32)
    plain_node = _debug_node(rclpy_session)
    cam_node = _debug_node(rclpy_session, cam=True, cam_model_path=str(tiny_model_path),
                           cam_alpha=0.6)
    try:
        plain = _draw_once(plain_node, frame, box, probs)
        with_cam = _draw_once(cam_node, frame, box, probs,
                              '{"crop_margin": 0.2, "crop_offset": 0.0, "crop_align": true}')
    finally:
        for node in (plain_node, cam_node):
            node._close_all()
            node.destroy_node()
    x, y, w, h = square_crop_box(box, 0.2, frame.shape)
    cams, _ = extractor.maps([crop_face(frame, box, 0.2)])
    heat = overlay(frame[y:y + h, x:x + w], cams[0, 5], 0.6)
    # inside the crop, away from the box outline and caption, the pixels are the blended map
    inner = (slice(y + h // 2 - 3, y + h // 2 + 3), slice(x + w // 2 - 3, x + w // 2 + 3))
    np.testing.assert_array_equal(with_cam[inner], heat[h // 2 - 3:h // 2 + 3,
                                                        w // 2 - 3:w // 2 + 3])
    np.testing.assert_array_equal(plain[inner], frame[inner])
    outside = np.ones(frame.shape[:2], bool)
    outside[y:y + h, x:x + w] = False
    np.testing.assert_array_equal(with_cam[outside], plain[outside])


@pytest.mark.ros
def test_debug_node_names_an_unusable_cam_model(rclpy_session, tmp_path):
    node = _debug_node(rclpy_session, cam=True, cam_model_path=str(tmp_path / "absent.keras"))
    try:
        node.trigger_configure()
        assert "cam_model_path" in node.configure_error
    finally:
        node.destroy_node()
    inputs = keras.Input((48, 48, 1))
    flat = keras.layers.Flatten()(inputs)
    path = tmp_path / "no_gap.keras"
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(flat)).save(path)
    node = _debug_node(rclpy_session, cam=True, cam_model_path=str(path))
    try:
        node.trigger_configure()
        assert "cam_model_path" in node.configure_error and "GAP" in node.configure_error
    finally:
        node.destroy_node()


@pytest.mark.ros
def test_debug_node_follows_the_framing_the_detector_announces(rclpy_session, spinner,
                                                               tiny_model_path):
    """The map's framing has one source: the detector's crops (calibrated or set)."""
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from emotion_perception.nodes.face_detector_node import FaceDetectorNode

    detector = FaceDetectorNode(parameter_overrides=[Parameter("detector", value="haar")])
    debug = _debug_node(rclpy_session, cam=True, cam_model_path=str(tiny_model_path),
                        autostart=True)
    spinner([detector, debug])  # the fixture stops it and destroys the nodes
    assert wait_for(lambda: getattr(detector, "pipeline", None) is not None
                    and getattr(debug, "_cam", None) is not None, 60)
    calibrated = (detector.pipeline.crop_margin, detector.pipeline.crop_offset)
    assert calibrated != (0.0, 0.0)  # haar's calibrated framing, not the fallback
    assert wait_for(lambda: debug.framing == calibrated, 30), debug.framing
    res = detector.set_parameters([Parameter("crop_margin", value=0.3),
                                   Parameter("crop_offset", value=0.1)])
    assert all(r.successful for r in res), res
    assert wait_for(lambda: debug.framing == (0.3, 0.1), 30), debug.framing
    debug._on_framing(String(data="not json"))  # refused, counted, the old one kept
    assert debug.framing == (0.3, 0.1) and debug.stats.counters["rejected"] == 1

"""Issue 18, item 6: every runtime-settable parameter takes effect, or is read-only, or is
refused with the reason; a refused change keeps the running objects.

``COVERED`` lists, per node, the parameters whose effect a test below checks; a test makes
sure it equals the set of parameters not declared read-only, so a parameter made settable
without a test of its effect fails the suite.
"""

from __future__ import annotations

import pytest

from conftest import other_value, wait_for
from test_reliability import (_activate, _close, _crop, _emotion, _emotion_array, _face,
                              _face_array, _node, _set, _stamp)

pytestmark = pytest.mark.ros

COVERED = {
    "camera": {"diagnostics_period", "width", "height", "fps", "frame_id", "loop",
               "demo_faces", "reconnect_initial_delay", "reconnect_max_delay",
               "stall_timeout", "max_frames"},
    "face_detector": {"diagnostics_period", "max_image_pixels", "max_age", "max_clock_offset",
                      "haar.scale_factor", "haar.min_neighbors", "haar.min_size",
                      "yunet.model_path", "yunet.score_threshold", "yunet.nms_threshold",
                      "max_side", "crop_margin", "max_faces", "tracking.min_iou",
                      "tracking.min_hits", "tracking.max_misses", "blazeface.model",
                      "blazeface.model_path", "blazeface.input_side",
                      "blazeface.score_threshold", "blazeface.nms_threshold", "crop_offset",
                      "crop_align", "blazeface.refine_threshold", "blazeface.refine_max",
                      "blazeface.refine_scale", "blazeface.refine_accept", "full_scan_every",
                      "blazeface.verify_threshold", "blazeface.verify_below",
                      "blazeface.verify_model_path", "blazeface.region_side",
                      "blazeface.refine_side", "blazeface.mirror_pass"},
    "emotion_classifier": {"diagnostics_period", "max_image_pixels", "max_faces", "max_age",
                           "max_clock_offset"},
    "emotion_smoother": {"diagnostics_period", "max_faces", "max_age", "max_clock_offset",
                         "max_gap", "max_tracks", "ema.tau", "hysteresis.window",
                         "hysteresis.margin", "lstm.window"},
    "emotion_debug_image": {"diagnostics_period", "max_image_pixels", "max_faces", "max_age",
                            "max_clock_offset", "history", "cam_alpha"},
}


def test_every_settable_parameter_has_an_effect_test():
    from emotion_perception.core.params import NODE_PARAMS
    from test_hri_nodes import HRI_COVERED  # the ROS4HRI nodes' effect tests (need hri_msgs)

    covered = {**COVERED, **HRI_COVERED}
    for node, params in NODE_PARAMS.items():
        settable = {p.name for p in params if not p.read_only}
        assert settable == covered[node], (node, settable ^ covered[node])


@pytest.mark.parametrize("kind", sorted(COVERED))
def test_read_only_parameters_are_refused_with_the_reason(rclpy_session, tiny_model_path,
                                                          kind):
    from emotion_perception.core.params import NODE_PARAMS

    node = _node(kind, **({"model_path": str(tiny_model_path)}
                          if kind == "emotion_classifier" else {}))
    try:
        for p in NODE_PARAMS[kind]:
            if p.read_only:
                before = node.get_parameter(p.name).value
                res = _set(node, **{p.name: other_value(before)})
                assert not res.successful and "read-only" in res.reason, (p.name, res.reason)
                assert node.get_parameter(p.name).value == before
    finally:
        node.destroy_node()


@pytest.fixture
def active(rclpy_session, tiny_model_path):
    """Factory of active nodes with captured outputs: make(kind, **params) -> (node, out)."""
    made = []

    def make(kind, **params):
        if kind == "emotion_classifier":
            params.setdefault("model_path", str(tiny_model_path))
        if kind == "camera":
            params.setdefault("source", "demo")
            params.setdefault("width", 320)
            params.setdefault("height", 240)
        node = _node(kind, **params)
        made.append(node)
        return node, _activate(node)

    yield make
    _close(*made)


# --- every node ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(COVERED))
def test_diagnostics_period_applies(active, kind):
    node, _ = active(kind)
    assert node._diag_timer.timer_period_ns == 1_000_000_000
    assert _set(node, diagnostics_period=0.3).successful
    assert node._diag_timer.timer_period_ns == 300_000_000


@pytest.mark.parametrize("kind", ["face_detector", "emotion_classifier", "emotion_smoother",
                                  "emotion_debug_image"])
def test_max_age_and_max_clock_offset_apply(active, kind):
    node, _ = active(kind, max_age=5.0)
    assert node.admit(_stamp(node, 3.0))
    assert _set(node, max_age=1.0).successful
    assert not node.admit(_stamp(node, 3.0))
    assert not node.admit(_stamp(node, 100.0))  # within max_clock_offset 300: stale
    assert _set(node, max_clock_offset=50.0).successful
    assert node.admit(_stamp(node, 100.0))  # now a foreign stamp
    assert node.stats.counters["stale"] == 2 and node.stats.counters["foreign_stamps"] == 1


def _image(width=64, height=48):
    import numpy as np

    from emotion_perception.nodes.convert import array_to_image

    return array_to_image(np.zeros((height, width, 3), np.uint8), "bgr8")


@pytest.mark.parametrize("kind", ["face_detector", "emotion_classifier",
                                  "emotion_debug_image"])
def test_max_image_pixels_applies(active, kind):
    node, _ = active(kind, max_image_pixels=100)

    def rejected_after(feed):
        before = node.stats.counters["rejected"]
        feed()
        return node.stats.counters["rejected"] - before

    if kind == "emotion_classifier":
        def feed():
            node._screen(_face_array([_face(crop=_crop(16))]))
    else:
        def feed():
            node._on_image(_image())
    assert rejected_after(feed) == 1
    assert _set(node, max_image_pixels=10_000).successful
    assert rejected_after(feed) == 0


@pytest.mark.parametrize("kind", ["emotion_classifier", "emotion_smoother",
                                  "emotion_debug_image"])
def test_max_faces_applies(active, kind):
    node, _ = active(kind)
    assert _set(node, max_faces=2).successful
    if kind == "emotion_classifier":
        _, kept = node._screen(_face_array([_face(i + 1) for i in range(5)]))
        assert len(kept) == 2
    elif kind == "emotion_smoother":
        assert len(node.screen(_emotion_array([_emotion(i + 1) for i in range(5)])).emotions) \
            == 2
    else:
        node._on_emotion(_emotion_array([_emotion(i + 1) for i in range(5)]))
        (waiting,) = node._emotions.values()
        assert len(waiting.emotions) == 2
    assert node.stats.counters["faces_dropped"] == 3


# --- detector --------------------------------------------------------------------------------
def test_detector_parameters_rebuild_the_detector_and_a_refused_one_loses_nothing(active):
    node, _ = active("face_detector", detector="haar")
    first = node.pipeline.detector
    res = _set(node, max_side=10)
    assert not res.successful and "max_side" in res.reason
    assert node.pipeline.detector is first and node.get_parameter("max_side").value == 320
    # the next valid change is applied (it used to be lost after a failed rebuild)
    assert _set(node, max_side=240).successful
    assert node.pipeline.detector is not first and node.pipeline.detector._max_side == 240
    for key, value, attr in (("haar.scale_factor", 1.2, "scale_factor"),
                             ("haar.min_neighbors", 3, "min_neighbors"),
                             ("haar.min_size", 60, "min_size")):
        assert _set(node, **{key: value}).successful
        assert getattr(node.pipeline.detector, attr) == value
        assert node.pipeline.detector._max_side == 240  # earlier changes stay
    for key in ("yunet.score_threshold", "yunet.model_path"):
        res = _set(node, **{key: 0.5 if "score" in key else "x.onnx"})
        assert not res.successful and "no effect with detector 'haar'" in res.reason


def test_detector_changes_keep_the_tracker_and_its_ids(active):
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.convert import array_to_image

    node, out = active("face_detector", detector="haar", max_age=0.0,
                       **{"tracking.min_hits": 1})
    tracker = node.pipeline.tracker

    def ids(t):
        node._process(array_to_image(synthetic_scene(2, t=t), "bgr8"))
        return sorted(f.face_id for f in out[-1].faces)

    before = ids(0.0)
    assert len(before) == 2
    assert _set(node, **{"haar.min_neighbors": 4, "max_side": 400}).successful
    assert _set(node, **{"tracking.min_iou": 0.2, "tracking.min_hits": 3,
                         "tracking.max_misses": 9}).successful
    assert node.pipeline.tracker is tracker
    assert (tracker.min_iou, tracker.min_hits, tracker.max_misses) == (0.2, 3, 9)
    assert ids(1 / 15) == before  # same faces, same ids


def test_crop_margin_and_max_faces_apply(active):
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.convert import array_to_image

    node, out = active("face_detector", max_age=0.0, **{"tracking.min_hits": 1})
    frame = array_to_image(synthetic_scene(2), "bgr8")
    node._process(frame)
    assert len(out[-1].faces) == 2
    width = out[-1].faces[0].crop.width
    assert _set(node, crop_margin=0.4, max_faces=1).successful
    node._process(frame)
    assert len(out[-1].faces) == 1 and out[-1].faces[0].crop.width > width


def test_full_scan_every_applies(active):
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.convert import array_to_image

    node, out = active("face_detector", detector="blazeface", max_age=0.0,
                       full_scan_every=1, **{"tracking.min_hits": 1})
    frame = array_to_image(synthetic_scene(2), "bgr8")
    for _ in range(3):
        node._process(frame)
    assert node.pipeline.scans == {"full": 3, "regions": 0}
    assert _set(node, full_scan_every=3).successful
    for _ in range(3):
        node._process(frame)
    assert node.pipeline.scans == {"full": 4, "regions": 2}
    extra = node.diagnostics_extra()
    assert (extra["full_scans"], extra["region_scans"]) == (4, 2)
    assert all(len(msg.faces) == 2 for msg in out[-6:])


def test_blazeface_parameters_rebuild_blazeface(active):
    node, _ = active("face_detector", detector="blazeface")
    for key, value, attr in (("blazeface.input_side", 192, "input_side"),
                             ("blazeface.score_threshold", 0.6, "score_threshold"),
                             ("blazeface.nms_threshold", 0.4, "nms_threshold"),
                             ("blazeface.refine_threshold", 0.25, "refine_threshold"),
                             ("blazeface.refine_max", 1, "refine_max"),
                             ("blazeface.refine_scale", 3.0, "refine_scale"),
                             ("blazeface.refine_accept", 0.8, "refine_accept"),
                             ("blazeface.verify_threshold", 0.3, "verify_threshold"),
                             ("blazeface.verify_below", 0.9, "verify_below"),
                             ("blazeface.region_side", 128, "region_side"),
                             ("blazeface.refine_side", 112, "refine_side"),
                             ("blazeface.mirror_pass", False, "mirror_pass"),
                             ("blazeface.model", "full", "model")):
        first = node.pipeline.detector
        assert _set(node, **{key: value}).successful
        assert node.pipeline.detector is not first
        assert getattr(node.pipeline.detector, attr) == value
    path = str(node.pipeline.detector.path)
    assert _set(node, **{"blazeface.model_path": path}).successful
    assert str(node.pipeline.detector.path) == path
    res = _set(node, **{"blazeface.model_path": "/no/such/model.tflite"})
    assert not res.successful and "model_path" in res.reason
    mesh = str(node.pipeline.detector._check.path)
    assert _set(node, **{"blazeface.verify_model_path": mesh}).successful
    assert str(node.pipeline.detector._check.path) == mesh
    res = _set(node, **{"blazeface.verify_model_path": "/no/such/mesh.tflite"})
    assert not res.successful and "blazeface.verify_model_path" in res.reason
    for key, value in (("max_side", 240), ("haar.min_size", 60)):  # read by other detectors
        res = _set(node, **{key: value})
        assert not res.successful and "no effect with detector 'blazeface'" in res.reason


def test_crop_framing_and_alignment_apply(active):
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.convert import array_to_image

    node, out = active("face_detector", max_age=0.0, **{"tracking.min_hits": 1})
    margin, offset = node.pipeline.detector.crop_framing  # crop_margin -1: the calibrated one
    assert (node.pipeline.crop_margin, node.pipeline.crop_offset) == (margin, offset)
    assert node.pipeline.crop_align
    frame = array_to_image(synthetic_scene(1), "bgr8")
    node._process(frame)
    calibrated = out[-1].faces[0].crop
    assert _set(node, crop_margin=0.0, crop_offset=0.2, crop_align=False).successful
    assert (node.pipeline.crop_margin, node.pipeline.crop_offset) == (0.0, 0.2)
    assert not node.pipeline.crop_align
    node._process(frame)
    assert out[-1].faces[0].crop.width < calibrated.width
    assert _set(node, crop_margin=-1.0).successful  # back to the detector's framing
    assert (node.pipeline.crop_margin, node.pipeline.crop_offset) == (margin, offset)


class _FakeYuNet:
    """Stands in for the YuNet plugin (no model file in the tests)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def detect(self, image):
        return []


def test_yunet_parameters_rebuild_yunet(rclpy_session, monkeypatch):
    from emotion_perception.core import plugins

    real = plugins.create

    def create(kind, name, **kwargs):
        if kind == "detector" and name == "yunet":
            return _FakeYuNet(**kwargs)
        return real(kind, name, **kwargs)

    monkeypatch.setattr(plugins, "create", create)
    node = _node("face_detector", detector="yunet", **{"yunet.model_path": "a.onnx"})
    try:
        _activate(node)
        for key, value in (("yunet.model_path", "b.onnx"), ("yunet.score_threshold", 0.5),
                           ("yunet.nms_threshold", 0.4), ("max_side", 480)):
            assert _set(node, **{key: value}).successful
            assert node.pipeline.detector.kwargs[key.split(".")[-1]] == value
        res = _set(node, **{"haar.min_size": 60})
        assert not res.successful and "no effect with detector 'yunet'" in res.reason
    finally:
        _close(node)


# --- classifier: covered above (max_image_pixels, max_faces, stamps) --------------------------
# --- smoother --------------------------------------------------------------------------------
@pytest.mark.parametrize("smoother,key,value,attr", [
    ("ema", "ema.tau", 2.0, "tau"),
    ("ema", "max_gap", 3.0, "max_gap"),
    ("ema", "max_tracks", 7, "max_tracks"),
    ("hysteresis", "hysteresis.window", 11, "window"),
    ("hysteresis", "hysteresis.margin", 0.4, "margin"),
])
def test_smoother_parameters_build_a_new_smoother(active, smoother, key, value, attr):
    node, out = active("emotion_smoother", smoother=smoother, max_age=0.0)
    running = node.smoother
    assert _set(node, **{key: value}).successful
    assert node.smoother is not running and getattr(node.smoother, attr) == value
    node._process(node.screen(_emotion_array([_emotion(1)])))
    assert len(out) == 1 and out[0].emotions[0].smoother == smoother


def test_another_smoothers_parameter_is_refused(active):
    node, _ = active("emotion_smoother", smoother="hysteresis")
    running = node.smoother
    res = _set(node, **{"ema.tau": 2.0})
    assert not res.successful and "no effect with smoother 'hysteresis'" in res.reason
    assert node.smoother is running


def test_lstm_window_applies_with_a_model_that_takes_any_length(active, tmp_path):
    from test_smoothing import tiny_lstm

    path = tmp_path / "any_length.keras"
    tiny_lstm(None).save(path)
    node, _ = active("emotion_smoother", smoother="lstm", **{"lstm.model_path": str(path)})
    assert node.smoother.window == 16
    assert _set(node, **{"lstm.window": 8}).successful
    assert node.smoother.window == 8


# --- debug image -----------------------------------------------------------------------------
def test_history_applies(active):
    node, _ = active("emotion_debug_image")
    for sec in range(10):
        image = _image()
        image.header.stamp.sec = sec
        node._on_image(image)
    assert len(node._images) == 10
    assert _set(node, history=3).successful
    assert [k[0] for k in node._images] == [7, 8, 9]
    image = _image()
    image.header.stamp.sec = 10
    node._on_image(image)
    assert [k[0] for k in node._images] == [8, 9, 10]


def test_cam_parameters_apply_with_cam_and_are_refused_without(active, tiny_model_path,
                                                               monkeypatch):
    from std_msgs.msg import String

    from emotion_perception.core import cam

    plain, _ = active("emotion_debug_image")
    res = _set(plain, cam_alpha=0.9)
    assert not res.successful and "cam: false" in res.reason
    node, out = active("emotion_debug_image", cam=True, cam_model_path=str(tiny_model_path),
                       max_age=0.0)
    seen = []
    real = cam.draw_face_cams

    def spy(image, boxes, labels, extractor, margin, alpha, offset):
        seen.append((margin, alpha, offset))
        return real(image, boxes, labels, extractor, margin, alpha, offset)

    monkeypatch.setattr(cam, "draw_face_cams", spy)
    assert _set(node, cam_alpha=0.9).successful
    # the framing is the detector's, as it announces it on crop_framing (no own parameter)
    node._on_framing(String(data='{"crop_margin": 0.3, "crop_offset": -0.1, '
                                 '"crop_align": true}'))
    msg = _emotion_array([_emotion(1)])
    node._on_emotion(msg)
    image = _image(160, 120)
    image.header = msg.header
    node._on_image(image)
    assert wait_for(lambda: len(out) == 1, 60)
    assert seen == [(0.3, 0.9, -0.1)]


# --- camera ----------------------------------------------------------------------------------
def test_camera_applies_size_fps_frame_id_and_reconnect_delays(active, monkeypatch):
    from emotion_perception.nodes import camera_node

    opens = []
    real = camera_node.open_source

    def counting(*args, **kwargs):
        opens.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(camera_node, "open_source", counting)
    node, frames = active("camera", fps=30.0)
    assert wait_for(lambda: frames and frames[-1].width == 320, 30)
    assert _set(node, width=400, height=300).successful
    assert wait_for(lambda: (frames[-1].width, frames[-1].height) == (400, 300), 30)
    assert _set(node, frame_id="elsewhere").successful
    assert wait_for(lambda: frames[-1].header.frame_id == "elsewhere", 30)
    assert _set(node, fps=12.5, stall_timeout=5.0).successful
    assert wait_for(lambda: node.reader_config.get("period") == 1 / 12.5
                    and node.reader_config.get("stall_timeout") == 5.0, 30)
    # an inverted pair is refused, whichever side moves
    res = _set(node, reconnect_max_delay=0.2)
    assert not res.successful and "reconnect_max_delay" in res.reason
    res = _set(node, reconnect_initial_delay=9.0)
    assert not res.successful and "reconnect_initial_delay" in res.reason
    assert _set(node, reconnect_initial_delay=0.2, reconnect_max_delay=4.0).successful
    assert wait_for(lambda: node.reader_config.get("reconnect") == (0.2, 4.0), 30)
    n_opens = len(opens)
    assert _set(node, demo_faces=2).successful
    assert wait_for(lambda: len(opens) == n_opens + 1, 30)
    assert opens[-1][5] == 2 and node.reader_config["demo_faces"] == 2
    assert node.reconnects == 0  # reopening for new parameters is no reconnect


def test_camera_applies_max_frames_and_loop(active, tmp_path):
    import cv2
    import numpy as np

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    node, frames = active("camera", source=str(tmp_path), loop=False, width=0, height=0)
    assert wait_for(lambda: node.source_state == "ended", 30)
    assert node.published == 3
    assert _set(node, loop=True, max_frames=8).successful  # the finished reader starts again
    assert wait_for(lambda: node.source_state == "max_frames reached", 30)
    assert node.published == 8

"""Issue 18, node level: no bad message, parameter or stamp stops a node or makes it lie.

Callback-level tests drive a node's subscription callbacks and worker directly (publishers
replaced by lists); the DDS tests run nodes on an executor and talk to them over topics and the
parameter services, as a hostile publisher or ``ros2 param set`` would.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import graph_connected, wait_for

pytestmark = pytest.mark.ros

HYPOTHESIS = settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- helpers ---------------------------------------------------------------------------------
def _node(cls_name: str, name: str | None = None, namespace: str | None = None,
          cli_args: list[str] | None = None, **params):
    import importlib

    from rclpy.parameter import Parameter

    module, cls = {
        "camera": ("camera_node", "CameraNode"),
        "face_detector": ("face_detector_node", "FaceDetectorNode"),
        "emotion_classifier": ("classifier_node", "EmotionClassifierNode"),
        "emotion_smoother": ("smoother_node", "EmotionSmootherNode"),
        "emotion_debug_image": ("debug_image_node", "DebugImageNode"),
    }[cls_name]
    node_cls = getattr(importlib.import_module(f"emotion_perception.nodes.{module}"), cls)
    params.setdefault("autostart", False)
    kwargs = {"parameter_overrides": [Parameter(k, value=v) for k, v in params.items()]}
    if namespace:
        kwargs["namespace"] = namespace
    if cli_args:
        kwargs["cli_args"] = cli_args
    return node_cls(name, **kwargs)


def _activate(node) -> list:
    """Configure and activate ``node``; return the list its publisher now appends to."""
    node.trigger_configure()
    assert not node.configure_error, node.configure_error
    node.trigger_activate()
    out: list = []
    node._pub.publish = out.append
    return out


def _close(*nodes) -> None:
    for node in nodes:
        node._close_all()
        node.destroy_node()


@pytest.fixture
def nodes(rclpy_session):
    """Factory of callback-level nodes, closed after the test."""
    made = []

    def make(kind, **params):
        node = _node(kind, **params)
        made.append(node)
        return node

    yield make
    _close(*made)


@pytest.fixture
def active_classifier(rclpy_session, tiny_model_path):
    """An active classifier node (tiny model) whose output is captured: (node, outputs)."""
    node = _node("emotion_classifier", model_path=str(tiny_model_path), max_age=0.0)
    out = _activate(node)
    yield node, out
    _close(node)


@pytest.fixture
def active_smoother(rclpy_session):
    """An active EMA smoother node whose output is captured: (node, outputs)."""
    node = _node("emotion_smoother", max_age=0.0)
    out = _activate(node)
    yield node, out
    _close(node)


def _set(node, **values):
    """Set parameters as one atomic change; return the SetParametersResult."""
    from rclpy.parameter import Parameter

    return node.set_parameters_atomically([Parameter(k, value=v) for k, v in values.items()])


def _stamp(node, age: float = 0.0):
    """Return a header stamp ``age`` seconds before the node's clock."""
    from builtin_interfaces.msg import Time

    ns = node.get_clock().now().nanoseconds - int(age * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _crop(size: int = 8, value: int = 128):
    from emotion_perception.nodes.convert import array_to_image

    return array_to_image(np.full((size, size, 3), value, np.uint8), "bgr8")


def _face(face_id=1, roi=(10, 10, 20, 20), score=0.9, crop=None):
    from emotion_msgs.msg import Face
    from sensor_msgs.msg import RegionOfInterest

    x, y, w, h = roi
    return Face(face_id=face_id, detection_score=score, crop=crop or _crop(),
                roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))


def _face_array(faces, stamp=None, size=(640, 480)):
    from emotion_msgs.msg import FaceArray

    msg = FaceArray(faces=list(faces), image_width=size[0], image_height=size[1])
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = "cam"
    return msg


def _probs(top: int = 3) -> list[float]:
    p = np.full(7, 0.05, np.float64)
    p[top] = 0.7
    return p.tolist()


def _emotion(face_id=1, probs=None, roi=(10, 10, 40, 40), score=0.9, header=None):
    from emotion_msgs.msg import Emotion
    from sensor_msgs.msg import RegionOfInterest

    probs = _probs() if probs is None else list(probs)
    x, y, w, h = roi
    e = Emotion(face_id=face_id, probabilities=[float(v) for v in probs],
                label=int(np.nanargmax(probs)) if len(probs) and not np.isnan(probs).all()
                else 0, confidence=0.7, detection_score=score,
                roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
    if header is not None:
        e.header = header
    return e


def _emotion_array(emotions, stamp=None):
    from emotion_msgs.msg import EmotionArray

    msg = EmotionArray(emotions=list(emotions))
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = "cam"
    return msg


def _idle(node, timeout=60.0) -> bool:
    return wait_for(lambda: node._worker is not None and node._worker.idle(), timeout)


# --- 1. absurd ROIs: validated where faces come in, clipped wherever drawn -----------------
@HYPOTHESIS
@given(x=st.integers(0, 2**32 - 1), y=st.integers(0, 2**32 - 1),
       w=st.integers(0, 2**32 - 1), h=st.integers(0, 2**32 - 1),
       size=st.sampled_from([(640, 480), (0, 0), (1, 1), (2**31, 2**31)]))
def test_classifier_screens_any_roi(active_classifier, x, y, w, h, size):
    node, _ = active_classifier
    before = node.stats.counters["rejected"]
    _, kept = node._screen(_face_array([_face(roi=(x, y, w, h))], size=size))
    if kept:
        box = kept[0][1]
        limit_w = size[0] if size[0] else 1 << 24
        limit_h = size[1] if size[1] else 1 << 24
        assert 0 <= box.x and box.x + box.w <= limit_w and 0 <= box.y \
            and box.y + box.h <= limit_h
        assert node.stats.counters["rejected"] == before
    else:
        assert node.stats.counters["rejected"] == before + 1
        assert "roi" in node.stats.last_error


@settings(max_examples=80, deadline=None)
@given(box=st.tuples(st.integers(-2**40, 2**40), st.integers(-2**40, 2**40),
                     st.integers(0, 2**40), st.integers(0, 2**40)),
       shape=st.sampled_from([(48, 64, 3), (480, 640, 3), (1, 1, 3), (30, 20)]),
       n_probs=st.sampled_from([0, 1, 7, 40]), face_id=st.integers(0, 2**32 - 1))
def test_drawing_survives_any_box(box, shape, n_probs, face_id):
    from emotion_perception.core.annotate import draw_annotations
    from emotion_perception.core.types import Box, EmotionEstimate

    probs = np.full(n_probs, 1.0 / max(1, n_probs), np.float32)
    est = EmotionEstimate(face_id=face_id, probabilities=probs, box=Box(*box))
    image = np.full(shape, 90, np.uint8)
    out = draw_annotations(image, [est])  # must not raise
    assert out.shape[:2] == image.shape[:2]
    clipped = Box(*box).clipped(shape[1], shape[0])
    if clipped.area == 0 or n_probs == 0:
        assert (out == 90).all()  # nothing of it lies in the image


def test_guarded_callbacks_count_errors_instead_of_raising(nodes):
    node = nodes("emotion_debug_image")

    def broken(msg):
        raise RuntimeError("drawing exploded")

    node.guarded(broken)(None)  # must not raise into the executor
    assert node.stats.counters["errors"] == 1 and "exploded" in node.stats.last_error


def test_absurd_roi_over_dds_keeps_classifier_smoother_and_debug_image_alive(
        rclpy_session, spinner, tiny_model_path):
    """The defect of the issue: roi.x_offset = 2147483648 with a valid crop killed the graph."""
    import rclpy
    from emotion_msgs.msg import EmotionArray, FaceArray
    from sensor_msgs.msg import Image

    from emotion_perception.nodes.base import IMAGE_PUB_QOS, RESULT_QOS
    from emotion_perception.nodes.convert import array_to_image

    ns = "/rel_roi"
    classifier = _node("emotion_classifier", namespace=ns, autostart=True,
                       model_path=str(tiny_model_path), max_age=0.0)
    smoother = _node("emotion_smoother", namespace=ns, autostart=True, max_age=0.0)
    debug = _node("emotion_debug_image", namespace=ns, autostart=True, max_age=0.0,
                  image_qos="reliable")
    probe = rclpy.create_node("rel_roi_probe", namespace=ns)
    faces_pub = probe.create_publisher(FaceArray, "faces", RESULT_QOS)
    image_pub = probe.create_publisher(Image, "image", IMAGE_PUB_QOS)
    got_emotion: dict = {}
    got_debug: dict = {}
    probe.create_subscription(EmotionArray, "emotion",
                              lambda m: got_emotion.__setitem__(m.header.stamp.sec, m),
                              RESULT_QOS)
    probe.create_subscription(Image, "debug_image",
                              lambda m: got_debug.__setitem__(m.header.stamp.sec, m),
                              IMAGE_PUB_QOS)
    graph = [classifier, smoother, debug]
    spinner(graph + [probe])
    assert wait_for(lambda: graph_connected(graph), 30)
    assert wait_for(lambda: faces_pub.get_subscription_count() >= 1
                    and image_pub.get_subscription_count() >= 1
                    and debug._pub.get_subscription_count() >= 1
                    and smoother._pub.get_subscription_count() >= 2, 30)
    rois = {1: (2147483648, 10, 40, 40),     # starts outside the image: rejected
            2: (600, 400, 2**31, 2**31),      # reaches far outside: clipped
            3: (100, 100, 80, 80)}            # a normal face
    for sec, roi in rois.items():
        faces = _face_array([_face(face_id=sec, roi=roi)])
        faces.header.stamp.sec = sec
        image = array_to_image(np.full((480, 640, 3), 60, np.uint8), "bgr8", faces.header)
        image_pub.publish(image)
        faces_pub.publish(faces)
        assert wait_for(lambda: sec in got_emotion and sec in got_debug, 30), \
            f"frame {sec} with roi {roi} got no emotion or debug image"
    assert got_emotion[1].emotions == []
    (clipped,) = got_emotion[2].emotions
    assert (clipped.roi.x_offset, clipped.roi.y_offset, clipped.roi.width,
            clipped.roi.height) == (600, 400, 40, 80)
    assert len(got_emotion[3].emotions) == 1
    assert classifier.stats.counters["rejected"] == 1
    for node in graph:
        assert node.stats.counters["errors"] == 0, (node.get_name(), node.stats.last_error)


def test_debug_node_survives_absurd_emotions_published_directly(nodes):
    """A hostile /emotion publisher: whatever it sends, the debug node draws or rejects."""
    from emotion_perception.nodes.convert import array_to_image

    node = nodes("emotion_debug_image")
    out = _activate(node)
    bad = [_emotion(1, roi=(2147483648, 2147483648, 4294967295, 4294967295)),
           _emotion(2, probs=[]), _emotion(3, probs=[float("nan")] * 7),
           _emotion(4, probs=[1.0] * 40), _emotion(5, score=float("inf")),
           _emotion(6, roi=(630, 470, 2**23, 2**23))]
    msg = _emotion_array(bad)
    msg.header.stamp.sec = 7
    node._on_emotion(msg)
    node._on_image(array_to_image(np.zeros((480, 640, 3), np.uint8), "bgr8", msg.header))
    assert wait_for(lambda: len(out) == 1, 30)
    assert node.stats.counters["errors"] == 0, node.stats.last_error
    assert node.stats.counters["rejected"] == 5  # all but the last (clipped when drawn)


# --- 2. a runtime rebuild the plugin refuses is refused, the old object keeps running ---------
def test_lstm_window_the_model_cannot_take_is_refused_over_the_parameter_service(
        rclpy_session, spinner):
    import rclpy
    from emotion_msgs.msg import EmotionArray
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    from emotion_perception.nodes.base import RESULT_QOS

    ns = "/rel_lstm"
    smoother = _node("emotion_smoother", namespace=ns, autostart=True, smoother="lstm",
                     max_age=0.0)
    probe = rclpy.create_node("rel_lstm_probe", namespace=ns)
    pub = probe.create_publisher(EmotionArray, "emotion_raw", RESULT_QOS)
    got: dict = {}
    probe.create_subscription(EmotionArray, "emotion",
                              lambda m: got.__setitem__(m.header.stamp.sec, m), RESULT_QOS)
    client = AsyncParameterClient(probe, f"{ns}/emotion_smoother")
    spinner([smoother, probe])
    assert wait_for(lambda: graph_connected([smoother]) and smoother._pub is not None
                    and smoother._pub.get_subscription_count() >= 1, 60)
    assert wait_for(client.services_are_ready, 30)
    running = smoother.smoother
    future = client.set_parameters([Parameter("lstm.window", value=8)])
    assert wait_for(future.done, 120), "no answer from the parameter service"
    (result,) = future.result().results
    assert not result.successful and "window" in result.reason, result.reason
    assert smoother.smoother is running  # the old smoother stays
    assert smoother.get_parameter("lstm.window").value == 16  # the change did not happen
    msg = _emotion_array([_emotion(1)])
    msg.header.stamp.sec = 5
    pub.publish(msg)
    assert wait_for(lambda: 5 in got, 60), "the smoother stopped answering"
    assert got[5].emotions[0].smoother == "lstm"
    future = client.set_parameters([Parameter("max_gap", value=2.0)])  # a valid rebuild
    assert wait_for(future.done, 120)
    assert future.result().results[0].successful
    assert smoother.smoother is not running and smoother.smoother.max_gap == 2.0


# --- 3. / 4. the work per message is bounded; heavy work stays off the executor thread -------
class _CountingClassifier:
    """Stands in for the classifier: records batch sizes, returns uniform probabilities."""

    def __init__(self):
        self.batches: list[int] = []

    def classify(self, crops):
        self.batches.append(len(crops))
        return np.full((len(crops), 7), 1 / 7, np.float32), np.ones(len(crops), bool)


def _classifier_with_probe(ns: str, model_path, spinner, max_age: float):
    """Start a classifier node in ``ns`` and a probe; return (node, faces publisher, results).

    Returns once the probe's ``faces`` reach the node and the node's ``emotion_raw`` reaches
    the probe, whose messages are appended to the results list.
    """
    import rclpy
    from emotion_msgs.msg import EmotionArray, FaceArray

    from emotion_perception.nodes.base import RESULT_QOS

    node = _node("emotion_classifier", namespace=ns, autostart=True,
                 model_path=str(model_path), max_age=max_age)
    probe = rclpy.create_node(ns.strip("/") + "_probe", namespace=ns)
    pub = probe.create_publisher(FaceArray, "faces", RESULT_QOS)
    got: list = []
    probe.create_subscription(EmotionArray, "emotion_raw", got.append, RESULT_QOS)
    spinner([node, probe])
    assert wait_for(lambda: graph_connected([node]) and node._pub is not None
                    and node._pub.get_subscription_count() >= 1, 60)
    return node, pub, got


def test_ten_thousand_faces_are_bounded_and_batched_in_chunks(rclpy_session, spinner,
                                                              tiny_model_path):
    from emotion_perception.nodes.classifier_node import INFERENCE_CHUNK

    node, pub, got = _classifier_with_probe("/rel_many", tiny_model_path, spinner, max_age=0.0)
    counting = _CountingClassifier()
    node.classifier = counting
    crop = _crop(8)
    pub.publish(_face_array([_face(i + 1, crop=crop) for i in range(10_000)]))
    assert wait_for(lambda: len(got) == 1, 120)
    assert len(got[0].emotions) == 100  # max_faces
    assert [e.face_id for e in got[0].emotions] == list(range(1, 101))  # the first ones
    assert node.stats.counters["faces_dropped"] == 9_900
    assert max(counting.batches) <= INFERENCE_CHUNK and sum(counting.batches) == 100


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 70), chunk=st.integers(0, 40), seed=st.integers(0, 1000))
def test_chunked_inference_gives_the_same_estimates(n, chunk, seed):
    from emotion_perception.core.pipeline import classify_crops
    from emotion_perception.core.types import Box, TrackedFace

    class ByMean:
        def classify(self, crops):
            means = np.array([c.mean() for c in crops], np.float32).reshape(-1, 1)
            logits = means * np.arange(1, 8, dtype=np.float32) / 255.0
            p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            return p, means[:, 0] % 2 < 1.5  # some rows invalid, as a NaN model's would be

    rng = np.random.default_rng(seed)
    crops = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]
    faces = [TrackedFace(i + 1, Box(0, 0, 8, 8), 1.0, True) for i in range(n)]
    whole, bad_whole = classify_crops(ByMean(), crops, faces, 0.0)
    parts, bad_parts = classify_crops(ByMean(), crops, faces, 0.0, chunk)
    assert bad_whole == bad_parts and [e.face_id for e in whole] == [e.face_id for e in parts]
    for a, b in zip(whole, parts):
        np.testing.assert_array_equal(a.probabilities, b.probabilities)


@HYPOTHESIS
@given(n=st.integers(0, 300), limit=st.integers(1, 120))
def test_face_limit_holds_for_any_count(active_classifier, n, limit):
    node, out = active_classifier
    node.classifier = _CountingClassifier()
    assert _set(node, max_faces=limit).successful
    out.clear()
    before = node.stats.counters["faces_dropped"]
    node._process(_face_array([_face(i + 1) for i in range(n)]))
    assert len(out[0].emotions) == min(n, limit)
    assert node.stats.counters["faces_dropped"] - before == max(0, n - limit)


def test_smoother_runs_on_its_worker_and_bounds_each_message(nodes):
    node = nodes("emotion_smoother", max_age=0.0)
    out = _activate(node)
    entered, release = threading.Event(), threading.Event()
    real = node.smoother.update_many

    def slow(items):
        entered.set()
        release.wait(60)
        return real(items)

    node.smoother.update_many = slow
    msg = _emotion_array([_emotion(i + 1) for i in range(10_000)])
    on_raw = node.input_callback(node.screen)  # what its subscription calls
    caller = threading.Thread(target=on_raw, args=(msg,))
    caller.start()
    caller.join(30)
    assert not caller.is_alive(), "the subscription callback waited for the smoothing"
    assert wait_for(entered.is_set, 30)  # the worker is smoothing meanwhile
    release.set()
    assert wait_for(lambda: len(out) == 1, 30)
    assert len(out[0].emotions) == 100 and node.stats.counters["faces_dropped"] == 9_900


def test_debug_drawing_and_cam_run_on_its_worker(nodes, monkeypatch):
    from emotion_perception.nodes import debug_image_node
    from emotion_perception.nodes.convert import array_to_image

    node = nodes("emotion_debug_image")
    out = _activate(node)
    entered, release = threading.Event(), threading.Event()
    real = debug_image_node.draw_annotations

    def slow(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(debug_image_node, "draw_annotations", slow)
    msg = _emotion_array([_emotion(1)])
    node._on_emotion(msg)
    image = array_to_image(np.zeros((120, 160, 3), np.uint8), "bgr8", msg.header)
    caller = threading.Thread(target=node._on_image, args=(image,))
    caller.start()
    caller.join(30)
    assert not caller.is_alive(), "the image callback waited for the drawing"
    assert wait_for(entered.is_set, 30)
    release.set()
    assert wait_for(lambda: len(out) == 1, 30)


# --- 5. NaN / inf detection scores never reach /emotion_raw or /emotion ----------------------
def test_non_finite_scores_are_rejected_over_dds(rclpy_session, spinner, tiny_model_path):
    import rclpy
    from emotion_msgs.msg import EmotionArray, FaceArray

    from emotion_perception.nodes.base import RESULT_QOS

    ns = "/rel_nan"
    classifier = _node("emotion_classifier", namespace=ns, autostart=True,
                       model_path=str(tiny_model_path), max_age=0.0)
    smoother = _node("emotion_smoother", namespace=ns, autostart=True, max_age=0.0)
    probe = rclpy.create_node("rel_nan_probe", namespace=ns)
    faces_pub = probe.create_publisher(FaceArray, "faces", RESULT_QOS)
    raw_pub = probe.create_publisher(EmotionArray, "emotion_raw", RESULT_QOS)
    raw: dict = {}
    smoothed: dict = {}
    probe.create_subscription(EmotionArray, "emotion_raw",
                              lambda m: raw.__setitem__(m.header.stamp.sec, m), RESULT_QOS)
    probe.create_subscription(EmotionArray, "emotion",
                              lambda m: smoothed.__setitem__(m.header.stamp.sec, m),
                              RESULT_QOS)
    graph = [classifier, smoother]
    spinner(graph + [probe])
    assert wait_for(lambda: graph_connected(graph) and faces_pub.get_subscription_count() >= 1
                    and raw_pub.get_subscription_count() >= 1
                    and classifier._pub.get_subscription_count() >= 2
                    and smoother._pub.get_subscription_count() >= 1, 30)
    scores = [float("nan"), float("inf"), float("-inf"), -0.5, 1.5, 0.8]
    msg = _face_array([_face(i + 1, score=s) for i, s in enumerate(scores)])
    msg.header.stamp.sec = 1
    faces_pub.publish(msg)
    assert wait_for(lambda: 1 in raw and 1 in smoothed, 30)
    assert [e.face_id for e in raw[1].emotions] == [6]
    assert [e.face_id for e in smoothed[1].emotions] == [6]
    assert classifier.stats.counters["rejected"] == 5
    # straight onto /emotion_raw: the smoother screens too
    direct = _emotion_array([_emotion(1, score=float("nan")), _emotion(2)])
    direct.header.stamp.sec = 2
    raw_pub.publish(direct)
    assert wait_for(lambda: 2 in smoothed, 30)
    assert [e.face_id for e in smoothed[2].emotions] == [2]
    assert smoother.stats.counters["rejected"] == 1
    for e in [*raw[1].emotions, *smoothed[1].emotions, *smoothed[2].emotions]:
        assert math.isfinite(e.detection_score) and 0.0 <= e.detection_score <= 1.0


# --- 7. what the smoother drops is counted; diagnostics let a monitor see transport loss ----
@HYPOTHESIS
@given(vectors=st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True,
                                           width=32), min_size=0, max_size=9),
                        min_size=1, max_size=6))
def test_smoother_counts_every_unusable_probability_vector(active_smoother, vectors):
    node, out = active_smoother
    out.clear()
    before = node.stats.counters["rejected"]
    invalid_before = node.stats.counters["invalid_outputs"]
    msg = _emotion_array([_emotion(i + 1, probs=v) for i, v in enumerate(vectors)])

    def usable(v):
        a = np.asarray(v, np.float64)
        return a.shape == (7,) and bool(np.isfinite(a).all()) and bool((a >= 0).all()) \
            and abs(a.sum() - 1.0) < 1e-3

    n_good = sum(usable(v) for v in vectors)
    node._process(node.screen(msg))
    assert node.stats.counters["rejected"] - before == len(vectors) - n_good
    invalid = node.stats.counters["invalid_outputs"] - invalid_before
    assert len(out[0].emotions) + invalid == n_good
    for e in out[0].emotions:
        p = np.asarray(e.probabilities)
        assert np.isfinite(p).all() and abs(p.sum() - 1.0) < 1e-3


def test_smoother_reports_rejected_vectors_as_a_warning(rclpy_session, spinner):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from emotion_msgs.msg import EmotionArray

    from emotion_perception.nodes.base import RESULT_QOS

    ns = "/rel_vec"
    node = _node("emotion_smoother", namespace=ns, autostart=True, diagnostics_period=0.1,
                 max_age=0.0)
    probe = rclpy.create_node("rel_vec_probe", namespace=ns)
    pub = probe.create_publisher(EmotionArray, "emotion_raw", RESULT_QOS)
    got: dict = {}
    probe.create_subscription(EmotionArray, "emotion",
                              lambda m: got.__setitem__(m.header.stamp.sec, m), RESULT_QOS)
    diags: list = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    spinner([node, probe])
    assert wait_for(lambda: graph_connected([node]) and node._pub is not None
                    and node._pub.get_subscription_count() >= 1, 30)
    nan = [float("nan")] * 7
    negative = [-0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
    unnormalised = [0.5] * 7
    msg = _emotion_array([_emotion(1, nan), _emotion(2, negative), _emotion(3, unnormalised),
                          _emotion(4)])
    msg.header.stamp.sec = 3
    pub.publish(msg)
    assert wait_for(lambda: 3 in got, 30)
    assert [e.face_id for e in got[3].emotions] == [4]

    def status():
        for m in reversed(diags):
            for s in m.status:
                if s.hardware_id == node.get_name() and s.name.startswith(
                        f"emotion_perception: {ns}/"):
                    return s
        return None

    assert wait_for(lambda: status() is not None
                    and {kv.key: kv.value for kv in status().values}.get("rejected") == "3",
                    30)
    assert status().level == DiagnosticStatus.WARN
    keys = {kv.key for kv in status().values}
    assert {"received", "published", "input_publishers", "stale", "foreign_stamps"} <= keys


def test_camera_published_and_detector_received_give_the_transport_loss(rclpy_session,
                                                                        spinner):
    """A monitor compares the camera's "published" with the detector's "received"."""
    camera = _node("camera", namespace="/rel_loss", autostart=True, source="demo",
                   fps=30.0, width=320, height=240)
    detector = _node("face_detector", namespace="/rel_loss", autostart=True,
                     cli_args=["--ros-args", "-r", "image:=image_raw"],
                     **{"tracking.min_hits": 1})
    spinner([camera, detector])
    assert wait_for(lambda: detector.stats.counters["received"] >= 5, 60)
    detector_sub = detector.stats.snapshot()  # read first: the camera's count only grows
    snap_cam = {**camera.stats.snapshot(), **camera.diagnostics_extra()}
    assert snap_cam["published"] >= 5
    # what the detector received cannot exceed what the camera published; the difference is
    # the transport's loss (plus the frames still in flight)
    assert detector_sub["received"] <= camera.published
    # the detector's own "dropped" counts only what it discarded itself
    assert detector_sub["dropped"] + detector_sub["processed"] + detector_sub["rejected"] \
        <= detector_sub["received"]


# --- 8. malformed images are rejected before the newest-wins slot -----------------------------
def _bad_image(i: int):
    from sensor_msgs.msg import Image

    kinds = [dict(encoding="yuv_weird"), dict(step=5), dict(data=b"\0" * 7),
             dict(width=0), dict(height=5000, width=5000, step=15000)]
    kw = dict(height=48, width=64, encoding="bgr8", step=192)
    kw.update(kinds[i % len(kinds)])
    msg = Image(height=kw["height"], width=kw["width"], encoding=kw["encoding"], step=kw["step"])
    msg.data = kw.get("data", bytes(kw["step"] * kw["height"]) if kw["height"] < 100 else b"")
    return msg


def test_garbage_never_reaches_the_detectors_slot(nodes):
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.convert import array_to_image

    node = nodes("face_detector", max_image_pixels=1_000_000, max_age=0.0)
    out = _activate(node)
    seen = []
    real_submit = node._worker.submit
    node._worker.submit = lambda msg: (seen.append(msg.encoding), real_submit(msg))
    valid = 0
    for i in range(20):
        frame = array_to_image(synthetic_scene(1), "bgr8")
        frame.header.stamp.sec = 100 + i
        node._on_image(frame)
        valid += 1
        for j in range(10):
            node._on_image(_bad_image(j))
    assert seen == ["bgr8"] * valid  # only valid frames took the slot
    assert node.stats.counters["rejected"] == 200
    assert _idle(node)
    assert out and out[-1].header.stamp.sec == 119  # the last valid frame always comes out


def test_garbage_over_dds_never_displaces_a_waiting_frame(rclpy_session, spinner):
    """A valid frame waits in the slot while the worker is busy; malformed images follow.

    Each message is sent once the node has taken the previous one, so nothing is lost in the
    transport and whatever is lost is the node's doing.
    """
    import rclpy
    from emotion_msgs.msg import FaceArray
    from sensor_msgs.msg import Image

    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.nodes.base import IMAGE_PUB_QOS, RESULT_QOS
    from emotion_perception.nodes.convert import array_to_image

    ns = "/rel_flood"
    node = _node("face_detector", namespace=ns, autostart=True, image_qos="reliable",
                 max_image_pixels=1_000_000, max_age=0.0)
    probe = rclpy.create_node("rel_flood_probe", namespace=ns)
    pub = probe.create_publisher(Image, "image", IMAGE_PUB_QOS)
    got: list = []
    probe.create_subscription(FaceArray, "faces", lambda m: got.append(m.header.stamp.sec),
                              RESULT_QOS)
    spinner([node, probe])
    assert wait_for(lambda: graph_connected([node]) and pub.get_subscription_count() >= 1
                    and node._pub.get_subscription_count() >= 1, 30)
    entered, release = threading.Event(), threading.Event()
    real_detect = node.pipeline.detect

    def busy(bgr):
        if not release.is_set():
            entered.set()
            release.wait(60)
        return real_detect(bgr)

    node.pipeline.detect = busy
    frame = synthetic_scene(1)

    def send(msg, received):
        pub.publish(msg)
        assert wait_for(lambda: node.stats.counters["received"] == received, 30)

    first = array_to_image(frame, "bgr8")
    first.header.stamp.sec = 200
    send(first, 1)
    assert wait_for(entered.is_set, 30)  # the worker is busy with frame 200
    waiting = array_to_image(frame, "bgr8")
    waiting.header.stamp.sec = 201
    send(waiting, 2)  # frame 201 waits in the slot
    for j in range(10):
        send(_bad_image(j), 3 + j)
    release.set()
    assert wait_for(lambda: 201 in got, 60), f"the waiting valid frame was lost: {got}"
    assert got == [200, 201]
    assert node.stats.counters["rejected"] == 10 and node.stats.counters["dropped"] == 0
    assert node.stats.counters["errors"] == 0


# --- 11. stale inputs are dropped; foreign stamps are neither dropped nor timed --------------
def test_stale_inputs_are_dropped_and_counted(nodes, tiny_model_path):
    node = nodes("emotion_classifier", model_path=str(tiny_model_path), max_age=1.0)
    out = _activate(node)
    node.classifier = _CountingClassifier()
    node._process(_face_array([_face()], stamp=_stamp(node, 3.8)))
    assert out == [] and node.stats.counters["stale"] == 1 \
        and node.stats.counters["dropped"] == 1
    node._process(_face_array([_face()], stamp=_stamp(node, 0.0)))
    assert len(out) == 1
    assert _set(node, max_age=0.0).successful  # 0 = off
    node._process(_face_array([_face()], stamp=_stamp(node, 3.8)))
    assert len(out) == 2 and node.stats.counters["stale"] == 1


def test_stale_after_a_stall_over_dds(rclpy_session, spinner, tiny_model_path):
    """A classifier stopped and resumed (SIGSTOP/SIGCONT) must not publish old results.

    The stall is simulated by a classifier that blocks until released while newer inputs
    arrive; the input waiting in the slot then carries a stamp 3.8 s old.
    """
    node, pub, got = _classifier_with_probe("/rel_stale", tiny_model_path, spinner, max_age=2.0)
    counting = _CountingClassifier()
    entered, release = threading.Event(), threading.Event()

    class Stalled(_CountingClassifier):
        def classify(self, crops):
            entered.set()
            release.wait(60)
            return counting.classify(crops)

    node.classifier = Stalled()
    pub.publish(_face_array([_face(1)], stamp=_stamp(node, 0.0)))
    assert wait_for(entered.is_set, 30)
    pub.publish(_face_array([_face(2)], stamp=_stamp(node, 3.8)))  # waits in the slot
    assert wait_for(lambda: node.stats.counters["received"] == 2, 30)
    release.set()
    assert wait_for(lambda: node.stats.counters["stale"] == 1, 30)
    assert wait_for(lambda: len(got) == 1, 30)
    assert [e.face_id for e in got[0].emotions] == [1]


def test_foreign_stamps_are_processed_but_not_timed(nodes, tiny_model_path):
    node = nodes("emotion_classifier", model_path=str(tiny_model_path), max_age=1.0)
    out = _activate(node)
    node.classifier = _CountingClassifier()
    for stamp in (_stamp(node, 1e6), _stamp(node, -1e6)):  # a bag's past, another clock
        node._process(_face_array([_face()], stamp=stamp))
    msg = _face_array([_face()])  # unset (zero) stamp
    node._process(msg)
    assert len(out) == 3
    snap = node.stats.snapshot()
    assert snap["foreign_stamps"] == 3 and snap["stale"] == 0
    assert "latency_ms_p50" not in snap  # no latency of 1.8e12 ms
    node._process(_face_array([_face()], stamp=_stamp(node, 0.0)))
    snap = node.stats.snapshot()
    assert 0.0 <= snap["latency_ms_p50"] < 60_000


def test_bag_replay_graph_turns_max_age_off():
    from emotion_perception.bags.replay import graph_params

    specs, params = graph_params("/camera/image_raw", None, {}, True, True)
    for spec in specs:
        assert params[spec.name]["max_age"] == 0.0
    _, params = graph_params("/camera/image_raw", None,
                             {"emotion_classifier": {"max_age": 5.0}}, True, True)
    assert params["emotion_classifier"]["max_age"] == 5.0  # an explicit override wins
    # the replay merges through the one validating path (core.params.merge_params)
    with pytest.raises(ValueError, match="max_age"):
        graph_params("/camera/image_raw", None, {"emotion_classifier": {"max_age": -1.0}},
                     True, True)
    with pytest.raises(ValueError, match="no node 'nosuch'"):
        graph_params("/camera/image_raw", None, {"nosuch": {"max_age": 1.0}}, True, True)

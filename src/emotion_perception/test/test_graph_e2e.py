"""End to end over real DDS: sensor_msgs/Image in, emotion_msgs/EmotionArray out on /emotion."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO_ROOT, graph_connected, wait_for

pytestmark = pytest.mark.ros


def _graph(ns: str, model: str, smoothing: bool, extra: dict | None = None):
    from emotion_perception.graph import graph_spec, load_params_file
    from emotion_perception.live import create_nodes

    specs = graph_spec(image_topic=f"/{ns}/camera/image", smoothing=smoothing,
                       debug_image=False)
    params = load_params_file(REPO_ROOT / "config" / "emotion_perception.yaml")
    params["emotion_classifier"]["model_path"] = model
    for node, values in (extra or {}).items():
        params.setdefault(node, {}).update(values)
    return create_nodes(specs, params, namespace=f"/{ns}")


class Probe:
    """Publishes images and collects /emotion messages by stamp."""

    def __init__(self, ns: str):
        import rclpy
        from emotion_msgs.msg import EmotionArray
        from sensor_msgs.msg import Image

        from emotion_perception.nodes.base import IMAGE_PUB_QOS, RESULT_QOS

        self.node = rclpy.create_node(f"probe_{ns}")
        self.pub = self.node.create_publisher(Image, f"/{ns}/camera/image", IMAGE_PUB_QOS)
        self.got: dict[tuple[int, int], object] = {}
        self.emotion_topic = f"/{ns}/emotion"
        self.node.create_subscription(EmotionArray, self.emotion_topic,
                                      lambda m: self.got.__setitem__(
                                          (m.header.stamp.sec, m.header.stamp.nanosec), m),
                                      RESULT_QOS)

    def send(self, frame: np.ndarray, sec: int, encoding: str = "bgr8"):
        from emotion_perception.nodes.convert import array_to_image

        msg = array_to_image(frame, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 500
        msg.header.frame_id = "test_cam"
        self.pub.publish(msg)
        assert wait_for(lambda: (sec, 500) in self.got, 30), f"no /emotion for frame {sec}"
        return self.got[(sec, 500)]


def _ready(probe: Probe, nodes) -> None:
    assert wait_for(lambda: graph_connected(nodes), 30), "graph never connected"
    # both ends of every link: each node's output is seen by its consumer (the probe last)
    assert wait_for(lambda: all(n._pub.get_subscription_count() >= 1 for n in nodes)
                    and probe.pub.get_subscription_count() >= 1, 30), "outputs not matched"


@pytest.mark.parametrize("smoothing", [False, True], ids=["raw", "smoothed"])
def test_two_faces_come_out_with_stable_ids(rclpy_session, spinner, tiny_model_path,
                                            smoothing):
    from emotion_perception.core.sample_input import scene_boxes, synthetic_scene
    from emotion_perception.core.types import Box

    ns = "e2e_smooth" if smoothing else "e2e_raw"
    nodes = _graph(ns, str(tiny_model_path), smoothing)
    probe = Probe(ns)
    spinner(nodes + [probe.node])
    _ready(probe, nodes)

    ids_per_frame = []
    for i in range(6):
        t = i / 15.0
        frame, truth = synthetic_scene(2, t=t), scene_boxes(2, t=t)
        out = probe.send(frame, 100 + i)
        assert out.header.stamp.sec == 100 + i and out.header.frame_id == "test_cam"
        if i == 0:  # tracks are confirmed after min_hits=2 detections
            continue
        assert len(out.emotions) == 2, f"frame {i}: {len(out.emotions)} faces"
        for e in out.emotions:
            assert e.header.stamp.sec == 100 + i
            assert e.face_id >= 1
            probs = np.asarray(e.probabilities)
            assert abs(probs.sum() - 1.0) < 1e-4 and (probs >= 0).all()
            assert e.label == int(np.argmax(probs)) and e.confidence == pytest.approx(probs.max())
            assert e.smoothed == smoothing
            roi = Box(e.roi.x_offset, e.roi.y_offset, e.roi.width, e.roi.height)
            assert max(roi.iou(b) for b in truth) > 0.4, (roi, truth)
        ids_per_frame.append(sorted(e.face_id for e in out.emotions))
    assert len(set(ids_per_frame[0])) == 2
    assert all(ids == ids_per_frame[0] for ids in ids_per_frame), ids_per_frame


def test_rgb8_mono8_and_empty_frames(rclpy_session, spinner, tiny_model_path):
    import cv2

    from emotion_perception.core.sample_input import synthetic_scene

    ns = "e2e_enc"
    nodes = _graph(ns, str(tiny_model_path), False,
                   {"face_detector": {"tracking.min_hits": 1}})
    probe = Probe(ns)
    spinner(nodes + [probe.node])
    _ready(probe, nodes)
    frame = synthetic_scene(1)
    out = probe.send(np.ascontiguousarray(frame[:, :, ::-1]), 200, "rgb8")
    assert len(out.emotions) == 1
    out = probe.send(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), 201, "mono8")
    assert len(out.emotions) == 1
    out = probe.send(np.full((480, 640, 3), 127, np.uint8), 202)
    assert len(out.emotions) == 0

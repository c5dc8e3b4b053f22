"""The debug image node draws only while something views ``debug_image`` (its ``lazy`` parameter).

Over DDS: with no viewer the node has no image/emotion subscription (nothing is converted or
drawn); a viewer's subscription brings them (matched event), the viewer gets the drawing of a
frame published after that; when the viewer goes, the inputs go. ``lazy: false`` keeps them.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import wait_for

pytestmark = pytest.mark.ros


def _debug(namespace: str, **params):
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.debug_image_node import DebugImageNode

    params.setdefault("max_age", 0.0)
    return DebugImageNode(namespace=namespace, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])


def _subscribed(node) -> set[str]:
    return {s.topic_name.rsplit("/", 1)[-1] for s in node.subscriptions}


def test_inputs_follow_the_viewers_of_debug_image(rclpy_session, spinner):
    import rclpy
    from emotion_msgs.msg import EmotionArray
    from sensor_msgs.msg import Image

    from emotion_perception.nodes.base import IMAGE_PUB_QOS, RESULT_QOS
    from emotion_perception.nodes.convert import array_to_image

    ns = "/debug_lazy"
    node = _debug(ns, image_qos="reliable")
    probe = rclpy.create_node("debug_lazy_probe", namespace=ns)
    image_pub = probe.create_publisher(Image, "image", IMAGE_PUB_QOS)
    emotion_pub = probe.create_publisher(EmotionArray, "emotion", RESULT_QOS)
    spinner([node, probe])
    assert wait_for(lambda: node._pub is not None, 30), node.configure_error
    assert _subscribed(node) == set()  # nobody views: no input is taken
    assert node.diagnostics_extra()["drawing"] == 0

    got: list = []
    viewer = probe.create_subscription(Image, "debug_image", got.append, IMAGE_PUB_QOS)
    assert wait_for(lambda: _subscribed(node) == {"image", "emotion"}, 30)
    assert wait_for(lambda: image_pub.get_subscription_count() == 1
                    and emotion_pub.get_subscription_count() == 1, 30)
    emotions = EmotionArray()
    emotions.header.frame_id = "cam"
    emotions.header.stamp.sec = 5
    image_pub.publish(array_to_image(np.full((120, 160, 3), 80, np.uint8), "bgr8",
                                     emotions.header))
    emotion_pub.publish(emotions)
    assert wait_for(lambda: len(got) == 1, 30), node.stats.snapshot()
    assert got[0].header.stamp.sec == 5 and (got[0].height, got[0].width) == (120, 160)
    assert node.diagnostics_extra()["drawing"] == 1

    probe.destroy_subscription(viewer)
    assert wait_for(lambda: _subscribed(node) == set(), 30)  # the viewer left: inputs go
    assert wait_for(lambda: image_pub.get_subscription_count() == 0, 30)


def test_lazy_off_keeps_the_inputs_without_a_viewer(rclpy_session, spinner):
    node = _debug("/debug_eager", lazy=False)
    spinner([node])
    assert wait_for(lambda: _subscribed(node) == {"image", "emotion"}, 30), \
        node.configure_error

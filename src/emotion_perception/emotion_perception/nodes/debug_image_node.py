"""Annotated debug image: ``image`` + ``emotion`` -> ``debug_image`` (boxes, ids, labels, bars).

Images and emotions are paired by header stamp, so the drawing always matches its frame. View
it with rqt_image_view or RViz.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from emotion_msgs.msg import EmotionArray
from sensor_msgs.msg import Image

from ..core.annotate import draw_annotations
from ..core.image_conversion import ImageConversionError, to_bgr8
from .base import IMAGE_PUB_QOS, RESULT_QOS, PerceptionNode, image_sub_qos, stamp_seconds
from .convert import array_to_image, image_to_numpy, msg_to_estimate


def _key(header) -> tuple[int, int, str]:
    return int(header.stamp.sec), int(header.stamp.nanosec), header.frame_id


class DebugImageNode(PerceptionNode):
    """Draws each frame's emotions onto it."""

    NODE_NAME = "emotion_debug_image"

    def setup(self, values: dict[str, Any]) -> None:
        """Prepare the pairing caches."""
        self.values = values
        self._images: OrderedDict = OrderedDict()
        self._emotions: OrderedDict = OrderedDict()

    def open_io(self) -> None:
        """Subscribe to ``image`` and ``emotion``; publish ``debug_image``."""
        self._pub = self.add_publisher(Image, "debug_image", IMAGE_PUB_QOS)
        self.add_subscription(Image, "image", self._on_image,
                              image_sub_qos(self.values["image_qos"]))
        self.add_subscription(EmotionArray, "emotion", self._on_emotion, RESULT_QOS)

    def _remember(self, cache: OrderedDict, key, value) -> None:
        cache[key] = value
        while len(cache) > self.values["history"]:
            cache.popitem(last=False)

    def _on_image(self, msg: Image) -> None:
        self.stats.count("received")
        key = _key(msg.header)
        if key in self._emotions:
            self._draw(msg, self._emotions.pop(key))
        else:
            self._remember(self._images, key, msg)

    def _on_emotion(self, msg: EmotionArray) -> None:
        key = _key(msg.header)
        if key in self._images:
            self._draw(self._images.pop(key), msg)
        else:
            self._remember(self._emotions, key, msg)

    def _draw(self, image: Image, emotions: EmotionArray) -> None:
        t0 = time.monotonic()
        try:
            bgr = to_bgr8(image_to_numpy(image, self.values["max_image_pixels"]), image.encoding)
        except ImageConversionError as exc:
            self.stats.count("rejected")
            self.warn_limited("image", f"rejected image: {exc}")
            return
        stamp = stamp_seconds(image.header.stamp)
        canvas = draw_annotations(bgr, [msg_to_estimate(e, stamp) for e in emotions.emotions])
        if self._pub is not None:
            self._pub.publish(array_to_image(canvas, "bgr8", image.header))
        now = self.get_clock().now().nanoseconds * 1e-9
        self.stats.processed(now - stamp, time.monotonic() - t0)


def main(args: list[str] | None = None) -> None:
    """Run the debug image node."""
    from .runner import run_single
    run_single(DebugImageNode, args)

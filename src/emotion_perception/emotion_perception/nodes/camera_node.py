"""Camera driver node: publishes ``image_raw`` from a device, file, stream, folder or the demo.

A reader thread opens the source, paces files/folders/the demo at ``fps``, and reopens a
failed, unplugged or stalled source with exponential backoff (never a busy loop), reporting
reconnects on /diagnostics.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sensor_msgs.msg import Image

from ..core.sources import Backoff, FrameSource, SourceError, open_source, sleep_until
from .base import IMAGE_PUB_QOS, PerceptionNode
from .convert import array_to_image


class CameraNode(PerceptionNode):
    """Publishes BGR frames on ``image_raw``."""

    NODE_NAME = "camera"

    def setup(self, values: dict[str, Any]) -> None:
        """Remember the configuration; the source is opened by the reader thread."""
        self.cfg = values
        self.published = 0
        self.reconnects = 0
        self.source_state = "closed"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pub = None

    def open_io(self) -> None:
        """Create the publisher and start the reader thread."""
        self._pub = self.create_publisher(Image, "image_raw", IMAGE_PUB_QOS)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def close_io(self) -> None:
        """Stop the reader thread and remove the publisher."""
        if getattr(self, "_thread", None) is not None:
            self._stop.set()
            self._thread.join(5.0)
            self._thread = None
        if getattr(self, "_pub", None) is not None:
            self.destroy_publisher(self._pub)
            self._pub = None

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add source state and reconnect count."""
        return {"source": self.cfg["source"], "source_state": self.source_state,
                "reconnects": self.reconnects, "published": self.published}

    def _open(self, backoff: Backoff) -> FrameSource | None:
        while not self._stop.is_set():
            try:
                src = open_source(self.cfg["source"], self.cfg["width"], self.cfg["height"],
                                  self.cfg["fps"], self.cfg["loop"], self.cfg["demo_faces"])
                self.source_state = "open"
                return src
            except SourceError as exc:
                self.source_state = "reconnecting"
                delay = backoff.next_delay()
                self.stats.error(str(exc))
                self.warn_limited("open", f"{exc}; retrying in {delay:.1f} s")
                if not sleep_until(time.monotonic() + delay, self._stop):
                    break
        return None

    def _run(self) -> None:
        backoff = Backoff(self.cfg["reconnect_initial_delay"], self.cfg["reconnect_max_delay"])
        period = 1.0 / self.cfg["fps"]
        max_frames = self.cfg["max_frames"]
        src = self._open(backoff)
        next_t = time.monotonic()
        last_frame_t = time.monotonic()
        while src is not None and not self._stop.is_set():
            frame = src.read()
            now = time.monotonic()
            if frame is None:
                if src.finite and not self.cfg["loop"]:
                    self.get_logger().info("source ended")
                    self.source_state = "ended"
                    break
                if now - last_frame_t < self.cfg["stall_timeout"] and not src.finite:
                    self._stop.wait(0.01)
                    continue
                self.warn_limited("stall", f"source {self.cfg['source']!r} delivered no frame "
                                  f"for {now - last_frame_t:.1f} s; reopening")
                src.close()
                self.reconnects += 1
                self.source_state = "reconnecting"
                if not sleep_until(now + backoff.next_delay(), self._stop):
                    break
                src = self._open(backoff)
                last_frame_t = time.monotonic()
                continue
            backoff.reset()
            last_frame_t = now
            if not src.paced:
                if not sleep_until(next_t, self._stop):
                    break
                next_t = max(next_t + period, time.monotonic() - period)
            self._publish(frame)
            if max_frames and self.published >= max_frames:
                self.source_state = "max_frames reached"
                break
        if src is not None:
            src.close()

    def _publish(self, frame) -> None:
        pub = self._pub
        if pub is None:
            return
        msg = array_to_image(frame, "bgr8")
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg["frame_id"]
        t0 = time.monotonic()
        pub.publish(msg)
        self.published += 1
        self.stats.count("received")
        self.stats.processed(0.0, time.monotonic() - t0)


def main(args: list[str] | None = None) -> None:
    """Run the camera node."""
    from .runner import run_single
    run_single(CameraNode, args)

"""Camera driver node: publishes ``image_raw`` from a device, file, stream, folder or the demo.

A reader thread opens the source, paces files/folders/the demo at ``fps``, and reopens a
failed, unplugged or stalled source with exponential backoff (never a busy loop), reporting
reconnects on /diagnostics.

Every parameter but ``source`` can be set while the camera runs. The reader takes the new
configuration at its next frame: ``fps`` (pacing), ``loop``, ``frame_id``, ``stall_timeout``,
``max_frames`` and the reconnect delays take effect there; ``width``, ``height`` and
``demo_faces`` (and ``fps`` of a device or stream, which is requested when opening) reopen the
source, which makes a video file start over. ``reconnect_max_delay`` below
``reconnect_initial_delay`` is refused, at start-up and at runtime (move both past each other
in one atomic set, ``set_parameters_atomically``, since each set is checked on its own).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sensor_msgs.msg import Image

from ..core.sources import Backoff, SourceError, TimedReader, open_source, sleep_until
from .base import IMAGE_PUB_QOS, PerceptionNode
from .convert import array_to_image


class CameraNode(PerceptionNode):
    """Publishes BGR frames on ``image_raw``."""

    NODE_NAME = "camera"

    #: parameters the source is opened with: a change reopens it
    REOPEN_KEYS = ("width", "height", "demo_faces")

    def check_params(self, values: dict[str, Any], changed: set[str] | None) -> None:
        """Refuse a reconnect delay pair whose maximum is below its initial delay."""
        if values["reconnect_max_delay"] < values["reconnect_initial_delay"]:
            raise ValueError(f"parameter 'reconnect_max_delay' ({values['reconnect_max_delay']}"
                             " s) must be >= parameter 'reconnect_initial_delay' "
                             f"({values['reconnect_initial_delay']} s)")

    def apply_params(self, values: dict[str, Any], changed: set[str], prepared: Any) -> None:
        """Hand the new configuration to the reader thread (it applies it at its next frame).

        A reader that had finished (source ended, ``max_frames`` reached, failed) is started
        again with it, so e.g. ``loop: true`` or a larger ``max_frames`` takes effect too.
        """
        self.cfg = values
        thread = getattr(self, "_thread", None)
        done = values["max_frames"] and self.published >= values["max_frames"]
        if self._pub is not None and thread is not None and not thread.is_alive() \
                and not done:
            self._start_reader()

    def setup(self, values: dict[str, Any]) -> None:
        """Remember the configuration; the source is opened by the reader thread."""
        self.cfg = values
        #: what the reader runs with now: pacing period (s), backoff delays, frame size
        self.reader_config: dict[str, Any] = {}
        self.published = 0
        self.reconnects = 0
        self._stamped_at = 0.0  # time.monotonic() when the last frame was stamped
        self.source_state = "closed"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pub = None

    def open_io(self) -> None:
        """Create the publisher and start the reader thread."""
        self._pub = self.add_publisher(Image, "image_raw", IMAGE_PUB_QOS)
        self._start_reader()

    def _start_reader(self) -> None:
        # a fresh event per start: a reader thread that outlived a deactivate (stuck in a
        # driver call) must not be revived by clearing a shared flag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="camera",
                                        daemon=True)
        self._thread.start()

    def close_io(self) -> None:
        """Stop the reader thread and remove the publisher."""
        if getattr(self, "_thread", None) is not None:
            self._stop.set()
            self._thread.join(5.0)
            self._thread = None
        super().close_io()

    def diagnostics_extra(self) -> dict[str, Any]:
        """Add source state and reconnect count."""
        return {"source": self.cfg["source"], "source_state": self.source_state,
                "reconnects": self.reconnects, "published": self.published}

    def _read_error(self, message: str) -> None:
        self.stats.error(message)
        self.warn_limited("read", message)

    def _open(self, backoff: Backoff, stop: threading.Event) -> TimedReader | None:
        """Open the source, retrying with backoff; None when stopped first."""
        cfg = self.cfg
        while not stop.is_set():
            try:
                src = open_source(cfg["source"], cfg["width"], cfg["height"], cfg["fps"],
                                  cfg["loop"], cfg["demo_faces"])
            except Exception as exc:  # SourceError, or whatever else a driver raises
                msg = str(exc) if isinstance(exc, SourceError) \
                    else f"opening source {cfg['source']!r} failed: {type(exc).__name__}: {exc}"
                self.source_state = "reconnecting"
                self.reconnects += 1
                delay = backoff.next_delay()
                self.stats.error(msg)
                self.warn_limited("open", f"{msg}; retrying in {delay:.1f} s")
                if not sleep_until(time.monotonic() + delay, stop):
                    break
                continue
            self.source_state = "open"
            return TimedReader(src, self._read_error, name="camera_read")
        return None

    def _run(self, stop: threading.Event) -> None:
        try:
            self._loop(stop)
        except Exception as exc:  # a bug here must be reported, not end in a thread traceback
            self.source_state = "failed"
            self.stats.error(f"{type(exc).__name__}: {exc}")
            self.get_logger().error(f"camera reader stopped: {type(exc).__name__}: {exc}")

    def _reconfigure(self, applied: dict[str, Any], reader: TimedReader | None,
                     backoff: Backoff) -> tuple[Backoff, bool]:
        """Compare the configuration with the one the loop ran with.

        Return (backoff to use, whether the source must be reopened).
        """
        cfg = self.cfg
        if (cfg["reconnect_initial_delay"], cfg["reconnect_max_delay"]) != \
                (applied["reconnect_initial_delay"], applied["reconnect_max_delay"]):
            backoff = Backoff(cfg["reconnect_initial_delay"], cfg["reconnect_max_delay"])
        reopen = any(cfg[k] != applied[k] for k in self.REOPEN_KEYS)
        if cfg["fps"] != applied["fps"] and reader is not None and reader.source.paced:
            reopen = True  # devices and streams are asked for their rate when opened
        self.reader_config = {"period": 1.0 / cfg["fps"], "width": cfg["width"],
                              "height": cfg["height"], "demo_faces": cfg["demo_faces"],
                              "stall_timeout": cfg["stall_timeout"],
                              "reconnect": (backoff.initial, backoff.maximum)}
        return backoff, reopen

    def _loop(self, stop: threading.Event) -> None:
        cfg = self.cfg
        backoff = Backoff(cfg["reconnect_initial_delay"], cfg["reconnect_max_delay"])
        backoff, _ = self._reconfigure(cfg, None, backoff)
        reader = self._open(backoff, stop)
        next_t = last_frame_t = time.monotonic()
        try:
            while reader is not None and not stop.is_set():
                if self.cfg is not cfg:  # parameters changed: take them over
                    backoff, reopen = self._reconfigure(cfg, reader, backoff)
                    cfg = self.cfg
                    if reopen:
                        self.get_logger().info("parameters changed: reopening the source")
                        reader.close()
                        reader = self._open(backoff, stop)
                        next_t = last_frame_t = time.monotonic()
                        continue
                period = 1.0 / cfg["fps"]
                poll = min(0.1, cfg["stall_timeout"])
                answered, frame = reader.read(poll)
                now = time.monotonic()
                src = reader.source
                if frame is not None:
                    backoff.reset()
                    last_frame_t = now
                    if not src.paced and not sleep_until(next_t, stop):
                        break
                    if not self._publish(frame):
                        break
                    if not src.paced:
                        # Keep the average rate through small delays, but never burst: a
                        # frame that came late (a slow read, a loaded machine) is followed
                        # by the next one at least half a period after its stamp.
                        next_t = max(next_t + period, self._stamped_at + period / 2)
                    if cfg["max_frames"] and self.published >= cfg["max_frames"]:
                        self.source_state = "max_frames reached"
                        break
                    continue
                if answered and src.finite and not cfg["loop"]:
                    if getattr(src, "failure", ""):  # a truncated/corrupt file is no end
                        self.source_state = "failed"
                        self.get_logger().error(f"source failed: {src.failure}")
                    else:
                        self.get_logger().info("source ended")
                        self.source_state = "ended"
                    break
                if now - last_frame_t < cfg["stall_timeout"] and not (answered and src.finite):
                    if answered:  # a live source without a frame right now: poll gently
                        stop.wait(0.01)
                    continue
                # failed, unplugged or stalled (also a read that hangs): reopen with backoff
                self.warn_limited("stall", f"source {cfg['source']!r} delivered no frame "
                                  f"for {now - last_frame_t:.1f} s; reopening")
                reader.close()
                reader = None
                self.reconnects += 1
                self.source_state = "reconnecting"
                if not sleep_until(now + backoff.next_delay(), stop):
                    break
                reader = self._open(backoff, stop)
                last_frame_t = time.monotonic()
        finally:
            if reader is not None:
                reader.close(wait=1.0)

    def _publish(self, frame) -> bool:
        """Publish one frame; return False when the node can no longer publish."""
        pub = self._pub
        if pub is None:
            return False
        msg = array_to_image(frame, "bgr8")
        self._stamped_at = time.monotonic()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg["frame_id"]
        t0 = time.monotonic()
        try:
            pub.publish(msg)
        except Exception as exc:  # e.g. the context was shut down by a signal meanwhile
            if not self.context.ok():
                return False
            self.stats.error(f"publish failed: {type(exc).__name__}: {exc}")
            self.warn_limited("publish", f"publishing a frame failed: {exc}")
            return True
        self.published += 1
        self.stats.count("received")
        self.stats.processed(0.0, time.monotonic() - t0)
        return True


def main(args: list[str] | None = None) -> None:
    """Run the camera node."""
    from .runner import run_single
    run_single(CameraNode, args)

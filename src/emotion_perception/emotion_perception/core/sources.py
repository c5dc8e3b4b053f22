"""Frame sources for the camera node: devices, files, streams, image folders, the demo clip.

Each source has ``read() -> np.ndarray | None`` (BGR uint8, None when no frame is available
now) and ``close()``; ``open_source(spec, ...)`` picks one from the ``source`` parameter.
``None`` from a live source means "failed or stalled": the caller reopens with backoff.
:class:`TimedReader` reads on a helper thread, so a read that hangs is detected as a stall too.

A video file that stops decoding (truncated or rewritten while playing, cut short before, or
stuck) makes :meth:`CaptureSource.read` raise :class:`SourceError` saying so, and the source
keeps the message in ``failure``: the camera reports it and reopens with backoff (``loop``) or
stops in state ``failed``. FFmpeg's own log is silenced (see :func:`quiet_ffmpeg_log`).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}

#: AV_LOG_QUIET: FFmpeg prints nothing
FFMPEG_QUIET = "-8"


def quiet_ffmpeg_log() -> None:
    """Silence FFmpeg's own log unless the user chose a level (``OPENCV_FFMPEG_LOGLEVEL``).

    A damaged video makes FFmpeg print every decoding error to stderr, unthrottled (hundreds
    per second when a truncated clip loops), bypassing ROS logging. OpenCV's FFmpeg backend
    reads ``OPENCV_FFMPEG_LOGLEVEL`` (an av_log level: -8 quiet ... 48 debug) when it first
    opens a capture in the process, so this must run before that; it runs on import of this
    module. The camera reports a file that stops decoding itself, rate-limited (see
    :class:`CaptureSource`). To see FFmpeg's messages, start with
    ``OPENCV_FFMPEG_LOGLEVEL=16`` (errors) or ``24`` (warnings).
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)


quiet_ffmpeg_log()


class SourceError(RuntimeError):
    """A source that cannot be opened (missing device or file, unreadable folder)."""


class FrameSource:
    """Base class of frame sources."""

    #: True for sources that end (files, folders); False for devices and streams
    finite: bool = False
    #: True when the source paces itself (devices, streams); False when the caller must
    paced: bool = True

    def read(self) -> np.ndarray | None:
        """Return the next BGR frame, or None when none is available."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the source."""


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if width and height and frame.shape[:2] != (height, width):
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return frame


class DemoSource(FrameSource):
    """The embedded default input: the public-domain astronaut portrait, drifting slowly."""

    finite = False
    paced = False

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0,
                 n_faces: int = 1) -> None:
        from .sample_input import demo_frames

        self._frames: Iterator = demo_frames(n_frames=None, fps=fps, n_faces=n_faces,
                                             size=(height or 480, width or 640))

    def read(self) -> np.ndarray | None:
        """Return the next demo frame."""
        _, frame = next(self._frames)
        return frame


class FolderSource(FrameSource):
    """Images of a folder in name order, optionally looping."""

    finite = True
    paced = False

    def __init__(self, folder: Path, width: int = 0, height: int = 0, loop: bool = True) -> None:
        try:
            self.files = sorted(p for p in Path(folder).iterdir()
                                if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:  # unreadable or vanished folder: a source error like any other
            raise SourceError(f"cannot read image folder {folder}: {exc}") from exc
        if not self.files:
            raise SourceError(f"image folder {folder} holds no images "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.width, self.height, self.loop = width, height, loop
        self._i = 0

    def read(self) -> np.ndarray | None:
        """Return the next readable image; None at the end (when not looping)."""
        for _ in range(len(self.files)):
            if self._i >= len(self.files):
                if not self.loop:
                    return None
                self._i = 0
            path = self.files[self._i]
            self._i += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return _fit(frame, self.width, self.height)
        return None


class CaptureSource(FrameSource):
    """OpenCV VideoCapture: a device index, a video file or a stream URL.

    A video file is watched while it plays, because FFmpeg turns damage into missing or
    repeated frames, not errors: ``read()`` raises :class:`SourceError` (and sets
    ``failure``) when the file changed size, inode or vanished since it was opened (truncated,
    rewritten, still being written), when reading fails before the frame count in its header
    (cut short before it was opened; a shortfall of up to 1 % or 2 frames is taken for a
    container's estimate), or when the decoder's position stops advancing for
    ``STUCK_READS`` reads. Identical consecutive frames alone are not taken as a failure: a
    static scene (or a test clip of uniform frames) has them legitimately.
    """

    #: successful reads in a row without the frame position advancing that count as stuck
    STUCK_READS = 3

    def __init__(self, spec: str, width: int = 0, height: int = 0, fps: float = 0.0,
                 loop: bool = True) -> None:
        self.spec = spec
        self.is_device = spec.isdigit()
        self.is_file = not self.is_device and Path(spec).is_file()
        self.finite = self.is_file
        self.paced = not self.is_file
        self.width, self.height, self.loop = width, height, loop
        self.failure = ""
        self._identity = self._file_identity() if self.is_file else None
        target: int | str = int(spec) if self.is_device else spec
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            what = "camera device" if self.is_device else "video file" if self.is_file \
                else "video file or stream"
            why = " (not a video OpenCV can decode, or truncated/corrupt)" if self.is_file \
                else ""
            raise SourceError(f"cannot open {what} {spec!r}{why}")
        count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT) if self.is_file else 0.0
        self.frame_count = int(count) if count and count > 0 and count == count else 0
        self._last_pos = 0.0
        self._stuck = 0
        if self.is_device:
            if width:
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                self.cap.set(cv2.CAP_PROP_FPS, fps)

    def _file_identity(self) -> tuple[int, int]:
        st = os.stat(self.spec)
        return st.st_size, st.st_ino

    def _fail(self, message: str) -> None:
        self.failure = message
        raise SourceError(message)

    def _check_file(self) -> None:
        try:
            now = self._file_identity()
        except OSError as exc:
            self._fail(f"video file {self.spec!r} vanished while playing ({exc})")
        if now != self._identity:
            before = self._identity[0] if self._identity else 0
            what = "was replaced" if self._identity and now[1] != self._identity[1] \
                else f"changed size ({before} -> {now[0]} bytes)"
            self._fail(f"video file {self.spec!r} {what} while playing: truncated, rewritten "
                       "or still being written")

    def _early_end(self) -> str:
        """Return why a failed read of the file is not its regular end ("" when it is)."""
        pos = self.cap.get(cv2.CAP_PROP_POS_FRAMES)
        if self.frame_count and pos + max(2, 0.01 * self.frame_count) < self.frame_count:
            return (f"video file {self.spec!r} stopped decoding at frame {int(pos)} of "
                    f"{self.frame_count}: truncated or corrupt")
        return ""

    def _advanced(self) -> None:
        pos = self.cap.get(cv2.CAP_PROP_POS_FRAMES)
        if pos <= self._last_pos:
            self._stuck += 1
            if self._stuck >= self.STUCK_READS:
                self._fail(f"video file {self.spec!r} is stuck at frame {int(pos)} (the "
                           f"position did not advance for {self._stuck} reads): corrupt")
        else:
            self._stuck = 0
        self._last_pos = pos

    def read(self) -> np.ndarray | None:
        """Return the next frame; a file loops at its end when asked to.

        Raises SourceError (also kept in ``failure``) when a video file stops decoding.
        """
        if self.failure:
            raise SourceError(self.failure)
        if self.is_file:
            self._check_file()
        ok, frame = self.cap.read()
        if not ok and self.is_file:
            early = self._early_end()
            if early:
                self._fail(early)
            if self.loop:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                self._last_pos, self._stuck = 0.0, 0
                ok, frame = self.cap.read()
        if not ok or frame is None:
            return None
        if self.is_file:
            self._advanced()
        return _fit(frame, self.width, self.height)

    def close(self) -> None:
        """Release the capture."""
        self.cap.release()


def check_source(spec: str) -> str:
    """Return the stripped ``source`` spec; raise SourceError if it can never open.

    An empty spec and a path that does not exist are refused here without opening anything
    (a device index, URL, 'demo' or 'auto' can only be tried by opening it). Used by
    :func:`open_source` and by runners that should fail at once instead of retrying.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError("parameter 'source' is empty: give a device index, a file, a URL, "
                          "an image folder or 'demo'")
    path = Path(spec).expanduser()
    if spec not in ("demo", "auto") and not spec.isdigit() and "://" not in spec \
            and not path.exists():
        raise SourceError(f"source {spec!r}: no such file or folder ({path} does not exist); "
                          "parameter 'source' takes a device index, an existing file or "
                          "folder, a URL, 'demo' or 'auto'")
    return spec


def open_source(spec: str, width: int = 0, height: int = 0, fps: float = 15.0,
                loop: bool = True, demo_faces: int = 1) -> FrameSource:
    """Open the source named by the camera node's ``source`` parameter."""
    spec = check_source(spec)
    if spec == "auto":
        spec = "0" if Path("/dev/video0").exists() else "demo"
        if spec == "0":
            try:
                return CaptureSource("0", width, height, fps, loop)
            except SourceError:
                spec = "demo"
    if spec == "demo":
        return DemoSource(width, height, fps, demo_faces)
    path = Path(spec).expanduser()
    if path.is_dir():
        return FolderSource(path, width, height, loop)
    return CaptureSource(str(path) if path.exists() else spec, width, height, fps, loop)


class Backoff:
    """Exponential backoff between reconnect attempts."""

    def __init__(self, initial: float, maximum: float) -> None:
        if not initial > 0:
            raise ValueError(f"initial must be > 0 seconds, got {initial}")
        if not maximum >= initial:
            raise ValueError(f"maximum must be >= initial ({initial} s), got {maximum}")
        self.initial, self.maximum = float(initial), float(maximum)
        self.delay = initial
        self.attempts = 0

    def next_delay(self) -> float:
        """Return the wait before the next attempt and double it (up to the maximum)."""
        delay = self.delay
        self.delay = min(self.maximum, self.delay * 2.0)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start over after a success."""
        self.delay = self.initial
        self.attempts = 0


class TimedReader:
    """Calls a source's ``read()`` on a helper thread, so that a read that hangs is noticed.

    ``read(timeout)`` returns ``(True, frame_or_None)`` once the source has answered and
    ``(False, None)`` while its read is still running after ``timeout`` seconds; the next call
    keeps waiting for that same read. A stalled stream (a blocking ``cap.read()``) therefore
    cannot freeze the caller: it sees the stall and can open a new source. ``close()`` never
    blocks on the device: the source is closed on the helper thread, at once when idle or as
    soon as a hanging read returns. An exception raised by the source's ``read()`` counts as
    "no frame" and its message goes to ``on_error``.
    """

    def __init__(self, source: FrameSource, on_error: Callable[[str], None] | None = None,
                 name: str = "source_reader") -> None:
        if source is None:
            raise ValueError("source must be a FrameSource, got None")
        self.source = source
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending = False      # a read was requested and has not returned yet
        self._ready = False        # a finished read's result waits to be taken
        self._closed = False
        self._frame: np.ndarray | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> tuple[bool, np.ndarray | None]:
        """Return (answered, frame): wait at most ``timeout`` s for the source's next frame."""
        with self._cond:
            if not self._ready and not self._pending and not self._closed:
                self._pending = True
                self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._ready or self._closed, timeout):
                return False, None
            if not self._ready:  # closed
                return True, None
            frame, self._frame, self._ready = self._frame, None, False
            return True, frame

    def close(self, wait: float = 0.0) -> bool:
        """Release the source on the helper thread; True if that finished within ``wait`` s."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if wait > 0:
            self._thread.join(wait)
        return not self._thread.is_alive()

    def _report(self, message: str) -> None:
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # a reporting callback must not end the reader
                pass

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._pending or self._closed)
                    if self._closed:
                        return
                try:
                    frame = self.source.read()
                except Exception as exc:  # a driver error is a missing frame, not a crash
                    frame = None
                    self._report(f"reading the source failed: {type(exc).__name__}: {exc}")
                with self._cond:
                    self._frame, self._ready, self._pending = frame, True, False
                    self._cond.notify_all()
        finally:
            try:
                self.source.close()
            except Exception as exc:
                self._report(f"closing the source failed: {type(exc).__name__}: {exc}")


def sleep_until(deadline: float, stop_event) -> bool:
    """Sleep until ``time.monotonic() >= deadline`` unless ``stop_event`` is set first."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        return not stop_event.wait(remaining)
    return not stop_event.is_set()

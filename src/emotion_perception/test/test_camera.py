"""Camera faults and sources: missing, unplugged, stalled and hanging devices; files, folders.

The core sources are tested directly; the camera node is tested over real DDS with fake
devices (``open_source`` replaced by a controllable fake) and with real video files and image
folders written into ``tmp_path``. Every wait is on a condition (``wait_for``).
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import wait_for

from emotion_perception.core.sources import (Backoff, CaptureSource, DemoSource, FolderSource,
                                             FrameSource, SourceError, TimedReader,
                                             open_source)

_names = itertools.count()


def _value_frame(index: int, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    """A uniform BGR frame whose brightness encodes ``index`` (robust to JPEG/MPEG coding)."""
    return np.full((size[0], size[1], 3), 30 + 35 * index, np.uint8)


def _index_of(frame: np.ndarray) -> int:
    return int(round((float(frame.mean()) - 30.0) / 35.0))


def _write_video(path: Path, n: int, size: tuple[int, int] = (64, 96)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0,
                             (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        writer.write(_value_frame(i, size))
    writer.release()
    return path


def _is_subsequence(seq: list[int], of: list[int]) -> bool:
    it = iter(of)
    return all(any(x == y for y in it) for x in seq)


# --- core/sources.py without ROS ---------------------------------------------------------------

def test_backoff_doubles_up_to_the_maximum_and_resets():
    b = Backoff(0.1, 0.4)
    assert [b.next_delay() for _ in range(5)] == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4])
    assert b.attempts == 5
    b.reset()
    assert b.attempts == 0 and b.next_delay() == pytest.approx(0.1)


@pytest.mark.parametrize("initial,maximum,name", [(0.0, 1.0, "initial"), (-1.0, 1.0, "initial"),
                                                  (2.0, 1.0, "maximum")])
def test_backoff_rejects_bad_arguments_naming_them(initial, maximum, name):
    with pytest.raises(ValueError, match=name):
        Backoff(initial, maximum)


@pytest.mark.parametrize("spec", ["", "   "])
def test_empty_source_names_the_parameter(spec):
    with pytest.raises(SourceError, match="parameter 'source' is empty"):
        open_source(spec)


def test_missing_path_says_it_does_not_exist(tmp_path):
    missing = tmp_path / "no_such_video.mp4"
    with pytest.raises(SourceError) as err:
        open_source(str(missing))
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)
    assert "'source'" in str(err.value)


def test_missing_device_index_is_a_source_error():
    with pytest.raises(SourceError, match="cannot open camera device '9'"):
        open_source("9")


def test_unreadable_file_and_empty_folder_are_source_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(str(text))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(empty))


def test_folder_source_reads_in_name_order_resizes_and_loops(tmp_path):
    # written in shuffled order; names decide the order
    for name, index in [("c_2.png", 2), ("a_0.png", 0), ("d_3.jpg", 3), ("b_1.png", 1)]:
        cv2.imwrite(str(tmp_path / name), _value_frame(index, (80, 100)))
    (tmp_path / "zz_notes.txt").write_text("ignored")
    src = open_source(str(tmp_path), width=50, height=40, loop=False)
    assert isinstance(src, FolderSource) and src.finite and not src.paced
    frames = [src.read() for _ in range(4)]
    assert [_index_of(f) for f in frames] == [0, 1, 2, 3]
    assert all(f.shape == (40, 50, 3) and f.dtype == np.uint8 for f in frames)
    assert src.read() is None
    looping = FolderSource(tmp_path, loop=True)
    assert [_index_of(looping.read()) for _ in range(6)] == [0, 1, 2, 3, 0, 1]
    assert looping.read().shape == (80, 100, 3)  # width/height 0: the images' own size


def test_video_file_loops_or_ends(tmp_path):
    video = _write_video(tmp_path / "clip.avi", 5)
    src = open_source(str(video), loop=True)
    assert isinstance(src, CaptureSource) and src.finite and not src.paced
    assert [_index_of(src.read()) for _ in range(12)] == [0, 1, 2, 3, 4] * 2 + [0, 1]
    src.close()
    src = open_source(str(video), width=48, height=32, loop=False)
    frames = [src.read() for _ in range(5)]
    assert all(f is not None and f.shape == (32, 48, 3) for f in frames)
    assert src.read() is None
    src.close()


def test_demo_source_has_the_requested_size():
    src = open_source("demo", width=320, height=240)
    assert isinstance(src, DemoSource) and not src.finite
    assert src.read().shape == (240, 320, 3)


def _write_noise_video(path: Path, n: int, size: tuple[int, int] = (64, 96)) -> Path:
    """An MJPG clip of ``n`` distinct noise frames (large enough to truncate mid-stream)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0,
                             (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8))
    writer.release()
    return path


def _truncate(path: Path, fraction: float) -> None:
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * fraction))


@pytest.mark.parametrize("loop", [True, False])
def test_video_file_truncated_while_playing_raises_instead_of_looping_garbage(tmp_path, loop):
    video = _write_noise_video(tmp_path / "cut_live.avi", 60)
    src = open_source(str(video), loop=loop)
    for _ in range(10):
        assert src.read() is not None
    _truncate(video, 0.3)
    with pytest.raises(SourceError, match="cut_live.avi.*changed size") as info:
        src.read()
    assert src.failure == str(info.value)
    with pytest.raises(SourceError):  # it stays failed: no frozen or corrupt frames follow
        src.read()
    src.close()


def test_video_file_truncated_before_opening_stops_where_decoding_stops(tmp_path):
    video = _write_noise_video(tmp_path / "cut_before.avi", 60)
    _truncate(video, 0.5)
    src = open_source(str(video), loop=True)
    frames = 0
    with pytest.raises(SourceError, match=r"cut_before.avi.*stopped decoding at frame \d+ of 60"):
        for _ in range(200):  # a silent loop over the readable half would never raise
            assert src.read() is not None
            frames += 1
    assert 0 < frames < 60 and "truncated" in src.failure
    src.close()
    # an intact clip of the same kind loops without a false alarm
    whole = _write_noise_video(tmp_path / "whole.avi", 20)
    src = open_source(str(whole), loop=True)
    assert all(src.read() is not None for _ in range(70)) and not src.failure
    src.close()


def test_video_file_whose_position_stops_advancing_is_stuck(tmp_path):
    class _StuckCap:
        def __init__(self, cap):
            self.cap = cap

        def read(self):
            return True, np.zeros((8, 8, 3), np.uint8)

        def get(self, prop):
            return 5.0 if prop == cv2.CAP_PROP_POS_FRAMES else self.cap.get(prop)

        def release(self):
            self.cap.release()

    src = open_source(str(_write_noise_video(tmp_path / "stuck.avi", 10)))
    src.cap = _StuckCap(src.cap)
    src.read()  # position 5: advanced from 0
    with pytest.raises(SourceError, match="stuck at frame 5"):
        for _ in range(CaptureSource.STUCK_READS + 1):
            src.read()
    src.close()


_FFMPEG_NOISE = """
import sys
import cv2
import emotion_perception.core.sources  # noqa: F401  (sets the FFmpeg log level on import)
cap = cv2.VideoCapture(sys.argv[1])
for _ in range(60):  # what the old camera did with a truncated clip: read, rewind, read
    ok, _frame = cap.read()
    if not ok:
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
cap.release()
"""


@pytest.mark.parametrize("level,noisy", [(None, False), ("16", True)], ids=["default", "errors"])
def test_ffmpeg_decoding_errors_are_not_printed_unless_asked(tmp_path, level, noisy):
    import os
    import subprocess
    import sys

    video = _write_noise_video(tmp_path / "noisy.avi", 40)
    _truncate(video, 0.05)
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    if level is not None:
        env["OPENCV_FFMPEG_LOGLEVEL"] = level
    out = subprocess.run([sys.executable, "-c", _FFMPEG_NOISE, str(video)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # FFmpeg's default logger writes "[mjpeg @ 0x...] ..." to stderr; with a level set,
    # OpenCV's own logger writes "[OPENCV:FFMPEG:16] ..." to stdout
    text = out.stderr + out.stdout
    lines = [ln for ln in text.splitlines() if "@ 0x" in ln or "OPENCV:FFMPEG" in ln]
    assert (len(lines) >= 10) == noisy, (len(lines), text[-2000:])


class _HangingSource(FrameSource):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = threading.Event()

    def read(self):
        self.release.wait(30)
        return np.zeros((4, 4, 3), np.uint8)

    def close(self) -> None:
        self.closed.set()


def test_timed_reader_notices_a_hanging_read_and_closes_later():
    src = _HangingSource()
    reader = TimedReader(src)
    try:
        t0 = time.monotonic()
        assert reader.read(0.1) == (False, None)
        assert time.monotonic() - t0 < 5.0
        assert reader.read(0.05) == (False, None)  # still the same read
        src.release.set()
        answered, frame = reader.read(5.0)
        assert answered and frame.shape == (4, 4, 3)
    finally:
        src.release.set()
        assert reader.close(wait=5.0)
    assert src.closed.is_set()


def test_timed_reader_close_does_not_wait_for_a_hanging_read():
    src = _HangingSource()
    reader = TimedReader(src)
    assert reader.read(0.05) == (False, None)
    assert not reader.close(wait=0.05)  # the read is still hanging: close is deferred
    assert not src.closed.is_set()
    assert reader.read(0.05) == (True, None)  # a closed reader answers "no frame"
    src.release.set()
    assert wait_for(src.closed.is_set, 5.0)


def test_timed_reader_turns_read_exceptions_into_missing_frames():
    class Broken(FrameSource):
        def read(self):
            raise RuntimeError("driver exploded")

    errors: list[str] = []
    reader = TimedReader(Broken(), errors.append)
    try:
        assert reader.read(5.0) == (True, None)
        assert reader.read(5.0) == (True, None)
        assert len(errors) == 2 and "driver exploded" in errors[0]
    finally:
        reader.close(wait=5.0)


def test_timed_reader_needs_a_source():
    with pytest.raises(ValueError, match="source"):
        TimedReader(None)


# --- the camera node over DDS ------------------------------------------------------------------

class _ImageProbe:
    """Collects the camera's images and the /diagnostics of one node."""

    def __init__(self, topic: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = rclpy.create_node(f"camera_probe_{next(_names)}")
        self.images: list = []
        self.diagnostics: list = []
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        self.node.create_subscription(Image, topic, self.images.append, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      self.diagnostics.append, 50)

    def indices(self) -> list[int]:
        from emotion_perception.core.image_conversion import image_to_array

        return [_index_of(image_to_array(m)) for m in list(self.images)]

    def status_of(self, node_name: str):
        """Return the newest diagnostic status of ``node_name`` as {key: value}, or None."""
        for msg in reversed(list(self.diagnostics)):
            for status in msg.status:
                if status.hardware_id == node_name:
                    values = {kv.key: kv.value for kv in status.values}
                    values["_level"] = int.from_bytes(status.level, "little") \
                        if isinstance(status.level, bytes) else int(status.level)
                    values["_message"] = status.message
                    return values
        return None


@pytest.fixture
def camera(rclpy_session, spinner, monkeypatch):
    """Factory: start a camera node (gated until the probe listens); returns (node, probe)."""
    from rclpy.parameter import Parameter

    from emotion_perception.nodes import camera_node
    from emotion_perception.nodes.camera_node import CameraNode

    def make(open_fn=None, **params):
        tag = f"cam{next(_names)}"
        probe = _ImageProbe(f"/{tag}/image_raw")
        spin = spinner([probe.node])
        params.setdefault("autostart", False)
        params.setdefault("diagnostics_period", 0.1)
        params.setdefault("fps", 30.0)
        params.setdefault("frame_id", "test_optical_frame")
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        node = CameraNode(f"camera_{tag}", namespace=f"/{tag}",
                          parameter_overrides=overrides)
        opener = open_fn or camera_node.open_source

        def gated(*args, **kwargs):
            # start reading once the probe is matched, so no frame is published into the void
            wait_for(lambda: node._pub is None or node._pub.get_subscription_count() >= 1, 10)
            return opener(*args, **kwargs)

        monkeypatch.setattr(camera_node, "open_source", gated)
        spin.add(node)
        node.trigger_configure()
        assert not node.configure_error, node.configure_error
        node.trigger_activate()
        return node, probe

    return make


def _camera_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("camera", "camera_read")
            and t.is_alive()]


@pytest.mark.parametrize("source", ["9", "missing"], ids=["device9", "missing_file"])
def test_missing_source_retries_with_bounded_backoff(camera, tmp_path, source):
    from emotion_perception.nodes import camera_node

    if source == "missing":
        source = str(tmp_path / "unplugged.mp4")
    attempts: list[float] = []
    real = camera_node.open_source

    def counting(*args, **kwargs):
        attempts.append(time.monotonic())
        return real(*args, **kwargs)

    node, probe = camera(counting, source=source, reconnect_initial_delay=0.1,
                         reconnect_max_delay=0.4)
    assert wait_for(lambda: len(attempts) >= 6, 15), attempts
    gaps = np.diff(attempts[:6])
    # exponential backoff 0.1, 0.2, 0.4, 0.4, 0.4 s: never faster (no busy loop)
    assert (gaps >= np.array([0.1, 0.2, 0.4, 0.4, 0.4]) - 0.02).all(), gaps
    first = [t for t in attempts if t - attempts[0] <= 1.5]
    assert len(first) <= 7, f"{len(first)} attempts in 1.5 s"
    assert node.source_state == "reconnecting"
    extra = node.diagnostics_extra()
    assert extra["reconnects"] >= 5 and extra["published"] == 0
    # the 6th attempt is counted as it starts, its error once the open has failed
    assert wait_for(lambda: node.stats.snapshot()["errors"] >= 6, 5), node.stats.snapshot()
    assert source in node.stats.last_error
    # the same, as published on /diagnostics: WARN with the reason, growing counts
    assert wait_for(lambda: (probe.status_of(node.get_name()) or {}).get("source_state")
                    == "reconnecting", 10)
    first_status = probe.status_of(node.get_name())
    assert first_status["_level"] == 1 and source in first_status["_message"]
    assert wait_for(lambda: int(probe.status_of(node.get_name())["reconnects"])
                    > int(first_status["reconnects"]), 10)
    assert probe.images == []


class _FakeDevice:
    """A camera whose cable the test controls.

    While unplugged, opening fails; the open source's ``read()`` returns frames, returns None
    ("none"), raises ("raise") or blocks ("hang") depending on ``mode``.
    """

    def __init__(self) -> None:
        self.plugged = True
        self.opens: list[float] = []
        self.sources: list[_FakeSource] = []
        self.release = threading.Event()

    def open(self, spec, *args, **kwargs):
        self.opens.append(time.monotonic())
        if not self.plugged:
            raise SourceError(f"cannot open camera device {spec!r}")
        src = _FakeSource(self)
        self.sources.append(src)
        return src


class _FakeSource(FrameSource):
    finite = False
    paced = True

    def __init__(self, device: _FakeDevice) -> None:
        self.device = device
        self.mode = "ok"
        self.closed = threading.Event()
        self.reading = threading.Event()

    def read(self):
        self.reading.set()
        if self.mode == "hang":
            self.device.release.wait(30)
            return None
        self.device.release.wait(0.01)  # a device delivers at its own pace
        if self.mode == "raise":
            raise OSError("VIDIOC_DQBUF: No such device")
        return None if self.mode == "none" else _value_frame(1)

    def close(self) -> None:
        self.closed.set()


@pytest.mark.parametrize("fault", ["none", "raise", "hang"],
                         ids=["read_returns_none", "read_raises", "read_hangs"])
def test_unplugged_or_stalled_device_is_reopened_and_resumes(camera, fault):
    dev = _FakeDevice()
    node, probe = camera(dev.open, source="fake0", stall_timeout=0.5,
                         reconnect_initial_delay=0.05, reconnect_max_delay=0.2)
    try:
        assert wait_for(lambda: len(probe.images) >= 5 and node.source_state == "open", 15)
        opens, sources, reconnects = len(dev.opens), len(dev.sources), node.reconnects
        broken = dev.sources[-1]
        broken.mode = fault
        if fault != "hang":  # a hanging device is still plugged: reopening it succeeds
            dev.plugged = False
            assert wait_for(lambda: node.source_state == "reconnecting"
                            and len(dev.opens) >= opens + 3, 15), (node.source_state, dev.opens)
            gaps = np.diff(dev.opens[opens:])
            assert (gaps >= 0.05 - 0.01).all(), gaps  # backoff, never a busy loop
            assert node.diagnostics_extra()["reconnects"] >= reconnects + 3
            assert node.stats.snapshot()["errors"] >= 3
            assert broken.closed.is_set()
            dev.plugged = True
        assert wait_for(lambda: len(dev.sources) > sources, 15)
        count = len(probe.images)
        assert wait_for(lambda: len(probe.images) >= count + 5, 15), "no frames after reopen"
        assert wait_for(lambda: node.source_state == "open", 5)
        assert node.reconnects > reconnects
        if fault == "hang":
            assert not broken.closed.is_set()  # abandoned, closed once its read returns
    finally:
        dev.release.set()
    assert wait_for(lambda: all(s.closed.is_set() for s in dev.sources[:-1]), 10)


def test_deactivate_while_the_driver_hangs_is_prompt_and_reactivation_works(camera):
    dev = _FakeDevice()
    node, probe = camera(dev.open, source="fake0", stall_timeout=5.0)
    try:
        assert wait_for(lambda: len(probe.images) >= 3, 15)
        stuck = dev.sources[-1]
        stuck.mode = "hang"
        stuck.reading.clear()
        assert wait_for(stuck.reading.is_set, 5)
        t0 = time.monotonic()
        node.trigger_deactivate()
        assert time.monotonic() - t0 < 3.0, "deactivate waited for a hanging driver"
        assert not any(t.name == "camera" for t in _camera_threads())
        node.trigger_activate()
        count = len(probe.images)
        assert wait_for(lambda: len(probe.images) >= count + 3, 15)
        assert len(dev.sources) == 2
        assert [t.name for t in _camera_threads()].count("camera") == 1
    finally:
        dev.release.set()
    assert wait_for(stuck.closed.is_set, 10)


def test_video_file_loops_when_asked(camera, tmp_path):
    video = _write_video(tmp_path / "loop.avi", 6)
    node, probe = camera(source=str(video), width=0, height=0, loop=True, max_frames=15)
    assert wait_for(lambda: node.source_state == "max_frames reached", 15), node.source_state
    assert node.published == 15
    assert wait_for(lambda: len(probe.images) >= 12, 5), len(probe.images)
    got = probe.indices()
    assert _is_subsequence(got, [0, 1, 2, 3, 4, 5] * 2 + [0, 1, 2]), got
    assert any(b < a for a, b in zip(got, got[1:])), f"never looped: {got}"
    assert (probe.images[0].width, probe.images[0].height) == (96, 64)


def test_video_file_ends_without_loop(camera, tmp_path):
    video = _write_video(tmp_path / "once.avi", 6)
    node, probe = camera(source=str(video), width=0, height=0, loop=False)
    assert wait_for(lambda: node.source_state == "ended", 15), node.source_state
    assert node.published == 6 and node.reconnects == 0
    assert wait_for(lambda: len(probe.images) >= 5, 5)
    got = probe.indices()
    assert got == sorted(got) and _is_subsequence(got, list(range(6))), got


@pytest.mark.parametrize("loop", [False, True], ids=["stops", "reopens"])
def test_video_file_truncated_while_the_camera_plays_is_reported(camera, tmp_path, loop):
    video = _write_noise_video(tmp_path / "cut_cam.avi", 600)
    node, probe = camera(source=str(video), width=0, height=0, loop=loop, fps=30.0,
                         reconnect_initial_delay=0.2, reconnect_max_delay=0.4)
    assert wait_for(lambda: node.published >= 5, 15), node.source_state
    _truncate(video, 0.2)
    published = node.published
    if not loop:
        assert wait_for(lambda: node.source_state == "failed", 15), node.source_state
        assert node.published <= published + 1  # at most the frame read before the cut
    else:  # reopened with backoff: the shortened file plays until it stops decoding again
        assert wait_for(lambda: node.reconnects >= 2, 20), (node.source_state, node.reconnects)
    assert node.stats.snapshot()["errors"] >= 1
    assert "cut_cam.avi" in node.stats.last_error
    assert any(w in node.stats.last_error for w in ("changed size", "stopped decoding"))
    status = None

    def warned() -> bool:
        nonlocal status
        status = probe.status_of(node.get_name())
        return bool(status) and status["_level"] == 1 and "cut_cam.avi" in status["_message"]

    assert wait_for(warned, 10), status
    if not loop:
        assert wait_for(lambda: probe.status_of(node.get_name())["source_state"] == "failed", 10)


def test_image_folder_in_name_order_resized_with_frame_id_and_stamps(camera, tmp_path):
    for name, index in [("img_03.png", 3), ("img_01.png", 1), ("img_00.png", 0),
                        ("img_04.png", 4), ("img_02.png", 2)]:
        cv2.imwrite(str(tmp_path / name), _value_frame(index, (80, 100)))
    (tmp_path / "calibration.yaml").write_text("not an image")
    t_start = time.time()
    node, probe = camera(source=str(tmp_path), width=64, height=48, loop=False, fps=20.0)
    assert wait_for(lambda: node.source_state == "ended", 15), node.source_state
    assert node.published == 5
    assert wait_for(lambda: len(probe.images) >= 4, 5)
    t_end = time.time()
    got = probe.indices()
    assert got == sorted(got) and _is_subsequence(got, [0, 1, 2, 3, 4]), got
    stamps = []
    for msg in probe.images:
        assert (msg.width, msg.height, msg.encoding) == (64, 48, "bgr8")
        assert msg.header.frame_id == "test_optical_frame"
        stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
    assert all(t_start - 1.0 <= s <= t_end + 1.0 for s in stamps), (t_start, stamps, t_end)
    assert stamps == sorted(stamps)
    assert np.diff(stamps).min() > 0.02  # paced at fps 20 (0.05 s), not a burst


class _SlowReadSource(FrameSource):
    """A file-like source (the node paces it) whose third read takes 0.2 s."""

    finite = True
    paced = False

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def read(self):
        if self.i >= self.n:
            return None
        if self.i == 2:
            time.sleep(0.2)
        self.i += 1
        return _value_frame(self.i - 1)


def test_a_late_frame_is_not_followed_by_a_burst(camera):
    node, probe = camera(lambda *a, **k: _SlowReadSource(6), source="slow", width=0,
                         height=0, loop=False, fps=20.0)
    assert wait_for(lambda: node.source_state == "ended", 15), node.source_state
    assert wait_for(lambda: len(probe.images) >= 6, 5)
    assert probe.indices() == [0, 1, 2, 3, 4, 5]
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in probe.images]
    gaps = np.diff(stamps)
    assert gaps[1] > 0.15, gaps  # the slow read shows
    # the frame after the late one waits at least half a period (0.025 s), not 0
    assert gaps.min() > 0.02, gaps


def test_max_frames_stops_a_looping_folder(camera, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _value_frame(i))
    node, probe = camera(source=str(tmp_path), width=0, height=0, loop=True, max_frames=7)
    assert wait_for(lambda: node.source_state == "max_frames reached", 15), node.source_state
    assert node.published == 7
    assert wait_for(lambda: len(probe.images) >= 5, 5)
    got = probe.indices()
    assert len(got) <= 7 and _is_subsequence(got, [0, 1, 2, 0, 1, 2, 0]), got
    assert wait_for(lambda: not any(t.name == "camera" for t in _camera_threads()), 5)


def test_reconnect_delays_are_validated_at_configure(rclpy_session):
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.camera_node import CameraNode

    node = CameraNode("camera_bad_delays", parameter_overrides=[
        Parameter("autostart", value=False), Parameter("reconnect_initial_delay", value=2.0),
        Parameter("reconnect_max_delay", value=1.0)])
    try:
        node.trigger_configure()
        assert "reconnect_max_delay" in node.configure_error
        assert "reconnect_initial_delay" in node.configure_error
    finally:
        node.destroy_node()

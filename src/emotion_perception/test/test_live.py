"""The in-process runner ``live``: video of changing frame sizes, honest counts, exit status.

The Monitor is driven directly with Image messages of several sizes (no DDS needed); the
command itself runs as a subprocess on an image folder of mixed sizes, on a missing source
and on a topic nobody publishes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import child_env


def _decoded_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_letterbox_keeps_the_aspect_with_black_bars():
    from emotion_perception.live import letterbox

    tall = np.full((40, 20, 3), 200, np.uint8)
    out = letterbox(tall, (64, 48))
    assert out.shape == (48, 64, 3)
    cols = np.flatnonzero(out[24, :, 0] > 100)  # the image: 24 px wide, centred
    assert (cols.min(), cols.max()) == (20, 43)
    assert (out[:, :20] == 0).all() and (out[:, 44:] == 0).all()
    wide = letterbox(np.full((10, 100, 3), 90, np.uint8), (64, 48))
    rows = np.flatnonzero(wide[:, 32, 0] > 40)
    assert rows.min() > 0 and rows.max() < 47 and len(rows) in (6, 7)
    same = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(letterbox(same, (64, 48)), same)


class _FakeNode:
    """Just enough of an rclpy node for the Monitor: subscriptions are not needed here."""

    def create_subscription(self, *args, **kwargs):
        return None


def test_monitor_writes_every_frame_of_changing_sizes_and_counts_the_file(tmp_path):
    from emotion_perception.live import Monitor
    from emotion_perception.nodes.convert import array_to_image

    video = tmp_path / "mixed.mp4"
    mon = Monitor(_FakeNode(), video, quiet=True, fps=10.0)
    sizes = [(48, 64)] * 12 + [(30, 30)] * 9 + [(40, 100)] * 7 + [(48, 64)] * 2
    for i, (h, w) in enumerate(sizes):
        frame = np.full((h, w, 3), 40 + 6 * i, np.uint8)
        mon._on_image(array_to_image(frame, "bgr8"))
    mon.close()
    assert mon.video_frames == len(sizes) and mon.letterboxed == 16
    assert mon.file_frames == len(sizes)
    frames = _decoded_frames(video)
    assert len(frames) == len(sizes)
    assert all(f.shape == (48, 64, 3) for f in frames)
    # a 30x30 frame sits in the middle with black bars left and right
    boxed = frames[15].astype(int)
    assert boxed[24, 32].mean() > 100 and boxed[24, 2].mean() < 20


def test_summary_counts_the_file_not_the_attempts(tmp_path, capsys):
    from emotion_perception.live import Monitor, _summary

    mon = Monitor(_FakeNode(), tmp_path / "v.mp4", quiet=True, fps=10.0)
    mon.video_frames, mon.file_frames, mon.frames = 375, 100, 375
    _summary(mon, 1.0)
    out = capsys.readouterr()
    assert "(100 frames" in out.out and "375 frames were handed" in out.err


def test_live_on_a_missing_source_fails_at_once_naming_it(tmp_path):
    missing = tmp_path / "no_such_clip.mp4"
    res = subprocess.run([sys.executable, "-m", "emotion_perception.live", "--source",
                          str(missing), "--duration", "5"], env=child_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res
    assert str(missing) in res.stderr and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.slow
@pytest.mark.ros
def test_live_without_any_result_exits_non_zero_and_says_why(tmp_path, tiny_model_path):
    res = subprocess.run([sys.executable, "-m", "emotion_perception.live", "--image-topic",
                          "/nobody_publishes_here", "--duration", "3", "--quiet",
                          "--model-path", str(tiny_model_path), "--namespace", "/live_empty",
                          "--video", str(tmp_path / "none.mp4")],
                         env=child_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 1, (res.stdout[-2000:], res.stderr[-3000:])
    assert "no /emotion message arrived" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.ros
@pytest.mark.slow
def test_live_records_an_image_folder_of_mixed_sizes_to_its_end(tmp_path, tiny_model_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):  # the first half 160x120, the rest 120x160: the size changes
        h, w = (120, 160) if i < 8 else (160, 120)
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (h, w, 3), np.uint8))
    video = tmp_path / "mixed.mp4"
    res = subprocess.run([sys.executable, "-m", "emotion_perception.live", "--source",
                          str(folder), "--set", "camera.width=0", "--set", "camera.height=0",
                          "--set", "camera.loop=false", "--set", "camera.fps=8.0",
                          "--quiet", "--model-path", str(tiny_model_path),
                          "--namespace", "/live_mixed", "--video", str(video)],
                         env=child_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    assert "camera source ended" in res.stdout  # live stopped by itself at the folder's end
    assert "Failed to write" not in res.stderr and "Traceback" not in res.stderr
    summary = [ln for ln in res.stdout.splitlines() if "annotated video" in ln]
    assert summary, res.stdout[-2000:]
    written = int(summary[-1].rsplit("(", 1)[1].split()[0])
    frames = _decoded_frames(video)
    assert written == len(frames) > 0
    assert all(f.shape == (120, 160, 3) for f in frames)  # one size: the first image's
    assert "of them letterboxed into 160x120" in summary[-1], summary


def test_set_coerces_whole_numbers_for_double_parameters_only() -> None:
    from emotion_perception.graph import graph_spec
    from emotion_perception.live import build_parser, node_params

    def merged(*sets: str) -> dict:
        args = build_parser().parse_args([a for s in sets for a in ("--set", s)])
        return node_params(args, graph_spec())

    cam = merged("camera.fps=15", "camera.width=320", "camera.loop=false")["camera"]
    assert cam["fps"] == 15.0 and isinstance(cam["fps"], float)
    assert cam["width"] == 320 and isinstance(cam["width"], int)
    assert cam["loop"] is False
    with pytest.raises(ValueError, match="'width' must be of type int"):
        merged("camera.width=320.5")  # a float for an integer parameter: refused, named
    with pytest.raises(ValueError, match="'no_such' is not declared for node 'camera'"):
        merged("camera.no_such=3")
    with pytest.raises(ValueError, match="--set: no node 'cameraa' in this graph"):
        merged("cameraa.fps=15")


def test_video_option_empty_means_no_video():
    from pathlib import Path

    from emotion_perception.live import build_parser, video_path

    parse = build_parser().parse_args
    assert video_path(parse([])) == Path("emotion_live.mp4")
    assert video_path(parse(["--video", ""])) is None  # not Path('') == '.', a directory
    assert video_path(parse(["--video", "  "])) is None
    assert video_path(parse(["--video", "out/a.mp4"])) == Path("out/a.mp4")
    assert video_path(parse(["--no-debug-image", "--video", "a.mp4"])) is None

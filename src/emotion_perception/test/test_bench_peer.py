"""bench --peer: the side by side against the fer package, run here with fake peers (no fer)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_perception import bench_peer

# A stand-in for fer_peer.py speaking the same protocol: it records what it was given and
# reports made-up figures (1 s per frame, frame index % 3 faces), so the test knows the answer.
FAKE_PEER = """
import json, os, sys
import numpy as np
protocol = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
print("chatter on stdout must not break the protocol")
frames = np.load(sys.argv[1])
record = {"shape": list(frames.shape), "sum": int(frames.astype(np.int64).sum()),
          "kwargs": json.loads(sys.argv[2]), "runs": 0}
def emit(obj):
    protocol.write(json.dumps(obj) + "\\n")
    protocol.flush()
emit({"ready": True, "peer": "fer 0.0-fake", "versions": {"fer": "0.0-fake"},
      "settings": {"mtcnn": False, "use_tflite": True, "scale_factor": 1.1,
                   "min_neighbors": 5, "min_face_size": 50}})
for line in sys.stdin:
    if line.strip() == "quit":
        break
    record["runs"] += 1
    emit({"seconds": [1.0] * len(frames), "faces": [i % 3 for i in range(len(frames))]})
with open(os.environ["FAKE_PEER_RECORD"], "w") as f:
    json.dump(record, f)
"""


@pytest.fixture(scope="module")
def frames():
    clip, what = bench_peer.clip_frames("demo", 6)
    assert what.endswith("6 frames 640x480") and len(clip) == 6
    return clip


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "peer.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_side_by_side_with_a_fake_peer_prints_both_rows(tmp_path, frames, monkeypatch):
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_PEER_RECORD", str(record))
    res = bench_peer.side_by_side(frames, sys.executable, rounds=3,
                                  peer_script=_script(tmp_path, FAKE_PEER),
                                  peer_kwargs={"mtcnn": False})
    seen = json.loads(record.read_text())
    # the peer got the very frames our side ran on, its keyword arguments, one run per round
    assert seen["shape"] == [6, 480, 640, 3]
    assert seen["sum"] == int(np.stack(frames).astype(np.int64).sum())
    assert seen["kwargs"] == {"mtcnn": False} and seen["runs"] == 3
    peer, ours = res["peer"], res["ours"]
    assert peer["n"] == ours["n"] == 18 and peer["median_ms"] == 1000.0
    assert peer["faces_per_frame"] == 1.0  # (0 + 1 + 2) / 3 in every pass
    assert len(ours["round_median_ms"]) == 3 and ours["median_ms"] <= ours["p95_ms"]
    # the default pipeline finds the demo face (tracking confirms it from the second frame)
    assert ours["faces_per_frame"] == 1.0 and 0.9 <= ours["classified_per_frame"] <= 1.0
    assert "blazeface" in ours["label"] and "mirror TTA" in ours["label"]
    assert res["speedup"] == pytest.approx(1000.0 / ours["median_ms"])
    assert len(res["speedup_per_round"]) == 3
    text = bench_peer.report({"machine": bench_peer.cpu_description(), "clip": "the clip",
                              "side_by_side": res})
    assert "fer 0.0-fake: FER() Haar cascade" in text and "1.00x (baseline)" in text
    assert f"{res['speedup']:.2f}x" in text and "speed-up per round" in text
    assert "CPU: " in text and "load average" in text and "skipped" not in text
    # bench --targets reads this very shape
    from emotion_perception.bench_targets import _peer_check
    check = _peer_check({"clip": "the clip", "side_by_side": res}, "peer.json")
    assert check.met is not None and f"{res['speedup']:.2f}x" in check.measured


def test_a_peer_that_cannot_run_is_reported_as_skipped(tmp_path, frames, monkeypatch, capsys):
    def skipped(python: str, script: Path = bench_peer.PEER_SCRIPT) -> str:
        res = bench_peer.side_by_side(frames[:2], python, rounds=1, peer_script=script,
                                      timeout=60)
        assert res["ours"]["n"] == 2 and "speedup" not in res
        return res["peer"]["skipped"]

    assert "no --peer-python given" in skipped("")
    assert "does not exist" in skipped(str(tmp_path / "no_such_python"))
    # the real peer script in an interpreter without fer (this one) says so
    assert "fer package is not importable" in skipped(sys.executable)
    crash = _script(tmp_path, "import sys\nsys.stderr.write('boom: no model')\nsys.exit(3)\n")
    reason = skipped(sys.executable, crash)
    assert "exited (3)" in reason and "boom: no model" in reason
    # and the command itself succeeds, printing why the row is missing
    assert bench_peer.main(["--frames", "2", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "peer row skipped: no --peer-python given" in out and "ours: blazeface" in out
    assert "tracking (min_hits 2, full scan every 3)" in out  # the parameter file's default


def test_clips_demo_scenes_and_a_video_file(tmp_path, capsys):
    scenes, what = bench_peer.clip_frames("scenes", 3)
    assert len(scenes) == 3 and "textured" in what and "3 frames 640x480" in what
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (320, 240))
    for i in range(5):
        writer.write(np.full((240, 320, 3), 40 * i, np.uint8))
    writer.release()
    clip, what = bench_peer.clip_frames(str(path), 10)  # a shorter file gives fewer frames
    assert len(clip) == 5 and clip[0].shape == (240, 320, 3) and "5 frames 320x240" in what
    with pytest.raises(ValueError, match="does not exist"):
        bench_peer.clip_frames(str(tmp_path / "missing.mp4"), 3)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        bench_peer.clip_frames("demo", 0)
    assert bench_peer.main(["--clip", str(tmp_path / "missing.mp4")]) == 2
    # stills: every detection is classified at once (no still shows a face twice)
    assert bench_peer.main(["--clip", "scenes", "--frames", "3", "--rounds", "1"]) == 0
    assert "tracking (min_hits 1)" in capsys.readouterr().out

"""Bag replay over real DDS: the live graph gives the same per-frame results as offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, wait_for

from emotion_perception.bags import typestore as ts
from emotion_perception.bags.io import BagReader, LabelFace
from emotion_perception.bags.make_bag import write_bag
from emotion_perception.core.sample_input import (BACKGROUND_BGR, scene_boxes,
                                                  synthetic_scene)

pytestmark = pytest.mark.ros

NS = "/bagtest"
PARAMS_FILE = REPO_ROOT / "config" / "emotion_perception.yaml"
START_NS = 1_650_000_000 * 10**9
FPS = 15.0
# arbitrary labels; the last frame is blank and labelled "no face"
LABELS: list[int | None] = [3, 3, 3, 0, 0, 0, 5, 5, 5, None]


def _make_bag(path: Path) -> None:
    """Ten frames: one face (0-5), two faces (6-8), an empty scene (9)."""
    def items():
        for i, label in enumerate(LABELS):
            t = i / FPS
            n = 1 if i < 6 else 2 if i < 9 else 0
            if n:
                frame = synthetic_scene(n, t=t)
                boxes = scene_boxes(n, t=t)
                yield frame, [LabelFace(label, boxes[0])]
            else:
                yield np.full((480, 640, 3), BACKGROUND_BGR, np.uint8), []

    write_bag(path, items(), FPS, start_ns=START_NS, progress=False)


def _overrides(model: Path) -> dict:
    return {"face_detector": {"tracking.min_hits": 1},
            "emotion_classifier": {"model_path": str(model)},
            "emotion_smoother": {"smoother": "ema"}}


def _faces(frame: dict, key: str) -> list[tuple[int, list[int], np.ndarray]]:
    return [(f["face_id"], f["box"], np.asarray(f["probabilities"])) for f in frame[key]]


def _assert_same_predictions(offline: dict, live: dict) -> None:
    assert [f["stamp_ns"] for f in offline["frames"]] == [f["stamp_ns"] for f in live["frames"]]
    for a, b in zip(offline["frames"], live["frames"]):
        assert a["label"] == b["label"]
        for key in ("raw_faces", "faces"):
            fa, fb = _faces(a, key), _faces(b, key)
            assert len(fa) == len(fb), (a["index"], key, fa, fb)
            for (ida, boxa, pa), (idb, boxb, pb) in zip(fa, fb):
                assert ida == idb and boxa == boxb, (a["index"], key)
                np.testing.assert_allclose(pa, pb, rtol=0, atol=1e-5)


def test_offline_and_live_replay_give_the_same_predictions(
        rclpy_session, spinner, tiny_model_path: Path, tmp_path: Path):
    from emotion_perception.bags.evaluate import (evaluate_offline, evaluate_predictions,
                                                  predictions_json, resolve_params, score)
    from emotion_perception.bags.replay import (BagPlayer, BagRecorder, graph_params,
                                                wait_graph_ready, wait_recorded)
    from emotion_perception.live import create_nodes

    bag = tmp_path / "in_bag"
    _make_bag(bag)

    # offline: the core on the bag's frames
    params = resolve_params(PARAMS_FILE, _overrides(tiny_model_path))
    offline_run = evaluate_offline(bag, params, progress=False)
    offline = predictions_json(offline_run)
    assert sum(len(f["faces"]) for f in offline["frames"]) == 6 + 3 * 2  # all faces found
    assert offline["frames"][-1]["faces"] == []

    # live: graph nodes in this process, lockstep player, recorder, over DDS
    image_topic = f"{NS}/camera/image_raw"
    specs, node_params = graph_params(image_topic, PARAMS_FILE, _overrides(tiny_model_path),
                                      smoothing=True, lockstep=True)
    nodes = create_nodes(specs, node_params, namespace=NS)
    player = BagPlayer(bag, remaps={ts.DEFAULT_IMAGE_TOPIC: image_topic,
                                    ts.LABEL_TOPIC: f"{NS}/ground_truth/emotion"},
                       result_topic=f"{NS}/emotion", node_name="bagtest_player")
    out = tmp_path / "out_bag"
    recorder = BagRecorder(out, [f"{NS}/emotion", f"{NS}/emotion_raw", f"{NS}/faces",
                                 f"{NS}/ground_truth/emotion"], node_name="bagtest_recorder")
    spinner(nodes + [player, recorder])
    wait_graph_ready(player, recorder, nodes, timeout=40.0)
    stats = player.play_lockstep(timeout=20.0)
    assert stats.images == len(LABELS) and stats.results == len(LABELS)
    assert not stats.timeouts and stats.resent == 0
    assert wait_recorded(recorder, f"{NS}/emotion", len(LABELS))
    # every frame has a label message (the last one says "no face"); it goes out before its
    # image, so it is recorded by the time the image's result is
    for topic in ("emotion_raw", "faces", "ground_truth/emotion"):
        assert wait_for(lambda: recorder.counts[f"{NS}/{topic}"] == len(LABELS), 10), topic
    recorder.close()

    live_run = evaluate_predictions(bag, out, emotion_topic=f"{NS}/emotion",
                                    raw_topic=f"{NS}/emotion_raw")
    assert live_run.smoother == "ema"
    live = predictions_json(live_run)
    _assert_same_predictions(offline, live)
    a, b = score(offline_run), score(live_run)
    for name in ("raw", "smoothed"):
        for key in ("accuracy", "confusion", "flicker_per_s", "detection_rate"):
            assert a["metrics"][name][key] == b["metrics"][name][key], (name, key)
    assert b["counts"]["frames_without_output"] == 0
    assert b["counts"]["frames_several_faces"] == 3
    # the recording is a complete bag: the replayed labels are in it with their stamps
    with BagReader(out) as reader:
        stamps = [ts.stamp_to_ns(m.header.stamp)
                  for _, _, m in reader.messages([f"{NS}/ground_truth/emotion"])]
    assert stamps == [f["stamp_ns"] for f in offline["frames"]]


@pytest.mark.slow
def test_replay_run_command_end_to_end(tiny_model_path: Path, tmp_path: Path):
    """``python -m emotion_perception.bags.replay run`` in its own process and DDS domain."""
    bag = tmp_path / "in_bag"
    _make_bag(bag)
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str((int(env.get("ROS_DOMAIN_ID", "150")) + 37) % 200 + 10)
    out = tmp_path / "out_bag"
    res = subprocess.run(
        [sys.executable, "-m", "emotion_perception.bags.replay", "run", str(bag), "--out",
         str(out), "--model-path", str(tiny_model_path), "--set",
         "face_detector.tracking.min_hits=1", "--storage", "sqlite3", "--quiet"],
        capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert f"evaluated {len(LABELS)} frames" in res.stdout
    report = json.loads((tmp_path / "out_bag_eval" / "report.json").read_text())
    assert report["mode"] == "predictions" and report["counts"]["frames_without_output"] == 0
    assert report["config"]["playback"] == "lockstep"
    assert (tmp_path / "out_bag_eval" / "summary.md").is_file()
    assert next(out.glob("*.db3")).stat().st_size > 0 and (out / "metadata.yaml").is_file()


def test_play_and_record_commands_over_dds(rclpy_session, spinner, tmp_path: Path):
    """emotion_play_bag (remapped, timed) into emotion_record_bag, stopped by SIGTERM."""
    import signal

    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    bag = tmp_path / "in_bag"
    write_bag(bag, ((f, [LabelFace(i % 7, None)]) for i, f in enumerate(frames)), 10.0,
              start_ns=START_NS, progress=False)
    probe = rclpy.create_node("cli_probe")
    got: list[int] = []
    probe.create_subscription(
        Image, "/cli/camera/image_raw",
        lambda m: got.append(ts.stamp_to_ns(m.header.stamp)),
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                   history=HistoryPolicy.KEEP_LAST))
    spinner([probe])
    out = tmp_path / "rec_bag"
    cmd = [sys.executable, "-m", "emotion_perception.bags.replay"]
    recorder = subprocess.Popen(cmd + ["record", str(out), "--topics", "/cli/camera/image_raw",
                                       "/cli/ground_truth/emotion"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        play = subprocess.run(
            cmd + ["play", str(bag), "--rate", "5", "--quiet",
                   "--topic-remap", "/camera/image_raw:=/cli/camera/image_raw",
                   "--topic-remap", "/ground_truth/emotion:=/cli/ground_truth/emotion",
                   "--wait-subscribers", "2",  # the probe and the recorder
                   "--wait-topic-subscribers", "/cli/ground_truth/emotion=1"],
            capture_output=True, text=True, timeout=120)
        assert play.returncode == 0, play.stdout + play.stderr[-3000:]
        assert "published 6 images (12 messages)" in play.stdout
        assert wait_for(lambda: len(got) == 6, 10), got
        recorder.send_signal(signal.SIGTERM)
        rec_out, rec_err = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0, rec_err[-3000:]
    assert "/cli/camera/image_raw 6 msgs" in rec_out
    assert got == [START_NS + i * 100_000_000 for i in range(6)]
    with BagReader(out) as reader:  # complete: metadata.yaml and index were written
        assert reader.info.topics["/cli/ground_truth/emotion"].count == 6
        recorded = list(reader.frames("/cli/camera/image_raw", "/cli/ground_truth/emotion"))
    assert [f.stamp_ns for f in recorded] == got
    assert [f.label for f in recorded] == [i % 7 for i in range(6)]
    for f, want in zip(recorded, frames):
        assert np.array_equal(f.bgr, want)

"""Many cameras end to end, and the fleet split over DDS (issue #20, README: Across machines).

``live --cameras`` runs the many-camera graph in one process; the split runs the robot's half
(``live --cameras front,back --only camera,face_detector``) as a subprocess and the
classifier and smoother in this process: FaceArray messages cross a process (and DDS
participant) boundary, as they cross the network between a robot and the host that
classifies. The test waits for the classifier's subscriptions to match the robot's
publishers, then for each camera's /emotion; no sleep.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from conftest import (HAVE_LAUNCH, REPO_ROOT, child_env, declared_launch_arguments,
                      wait_for)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

MULTI = REPO_ROOT / "launch" / "multi.launch.py"


def test_live_runs_many_cameras_in_one_process(tmp_path, tiny_model_path):
    res = subprocess.run([sys.executable, "-m", "emotion_perception.live", "--cameras",
                          "front,back", "--source", "demo", "--frames", "20", "--quiet",
                          "--model-path", str(tiny_model_path), "--namespace", "/live_multi"],
                         env=child_env(), cwd=tmp_path, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    line = [ln for ln in res.stdout.splitlines() if "per camera frame_id" in ln]
    assert line, res.stdout[-2000:]
    assert "front_camera" in line[0] and "back_camera" in line[0]  # both cameras answered


def test_live_refuses_unknown_only_and_mixed_modes(tmp_path):
    for extra, message in ((["--only", "camera,nosuch"], "--only: no node"),
                           (["--image-topic", "/x"], "--cameras runs our cameras")):
        res = subprocess.run([sys.executable, "-m", "emotion_perception.live", "--cameras",
                              "front", *extra], env=child_env(), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and message in res.stderr, res.stderr[-2000:]


def test_robot_process_feeds_a_classifier_in_another_process(rclpy_session, spinner,
                                                             tiny_model_path, tmp_path):
    import rclpy
    from emotion_msgs.msg import EmotionArray
    from rclpy.parameter import Parameter

    from emotion_perception.nodes.base import RESULT_QOS
    from emotion_perception.nodes.classifier_node import EmotionClassifierNode
    from emotion_perception.nodes.smoother_node import EmotionSmootherNode

    ns, cams = "/split", ["front", "back"]
    robot = subprocess.Popen([sys.executable, "-m", "emotion_perception.live", "--cameras",
                              ",".join(cams), "--only", "camera,face_detector", "--source",
                              "demo", "--duration", "300", "--namespace", ns],
                             env=child_env(), cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []  # the robot's output, read as it comes (its monitor prints progress)

    def read() -> None:
        for line in robot.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        params = [Parameter("cameras", value=",".join(cams)), Parameter("max_age", value=0.0)]
        classifier = EmotionClassifierNode(namespace=ns, parameter_overrides=params + [
            Parameter("model_path", value=str(tiny_model_path))])
        smoother = EmotionSmootherNode(namespace=ns, parameter_overrides=params)
        probe = rclpy.create_node("split_probe", namespace=ns)
        got: dict[str, list] = {c: [] for c in cams}
        for c in cams:
            probe.create_subscription(EmotionArray, f"{c}/emotion", got[c].append, RESULT_QOS)
        spinner([classifier, smoother, probe])

        def matched() -> bool:  # the robot's detectors publish what our classifier reads
            assert robot.poll() is None, "".join(lines)[-3000:]
            subs = list(classifier.subscriptions)
            return len(subs) == 2 and all(s.get_publisher_count() >= 1 for s in subs)

        assert wait_for(matched, 180), "the robot process's faces never matched"
        assert wait_for(lambda: all(got[c] for c in cams), 120), {c: len(v)
                                                                  for c, v in got.items()}
        for c in cams:
            assert got[c][-1].header.frame_id == f"{c}_camera"
        assert classifier.camera_stats.counts["front"]["published"] >= 1

        def monitor_matched() -> bool:  # the robot's live monitor listens to our /emotion too
            pubs = [p for p in smoother.publishers if p.topic_name.endswith("/emotion")]
            return len(pubs) == len(cams) and all(p.get_subscription_count() >= 2 for p in pubs)

        assert wait_for(monitor_matched, 120), "the robot's monitor never subscribed to /emotion"
        # Matching is seen from each side at its own time: our publisher can know the robot's
        # reader before that reader accepts our writer. The robot's monitor prints a progress
        # line ("[    n] ...") for the messages it receives: wait for it, not for a count here.
        assert wait_for(lambda: any(re.match(r"\[\s*\d+\]", ln) for ln in lines), 120), \
            "".join(lines)[-3000:]
    finally:
        if robot.poll() is None:
            os.killpg(robot.pid, signal.SIGINT)
        robot.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    # the robot's own monitor saw the host's /emotion come back: live exits 0
    assert robot.returncode == 0, out[-3000:]


def test_multi_launch_description_declares_its_documented_arguments():
    declared, mod = declared_launch_arguments(MULTI)
    assert declared == set(mod.ARGUMENTS) >= {"cameras", "sources", "source", "smoothing"}
    readme = (REPO_ROOT / "README.md").read_text()
    for name in ("cameras", "sources"):
        assert f"`{name}`" in readme, f"multi.launch.py argument {name} is not in README.md"


@pytest.mark.skipif(not HAVE_LAUNCH, reason="ROS 2 launch/launch_ros/ros2cli are not installed "
                    "(not on PyPI)")
def test_multi_launch_serves_every_camera(rclpy_session, spinner, tiny_model_path):
    """ros2 launch of this checkout's multi.launch.py: each camera's /emotion arrives."""
    import rclpy
    from emotion_msgs.msg import EmotionArray

    from emotion_perception.nodes.base import RESULT_QOS

    env = child_env()
    for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(var, None)
    probe = rclpy.create_node("multi_launch_probe")
    got: dict[str, list] = {c: [] for c in ("a", "b")}
    for c in got:
        probe.create_subscription(EmotionArray, f"/mlaunch/{c}/emotion", got[c].append,
                                  RESULT_QOS)
    spinner([probe])
    proc = subprocess.Popen(["ros2", "launch", str(MULTI), "cameras:=a,b",
                             f"model_path:={tiny_model_path}", "namespace:=/mlaunch"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        assert wait_for(lambda: proc.poll() is None and all(got.values()), 240), \
            {c: len(v) for c, v in got.items()}
        assert got["a"][-1].header.frame_id == "a_camera"
        assert got["b"][-1].header.frame_id == "b_camera"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out[-3000:]

"""launch/live.launch.py: static checks always; a real launch where `launch` is importable."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import REPO_ROOT

LAUNCH = REPO_ROOT / "launch" / "live.launch.py"


def _arguments() -> set[str]:
    tree = ast.parse(LAUNCH.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS":
            return {k.value for k in node.value.keys}
    raise AssertionError("ARGUMENTS not found")


def test_launch_arguments_are_the_documented_ones():
    args = _arguments()
    assert {"source", "image_topic", "detector", "classifier", "model_path", "smoothing",
            "smoother", "debug_image", "namespace", "params_file"} <= args
    readme = (REPO_ROOT / "README.md").read_text()
    for name in args:
        assert f"`{name}`" in readme, f"launch argument {name} is not documented in README.md"


@pytest.mark.skipif(importlib.util.find_spec("launch") is None
                    or importlib.util.find_spec("launch_ros") is None,
                    reason="ROS 2 launch is not installed (it is not on PyPI)")
def test_launch_description_declares_arguments():
    spec = importlib.util.spec_from_file_location("live_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from launch.actions import DeclareLaunchArgument

    ld = mod.generate_launch_description()
    declared = {a.name for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    assert declared == _arguments()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ros2") is None, reason="ros2 CLI is not installed")
def test_ros2_launch_publishes_emotion(tiny_model_path):
    env = dict(os.environ)
    proc = subprocess.Popen(["ros2", "launch", "emotion_perception", "live.launch.py",
                             "source:=demo", f"model_path:={tiny_model_path}",
                             "debug_image:=false"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        out = ""
        while time.monotonic() < deadline:
            res = subprocess.run(["ros2", "topic", "echo", "/emotion", "--once",
                                  "--field", "header.frame_id"], env=env, capture_output=True,
                                 text=True, timeout=30)
            out = res.stdout
            if "camera" in out:
                break
        assert "camera" in out, out
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)

"""launch/*.launch.py: static checks always; real launches where ROS 2 launch is installed.

The real launches (ros2 launch of this checkout's launch files) need `launch`, `launch_ros`
and ros2cli, which are not on PyPI: the project's CI skips them with the reason. They check
what a user sees: replay with record:= leaves a finished bag, two SIGINTs (terminal plus
launch's forwarding) end every node cleanly, a missing params_file or a node that cannot
configure stops the launch with exit code 1 and the reason.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (HAVE_LAUNCH, REPO_ROOT, child_env, declared_launch_arguments,
                      wait_for)

LAUNCH = REPO_ROOT / "launch" / "live.launch.py"
REPLAY = REPO_ROOT / "launch" / "replay.launch.py"
needs_launch = pytest.mark.skipif(
    not HAVE_LAUNCH, reason="ROS 2 launch/launch_ros/ros2cli are not installed (not on PyPI)")


SUPPORT = REPO_ROOT / "src" / "emotion_perception" / "emotion_perception" / "launch_support.py"


def _dict_keys(path: Path, name: str) -> set[str]:
    """Return the keys of the module-level dict ``name`` in ``path``, read without importing.

    ``**OTHER`` inside it is resolved in ``path`` or, failing that, in launch_support.py (the
    launch files spread its GRAPH_ARGUMENTS): the files import ROS 2 launch, absent here.
    """
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == name:
            keys: set[str] = set()
            for key, value in zip(node.value.keys, node.value.values):
                if key is not None:
                    keys.add(key.value)
                    continue
                try:
                    keys |= _dict_keys(path, value.id)
                except AssertionError:
                    keys |= _dict_keys(SUPPORT, value.id)
            return keys
    raise AssertionError(f"{name} not found in {path.name}")


def _arguments(path: Path = LAUNCH) -> set[str]:
    return _dict_keys(path, "ARGUMENTS")


def test_launch_arguments_are_the_documented_ones():
    args = _arguments()
    assert {"source", "image_topic", "detector", "classifier", "model_path", "smoothing",
            "smoother", "debug_image", "namespace", "params_file", "yunet_model",
            "dds_profile"} <= args
    assert {"bag", "record", "yunet_model", "dds_profile", "params_file"} <= _arguments(REPLAY)
    readme = (REPO_ROOT / "README.md").read_text()
    for name in args | _arguments(REPLAY):
        assert f"`{name}`" in readme, f"launch argument {name} is not documented in README.md"


@pytest.mark.parametrize("path", [LAUNCH, REPLAY], ids=lambda p: p.name)
def test_launch_files_start_real_executables_not_ros2_run(path):
    """A `ros2 run` wrapper swallows launch's SIGINT and orphans the real process."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [e.value for e in node.elts[:2] if isinstance(e, ast.Constant)]
            assert items != ["ros2", "run"], f"{path.name}:{node.lineno} starts `ros2 run`"


def test_shipped_dds_profile_is_installed_and_valid():
    import xml.etree.ElementTree as ET

    profile = REPO_ROOT / "config" / "fastdds_shm.xml"
    root = ET.parse(profile).getroot()
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    sizes = [int(e.text) for e in root.iterfind(".//f:transport_descriptor/f:segment_size", ns)]
    assert sizes and min(sizes) >= 4 * 640 * 480 * 3, "the segment must hold several frames"
    default = root.find(".//f:participant[@is_default_profile='true']", ns)
    assert default is not None, "rmw_fastrtps applies only the default participant profile"
    used = {e.text for e in default.iterfind(".//f:userTransports/f:transport_id", ns)}
    kinds = {d.findtext("f:transport_id", namespaces=ns): d.findtext("f:type", namespaces=ns)
             for d in root.iterfind(".//f:transport_descriptor", ns)}
    assert {kinds[t] for t in used} == {"SHM", "UDPv4"}  # UDP: discovery, other hosts
    setup = (REPO_ROOT / "src" / "emotion_perception" / "setup.py").read_text()
    assert 'glob("config/*.xml")' in setup


@pytest.mark.parametrize("path", [LAUNCH, REPLAY], ids=lambda p: p.name)
def test_launch_description_declares_arguments(path):
    declared, _ = declared_launch_arguments(path)
    assert declared == _arguments(path)


@pytest.mark.slow
@needs_launch
def test_ros2_launch_publishes_emotion(tiny_model_path):
    """The installed package (share/emotion_perception/launch) as a user runs it."""
    env = _launch_env()
    proc = subprocess.Popen(["ros2", "launch", "emotion_perception", "live.launch.py",
                             "source:=demo", f"model_path:={tiny_model_path}",
                             "debug_image:=false", "namespace:=/launch_echo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240  # a loaded 2-core machine: TensorFlow starts slowly
        out = ""
        while time.monotonic() < deadline and "camera" not in out and proc.poll() is None:
            try:
                out = subprocess.run(["ros2", "topic", "echo", "/launch_echo/emotion", "--once",
                                      "--field", "header.frame_id"], env=env,
                                     capture_output=True, text=True, timeout=60).stdout
            except subprocess.TimeoutExpired:  # nothing published yet: ask again
                out = ""
        assert "camera" in out, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0


# -- real launches --------------------------------------------------------------------------
def _launch_env() -> dict[str, str]:
    """The child environment without a Fast DDS profile: the launch files' default is tested."""
    return child_env(unset=("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"))


class _Launch:
    """`ros2 launch FILE ARGS` in a session of its own (a terminal's process group)."""

    def __init__(self, path: Path, *args: str) -> None:
        self.proc = subprocess.Popen(["ros2", "launch", str(path), *args], env=_launch_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        """Return the output so far (all of it once the launch has exited)."""
        if self.proc.poll() is not None:
            self._pump.join(10)
        return "".join(self.lines)

    def pids(self) -> list[int]:
        """Return the pids launch reported as started."""
        return [int(line.split("pid [", 1)[1].split("]")[0]) for line in list(self.lines)
                if "process started with pid [" in line]

    def wait(self, timeout: float) -> int:
        """Wait for the launch to exit; return its exit code."""
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Stop whatever is still running (SIGINT to the group, then SIGKILL)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


@needs_launch
@pytest.mark.slow
def test_two_sigints_on_live_launch_end_every_node_cleanly(rclpy_session, spinner,
                                                           tiny_model_path):
    """Ctrl-C twice in a terminal: no traceback, no 'process has died', launch exits 0."""
    from emotion_msgs.msg import EmotionArray

    ns = "/launch_sigint"
    got: list[int] = []
    probe = rclpy_session.create_node("sigint_probe", namespace=ns)
    probe.create_subscription(EmotionArray, "emotion", lambda m: got.append(1), 10)
    spinner([probe])
    launch = _Launch(LAUNCH, "source:=demo", f"model_path:={tiny_model_path}",
                     f"namespace:={ns}")
    try:
        assert wait_for(lambda: bool(got) or launch.proc.poll() is not None, 240, 0.1) \
            and got, launch.text()[-4000:]
        pids = launch.pids()
        assert len(pids) == 5, launch.text()[-4000:]
        shipped = Path(REPO_ROOT / "config" / "fastdds_shm.xml").resolve()
        for pid in pids:  # every node process runs with the shipped Fast DDS profile
            assert Path(_environ(pid)["FASTDDS_DEFAULT_PROFILES_FILE"]).resolve() == shipped
        os.killpg(launch.proc.pid, signal.SIGINT)  # the terminal's Ctrl-C (launch forwards it)
        os.killpg(launch.proc.pid, signal.SIGINT)  # and a second one during the shutdown
        rc = launch.wait(90)
    finally:
        launch.close()
    out = launch.text()
    assert rc == 0, out[-4000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-4000:]
    assert "process has died" not in out, out[-4000:]
    assert out.count("process has finished cleanly") == 5, out[-4000:]


@needs_launch
@pytest.mark.slow
def test_replay_launch_with_record_leaves_a_finished_bag(tiny_model_path, tmp_path):
    """The recorder gets launch's SIGINT itself and finishes the bag (index, metadata.yaml)."""
    from rosbags.rosbag2 import Reader

    from test_bag_replay import LABELS, _make_bag

    bag, out = tmp_path / "in_bag", tmp_path / "out_bag"
    _make_bag(bag)
    launch = _Launch(REPLAY, f"bag:={bag}", f"record:={out}", f"model_path:={tiny_model_path}")
    try:
        rc = launch.wait(300)  # the launch ends itself when the player is done
    finally:
        launch.close()
    text = launch.text()
    assert rc == 0, text[-4000:]
    assert "emotion_record_bag: wrote" in text, text[-4000:]
    assert "process has died" not in text and "Traceback" not in text, text[-4000:]
    assert (out / "metadata.yaml").is_file(), sorted(p.name for p in out.iterdir())
    with Reader(out) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts == {"/emotion": len(LABELS), "/emotion_raw": len(LABELS)}, counts
        read = sum(1 for _ in reader.messages())
    assert read == 2 * len(LABELS)


@needs_launch
def test_missing_params_file_stops_the_launch(tmp_path):
    missing = tmp_path / "nope.yaml"
    res = subprocess.run(["ros2", "launch", str(LAUNCH), f"params_file:={missing}",
                          "source:=demo"], env=_launch_env(), capture_output=True, text=True,
                         timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert f"params_file:={missing}: no such file" in out
    assert "process started" not in out  # nothing ran on default parameters


@needs_launch
@pytest.mark.slow
@pytest.mark.parametrize("yunet_model, message", [
    ("", "yunet.model_path is empty"),
    ("/no/such/yunet.onnx", "yunet.model_path '/no/such/yunet.onnx' does not exist")],
    ids=["no-model", "missing-model"])
def test_node_that_cannot_configure_stops_the_launch(tiny_model_path, yunet_model, message):
    """detector:=yunet without its model: the detector exits 1, the whole launch stops."""
    model = [f"yunet_model:={yunet_model}"] if yunet_model else []
    res = subprocess.run(["ros2", "launch", str(LAUNCH), "source:=demo", "detector:=yunet",
                          *model, f"model_path:={tiny_model_path}",
                          "debug_image:=false", "namespace:=/launch_yunet"],
                         env=_launch_env(), capture_output=True, text=True, timeout=240)
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-4000:]
    assert message in out, out[-4000:]
    assert "face_detector (face_detector_node-2) exited with code 1" in out, out[-4000:]
    assert "stopping the launch" in out
    if not yunet_model:
        assert "yunet_model:=" in out  # says which launch argument to give
    assert "Traceback" not in out, out[-4000:]


@needs_launch
def test_dds_profile_argument(tmp_path, monkeypatch):
    from launch.actions import LogInfo, SetEnvironmentVariable

    from emotion_perception.launch_support import PROFILE_VARS, dds_profile_actions

    shipped = str(REPO_ROOT / "config" / "fastdds_shm.xml")
    for var in PROFILE_VARS:
        monkeypatch.delenv(var, raising=False)
    actions = dds_profile_actions("auto", shipped)
    assert all(isinstance(a, SetEnvironmentVariable) for a in actions) and len(actions) == 2
    assert dds_profile_actions("none", shipped) == []
    mine = tmp_path / "mine.xml"
    mine.write_text("<profiles/>")
    assert len(dds_profile_actions(str(mine), shipped)) == 2
    with pytest.raises(RuntimeError, match="no such file"):
        dds_profile_actions(str(tmp_path / "missing.xml"), shipped)
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(mine))  # the user's own wins
    kept = dds_profile_actions("auto", shipped)
    assert len(kept) == 1 and isinstance(kept[0], LogInfo)

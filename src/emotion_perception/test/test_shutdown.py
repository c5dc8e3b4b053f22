"""Clean shutdown: the live runner on SIGINT/SIGTERM, and every node's lifecycle walk."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import child_env, wait_for

pytestmark = pytest.mark.ros


class _Pump:
    """Reads a pipe on a thread, so the child never blocks on a full pipe."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self, timeout: float = 10.0) -> str:
        self._thread.join(timeout)
        return "".join(self.lines)


def _count_frames(path: Path) -> tuple[int, int]:
    """Return (frames decoded one by one until the end, frame count in the container)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} cannot be opened: the file was not finished"
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame is not None and frame.ndim == 3
        n += 1
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return n, total


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_live_runner_exits_cleanly_and_finishes_the_video(tmp_path, tiny_model_path, sig):
    video = tmp_path / "out.mp4"
    # --duration keeps the demo running until the signal (without it the demo stops at 150)
    cmd = [sys.executable, "-m", "emotion_perception.live", "--source", "demo", "--frames", "0",
           "--duration", "300", "--model-path", str(tiny_model_path), "--video", str(video),
           "--namespace", f"/shutdown_{sig.name.lower()}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(), cwd=tmp_path)
    out, err = _Pump(proc.stdout), _Pump(proc.stderr)
    try:
        started = wait_for(lambda: proc.poll() is not None or (
            sum(line.startswith("[") for line in out.lines) >= 10
            and video.is_file() and video.stat().st_size > 0), 180, 0.1)
        assert started and proc.poll() is None, \
            f"runner did not get going:\n{out.text(1)}\n{err.text(1)[-3000:]}"
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stdout, stderr = out.text(), err.text()
    assert rc == 0, f"exit code {rc}\n{stdout[-2000:]}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "live: interrupted" in stdout
    summary = [line for line in stdout.splitlines() if "annotated video" in line]
    assert summary, stdout[-2000:]
    written = int(summary[-1].rsplit("(", 1)[1].split()[0])
    decoded, total = _count_frames(video)
    assert decoded >= 5 and decoded == written == total, (decoded, written, total)


def _make(kind: str, model: Path):
    from rclpy.parameter import Parameter

    params = {"autostart": False}
    if kind == "camera":
        from emotion_perception.nodes.camera_node import CameraNode as cls
        params.update(source="demo", fps=30.0, width=320, height=240)
    elif kind == "face_detector":
        from emotion_perception.nodes.face_detector_node import FaceDetectorNode as cls
    else:
        from emotion_perception.nodes.classifier_node import EmotionClassifierNode as cls
        params["model_path"] = str(model)
    return cls(f"lifecycle_{kind}", namespace="/lifecycle_test",
               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


_THREADS = {"camera": ("camera", "camera_read"), "face_detector": ("face_detector",),
            "emotion_classifier": ("emotion_classifier",)}


@pytest.mark.parametrize("kind", list(_THREADS))
def test_lifecycle_walk_starts_and_stops_the_workers(rclpy_session, tiny_model_path, kind):
    from rclpy.lifecycle import TransitionCallbackReturn

    ok = TransitionCallbackReturn.SUCCESS
    names = _THREADS[kind]

    def state() -> str:
        return node._state_machine.current_state[1]

    def workers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name in names and t.is_alive()]

    assert not workers(), "worker threads left over from an earlier test"
    node = _make(kind, tiny_model_path)
    try:
        assert state() == "unconfigured"
        assert node.trigger_configure() == ok and state() == "inactive", node.configure_error
        assert not workers()
        for _ in range(2):  # activating again after a deactivate gives one worker, not two
            assert node.trigger_activate() == ok and state() == "active"
            assert wait_for(lambda: sorted(workers()) == sorted(names), 10), workers()
            if kind == "camera":  # it really runs: frames are published
                count = node.published
                assert wait_for(lambda: node.published > count, 10)
            assert node.trigger_deactivate() == ok and state() == "inactive"
            assert wait_for(lambda: not workers(), 5), workers()
        assert node.trigger_cleanup() == ok and state() == "unconfigured"
        assert node.trigger_shutdown() == ok and state() == "finalized"
        assert not workers() and node._diag_timer is None and node._diag_pub is None
    finally:
        node.destroy_node()


def test_shutdown_straight_from_active_stops_the_workers(rclpy_session, tiny_model_path):
    from rclpy.lifecycle import TransitionCallbackReturn

    node = _make("emotion_classifier", tiny_model_path)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert wait_for(lambda: any(t.name == "emotion_classifier"
                                    for t in threading.enumerate()), 5)
        assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
        assert node._state_machine.current_state[1] == "finalized"
        assert not any(t.name == "emotion_classifier" for t in threading.enumerate())
    finally:
        node.destroy_node()


# -- node processes (as ros2 launch / ros2 run start them) ---------------------------------------
_MAINS = {"camera": "emotion_perception.nodes.camera_node",
          "emotion_smoother": "emotion_perception.nodes.smoother_node",
          "face_detector": "emotion_perception.nodes.face_detector_node"}


def _node_process(name: str, ns: str, *params: str) -> subprocess.Popen:
    cmd = [sys.executable, "-c", f"from {_MAINS[name]} import main; main()", "--ros-args",
           "-r", f"__ns:={ns}"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())


def _call(node, srv_type, name: str, request, timeout: float = 60.0):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=timeout), f"no service {name}"
    future = client.call_async(request)
    assert wait_for(future.done, timeout), f"{name} did not answer"
    return future.result()


def _wait_active(node, name: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    from lifecycle_msgs.msg import State
    from lifecycle_msgs.srv import GetState

    def active() -> bool:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        return _call(node, GetState, f"{name}/get_state",
                     GetState.Request()).current_state.id == State.PRIMARY_STATE_ACTIVE

    assert wait_for(active, timeout, 0.2), f"{name} never became active"


@pytest.mark.parametrize("kind", ["camera", "emotion_smoother"])
def test_node_process_handles_repeated_signals_quietly(rclpy_session, spinner, kind):
    """Signals keep coming during the shutdown: one clean shutdown, exit 0, no traceback.

    Ctrl-C under ros2 launch gives each node two SIGINTs (terminal, then launch's forwarding),
    and launch escalates to SIGTERM: here SIGINT and SIGTERM alternate every 10 ms from the
    first one until the process is gone, so some land in every phase of its clean-up.
    """
    ns = f"/signals_{kind}"
    probe = rclpy_session.create_node("signals_probe", namespace="/probe")
    spinner([probe])
    proc = _node_process(kind, ns, "source:=demo") if kind == "camera" else \
        _node_process(kind, ns)
    try:
        _wait_active(probe, f"{ns}/{kind}", proc)
        sent = 0
        while proc.poll() is None and sent < 6000:  # 60 s at most
            proc.send_signal(signal.SIGTERM if sent % 3 == 2 else signal.SIGINT)
            sent += 1
            time.sleep(0.01)
        rc = proc.wait(timeout=60)
        assert sent > 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stderr = proc.stderr.read()
    assert rc == 0, f"exit code {rc}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]


def test_lifecycle_shutdown_ends_the_node_process(rclpy_session, spinner):
    """A node finalized by the lifecycle `shutdown` transition can do nothing more: it exits."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    ns = "/finalize"
    probe = rclpy_session.create_node("finalize_probe", namespace="/probe")
    spinner([probe])
    proc = _node_process("emotion_smoother", ns)
    try:
        _wait_active(probe, f"{ns}/emotion_smoother", proc)
        req = ChangeState.Request()
        req.transition.id = Transition.TRANSITION_ACTIVE_SHUTDOWN
        assert _call(probe, ChangeState, f"{ns}/emotion_smoother/change_state", req).success
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert rc == 0, proc.stderr.read()[-3000:]


def test_node_that_cannot_configure_under_autostart_exits_1_with_its_error():
    """detector yunet without a model: refused, and the process says why and exits 1."""
    proc = _node_process("face_detector", "/no_model", "detector:=yunet")
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    stderr = proc.stderr.read()
    assert rc == 1, f"exit code {rc}\n{stderr[-3000:]}"
    assert "yunet.model_path is empty" in stderr  # the parameter's name, not the kwarg's
    assert "Traceback" not in stderr, stderr[-3000:]

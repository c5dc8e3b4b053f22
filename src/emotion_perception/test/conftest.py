"""Shared fixtures: ROS isolation, an rclpy session, a tiny model, DDS wait helpers."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Keep DDS on this machine and away from other test runs: a domain id of our own per session
# (unless the caller chose one) and localhost discovery. Must happen before rclpy.init().
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(110, 199)))
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TEST_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = TEST_DIR.parent
REPO_ROOT = PACKAGE_DIR.parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Register markers."""
    config.addinivalue_line("markers", "slow: takes more than ~10 s")
    config.addinivalue_line("markers", "ros: needs rclpy and DDS")


@pytest.fixture(scope="session")
def rclpy_session():
    """Initialise rclpy once per test session."""
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


class Spinner:
    """Spins nodes in a background thread (the runner's BackgroundSpin) for one test."""

    def __init__(self, nodes: list) -> None:
        from emotion_perception.nodes.runner import BackgroundSpin

        self._spin = BackgroundSpin(nodes, name="test_spin")
        self.nodes = self._spin.nodes

    def add(self, node) -> None:
        """Spin one more node."""
        self._spin.add(node)

    def close(self) -> None:
        """Stop spinning and destroy the nodes (rclpy stays initialised)."""
        self._spin.stop(shutdown_rclpy=False)


@pytest.fixture
def spinner(rclpy_session):
    """Yield a factory of Spinner objects; all are closed after the test."""
    made: list[Spinner] = []

    def make(nodes: list) -> Spinner:
        s = Spinner(nodes)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# the package's polling wait: tests wait for matches and deliveries, never sleep-and-hope
from emotion_perception.graph_harness import wait_for  # noqa: E402,F401


#: ROS 2 launch, launch_ros and ros2cli (not on PyPI): the real-launch tests skip without them
HAVE_LAUNCH = (importlib.util.find_spec("launch") is not None
               and importlib.util.find_spec("launch_ros") is not None
               and shutil.which("ros2") is not None)


def child_env(unset: tuple[str, ...] = ()) -> dict[str, str]:
    """Return the environment of a test's child process, without the variables in ``unset``.

    It is the test's own (so the session's ROS_DOMAIN_ID and localhost discovery, set above),
    with the emotion_perception package that the test imports first on PYTHONPATH (this
    checkout's, not an older installed copy), unbuffered output and quiet TensorFlow.
    """
    import emotion_perception

    env = dict(os.environ)
    package_root = str(Path(emotion_perception.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", ""))
                                        if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for var in unset:
        env.pop(var, None)
    return env


def declared_launch_arguments(path: Path) -> tuple[set[str], Any]:
    """Load the launch file ``path``; return the names its description declares, and it.

    Skips the test where ROS 2 launch / launch_ros are not installed (they are not on PyPI).
    """
    for package in ("launch", "launch_ros"):
        pytest.importorskip(package, reason="ROS 2 launch is not installed (not on PyPI)")
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    return ({a.name for a in description.entities if isinstance(a, DeclareLaunchArgument)},
            module)


def other_value(value: Any) -> Any:
    """Return a valid-looking value of the same type that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 1
    return value + "_other"


def graph_connected(nodes) -> bool:
    """Return True when every node started and each subscription is matched to a publisher."""
    for n in nodes:
        if getattr(n, "configure_error", ""):
            raise AssertionError(f"{n.get_name()} failed to start: {n.configure_error}")
        subs = list(n.subscriptions)
        if not subs or not all(s.get_publisher_count() > 0 for s in subs):
            return False
    return True


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A tiny 48x48x1 -> 7 Keras model trained for a moment on synthetic data.

    It stands in for the shipped model in tests; what it predicts is irrelevant, only that it
    is a valid classifier of the right shape.
    """
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 48, 48, 1), dtype=np.float32), rng.integers(0, 7, 64),
              epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path

"""What the launch files share: arguments, their checks, DDS profile, node actions, failure stop.

Imported only by ``launch/*.launch.py`` (it needs ROS 2 ``launch`` and ``launch_ros``, which
are not on PyPI). It is a module of the package, not a file beside the launch files, so the
same ``from emotion_perception.launch_support import ...`` works for an installed launch file
(share/emotion_perception/launch: ``launch/*.launch.py`` is installed there by setup.py's
data_files, this module with the package) and for this checkout's launch/ (with
src/emotion_perception on PYTHONPATH). Failures here raise RuntimeError: ``ros2 launch`` then
prints "Caught exception in launch ...: <our message>", stops every process it started and
exits 1.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler,
                            SetEnvironmentVariable)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

#: Fast DDS reads the first; Fast DDS 2.x (Jazzy) still honours the older second name
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
PROFILE_FILE = "fastdds_shm.xml"

#: the graph's launch arguments, alike in every launch file: {name: (default, help)}. A launch
#: file spreads it into its own ARGUMENTS (``{..., **GRAPH_ARGUMENTS, ...}``) and may replace
#: an entry's help after it (the entry keeps its place).
GRAPH_ARGUMENTS = {
    "detector": ("blazeface", "face detector plugin: blazeface, haar, yunet or a third-party "
                 "name"),
    "yunet_model": ("", "YuNet .onnx model for detector:=yunet (sets the face detector's "
                    "yunet.model_path; empty: the parameter file's value)"),
    "classifier": ("auto", "emotion classifier plugin: auto (by model_path's extension; the "
                   "shipped int8 TFLite model by default), keras, tflite or a third-party name"),
    "model_path": ("", "classifier model file (empty: the shipped model)"),
    "smoothing": ("true", "run the temporal smoother between classifier and /emotion"),
    "smoother": ("ema", "smoother plugin: none, ema, hysteresis, lstm"),
    "params_file": (os.path.join(get_package_share_directory("emotion_perception"), "config",
                                 "emotion_perception.yaml"), "parameter YAML for all nodes"),
    "preset": ("", "parameter preset layered over params_file: a shipped name (low_cpu: fits "
               "a small CPU, README Performance) or a YAML file; empty: none"),
    "log_level": ("info", "logging level of the nodes"),
    "dds_profile": ("auto", "Fast DDS XML profile of the node processes: auto (the shipped "
                    "config/fastdds_shm.xml, a shared-memory segment that holds camera "
                    "frames, unless FASTDDS_DEFAULT_PROFILES_FILE is already set), none "
                    "(Fast DDS defaults), or a file"),
}


def launch_description(arguments: dict[str, tuple[str, str]],
                       function: Any) -> LaunchDescription:
    """Return a description that declares ``arguments`` and then runs ``function(context)``."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in arguments.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=function)])


def read_arguments(context: Any, arguments: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Return each argument's value in ``context``; ``params_file`` checked and expanded."""
    arg = {name: LaunchConfiguration(name).perform(context) for name in arguments}
    arg["params_file"] = check_params_file(arg["params_file"])
    if arg.get("preset", "").strip():
        from .graph import preset_file

        arg["preset_file"] = str(preset_file(arg["preset"]))
    return arg


def model_overrides(arg: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Return the detector's, classifier's and smoother's parameters from the arguments."""
    return {
        "face_detector": detector_overrides(arg),
        "emotion_classifier": {"classifier": arg["classifier"], "model_path": arg["model_path"]},
        "emotion_smoother": {"smoother": arg["smoother"]},
    }


def profile_actions(arg: dict[str, str], launch_file: str) -> list:
    """Return :func:`dds_profile_actions` for ``dds_profile:=``, shipped profile beside it."""
    return dds_profile_actions(arg["dds_profile"], share_file(launch_file, "config",
                                                              PROFILE_FILE))


def truthy(text: str) -> bool:
    """Return True for the launch-argument spellings of true."""
    return text.strip().lower() in ("1", "true", "yes", "on")


def share_file(launch_file: str, folder: str, name: str) -> str:
    """Return ``<share>/<folder>/<name>`` beside ``launch_file``'s own launch/ folder.

    Installed, the launch file lies in share/emotion_perception/launch; in the source tree in
    launch/, beside config/: both find the file without the package index.
    """
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(launch_file)), "..",
                                         folder, name))


def check_params_file(path: str) -> str:
    """Return ``path`` (user-expanded) when it is a readable file; else raise with the fix."""
    if not path.strip():
        raise RuntimeError("params_file:= is empty: give a parameter YAML (the shipped one is "
                           "config/emotion_perception.yaml in the package's share directory)")
    full = os.path.expanduser(path)
    if not os.path.isfile(full):
        raise RuntimeError(f"params_file:={path}: no such file; give an existing parameter "
                           "YAML (the nodes would otherwise run on their defaults)")
    if not os.access(full, os.R_OK):
        raise RuntimeError(f"params_file:={path}: not readable")
    return full


def dds_profile_actions(choice: str, shipped: str) -> list:
    """Return the actions that give the node processes their Fast DDS profile.

    ``auto``: the shipped profile, unless the user's environment already names one (theirs
    wins, and is logged); ``none``: nothing is set; anything else: that file (it must exist).
    """
    choice = choice.strip()
    if choice == "none":
        return []
    if choice in ("", "auto"):
        mine = [f"{v}={os.environ[v]}" for v in PROFILE_VARS if os.environ.get(v)]
        if mine:
            return [LogInfo(msg="emotion_perception: keeping the Fast DDS profile of the "
                                f"environment ({', '.join(mine)}); dds_profile:= overrides")]
        path = shipped
    else:
        path = os.path.expanduser(choice)
    if not os.path.isfile(path):
        raise RuntimeError(f"dds_profile:={choice}: no such file {path!r} (auto, none or an "
                           "existing Fast DDS XML profile)")
    path = os.path.abspath(path)
    return [SetEnvironmentVariable(v, path) for v in PROFILE_VARS]


def stop_on_failure(action: Any, what: str, hint: str = "") -> RegisterEventHandler:
    """Stop the whole launch (exit code 1) when ``action``'s process exits non-zero.

    A node that cannot configure under autostart exits 1 after logging why; without this the
    launch would keep running the rest of the graph with no output. A clean exit (0: a node
    finalized by the lifecycle ``shutdown`` transition) leaves the others running, and exits
    during the launch's own shutdown are not failures.
    """
    def on_exit(event: Any, context: Any) -> None:
        if event.returncode == 0 or context.is_shutdown:
            return None
        raise RuntimeError(f"{what} ({event.action.name}) exited with code {event.returncode}: "
                           f"its error is above{hint and '; ' + hint}; stopping the launch")

    return RegisterEventHandler(OnProcessExit(target_action=action, on_exit=on_exit))


def graph_nodes(specs: Iterable[Any], arg: dict[str, str], overrides: dict[str, dict],
                namespace: str = "") -> list:
    """Return a launch_ros Node per graph node, each with a stop_on_failure handler.

    Nodes start as the real executables (no ``ros2 run`` wrapper), so launch's SIGINT reaches
    the process that must finish its work.
    """
    actions: list = []
    for spec in specs:
        node = Node(package="emotion_perception", executable=spec.executable, name=spec.name,
                    namespace=namespace, output="screen",
                    parameters=[arg["params_file"],
                                *([arg["preset_file"]] if arg.get("preset_file") else []),
                                overrides.get(spec.name, {})],
                    remappings=list(spec.remappings.items()),
                    arguments=["--ros-args", "--log-level", arg["log_level"]])
        actions += [node, stop_on_failure(node, spec.name, _hint(spec.name, arg))]
    return actions


def _hint(node: str, arg: dict[str, str]) -> str:
    """Return what to try when ``node`` fails with these launch arguments ("" if nothing)."""
    if node == "face_detector" and arg.get("detector") == "yunet" \
            and not arg.get("yunet_model", "").strip():
        return ("detector:=yunet needs its model: "
                "yunet_model:=/path/to/face_detection_yunet_2023mar.onnx")
    return ""


def detector_overrides(arg: dict[str, str]) -> dict[str, Any]:
    """Return the face detector's parameter overrides from the launch arguments."""
    out: dict[str, Any] = {"detector": arg["detector"]}
    if arg.get("yunet_model", "").strip():
        out["yunet.model_path"] = os.path.expanduser(arg["yunet_model"].strip())
    return out

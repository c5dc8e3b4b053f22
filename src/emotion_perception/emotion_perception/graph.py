"""The perception graph as data: which nodes run, with which remappings and parameters.

``launch/live.launch.py`` (for ROS 2 installations) and the in-process runner
(:mod:`emotion_perception.live`) both build the graph from :func:`graph_spec`, so they cannot
drift apart. No rclpy import here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class NodeSpec:
    """One node of the graph."""

    name: str                     # node name (and key into the YAML)
    executable: str               # console script in lib/emotion_perception
    module: str                   # "module:Class" for in-process composition
    remappings: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)


def graph_spec(image_topic: str = "", smoothing: bool = True, debug_image: bool = True,
               hri: bool = False, hri_input: bool = False) -> list[NodeSpec]:
    """Return the nodes of the live graph.

    ``image_topic``: use an external camera topic instead of our camera node (empty = run the
    camera node, publishing ``image_raw``). With ``smoothing`` the classifier publishes
    ``emotion_raw`` and the smoother ``emotion``; without it the classifier's output is
    remapped to ``emotion`` directly.

    ROS4HRI (both need hri_msgs): ``hri`` adds ``hri_bridge``, which publishes our faces and
    emotions as /humans/faces/tracked and /humans/faces/<id>/{expression,roi,cropped}.
    ``hri_input`` replaces camera and detector by ``hri_input``, which reads an existing
    ROS4HRI detector's faces and publishes the expressions back under its ids (so ``hri`` adds
    nothing then); the debug image then runs only with an ``image_topic`` to draw on.
    """
    image = image_topic or "image_raw"
    nodes: list[NodeSpec] = []
    if hri_input:
        nodes.append(NodeSpec("hri_input", "hri_input_node",
                              "emotion_perception.nodes.hri_input_node:HriInputNode"))
        debug_image = debug_image and bool(image_topic)
    elif not image_topic:
        nodes.append(NodeSpec("camera", "camera_node",
                              "emotion_perception.nodes.camera_node:CameraNode"))
    if not hri_input:
        nodes.append(NodeSpec("face_detector", "face_detector_node",
                              "emotion_perception.nodes.face_detector_node:FaceDetectorNode",
                              {"image": image}))
    nodes.append(NodeSpec("emotion_classifier", "emotion_classifier_node",
                          "emotion_perception.nodes.classifier_node:EmotionClassifierNode",
                          {} if smoothing else {"emotion_raw": "emotion"}))
    if smoothing:
        nodes.append(NodeSpec("emotion_smoother", "emotion_smoother_node",
                              "emotion_perception.nodes.smoother_node:EmotionSmootherNode"))
    if debug_image:
        nodes.append(NodeSpec("emotion_debug_image", "debug_image_node",
                              "emotion_perception.nodes.debug_image_node:DebugImageNode",
                              {"image": image}))
    if hri and not hri_input:
        nodes.append(NodeSpec("hri_bridge", "hri_bridge_node",
                              "emotion_perception.nodes.hri_bridge_node:HriBridgeNode"))
    return nodes


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a ROS 2 parameter YAML into {node name: {param: value}}.

    Keys may be plain node names, ``/**/name`` or ``/ns/name``; the last path element is the
    node name.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of node names")
    out: dict[str, dict[str, Any]] = {}
    for key, body in raw.items():
        if not isinstance(body, dict) or "ros__parameters" not in body:
            raise ValueError(f"{path}: entry {key!r} has no 'ros__parameters'")
        name = str(key).rstrip("/").split("/")[-1]
        out.setdefault(name, {}).update(_flatten(body["ros__parameters"] or {}))
    return out


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def default_params_file() -> Path:
    """Return the installed config/emotion_perception.yaml (or the source tree's)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory("emotion_perception")) / "config"
        if (installed / "emotion_perception.yaml").is_file():
            return installed / "emotion_perception.yaml"
    except Exception:  # not installed: fall back to the source tree
        pass
    here = Path(__file__).resolve().parent.parent / "config" / "emotion_perception.yaml"
    if here.is_file():
        return here
    raise FileNotFoundError("config/emotion_perception.yaml not found in the emotion_perception "
                            "share directory nor in the source tree; pass --params-file")


def parse_value(text: str) -> Any:
    """Parse a command-line parameter value as JSON (numbers, booleans), else keep the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text

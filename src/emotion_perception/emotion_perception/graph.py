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
    parameters: dict[str, Any] = field(default_factory=dict)  # over the YAML's for this node
    namespace: str = ""           # relative to the graph's namespace ("" = the graph's own)


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


def multi_graph_spec(cameras: str | list[str], smoothing: bool = True,
                     debug_image: bool = False, image_topic: str = "") -> list[NodeSpec]:
    """Return the nodes of the many-camera graph: per camera a camera and a face detector.

    ``cameras`` (``"front,back"`` or a list; see ``core.multicam.parse_cameras``): each gets a
    ``camera`` node (frame_id ``<camera>_camera``) and a ``face_detector`` in namespace
    ``<camera>``, publishing ``<camera>/image_raw`` and ``<camera>/faces``. One
    ``emotion_classifier`` (and, with ``smoothing``, one ``emotion_smoother``) in the graph's
    namespace serves all of them through its ``cameras`` parameter; results are on
    ``<camera>/emotion`` (without smoothing the classifier's ``<camera>/emotion_raw`` is
    remapped there). ``image_topic`` (relative, e.g. ``image``): no camera nodes, each
    detector reads ``<camera>/<image_topic>`` (what the benchmark's probe publishes).
    ``debug_image`` adds a debug image node per camera (``<camera>/debug_image``).
    """
    from .core.multicam import camera_frame_id, parse_cameras

    names = parse_cameras(cameras)
    if not names:
        raise ValueError("multi_graph_spec needs at least one camera namespace")
    if image_topic.startswith("/"):
        raise ValueError(f"image_topic {image_topic!r} must be relative: each camera's "
                         "detector reads it in the camera's namespace")
    image = image_topic or "image_raw"
    nodes: list[NodeSpec] = []
    for cam in names:
        if not image_topic:
            nodes.append(NodeSpec("camera", "camera_node",
                                  "emotion_perception.nodes.camera_node:CameraNode",
                                  parameters={"frame_id": camera_frame_id(cam)}, namespace=cam))
        nodes.append(NodeSpec("face_detector", "face_detector_node",
                              "emotion_perception.nodes.face_detector_node:FaceDetectorNode",
                              {"image": image}, namespace=cam))
        if debug_image:
            nodes.append(NodeSpec("emotion_debug_image", "debug_image_node",
                                  "emotion_perception.nodes.debug_image_node:DebugImageNode",
                                  {"image": image}, namespace=cam))
    served = {"cameras": ",".join(names)}
    nodes.append(NodeSpec("emotion_classifier", "emotion_classifier_node",
                          "emotion_perception.nodes.classifier_node:EmotionClassifierNode",
                          {} if smoothing else {f"{c}/emotion_raw": f"{c}/emotion"
                                                for c in names}, dict(served)))
    if smoothing:
        nodes.append(NodeSpec("emotion_smoother", "emotion_smoother_node",
                              "emotion_perception.nodes.smoother_node:EmotionSmootherNode",
                              parameters=dict(served)))
    return nodes


def camera_sources(cameras: str, sources: str = "", default: str = "demo") -> dict[str, str]:
    """Return {camera namespace: camera source} from multi.launch.py's arguments.

    ``cameras``: a comma list (``front,back``) or a YAML file (``.yaml``/``.yml``) holding a
    list of names or a mapping ``{name: source}`` (a source may also be ``{source: ...}``).
    ``sources``: ``name=source`` pairs, comma separated (``front=0,back=/data/back.mp4``),
    over the file's. Every camera without one gets ``default``. A source for a camera not in
    the list raises ValueError (a typo would otherwise run the default silently).
    """
    from .core.multicam import parse_cameras

    text = cameras.strip()
    given: dict[str, str] = {}
    if text.lower().endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"cameras:={cameras}: no such file")
        raw = yaml.safe_load(path.read_text())
        if isinstance(raw, dict) and set(raw) == {"cameras"}:
            raw = raw["cameras"]
        if isinstance(raw, list):
            names = parse_cameras([str(c) for c in raw])
        elif isinstance(raw, dict):
            names = parse_cameras([str(c) for c in raw])
            for name, value in raw.items():
                if isinstance(value, dict):
                    value = value.get("source")
                if value is not None:
                    given[str(name)] = str(value)
        else:
            raise ValueError(f"{path}: expected a list of camera namespaces or a mapping "
                             "{namespace: source}")
    else:
        names = parse_cameras(text)
    for pair in (p for p in sources.split(",") if p.strip()):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"sources: expected name=source pairs, got {pair!r}")
        given[name.strip()] = value.strip()
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"sources for cameras not in the list {names}: {unknown}")
    if not names:
        raise ValueError("no camera namespace given (cameras:=front,back or a YAML list)")
    return {name: given.get(name, default) for name in names}


def join_namespace(*parts: str) -> str:
    """Join namespaces: ``("/robot1", "front")`` -> ``/robot1/front``; ``("", "")`` -> ``""``."""
    tokens = [t for p in parts for t in str(p).split("/") if t]
    return "/" + "/".join(tokens) if tokens else ""


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


def preset_file(preset: str) -> Path:
    """Return the parameter YAML of ``preset``: a shipped preset's name or a file path.

    A name (no path separator, no ``.yaml``) is ``config/<name>.yaml`` beside the parameter
    file (installed share directory or source tree), e.g. ``low_cpu``. A preset holds only
    the parameters it changes and is layered over the parameter file. FileNotFoundError names
    the shipped presets.
    """
    text = str(preset).strip()
    if not text:
        raise ValueError("preset is empty: give a shipped preset's name or a YAML file")
    if "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
    else:
        path = default_params_file().parent / f"{text}.yaml"
    if not path.is_file():
        config = default_params_file().parent
        names = sorted(p.stem for p in config.glob("*.yaml")
                       if p.name != "emotion_perception.yaml")
        raise FileNotFoundError(f"preset {preset!r}: no file {path}; shipped presets: "
                                f"{', '.join(names) or 'none'}")
    return path


def load_params_files(path: str | Path, preset: str = "") -> dict[str, dict[str, Any]]:
    """Read the parameter file and, with ``preset``, layer the preset's values over it."""
    loaded = load_params_file(path)
    if preset:
        for node, values in load_params_file(preset_file(preset)).items():
            loaded.setdefault(node, {}).update(values)
    return loaded


def parse_value(text: str) -> Any:
    """Parse a command-line parameter value as JSON (numbers, booleans), else keep the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text

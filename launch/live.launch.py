"""Launch the live emotion perception graph.

    ros2 launch emotion_perception live.launch.py [source:=0] [image_topic:=/my/camera/image]
        [detector:=haar] [classifier:=keras] [model_path:=...] [smoothing:=true]
        [smoother:=ema] [debug_image:=true] [namespace:=robot1] [params_file:=...]
        [hri:=true] [hri_input:=true]

The node set comes from emotion_perception.graph.graph_spec, the same function the in-process
runner (``ros2 run emotion_perception live``) uses, so both run the same graph.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from emotion_perception.graph import graph_spec

ARGUMENTS = {
    "source": ("auto", "camera source: device index, video file, stream URL, image folder, "
               "demo (embedded clip) or auto (device 0 if present, else demo)"),
    "image_topic": ("", "use this existing camera topic instead of starting our camera node"),
    "detector": ("haar", "face detector plugin: haar, yunet or a third-party name"),
    "classifier": ("auto", "emotion classifier plugin: auto (by model_path's extension; the "
                   "shipped int8 TFLite model by default), keras, tflite or a third-party name"),
    "model_path": ("", "classifier model file (empty: the shipped model)"),
    "smoothing": ("true", "run the temporal smoother between classifier and /emotion"),
    "smoother": ("ema", "smoother plugin: none, ema, hysteresis, lstm"),
    "debug_image": ("true", "publish the annotated debug image"),
    "hri": ("false", "also publish ROS4HRI faces: /humans/faces/tracked and "
            "/humans/faces/<id>/{expression,roi,cropped} (needs hri_msgs)"),
    "hri_input": ("false", "classify the faces of a running ROS4HRI detector (/humans/faces) "
                  "instead of starting camera and detector; expressions go back under its "
                  "ids (needs hri_msgs)"),
    "namespace": ("", "namespace of all nodes and topics"),
    "params_file": (os.path.join(get_package_share_directory("emotion_perception"), "config",
                                 "emotion_perception.yaml"), "parameter YAML for all nodes"),
    "log_level": ("info", "logging level of the nodes"),
}


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    overrides = {
        "camera": {"source": arg["source"]},
        "face_detector": {"detector": arg["detector"]},
        "emotion_classifier": {"classifier": arg["classifier"], "model_path": arg["model_path"]},
        "emotion_smoother": {"smoother": arg["smoother"]},
    }
    actions = []
    for spec in graph_spec(arg["image_topic"], smoothing=_truthy(arg["smoothing"]),
                           debug_image=_truthy(arg["debug_image"]), hri=_truthy(arg["hri"]),
                           hri_input=_truthy(arg["hri_input"])):
        actions.append(Node(
            package="emotion_perception", executable=spec.executable, name=spec.name,
            namespace=arg["namespace"], output="screen",
            parameters=[arg["params_file"], overrides.get(spec.name, {})],
            remappings=list(spec.remappings.items()),
            arguments=["--ros-args", "--log-level", arg["log_level"]]))
    return actions


def generate_launch_description():
    """Declare the arguments and start the graph."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])

"""Launch the live emotion perception graph.

    ros2 launch emotion_perception live.launch.py [source:=0] [image_topic:=/my/camera/image]
        [detector:=blazeface] [yunet_model:=face_detection_yunet_2023mar.onnx] [classifier:=keras]
        [model_path:=...] [smoothing:=true] [smoother:=ema] [debug_image:=true]
        [namespace:=robot1] [params_file:=...] [dds_profile:=auto|none|FILE]
        [hri:=true] [hri_input:=true]

The node set comes from emotion_perception.graph.graph_spec, the same function the in-process
runner (``ros2 run emotion_perception live``) uses, so both run the same graph. Every node is
its own process, started as the real executable. A missing ``params_file`` stops the launch
before anything starts; a node that exits non-zero (e.g. it cannot load its model) stops the
whole launch with exit code 1. ``dds_profile`` (default: config/fastdds_shm.xml) gives Fast DDS a
shared-memory segment that holds camera frames, so best-effort image subscribers in other
processes receive every frame; with ``image_topic:=`` the camera process needs it too (README).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from emotion_perception.graph import graph_spec
from emotion_perception.launch_support import (COMMON_ARGUMENTS, PROFILE_FILE,
                                               check_params_file, detector_overrides,
                                               dds_profile_actions, graph_nodes, share_file,
                                               truthy)

ARGUMENTS = {
    "source": ("auto", "camera source: device index, video file, stream URL, image folder, "
               "demo (embedded clip) or auto (device 0 if present, else demo)"),
    "image_topic": ("", "use this existing camera topic instead of starting our camera node"),
    "detector": ("blazeface", "face detector plugin: blazeface, haar, yunet or a third-party "
                 "name"),
    "yunet_model": COMMON_ARGUMENTS["yunet_model"],
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
    "dds_profile": COMMON_ARGUMENTS["dds_profile"],
}


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    arg["params_file"] = check_params_file(arg["params_file"])
    overrides = {
        "camera": {"source": arg["source"]},
        "face_detector": detector_overrides(arg),
        "emotion_classifier": {"classifier": arg["classifier"], "model_path": arg["model_path"]},
        "emotion_smoother": {"smoother": arg["smoother"]},
    }
    specs = graph_spec(arg["image_topic"], smoothing=truthy(arg["smoothing"]),
                       debug_image=truthy(arg["debug_image"]), hri=truthy(arg["hri"]),
                       hri_input=truthy(arg["hri_input"]))
    return (dds_profile_actions(arg["dds_profile"], share_file(__file__, "config", PROFILE_FILE))
            + graph_nodes(specs, arg, overrides, arg["namespace"]))


def generate_launch_description():
    """Declare the arguments and start the graph."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])

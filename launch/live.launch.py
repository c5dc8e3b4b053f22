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

from emotion_perception.graph import graph_spec
from emotion_perception.launch_support import (GRAPH_ARGUMENTS, graph_nodes, launch_description,
                                               model_overrides, profile_actions,
                                               read_arguments, truthy)

ARGUMENTS = {
    "source": ("auto", "camera source: device index, video file, stream URL, image folder, "
               "demo (embedded clip) or auto (device 0 if present, else demo)"),
    "image_topic": ("", "use this existing camera topic instead of starting our camera node"),
    **GRAPH_ARGUMENTS,
    "debug_image": ("true", "publish the annotated debug image"),
    "hri": ("false", "also publish ROS4HRI faces: /humans/faces/tracked and "
            "/humans/faces/<id>/{expression,roi,cropped} (needs hri_msgs)"),
    "hri_input": ("false", "classify the faces of a running ROS4HRI detector (/humans/faces) "
                  "instead of starting camera and detector; expressions go back under its "
                  "ids (needs hri_msgs)"),
    "namespace": ("", "namespace of all nodes and topics"),
}


def _nodes(context):
    arg = read_arguments(context, ARGUMENTS)
    overrides = {"camera": {"source": arg["source"]}, **model_overrides(arg)}
    specs = graph_spec(arg["image_topic"], smoothing=truthy(arg["smoothing"]),
                       debug_image=truthy(arg["debug_image"]), hri=truthy(arg["hri"]),
                       hri_input=truthy(arg["hri_input"]))
    return (profile_actions(arg, __file__)
            + graph_nodes(specs, arg, overrides, arg["namespace"]))


def generate_launch_description():
    """Declare the arguments and start the graph."""
    return launch_description(ARGUMENTS, _nodes)

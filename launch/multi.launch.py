"""Launch many cameras served by one emotion classifier (and one smoother).

    ros2 launch emotion_perception multi.launch.py cameras:=front,back[,...]
        [sources:=front=0,back=/data/back.mp4] [source:=demo] [detector:=blazeface]
        [classifier:=auto] [model_path:=...] [smoothing:=true] [smoother:=ema]
        [namespace:=robot1] [params_file:=...] [dds_profile:=auto|none|FILE]
        [debug_image:=false] [only:=camera,face_detector]
    ros2 launch emotion_perception multi.launch.py cameras:=cameras.yaml

Per camera namespace ``<cam>``: a camera node (frame_id ``<cam>_camera``) publishing
``<cam>/image_raw`` and a face detector publishing ``<cam>/faces``. One
``emotion_classifier`` subscribes to every ``<cam>/faces`` and classifies the faces of all
cameras waiting at that moment in one inference call; one ``emotion_smoother`` (unless
``smoothing:=false``) keeps each camera's tracks apart; results are on ``<cam>/emotion``.
``cameras`` is a comma list or a YAML file with a list of namespaces or a mapping
``{namespace: source}``; ``sources`` (``name=source`` pairs) overrides the file, and every
other camera takes ``source``. The node set comes from
``emotion_perception.graph.multi_graph_spec``, the same function ``live --cameras`` runs
in-process. ``only`` starts a part of the graph: ``only:=camera,face_detector`` on the robot,
``only:=emotion_classifier,emotion_smoother`` on the host that classifies (README, Across
machines). As in live.launch.py, a missing ``params_file`` or a bad camera list stops the
launch before anything starts, and a node that exits non-zero stops the whole launch.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from emotion_perception.graph import camera_sources, join_namespace, multi_graph_spec
from emotion_perception.live import select_nodes
from emotion_perception.launch_support import (COMMON_ARGUMENTS, PROFILE_FILE,
                                               check_params_file, detector_overrides,
                                               dds_profile_actions, graph_nodes, share_file,
                                               truthy)

ARGUMENTS = {
    "cameras": ("front,back", "camera namespaces, comma separated, or a YAML file with a list "
                "of them or a mapping {namespace: source}"),
    "sources": ("", "per-camera sources as name=source pairs, comma separated "
                "(front=0,back=/data/back.mp4); over the cameras file's"),
    "source": ("demo", "source of every camera without one in sources or the cameras file "
               "(device index, video file, URL, image folder, demo, auto)"),
    "detector": ("blazeface", "face detector plugin of every camera: blazeface, haar, yunet or a "
                 "third-party name"),
    "yunet_model": COMMON_ARGUMENTS["yunet_model"],
    "classifier": ("auto", "emotion classifier plugin: auto (by model_path's extension; the "
                   "shipped int8 TFLite model by default), keras, tflite or a third-party name"),
    "model_path": ("", "classifier model file (empty: the shipped model)"),
    "smoothing": ("true", "run the temporal smoother between the classifier and each "
                  "camera's /emotion"),
    "smoother": ("ema", "smoother plugin: none, ema, hysteresis, lstm"),
    "debug_image": ("false", "also run a debug image node per camera (<cam>/debug_image)"),
    "namespace": ("", "namespace of the whole graph (cameras are below it)"),
    "params_file": (os.path.join(get_package_share_directory("emotion_perception"), "config",
                                 "emotion_perception.yaml"), "parameter YAML for all nodes"),
    "only": ("", "start only these nodes, comma separated (camera,face_detector on the robot; "
             "emotion_classifier,emotion_smoother on the classifying host); empty: all"),
    "log_level": ("info", "logging level of the nodes"),
    "dds_profile": COMMON_ARGUMENTS["dds_profile"],
}


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    arg["params_file"] = check_params_file(arg["params_file"])
    try:
        sources = camera_sources(arg["cameras"], arg["sources"], arg["source"])
        specs = select_nodes(multi_graph_spec(list(sources), smoothing=truthy(arg["smoothing"]),
                                              debug_image=truthy(arg["debug_image"])),
                             arg["only"])
    except ValueError as exc:  # launch prints it, starts nothing and exits 1
        raise RuntimeError(f"multi.launch.py: {exc}") from exc
    shared = {
        "face_detector": detector_overrides(arg),
        "emotion_classifier": {"classifier": arg["classifier"], "model_path": arg["model_path"]},
        "emotion_smoother": {"smoother": arg["smoother"]},
    }
    profile = share_file(__file__, "config", PROFILE_FILE)
    actions = dds_profile_actions(arg["dds_profile"], profile)
    for spec in specs:  # one at a time: each camera's nodes have their own namespace
        values = {**shared.get(spec.name, {}), **spec.parameters}
        if spec.name == "camera":
            values["source"] = sources[spec.namespace]
        actions += graph_nodes([spec], arg, {spec.name: values},
                               join_namespace(arg["namespace"], spec.namespace))
    return actions


def generate_launch_description():
    """Declare the arguments and start the graph."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes)])

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

from emotion_perception.graph import camera_sources, join_namespace, multi_graph_spec
from emotion_perception.live import select_nodes
from emotion_perception.launch_support import (GRAPH_ARGUMENTS, graph_nodes, launch_description,
                                               model_overrides, profile_actions,
                                               read_arguments, truthy)

ARGUMENTS = {
    "cameras": ("front,back", "camera namespaces, comma separated, or a YAML file with a list "
                "of them or a mapping {namespace: source}"),
    "sources": ("", "per-camera sources as name=source pairs, comma separated "
                "(front=0,back=/data/back.mp4); over the cameras file's"),
    "source": ("demo", "source of every camera without one in sources or the cameras file "
               "(device index, video file, URL, image folder, demo, auto)"),
    **GRAPH_ARGUMENTS,
    "detector": ("blazeface", "face detector plugin of every camera: blazeface, haar, yunet or a "
                 "third-party name"),
    "smoothing": ("true", "run the temporal smoother between the classifier and each "
                  "camera's /emotion"),
    "debug_image": ("false", "also run a debug image node per camera (<cam>/debug_image)"),
    "namespace": ("", "namespace of the whole graph (cameras are below it)"),
    "only": ("", "start only these nodes, comma separated (camera,face_detector on the robot; "
             "emotion_classifier,emotion_smoother on the classifying host); empty: all"),
}


def _nodes(context):
    arg = read_arguments(context, ARGUMENTS)
    try:
        sources = camera_sources(arg["cameras"], arg["sources"], arg["source"])
        specs = select_nodes(multi_graph_spec(list(sources), smoothing=truthy(arg["smoothing"]),
                                              debug_image=truthy(arg["debug_image"])),
                             arg["only"])
    except ValueError as exc:  # launch prints it, starts nothing and exits 1
        raise RuntimeError(f"multi.launch.py: {exc}") from exc
    shared = model_overrides(arg)
    actions = profile_actions(arg, __file__)
    for spec in specs:  # one at a time: each camera's nodes have their own namespace
        values = {**shared.get(spec.name, {}), **spec.parameters}
        if spec.name == "camera":
            values["source"] = sources[spec.namespace]
        actions += graph_nodes([spec], arg, {spec.name: values},
                               join_namespace(arg["namespace"], spec.namespace))
    return actions


def generate_launch_description():
    """Declare the arguments and start the graph."""
    return launch_description(ARGUMENTS, _nodes)

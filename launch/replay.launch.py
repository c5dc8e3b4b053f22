"""Replay a bag through the live emotion perception graph and record its outputs.

    ros2 launch emotion_perception replay.launch.py bag:=/data/fer_test
        [record:=/data/fer_test_out] [player:=ours|ros2] [lockstep:=true] [rate:=1.0]
        [image_topic:=...] [detector:=blazeface] [yunet_model:=...] [classifier:=keras]
        [model_path:=...] [smoothing:=true] [smoother:=ema] [params_file:=...]
        [dds_profile:=auto|none|FILE]

Then score the recording: ``emotion_eval_bag /data/fer_test --predictions-bag
/data/fer_test_out``.

The graph is emotion_perception.graph.graph_spec fed from the bag's image topic (no camera
node), the same node set as ``live.launch.py``. ``player:=ours`` runs ``emotion_play_bag``,
which waits until the graph (and the recorder) are connected and, with ``lockstep:=true``,
sends each image only after the previous one's result arrived on /emotion, so no frame is
dropped; the face detector then subscribes to images reliably. ``player:=ros2`` runs
``ros2 bag play`` after ``start_delay`` seconds instead (timed playback: a slow machine drops
frames, which the report counts as frames without output). When the player finishes, the launch
shuts down after ``grace`` seconds; the recorder closes its bag cleanly on that SIGINT.

Graph nodes, player and recorder start as the real executables (launch_ros ``Node``), never
through a ``ros2 run`` wrapper: launch's SIGINT must reach the recorder itself, or the bag is
left unfinished. A node, player or recorder that exits non-zero stops the launch with exit code
1; so does a missing ``params_file``.
"""

from launch.actions import EmitEvent, ExecuteProcess, RegisterEventHandler, TimerAction
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch_ros.actions import Node

from emotion_perception.bags.io import BagReader
from emotion_perception.bags.typestore import LABEL_TOPIC
from emotion_perception.graph import graph_spec
from emotion_perception.launch_support import (GRAPH_ARGUMENTS, graph_nodes, launch_description,
                                               model_overrides, profile_actions,
                                               read_arguments, stop_on_failure, truthy)

ARGUMENTS = {
    "bag": ("", "the bag to replay (rosbag2 directory, .mcap or .db3); required"),
    "record": ("", "record /emotion and /emotion_raw into this new bag (empty: no recording)"),
    "player": ("ours", "ours (emotion_play_bag, waits for the graph, lockstep) or ros2 "
               "(ros2 bag play)"),
    "lockstep": ("true", "ours: send each image after the previous one's /emotion result"),
    "rate": ("1.0", "playback speed factor (timed playback)"),
    "start_delay": ("5.0", "ros2 player: seconds to wait for the graph before playing"),
    "grace": ("2.0", "seconds between the end of playback and shutdown"),
    "image_topic": ("", "the bag's image topic (empty: its only image topic)"),
    **GRAPH_ARGUMENTS,
    "debug_image": ("false", "publish the annotated debug image"),
}


def _actions(context):
    arg = read_arguments(context, ARGUMENTS)
    if not arg["bag"]:
        raise RuntimeError("replay.launch.py: give the bag to replay: bag:=/path/to/bag")
    with BagReader(arg["bag"]) as reader:  # fails with a clear message for a bad bag
        image_topic = reader.image_topic(arg["image_topic"] or None)
        has_labels = LABEL_TOPIC in reader.info.topics
    smoothing = truthy(arg["smoothing"])
    ours = arg["player"] == "ours"
    if arg["player"] not in ("ours", "ros2"):
        raise RuntimeError(f"replay.launch.py: player must be ours or ros2, got "
                           f"{arg['player']!r}")
    lockstep = ours and truthy(arg["lockstep"])
    overrides = model_overrides(arg)
    if lockstep:
        overrides["face_detector"]["image_qos"] = "reliable"
    specs = graph_spec(image_topic, smoothing=smoothing, debug_image=truthy(arg["debug_image"]))
    for spec in specs:  # a bag's stamps are the recording's, whatever their age: every frame
        # counts (as in `bags.replay run`); a fresh bag's stamps would otherwise go stale
        if spec.name != "camera":
            overrides.setdefault(spec.name, {})["max_age"] = 0.0
    actions = profile_actions(arg, __file__)
    actions += graph_nodes(specs, arg, overrides)

    record_topics = ["/emotion"] + (["/emotion_raw"] if smoothing else [])
    if arg["record"]:
        recorder = Node(package="emotion_perception", executable="emotion_record_bag",
                        arguments=[arg["record"], "--topics", *record_topics], output="screen")
        actions += [recorder, stop_on_failure(recorder, "the recorder")]

    if ours:
        # wait for every node of the graph: each subscribes to its input only once its model
        # is loaded (configure, then activate), so a connected graph is a ready one
        debug = truthy(arg["debug_image"])
        record = bool(arg["record"])
        cmd = [arg["bag"], "--image-topic", image_topic, "--rate", arg["rate"],
               "--wait-subscribers", str(1 + debug), "--wait-topic-subscribers", "/faces=1"]
        emotion_subscribers = lockstep + record + debug
        if emotion_subscribers:
            cmd += ["--wait-topic-subscribers", f"/emotion={emotion_subscribers}"]
        if smoothing:
            cmd += ["--wait-topic-subscribers", f"/emotion_raw={1 + record}"]
        if lockstep:
            cmd.append("--lockstep")
        player = Node(package="emotion_perception", executable="emotion_play_bag",
                      arguments=cmd, output="screen")
        start = [player, stop_on_failure(player, "the player")]
    else:
        topics = [image_topic] + ([LABEL_TOPIC] if has_labels else [])
        player = ExecuteProcess(cmd=["ros2", "bag", "play", arg["bag"], "--rate", arg["rate"],
                                     "--topics", *topics], output="screen", name="player")
        start = [TimerAction(period=float(arg["start_delay"]), actions=[player])]
    actions += start
    actions.append(RegisterEventHandler(OnProcessExit(
        target_action=player,
        on_exit=[TimerAction(period=float(arg["grace"]), actions=[
            EmitEvent(event=Shutdown(reason="bag replay finished"))])])))
    return actions


def generate_launch_description():
    """Declare the arguments and start graph, player and recorder."""
    return launch_description(ARGUMENTS, _actions)

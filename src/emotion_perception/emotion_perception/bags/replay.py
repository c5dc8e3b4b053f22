"""Replay bags into the live graph and record its outputs (rclpy).

Three commands:

* ``emotion_play_bag BAG [--rate 1.0] [--topic-remap old:=new] [--loop] [--lockstep]``: a
  player node publishing the bag's image topic and label topic (or ``--topics``) with their
  recorded timing scaled by ``1 / rate``; header stamps stay as recorded. It waits for
  ``--wait-subscribers N`` subscribers on the image topic first. With ``--lockstep`` it sends
  the next image only after the graph's result for the current one arrived on ``/emotion``
  (matched by header stamp), so no frame is dropped whatever the machine's speed.
* ``emotion_record_bag OUT_BAG [--topics /emotion /emotion_raw /faces] [--duration S]
  [--until-idle S]``: a recorder node writing those topics (CDR bytes exactly as
  ``rclpy.serialization.serialize_message`` produces them, received through raw
  subscriptions, under the typestore's type names) to a new bag. It subscribes as soon as a
  topic's publisher is discovered, matching its QoS; one writer thread does all file I/O, so
  callbacks never block on the disk. It closes the bag cleanly on Ctrl-C, SIGTERM,
  ``--duration`` or ``--until-idle``, so the file is always complete.
* ``python -m emotion_perception.bags.replay run BAG --out OUT_BAG``: composes the live graph in
  this process (the nodes of ``graph_spec`` with the package's parameter YAML, like
  ``ros2 run emotion_perception live``), plays the bag in lockstep (default; ``--no-lockstep``
  for timed playback), records the outputs and writes the scored report
  (``emotion_eval_bag BAG --predictions-bag OUT_BAG``).

With a ROS 2 installation, ``ros2 bag play BAG`` and ``ros2 bag record`` work in place of the
player and recorder (the bags are standard rosbag2); ``ros2 bag play`` has no lockstep mode,
so on a slow machine the graph drops frames (they count as "without output" in the report).

Layout: :mod:`.player` (the ``BagPlayer`` node, ``emotion_play_bag``), :mod:`.recorder` (the
``BagRecorder`` node, ``emotion_record_bag``), :mod:`.replay_common` (what they share) and
this module (the in-process ``run`` command and the ``python -m`` dispatcher). This module
imports without rclpy: ``BagPlayer``, ``BagRecorder`` and the play/record commands load on
first access.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .io import BagReader
from .replay_common import (DEFAULT_RECORD_TOPICS, RESULT_TOPIC, PlayStats, StopOnSignal,
                            absolute_topic, cdr_header_stamp_ns, init_rclpy, parse_remaps,
                            progress_bar, ros_message_class)

__all__ = [  # and, loaded on first access, the names of _LAZY
    "DEFAULT_RECORD_TOPICS", "RESULT_TOPIC", "PlayStats", "cdr_header_stamp_ns", "graph_params",
    "main", "parse_remaps", "ros_message_class", "run_main", "run_parser", "run_replay",
    "wait_graph_ready", "wait_recorded",
]

_LAZY = {"BagPlayer": "player", "play_main": "player", "play_parser": "player",
         "BagRecorder": "recorder", "record_main": "recorder",
         "record_parser": "recorder"}


def __getattr__(name: str) -> Any:
    """Load the rclpy node classes and their commands on first access (see the docstring)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __package__), name)
    raise AttributeError(name)


# -- in-process replay of the whole graph ---------------------------------------------------
def graph_params(image_topic: str, params_file: str | Path | None,
                 overrides: dict[str, dict[str, Any]], smoothing: bool, lockstep: bool
                 ) -> tuple[list, dict[str, dict[str, Any]]]:
    """Return (node specs, per-node parameters) of the graph fed from ``image_topic``."""
    from ..core.params import merge_params
    from ..graph import default_params_file, graph_spec, load_params_file

    specs = graph_spec(image_topic, smoothing=smoothing, debug_image=False)
    names = [s.name for s in specs]
    # a bag's stamps are the recording's, whatever their age: every frame counts (a lockstep
    # replay slower than the recording would otherwise go stale); the caller may still set it
    layered: dict[str, dict[str, Any]] = {n: {"max_age": 0.0} for n in names}
    for node, values in overrides.items():  # a node not in the graph: merge_params refuses it
        layered.setdefault(node, {}).update(values)
    if lockstep:  # one image in flight at a time: deliver it reliably
        layered["face_detector"]["image_qos"] = "reliable"
    params = merge_params(names, load_params_file(params_file or default_params_file()),
                          layered)
    return specs, params


def _subscriptions_matched(node: Any) -> bool:
    """Return True when the node has subscriptions and each is matched to a publisher."""
    subs = list(node.subscriptions)
    return bool(subs) and all(s.get_publisher_count() > 0 for s in subs)


def wait_graph_ready(player: Any, recorder: Any | None, nodes: Sequence[Any],
                     timeout: float = 60.0, lockstep: bool = True) -> None:
    """Wait until the whole chain is connected, endpoint by endpoint.

    Ready means: every graph node is active with each of its subscriptions matched to a
    publisher (image -> detector -> classifier -> smoother), the player's image publisher
    has a subscriber and (lockstep) its result subscription a publisher, and the recorder is
    matched on all its topics. Raises RuntimeError saying what is missing after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        errors = [f"{n.get_name()}: {n.configure_error}" for n in nodes
                  if getattr(n, "configure_error", "")]
        if errors:
            raise RuntimeError("node failed to start: " + "; ".join(errors))
        waiting = [n.get_name() for n in nodes if not _subscriptions_matched(n)]
        graph = player.graph_ready(1, 1 if lockstep else 0)
        rec = recorder is None or recorder.connected()
        if graph and rec and not waiting:
            return
        if time.monotonic() >= deadline:
            what = []
            if waiting:
                what.append(f"node(s) {', '.join(waiting)} not active or not connected")
            if not graph:
                what.append(f"nothing subscribes to {player.out_topic(player.image_topic)}"
                            + (f" or nothing publishes {player.result_topic}" if lockstep
                               else ""))
            if not rec:
                what.append(f"the recorder is not connected to all of {recorder.topics}")
            raise RuntimeError(f"graph not ready after {timeout} s: " + "; ".join(what))
        time.sleep(0.02)


def wait_recorded(recorder: Any, topic: str, count: int, timeout: float = 10.0) -> bool:
    """Wait until ``recorder`` holds ``count`` messages of ``topic``; return whether it does."""
    deadline = time.monotonic() + timeout
    while recorder.counts.get(topic, 0) < count:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def run_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``run`` command."""
    p = argparse.ArgumentParser(prog="python -m emotion_perception.bags.replay run",
                                description="Replay a bag through the live graph in this "
                                "process, record its outputs and score them.")
    p.add_argument("bag", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output bag to record into")
    p.add_argument("--report-dir", type=Path, help="report folder (default <OUT>_eval)")
    p.add_argument("--image-topic", help="the bag's image topic (default: its only one)")
    p.add_argument("--params-file", type=Path, help="parameter YAML (default: the package's)")
    p.add_argument("--detector")
    p.add_argument("--classifier")
    p.add_argument("--model-path")
    p.add_argument("--smoother")
    p.add_argument("--no-smoothing", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE")
    p.add_argument("--no-lockstep", dest="lockstep", action="store_false",
                   help="timed playback at --rate instead of frame-by-frame lockstep")
    p.add_argument("--rate", type=float, default=1.0, help="timed playback speed factor")
    p.add_argument("--timeout", type=float, default=10.0, help="lockstep: seconds per frame")
    p.add_argument("--record-topics", nargs="+", default=list(DEFAULT_RECORD_TOPICS))
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output bag")
    p.add_argument("--lag-hold", type=int, default=3)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def run_replay(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Compose the graph, replay, record, score; return (report, report folder)."""
    from ..live import create_nodes
    from .evaluate import evaluate_predictions, overrides_from_args, predictions_json, score
    from .player import BagPlayer
    from .recorder import BagRecorder
    from .report import write_outputs

    with BagReader(args.bag) as reader:
        image_topic = reader.image_topic(args.image_topic)
    smoothing = not args.no_smoothing
    specs, params = graph_params(image_topic, args.params_file, overrides_from_args(args),
                                 smoothing, args.lockstep)
    topics = [t for t in args.record_topics if smoothing or absolute_topic(t) != "/emotion_raw"]
    init_rclpy()
    everything: list = []
    executor = None
    try:
        nodes = create_nodes(specs, params)
        everything += nodes
        player = BagPlayer(args.bag, rate=args.rate, image_topic=image_topic)
        everything.append(player)
        recorder = BagRecorder(args.out, topics, storage=args.storage, overwrite=args.overwrite)
        everything.append(recorder)
        from ..nodes.runner import BackgroundSpin

        executor = BackgroundSpin(everything, name="replay_spin")
        with StopOnSignal() as stop:
            wait_graph_ready(player, recorder, nodes, lockstep=args.lockstep)
            bar = progress_bar(player.counts[image_topic], "replay", args.quiet)
            try:
                if args.lockstep:
                    stats = player.play_lockstep(args.timeout, stop=stop, progress=bar.update)
                    if RESULT_TOPIC in recorder.topics:
                        wait_recorded(recorder, RESULT_TOPIC, stats.results)
                else:
                    stats = player.play(stop=stop, progress=bar.update)
                    while recorder.idle_for() < 2.0 and not stop.is_set():
                        time.sleep(0.1)  # let the graph finish the last frames
            finally:
                bar.close()
        recorder.close()
    finally:
        for node in everything:
            if hasattr(node, "close") and not getattr(node, "closed", True):
                node.close()  # the recorder: finish the bag file even after an error
        if executor is not None:
            executor.stop(shutdown_rclpy=True)
        else:
            import rclpy
            for node in everything:
                node.destroy_node()
            rclpy.try_shutdown()
    run = evaluate_predictions(args.bag, args.out, image_topic=image_topic)
    run.config.update({"playback": "lockstep" if args.lockstep else f"timed x{args.rate}",
                       "graph_params": {k: v for k, v in params.items()
                                        if k in {s.name for s in specs}}})
    if stats.timeouts:
        run.notes.append(f"{len(stats.timeouts)} image(s) got no result within "
                         f"{args.timeout} s")
    report = score(run, hold=args.lag_hold)
    out_dir = args.report_dir or Path(f"{args.out}_eval")
    write_outputs(report, predictions_json(run), out_dir, plots=not args.no_plots)
    return report, out_dir


def run_main(argv: list[str] | None = None) -> int:
    """Run the ``run`` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = run_parser().parse_args(argv)
    try:
        report, out_dir = run_replay(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"replay run: error: {exc}", file=sys.stderr)
        return 2
    from .report import console_summary

    print(console_summary(report, out_dir))
    return 0


COMMANDS = ("play", "record", "run")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``play``, ``record`` or ``run``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m emotion_perception.bags.replay {play,record,run} ...",
              file=sys.stderr)
        return 2
    if argv[0] == "play":
        from .player import play_main as command
    elif argv[0] == "record":
        from .recorder import record_main as command
    else:
        command = run_main
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

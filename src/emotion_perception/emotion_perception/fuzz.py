"""Fuzz the running graph: ``ros2 run emotion_perception fuzz --messages 500 --seed 0``.

Runs the perception graph (face detector, emotion classifier, smoother, debug image node) in
this process over DDS, as ``soak`` does, and attacks it as a hostile publisher and a careless
``ros2 param set`` user would, with seeded randomness:

* malformed images on ``image``: random (also unknown) encodings, zero, odd and huge sizes
  (up to 2^32 - 1), wrong steps, truncated, missing or surplus data, both endiannesses (and,
  now and then, a well-formed image of random content, which the graph must process);
* malformed faces on ``faces``: absurd ROIs (offsets of 2^31, sizes of 2^32 - 1), NaN, inf
  and negative scores, bad or empty crops, and many faces in one message;
* malformed emotions on ``emotion_raw`` (smoother) and ``emotion`` (debug image node): NaN,
  negative, unnormalised or zero probabilities, labels out of range, unknown label names,
  absurd ROIs, many emotions in one message;
* parameter requests through each node's parameter services (what ``ros2 param set`` sends):
  declared names with values inside and outside their ranges, of wrong types, NaN / inf,
  and undeclared names. A parameter round sets one, sends a valid frame, then restores the
  original values and sends another.

Every round mixes ``--ratio`` malformed messages with one valid synthetic frame and waits
for that frame's result on ``emotion``. Malformed images go before and after the valid frame
(a node must refuse them before its newest-wins slot, or they displace the good frame);
faces and emotions only before it, because a well-formed message, however absurd, that comes
after the valid frame's own is newer and may rightly take its place in that slot. At the end
it restores all parameters, checks that the executor still runs, that every node answers its
parameter service and that fresh valid frames come out on ``emotion`` and ``debug_image``,
and prints survived / rejected (per node counters) / lost (valid frames without a result).
Exit status 1 when a node died or more than ``--max-lost`` of the valid frames were lost,
else 0.

Results are reproducible per ``--seed`` in what is sent; what the graph drops under load may
vary. Without ``--model-path`` and without a shipped model a tiny untrained Keras model is
made on the fly (as for ``soak``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .fuzz_inputs import (MAX_DATA, ODD_ENCODINGS, UINT32_MAX,  # noqa: F401 (re-exported)
                          VALID_ENCODINGS, Mutator, well_formed_image)
from .graph_harness import run_graph_command, wait_for
from .probe import ProbedGraph

#: graph nodes attacked, in order, with short names for the table
NODES = {"face_detector": "det", "emotion_classifier": "clf", "emotion_smoother": "smo",
         "emotion_debug_image": "dbg"}
KINDS = ("image", "faces", "emotions")


class Fuzzer:
    """The attacking node: publishers of every input topic, result listeners, param clients."""

    def __init__(self, namespace: str, nodes: list[str]) -> None:
        import rclpy
        from emotion_msgs.msg import EmotionArray, FaceArray
        from rclpy.parameter_client import AsyncParameterClient
        from sensor_msgs.msg import Image

        from .nodes.base import IMAGE_PUB_QOS, RESULT_QOS
        from .nodes.runner import BackgroundSpin

        self.node = rclpy.create_node("graph_fuzzer", namespace=namespace)
        self.pubs = {
            "image": self.node.create_publisher(Image, f"{namespace}/image", IMAGE_PUB_QOS),
            "faces": self.node.create_publisher(FaceArray, f"{namespace}/faces", RESULT_QOS),
            "emotion_raw": self.node.create_publisher(EmotionArray, f"{namespace}/emotion_raw",
                                                      RESULT_QOS),
            "emotion": self.node.create_publisher(EmotionArray, f"{namespace}/emotion",
                                                  RESULT_QOS),
        }
        self._lock = threading.Lock()
        #: stamp -> time.time() of arrival, for emotion and debug_image
        self.emotion_stamps: dict[tuple[int, int], float] = {}
        self.debug_stamps: dict[tuple[int, int], float] = {}
        self.node.create_subscription(EmotionArray, f"{namespace}/emotion",
                                      lambda m: self._seen(self.emotion_stamps, m), RESULT_QOS)
        self.node.create_subscription(Image, f"{namespace}/debug_image",
                                      lambda m: self._seen(self.debug_stamps, m), RESULT_QOS)
        self.clients = {n: AsyncParameterClient(self.node, f"{namespace}/{n}") for n in nodes}
        self._spin = BackgroundSpin([self.node], name="fuzz_spin")

    def _seen(self, into: dict, msg) -> None:
        now = time.time()
        with self._lock:
            into.setdefault((msg.header.stamp.sec, msg.header.stamp.nanosec), now)

    def latency(self, stamp: tuple[int, int]) -> float:
        """Return seconds from ``stamp`` to its arrival on emotion (NaN if it never came)."""
        with self._lock:
            t = self.emotion_stamps.get(stamp)
        return t - (stamp[0] + stamp[1] * 1e-9) if t is not None else math.nan

    def answered(self, stamp: tuple[int, int], debug: bool = False) -> bool:
        """Return True once ``stamp`` came out on emotion (or debug_image)."""
        with self._lock:
            return stamp in (self.debug_stamps if debug else self.emotion_stamps)

    def wait_matched(self, timeout: float) -> bool:
        """Wait until every input topic has its subscribers and the param services are up.

        The debug image node subscribes to image and emotion only once something (our
        debug_image listener) views it (its ``lazy`` parameter): with that node in the
        graph, it must be among the subscribers of both before the attack starts, and every
        subscriber the graph lists must be matched to our publisher.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._matched(topic, p) for topic, p in self.pubs.items()):
                break
            time.sleep(0.05)
        return all(c.wait_for_services(max(0.1, deadline - time.monotonic()))
                   for c in self.clients.values())

    def _matched(self, topic: str, pub) -> bool:
        infos = self.node.get_subscriptions_info_by_topic(pub.topic_name)
        names = {i.node_name for i in infos}
        if "emotion_debug_image" in self.clients and topic in ("image", "emotion") \
                and "emotion_debug_image" not in names:
            return False
        return pub.get_subscription_count() >= max(1, len(infos))

    def call(self, future, timeout: float):
        """Wait for a service future; return its result or None on timeout."""
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            future.cancel()
            return None
        try:
            return future.result()
        except Exception:  # a failed call is no answer
            return None

    def close(self) -> None:
        """Stop spinning and destroy the node."""
        self._spin.stop(shutdown_rclpy=False)


def _wait(predicate, timeout: float) -> bool:
    return wait_for(predicate, timeout, period=0.01)


def _counters(graph: ProbedGraph) -> dict[str, dict[str, float]]:
    keys = ("received", "processed", "rejected", "dropped", "errors")
    out: dict[str, dict[str, float]] = {}
    for n, s in graph.node_stats().items():
        out[n] = {k: int(s.get(k, 0)) for k in keys}
        out[n]["processing_ms_p95"] = float(s.get("processing_ms_p95", math.nan))
    return out


def run_fuzz(graph: ProbedGraph, fuzzer: Fuzzer, messages: int, seed: int = 0,
             ratio: int = 4, param_every: int = 5, max_faces: int = 500,
             timeout: float = 10.0, progress: bool = False) -> dict[str, Any]:
    """Attack the graph with ``messages`` malformed messages; return every count.

    Rounds of ``ratio`` malformed messages around one valid frame; every ``param_every``-th
    round is a parameter round (0: none). Stops early after three valid frames in a row
    went unanswered (the graph no longer answers). See the module docstring.
    """
    from .graph_harness import scene_messages

    if messages < 1 or ratio < 1 or param_every < 0 or max_faces < 1 or timeout <= 0:
        raise ValueError("need messages >= 1, ratio >= 1, param_every >= 0, max_faces >= 1 "
                         "and timeout > 0")
    rng = np.random.default_rng(seed)
    valid = scene_messages(1, count=8)
    mut = Mutator(rng, valid, max_faces)
    present = [n for n in NODES if any(g.get_name() == n for g in graph.nodes)]
    debug = "emotion_debug_image" in present
    originals = {n: graph.node(n).param_values() for n in present}
    sent: Counter[str] = Counter()
    out: dict[str, Any] = {"seed": seed, "ratio": ratio, "max_faces": max_faces,
                           "nodes": present}
    valid_sent = valid_lost = after_change = after_change_answered = 0
    counted: list[tuple[int, int]] = []  # stamps of the valid frames that count for "lost"
    param_results: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    unanswered_params: list[str] = []
    param_log: list[dict[str, Any]] = []
    misses_in_row = 0
    stopped_early = ""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=messages, unit="msg", disable=None, leave=False)

    def send_valid() -> tuple[int, int]:
        return graph.publish_now(valid[int(rng.integers(len(valid)))])

    def publish_malformed(kind: str = "", after_valid: bool = False) -> None:
        kind = kind or KINDS[int(rng.integers(len(KINDS)))]
        if kind == "image":  # a well-formed image after the valid frame would rightly win
            msg, topic = (mut.malformed_image() if after_valid else mut.image()), "image"
        elif kind == "faces":
            msg, topic = mut.faces(), "faces"
        else:
            msg = mut.emotions()
            topic = "emotion_raw" if rng.random() < 0.6 or not debug else "emotion"
        fuzzer.pubs[topic].publish(msg)
        sent[topic] += 1
        if bar is not None:
            bar.update(1)

    def set_params(node: str, params: list) -> Any:
        return fuzzer.call(fuzzer.clients[node].set_parameters(params), timeout)

    # warm-up: the first frame pays for lazy initialisation; it is not counted
    warm = send_valid()
    if not _wait(lambda: fuzzer.answered(warm), max(30.0, timeout)):
        raise RuntimeError("the graph does not answer a valid frame before fuzzing started")
    before = _counters(graph)
    t0 = time.monotonic()
    round_no = 0
    while sum(sent.values()) < messages:
        round_no += 1
        if param_every and round_no % param_every == 0:
            node = present[int(rng.integers(len(present)))]
            param, kind = mut.parameter(node)
            res = set_params(node, [param])
            label = f"{node}.{param.name}={param.value!r:.40} ({kind})"
            if res is None:
                unanswered_params.append(label)
                param_results["unanswered"] += 1
                accepted = False
            else:
                accepted = bool(res.results and res.results[0].successful)
                param_results["accepted" if accepted else "refused"] += 1
                if not accepted and res.results:
                    refusals[res.results[0].reason.split(":")[0][:60]] += 1
            param_log.append({"round": round_no, "request": label, "answer": None if res is None
                              else "accepted" if accepted else res.results[0].reason[:200]})
            for _ in range(ratio // 2):
                publish_malformed()
            if accepted:  # a setting may legitimately stop output: reported, not counted lost
                after_change += 1
                key = send_valid()
                after_change_answered += _wait(lambda: fuzzer.answered(key), timeout)
                current = graph.node(node).param_values()
                changed = [k for k in current if current[k] != originals[node][k]]
                if changed:
                    from rclpy.parameter import Parameter
                    back = set_params(node, [Parameter(k, value=originals[node][k])
                                             for k in changed])
                    if back is None or not all(x.successful for x in back.results):
                        why = "no answer" if back is None else \
                            "; ".join(x.reason for x in back.results if not x.successful)
                        unanswered_params.append(f"restoring {node} {changed}: {why}")
        else:
            # images on both sides of the valid frame: they must be refused before a node's
            # newest-wins slot; faces and emotions only before it, because a well-formed but
            # absurd one sent after it is newer and may rightly take its place in that slot
            kinds = sorted((KINDS[int(rng.integers(len(KINDS)))] for _ in range(ratio)),
                           key=lambda k: k == "image")
            at = int(rng.integers(sum(k != "image" for k in kinds), ratio + 1))
            key = None
            for i in range(ratio + 1):
                if i == at:
                    key = send_valid()
                elif sum(sent.values()) < messages:
                    publish_malformed(kinds[i if i < at else i - 1], after_valid=i > at)
            valid_sent += 1
            counted.append(key)
            if _wait(lambda: fuzzer.answered(key), timeout):
                misses_in_row = 0
            else:
                valid_lost += 1
                misses_in_row += 1
                if misses_in_row >= 3 or not graph.alive():
                    stopped_early = (f"stopped after round {round_no}: "
                                     + ("the graph's executor ended" if not graph.alive()
                                        else "three valid frames in a row got no result"))
                    break
            continue
        # after a parameter round: the restored graph must answer a valid frame again
        key = send_valid()
        valid_sent += 1
        counted.append(key)
        if not _wait(lambda: fuzzer.answered(key), timeout):
            valid_lost += 1
    if bar is not None:
        bar.close()
    fuzz_s = time.monotonic() - t0

    # the end: every parameter as at the start, then is everyone still there?
    restore_failed = []
    for node in present:
        try:
            current = graph.node(node).param_values()
        except Exception:  # a destroyed node
            restore_failed.append(node)
            continue
        changed = [k for k in current if current[k] != originals[node][k]]
        if changed:
            from rclpy.parameter import Parameter
            back = set_params(node, [Parameter(k, value=originals[node][k]) for k in changed])
            if back is None or not all(x.successful for x in back.results):
                restore_failed.append(node)
    died: dict[str, str] = {}
    final_ok = final_debug_ok = 0
    if not graph.alive():  # every node of the graph runs on that one executor
        died["executor"] = ("the graph's executor thread ended (an error escaped a callback): "
                            "every node stopped")
    else:
        for node in present:
            res = fuzzer.call(fuzzer.clients[node].get_parameters(["diagnostics_period"]),
                              timeout)
            if res is None or not res.values:
                died[node] = "does not answer its parameter service"
            elif getattr(graph.node(node), "configure_error", ""):
                died[node] = f"configure error: {graph.node(node).configure_error}"
        for _ in range(3):
            key = send_valid()
            if _wait(lambda: fuzzer.answered(key), timeout):
                final_ok += 1
            if debug and _wait(lambda: fuzzer.answered(key, debug=True), timeout):
                final_debug_ok += 1
        if final_ok == 0:
            died["graph"] = "none of 3 valid frames after the attack came out on emotion"
        if debug and final_debug_ok == 0:
            died.setdefault("emotion_debug_image",
                            "none of 3 valid frames after the attack came out on debug_image")
    after = _counters(graph)
    lat = np.array([fuzzer.latency(k) for k in counted], np.float64)
    late = int(np.isfinite(lat).sum()) - (valid_sent - valid_lost)  # came after the timeout
    ok_lat = lat[np.isfinite(lat)] * 1e3
    out.update({
        "valid_late": max(0, late),
        "valid_latency_ms": {"p50": float(np.median(ok_lat)) if ok_lat.size else math.nan,
                             "max": float(ok_lat.max()) if ok_lat.size else math.nan},
        "malformed_sent": dict(sent), "malformed_total": sum(sent.values()),
        "rounds": round_no, "fuzz_seconds": fuzz_s, "stopped_early": stopped_early,
        "valid_sent": valid_sent, "valid_lost": valid_lost,
        "valid_after_parameter_change": after_change,
        "valid_after_parameter_change_answered": int(after_change_answered),
        "parameters": dict(param_results), "parameter_refusals": dict(refusals.most_common(8)),
        "parameter_problems": unanswered_params, "restore_failed": restore_failed,
        "parameter_log": param_log,
        "last_errors": {n: graph.node(n).stats.last_error for n in present
                        if graph.node(n).stats.last_error},
        "final_valid_answered": final_ok, "final_debug_answered": final_debug_ok,
        "died": died, "survived": not died,
        "node_counters": {n: dict({k: after.get(n, {}).get(k, 0) - before.get(n, {}).get(k, 0)
                                   for k in ("received", "processed", "rejected", "dropped",
                                             "errors")},
                                  processing_ms_p95=after.get(n, {}).get("processing_ms_p95",
                                                                         math.nan))
                          for n in present},
    })
    return out


def verdict(result: dict[str, Any], max_lost: float = 0.02) -> bool:
    """Return True when every node survived and at most ``max_lost`` of valid frames were lost.

    Parameter requests nobody answered count as a death of that node's service (they are in
    ``parameter_problems``); refusals are the expected answer to bad values.
    """
    sent = result["valid_sent"]
    lost_frac = result["valid_lost"] / sent if sent else 1.0
    return bool(result["survived"] and lost_frac <= max_lost
                and result["parameters"].get("unanswered", 0) == 0
                and not result["stopped_early"])


def format_result(result: dict[str, Any], max_lost: float) -> str:
    """Return the printed report."""
    lines = []
    sent = result["malformed_sent"]
    lines.append(f"malformed messages sent: {result['malformed_total']} "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))}) in "
                 f"{result['rounds']} rounds, {result['fuzz_seconds']:.1f} s, seed "
                 f"{result['seed']}")
    keys = ("received", "processed", "rejected", "dropped", "errors")
    rows = [["node", *keys, "proc p95 ms"]]  # processing time per message, 95th percentile
    for n, c in result["node_counters"].items():
        rows.append([n] + [str(c[k]) for k in keys] + [f"{c['processing_ms_p95']:.1f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                                      for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    p = result["parameters"]
    lines.append(f"parameter requests: {sum(p.values())} ({p.get('accepted', 0)} accepted, "
                 f"{p.get('refused', 0)} refused, {p.get('unanswered', 0)} unanswered)")
    for reason, n in result["parameter_refusals"].items():
        lines.append(f"  refused {n}x: {reason}")
    for problem in result["parameter_problems"]:
        lines.append(f"  problem: {problem}")
    vs, vl = result["valid_sent"], result["valid_lost"]
    lines.append(f"valid frames: {vs} sent, {vs - vl} answered, lost {vl} "
                 f"({100.0 * vl / vs if vs else 0:.1f} %, limit {100 * max_lost:.1f} %)")
    lat = result["valid_latency_ms"]
    lines.append(f"  latency of the answered ones: median {lat['p50']:.0f} ms, max "
                 f"{lat['max']:.0f} ms; {result['valid_late']} lost frame(s) came after the "
                 "timeout")
    if result["valid_after_parameter_change"]:
        lines.append(f"  after an accepted parameter change (not counted as lost): "
                     f"{result['valid_after_parameter_change_answered']} of "
                     f"{result['valid_after_parameter_change']} answered")
    if result["stopped_early"]:
        lines.append(f"  {result['stopped_early']}")
    for node, err in result.get("last_errors", {}).items():
        lines.append(f"  last problem {node} reported: {err[:200]}")
    if result["survived"]:
        lines.append("survived: yes (executor running, every node answers its parameter "
                     f"service, {result['final_valid_answered']}/3 final valid frames on "
                     "emotion" + (f", {result['final_debug_answered']}/3 on debug_image"
                                  if "emotion_debug_image" in result["nodes"] else "") + ")")
    else:
        lines.append("survived: NO")
        for who, why in result["died"].items():
            lines.append(f"  {who}: {why}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=500, help="malformed messages to send "
                   "(default 500)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--ratio", type=int, default=4, help="malformed messages per valid frame "
                   "(default 4)")
    p.add_argument("--param-every", type=int, default=5, help="every N-th round is a "
                   "parameter round (default 5; 0 = no parameter requests)")
    p.add_argument("--max-faces", type=int, default=500, help="most faces / emotions in one "
                   "malformed message (default 500)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a valid "
                   "frame's result or a service answer (default 10)")
    p.add_argument("--max-lost", type=float, default=0.02, help="fraction of valid frames "
                   "that may go without a result (default 0.02: best-effort image transport)")
    p.add_argument("--classifier", default="tflite", help="classifier plugin: tflite, keras")
    p.add_argument("--model-path", default="", help="classifier model (default: the shipped "
                   "one, else a tiny untrained Keras model made on the fly)")
    p.add_argument("--no-smoothing", action="store_true", help="run without the smoother")
    p.add_argument("--no-debug-image", action="store_true", help="run without the debug "
                   "image node")
    p.add_argument("--params-file", type=Path, help="parameter YAML (default: the installed "
                   "config/emotion_perception.yaml)")
    p.add_argument("--namespace", default="/fuzz", help="namespace of the graph (default /fuzz)")
    p.add_argument("--json", type=Path, help="write all counts to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer; exit status 1 when a node died or valid frames were lost."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    a = build_parser().parse_args(argv)
    if a.messages < 1 or a.ratio < 1 or a.param_every < 0 or a.max_faces < 1 \
            or a.timeout <= 0 or not 0.0 <= a.max_lost <= 1.0 \
            or not a.namespace.startswith("/"):
        print("fuzz: need --messages >= 1, --ratio >= 1, --param-every >= 0, --max-faces >= 1, "
              "--timeout > 0, --max-lost in 0..1 and an absolute --namespace", file=sys.stderr)
        return 2

    def body(graph: ProbedGraph, classifier: str, model: str) -> dict[str, Any]:
        fuzzer = Fuzzer(a.namespace, [n.get_name() for n in graph.nodes
                                      if n.get_name() in NODES])
        try:
            if not fuzzer.wait_matched(60.0):
                raise TimeoutError("the graph's topics or parameter services did not appear")
            print(f"fuzz: {a.messages} malformed messages, {a.ratio} per valid frame, seed "
                  f"{a.seed}, classifier {classifier} ({model}); nodes "
                  f"{', '.join(fuzzer.clients)}", flush=True)
            return run_fuzz(graph, fuzzer, a.messages, a.seed, a.ratio, a.param_every,
                            a.max_faces, a.timeout, progress=True)
        finally:
            fuzzer.close()

    run = run_graph_command("fuzz", a.classifier, a.model_path, body, namespace=a.namespace,
                            smoothing=not a.no_smoothing, params_file=a.params_file,
                            debug_image=not a.no_debug_image)
    if run.status:
        return run.status
    result = run.result
    ok = verdict(result, a.max_lost)
    print()
    print(format_result(result, a.max_lost))
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    if a.json:
        a.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {a.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

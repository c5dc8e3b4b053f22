"""The ``fuzz`` command: its generators, and a short attack on the real graph over DDS.

The long run is ``ros2 run emotion_perception fuzz --messages 500`` (a tool, like ``soak``).
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def valid_frames():
    from emotion_perception.soak import scene_messages

    return scene_messages(1, count=2)


def _mutator(valid, seed=0, max_faces=40):
    from emotion_perception.fuzz import Mutator

    return Mutator(np.random.default_rng(seed), valid, max_faces, clock=lambda: 1.7e9)


def test_same_seed_same_messages(valid_frames):
    def run(seed):  # compared as text: CDR has unset padding bytes, and NaN != NaN
        m = _mutator(valid_frames, seed)
        out = [repr(getattr(m, k)()) for k in ("image", "faces", "emotions") * 6]
        params = [m.parameter("face_detector") for _ in range(20)]
        return out + [repr((p.name, p.type_, p.value, kind)) for p, kind in params]

    a, b = run(3), run(3)
    assert a == b and a != run(4)


def test_images_are_mostly_malformed_and_malformed_image_never_valid(valid_frames):
    from emotion_perception.fuzz import MAX_DATA, well_formed_image

    m = _mutator(valid_frames)
    images = [m.image() for _ in range(300)]
    ok = [well_formed_image(i) for i in images]
    assert 0 < sum(ok) < len(ok) // 3  # a few well-formed ones, the rest broken
    assert max(len(i.data) for i in images) <= MAX_DATA + len(valid_frames[0].data) + 4096
    assert {i.width for i in images} & {0, 2 ** 32 - 1} and {i.encoding for i in images} - {
        "bgr8", "rgb8", "mono8"}
    assert not any(well_formed_image(m.malformed_image()) for _ in range(200))
    assert well_formed_image(valid_frames[0])


def test_faces_and_emotions_cover_absurd_values(valid_frames):
    m = _mutator(valid_frames, max_faces=40)
    faces = [m.faces() for _ in range(200)]
    rois = [f.roi.x_offset for msg in faces for f in msg.faces]
    scores = np.array([f.detection_score for msg in faces for f in msg.faces], np.float64)
    assert max(rois) >= 2 ** 31 and np.isnan(scores).any() and (scores < 0).any()
    assert max(len(msg.faces) for msg in faces) > 5 and min(len(msg.faces) for msg in faces) == 0
    assert max(len(msg.faces) for msg in faces) <= 40
    emotions = [e for _ in range(200) for e in m.emotions().emotions]
    probs = np.array([e.probabilities for e in emotions], np.float64)
    assert np.isnan(probs).any() and (probs < 0).any()
    sums = probs[np.isfinite(probs).all(axis=1)].sum(axis=1)
    assert (sums > 1.5).any() and (np.abs(sums - 1) < 1e-3).any()  # unnormalised and valid
    assert max(e.label for e in emotions) > 6 and "joy" in {e.label_name for e in emotions}


def test_parameter_requests_mix_declared_undeclared_and_bad_values(valid_frames):
    from emotion_perception.core.params import NODE_PARAMS

    m = _mutator(valid_frames)
    declared = {p.name for p in NODE_PARAMS["emotion_smoother"]}
    reqs = [m.parameter("emotion_smoother") for _ in range(300)]
    kinds = {k for _, k in reqs}
    assert {"in_range", "out_of_range", "wrong_type", "undeclared", "not_set"} <= kinds
    assert {p.name for p, k in reqs if k != "undeclared"} <= declared
    assert any(p.name not in declared for p, k in reqs if k == "undeclared")
    for p, _ in reqs:
        p.to_parameter_msg()  # each one can be sent


@pytest.fixture
def fuzz_graph(rclpy_session, tmp_path):
    """Factory: the graph with the debug image node and a fuzzer; closed after the test."""
    from emotion_perception.fuzz import NODES, Fuzzer
    from emotion_perception.probe import ProbedGraph
    from emotion_perception.soak import resolve_model

    from conftest import REPO_ROOT

    made = []

    def make(namespace):
        classifier, model, _ = resolve_model("tflite", "", tmp_path)
        graph = ProbedGraph(model, classifier, namespace=namespace, debug_image=True,
                            params_file=REPO_ROOT / "config" / "emotion_perception.yaml")
        made.append(graph)
        graph.wait_ready(60)
        fuzzer = Fuzzer(namespace, [n.get_name() for n in graph.nodes if n.get_name() in NODES])
        made.append(fuzzer)
        assert fuzzer.wait_matched(60)
        return graph, fuzzer

    yield make
    for obj in reversed(made):
        obj.close()


@pytest.mark.ros
def test_short_fuzz_the_graph_survives_and_counts_what_it_refused(fuzz_graph):
    from emotion_perception.fuzz import format_result, run_fuzz, verdict

    graph, fuzzer = fuzz_graph("/fuzz_test")
    res = run_fuzz(graph, fuzzer, messages=200, seed=1, ratio=4, param_every=4, max_faces=12,
                   timeout=10.0)
    report = format_result(res, 0.05)
    assert res["survived"], report
    assert res["malformed_total"] == 200 and not res["stopped_early"], report
    assert set(res["malformed_sent"]) == {"image", "faces", "emotion_raw", "emotion"}
    c = res["node_counters"]
    # the attack reached every node, and each counted what it refused
    for node in ("face_detector", "emotion_classifier", "emotion_smoother",
                 "emotion_debug_image"):
        assert c[node]["received"] > 0 and c[node]["rejected"] > 0, (node, report)
    assert c["emotion_classifier"]["errors"] == 0 and c["emotion_smoother"]["errors"] == 0
    p = res["parameters"]
    assert p.get("refused", 0) > 0 and p.get("unanswered", 0) == 0, report
    assert not res["parameter_problems"] and not res["restore_failed"], report
    assert res["valid_sent"] >= 40
    # garbage must not displace valid frames: allow a stray loss on a loaded machine
    assert res["valid_lost"] <= max(1, res["valid_sent"] // 20), report
    assert res["final_valid_answered"] == 3 and res["final_debug_answered"] >= 1, report
    assert verdict(res, max_lost=0.05), report


@pytest.mark.ros
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_fuzz_reports_a_graph_that_died(fuzz_graph):
    from emotion_perception.fuzz import format_result, run_fuzz, verdict

    graph, fuzzer = fuzz_graph("/fuzz_dies")
    smoother = graph.node("emotion_smoother")
    sent = []
    publish = fuzzer.pubs["faces"].publish
    fuzzer.pubs["faces"].publish = lambda msg: (sent.append(1), publish(msg))

    def boom() -> None:  # an error escaping a callback ends the executor of the whole graph
        if len(sent) >= 5:  # once the attack is under way
            raise RuntimeError("injected failure")

    timer = smoother.create_timer(0.05, boom)
    try:
        res = run_fuzz(graph, fuzzer, messages=60, seed=2, ratio=4, param_every=0,
                       max_faces=5, timeout=2.0)
    finally:
        timer.cancel()
    report = format_result(res, 0.02)
    assert not res["survived"] and "executor" in res["died"], report
    assert "survived: NO" in report and not verdict(res)

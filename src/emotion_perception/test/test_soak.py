"""A short soak: hundreds of frames through the real graph over DDS, no processed result lost.

The long run is ``python -m emotion_perception.soak --frames 20000`` (a tool, not a test).
"""

from __future__ import annotations

import math

import pytest

from conftest import REPO_ROOT, wait_for


def _windows(rss: list[float], p50: list[float]) -> list[dict]:
    return [{"sent": 100 * (i + 1), "rss_mb": r, "latency_ms_p50": p}
            for i, (r, p) in enumerate(zip(rss, p50))]


def test_analyse_fits_memory_over_the_second_half_and_skips_warmup_latency():
    from emotion_perception.soak import analyse

    # warm-up growth in the first half is ignored; 0.5 MB per 100 frames afterwards
    rss = [100, 300, 400, 500, 500.5, 501.0, 501.5, 502.0]
    p50 = [900.0, 20.0, 21.0, 22.0, 22.0, 23.0, 24.0, 30.0]
    out = analyse(_windows(rss, p50))
    assert out["memory_slope_mb_per_1000"] == pytest.approx(5.0)
    assert out["latency_first_p50_ms"] == 20.0 and out["latency_last_p50_ms"] == 30.0
    flat = analyse(_windows([700.0] * 6, [10.0] * 6))
    assert flat["memory_slope_mb_per_1000"] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(analyse(_windows([1.0], [1.0]))["memory_slope_mb_per_1000"])


def test_verdict_fails_on_lost_results_growth_and_drift():
    from emotion_perception.soak import verdict

    good = {"memory_slope_mb_per_1000": 0.1, "latency_first_p50_ms": 30.0,
            "latency_last_p50_ms": 33.0, "results_lost": 0, "classifier_processed": 500}
    assert all(c["ok"] for c in verdict(good))
    for key, value, check in [("results_lost", 3, "results lost"),
                              ("memory_slope_mb_per_1000", 4.0, "memory slope"),
                              ("latency_last_p50_ms", 90.0, "latency drift (p50)")]:
        checks = {c["check"]: c["ok"] for c in verdict(dict(good, **{key: value}))}
        assert not checks[check] and sum(not ok for ok in checks.values()) == 1, (key, checks)
    # tiny latencies may double without failing (absolute floor)
    small = dict(good, latency_first_p50_ms=2.0, latency_last_p50_ms=5.0)
    assert all(c["ok"] for c in verdict(small))


@pytest.mark.ros
def test_short_soak_loses_no_processed_result_and_stays_responsive(
        rclpy_session, tiny_model_path):
    from emotion_perception.probe import ProbedGraph
    from emotion_perception.soak import run_soak, scene_messages

    graph = ProbedGraph(str(tiny_model_path), namespace="/soak_test",
                        params_file=REPO_ROOT / "config" / "emotion_perception.yaml",
                        overrides={"face_detector": {"tracking.min_hits": 1}})
    try:
        graph.wait_ready(60)
        windows: list[dict] = []
        res = run_soak(graph, frames=300, fps=30.0, every=100, on_window=windows.append)
        assert res["frames_sent"] == 300 and not res["interrupted"]
        assert [w["sent"] for w in windows] == [100, 200, 300]
        assert all(w["rss_mb"] > 0 for w in windows)
        processed = res["classifier_processed"]
        assert processed > 0, res["node_stats"]
        assert res["results_lost"] == 0, (processed, res["results_received"])
        assert res["results_received"] == processed
        assert graph.faces > 0  # faces were found and classified, not only empty arrays
        assert all(sum(w["errors"].values()) == 0 for w in windows), windows[-1]

        # still responsive afterwards: a new frame comes out on /emotion with its stamp
        msg = scene_messages(1, count=1)[0]
        for attempt in range(5):  # images are best effort: resend if one is lost
            key = graph.publish_now(msg)
            if wait_for(lambda: key in graph.recent_stamps, 10):
                break
        else:
            pytest.fail("the graph no longer answers after the soak")
    finally:
        graph.close()

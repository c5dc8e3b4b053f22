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
    # 8 windows: 1 warm-up, then medians of 2 windows at each end
    assert (out["latency_warmup_windows"], out["latency_windows"]) == (1, 2)
    assert out["latency_first_p50_ms"] == 20.5 and out["latency_last_p50_ms"] == 27.0
    flat = analyse(_windows([700.0] * 6, [10.0] * 6))
    assert flat["memory_slope_mb_per_1000"] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(analyse(_windows([1.0], [1.0]))["memory_slope_mb_per_1000"])
    # windows without results (NaN p50) are not counted
    assert math.isnan(analyse(_windows([1.0] * 2, [5.0, float("nan")]))["latency_first_p50_ms"])


def _result(p50: list[float], sent: int = 2000, received: int | None = None,
            lost: int = 0, dropped: int = 0, delivered: int | None = None) -> dict:
    """A soak result from a synthetic latency series and counters, analysed like a real one."""
    from emotion_perception.soak import analyse

    received = sent - lost - dropped if received is None else received
    delivered = sent if delivered is None else delivered
    zero = {"rejected": 0, "errors": 0, "dropped": 0}
    stats = {"face_detector": dict(zero, received=delivered, processed=delivered - dropped,
                                   dropped=dropped),
             "emotion_classifier": dict(zero, received=received + lost,
                                        processed=received + lost),
             "emotion_smoother": dict(zero, received=received, processed=received)}
    res = {"frames_sent": sent, "results_received": received, "results_lost": lost,
           "classifier_processed": received + lost, "node_stats": stats}
    res.update(analyse(_windows([500.0] * len(p50), p50)))
    return res


def _checks(res: dict, **kwargs) -> dict[str, dict]:
    from emotion_perception.soak import verdict

    return {c["check"]: c for c in verdict(res, **kwargs)}


def test_verdict_fails_on_lost_results_growth_and_drift():
    from emotion_perception.soak import verdict

    good = _result([40.0] + [30.0] * 8 + [33.0])
    assert all(c["ok"] and not c.get("skipped") for c in verdict(good))
    for key, value, check in [("results_lost", 3, "results lost"),
                              ("memory_slope_mb_per_1000", 4.0, "memory slope"),
                              ("latency_last_p50_ms", 90.0, "latency drift (p50)")]:
        checks = {c["check"]: c["ok"] for c in verdict(dict(good, **{key: value}))}
        assert not checks[check] and sum(not ok for ok in checks.values()) == 1, (key, checks)
    # tiny latencies may double without failing (absolute floor)
    small = dict(good, latency_first_p50_ms=2.0, latency_last_p50_ms=5.0)
    assert all(c["ok"] for c in verdict(small))


def test_verdict_fails_on_frames_dropped_or_undelivered_beyond_the_tolerance():
    flat = [30.0] * 10
    assert _checks(_result(flat))["frames unanswered"]["ok"]
    # 1 % is tolerated by default: 20 of 2000
    within = _checks(_result(flat, dropped=20))["frames unanswered"]
    assert within["ok"] and "det dropped 20" in within["value"]
    for res in (_result(flat, dropped=21),                   # dropped by the detector's slot
                _result(flat, received=1900, delivered=1900),  # lost in transport
                _result(flat, received=0)):                  # nothing came out at all
        checks = _checks(res)
        assert not checks["frames unanswered"]["ok"], checks["frames unanswered"]
        assert checks["results lost"]["ok"]  # a different failure than results lost
    assert "not delivered 100" in _checks(_result(flat, received=1900, delivered=1900))[
        "frames unanswered"]["value"]
    # the tolerance is the caller's: 0 makes a single dropped frame fail
    assert not _checks(_result(flat, dropped=1), max_unanswered=0.0)["frames unanswered"]["ok"]
    assert _checks(_result(flat, dropped=300), max_unanswered=0.2)["frames unanswered"]["ok"]


@pytest.mark.parametrize("p50", [
    [900.0, 30.0, 31.0, 30.0, 29.0, 32.0, 45.0, 60.0, 62.0, 61.0],   # slow first window
    [900.0, 800.0, 30.0, 31.0, 30.0, 45.0, 60.0, 62.0, 61.0, 63.0],  # slow first two windows
    [30.0] * 4 + [500.0] + [30.0, 45.0, 60.0, 62.0, 61.0, 63.0],     # one spike early on
], ids=["slow_first", "slow_first_two", "early_spike"])
def test_slow_early_windows_do_not_hide_a_latency_drift(p50):
    drift = _checks(_result(p50))["latency drift (p50)"]
    assert not drift["ok"] and not drift.get("skipped"), drift


@pytest.mark.parametrize("p50", [
    [900.0, 30.0, 31.0, 30.0, 29.0, 32.0, 30.0, 31.0, 30.0, 29.0],
    [900.0, 30.0, 31.0, 30.0, 29.0, 32.0, 30.0, 31.0, 30.0, 400.0],  # one slow last window
    [900.0, 800.0, 30.0, 31.0, 30.0, 29.0, 32.0, 30.0, 31.0, 30.0],
], ids=["steady", "last_spike", "slow_first_two"])
def test_steady_latency_with_single_slow_windows_passes(p50):
    drift = _checks(_result(p50))["latency drift (p50)"]
    assert drift["ok"] and not drift.get("skipped"), drift


def test_too_few_windows_skip_the_drift_check_and_say_so():
    from emotion_perception.soak import format_verdict

    res = _result([900.0, 30.0])
    drift = _checks(res)["latency drift (p50)"]
    assert drift["ok"] and drift["skipped"] and "not judged" in drift["value"]
    res.update(feed_seconds=1.0, interrupted=False)
    table = format_verdict(res, list(_checks(res).values()))
    assert "SKIP" in table and "FAIL" not in table


@pytest.mark.slow
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
        # every processed frame came out, or the smoother counted it as dropped
        assert res["results_lost"] == 0, (processed, res["results_received"],
                                          res["smoother_dropped"])
        assert res["results_received"] + res["smoother_dropped"] == processed
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

"""The benchmark's graph feed: it measures what the graph really delivered (no timing asserted)."""

from __future__ import annotations

import pytest

from conftest import REPO_ROOT


@pytest.mark.ros
def test_feed_at_rate_counts_what_came_back_with_latencies(rclpy_session, tiny_model_path):
    from emotion_perception.bench import feed_at_rate, report
    from emotion_perception.core.sample_input import synthetic_scene
    from emotion_perception.probe import ProbedGraph

    graph = ProbedGraph(str(tiny_model_path), namespace="/bench_test",
                        params_file=REPO_ROOT / "config" / "emotion_perception.yaml",
                        overrides={"face_detector": {"tracking.min_hits": 1}})
    try:
        graph.wait_ready(60)
        frames = [synthetic_scene(2, size=(240, 320), t=i / 10.0) for i in range(5)]
        res = feed_at_rate(graph, frames, fps=10.0, seconds=2.0)
        assert 15 <= res["sent"] <= 25
        assert 0 < res["received"] <= res["sent"]
        assert res["faces_per_frame"] > 0
        assert res["latency"]["n"] == res["received"]
        assert 0 < res["latency"]["median_ms"] <= res["latency"]["p95_ms"]
        assert res["cpu_cores_used"] > 0

        # a second window starts from zero instead of adding to the first
        again = feed_at_rate(graph, frames[:1], fps=10.0, seconds=0.5)
        assert again["received"] <= again["sent"] <= 10
    finally:
        graph.close()
    text = report({"graph": {"ours_2face": res}, "peak_rss_mb": 123.0})
    assert "ours_2face" in text and f"{res['throughput_fps']:.1f}" in text
    assert "123 MB" in text

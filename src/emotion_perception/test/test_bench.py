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


def test_detector_table_prints_recall_beside_the_milliseconds():
    """A detector that finds nothing scores recall 0, one that finds every face 1; both show."""
    from emotion_perception.bags.scenes import make_scenes
    from emotion_perception.bench import bench_detectors, detector_recall, recall_faces, report
    from emotion_perception.core.types import FaceDetection

    images, labels, source = recall_faces("", 6)
    assert images.shape[0] == 6 and "portrait" in source
    scenes = list(make_scenes(images, labels, seed=0))

    class _Blind:
        def detect(self, image):
            return []

    class _Oracle:
        def __init__(self):
            self.frames = iter(scenes)

        def detect(self, image):
            return [FaceDetection(f.box, 1.0) for f in next(self.frames).faces]

    assert detector_recall(_Blind(), scenes)["recall"] == 0.0
    perfect = detector_recall(_Oracle(), scenes)
    assert perfect["recall"] == 1.0 and perfect["false_positives_per_frame"] == 0.0
    assert perfect["faces"] == 6

    results = bench_detectors(2, "", recall_count=4)
    assert results["_recall_frames"]["frames"] >= 2
    haar = results["haar, max_side 320"]
    assert 0.0 <= haar["recall"] <= 1.0 and haar["ms"]["n"] == 2
    text = report({"detectors": results, "peak_rss_mb": 1.0})
    assert "recall %" in text and f"{100 * haar['recall']:.1f}" in text
    assert "portrait" in text
    # the tracked rows: every moving frame timed and scored, region passes between full scans
    tracked = results.get("default, tracked moving faces, full_scan_every 3 (default)")
    if tracked is not None and "skipped" not in tracked:  # blazeface (the mediapipe wheel)
        frames = tracked["frames"]
        assert frames == 6 * results["_recall_frames"]["frames"] and tracked["ms"]["n"] == frames
        assert tracked["scans"]["full"] + tracked["scans"]["regions"] == frames
        assert tracked["scans"]["regions"] > 0 and 0.0 <= tracked["recall"] <= 1.0
        every1 = results["default, tracked moving faces, full_scan_every 1"]
        assert every1["scans"] == {"full": frames, "regions": 0}
        assert "full_scan_every 3 (default)" in text
        # the same with the region tiles at 128, the default before: the override arrives
        tiles128 = results["tracked, full_scan_every 3, region tiles 128"]
        assert (tracked["region_side"], tiles128["region_side"]) == (96, 128)
        assert tiles128["frames"] == frames and tiles128["scans"]["regions"] > 0
        assert "region tiles 128" in text
        # and with the full scans of sessions 13-14 (one look): the overrides arrive too
        single = results["tracked, full_scan_every 3, sessions 13-14 full scans"]
        assert (tracked["mirror_pass"], single["mirror_pass"]) == (True, False)
        assert single["frames"] == frames and "sessions 13-14 full scans" in text
        # bench --targets reads the tracked default row of this very shape
        from emotion_perception.bench_targets import _detector_check
        check = _detector_check({"detectors": results}, "main.json")
        assert check.met is not None and f"{tracked['ms']['median_ms']:.2f} ms" in check.measured
        still = results["blazeface 256 + second pass + face check (sessions 13-14)"]
        assert "skipped" not in still and 0.0 <= still["recall"] <= 1.0


def test_classifier_table_compares_with_the_compiled_keras_model(tiny_model_path, tmp_path):
    """Every runtime's speed-up is printed against compiled Keras (1.0x itself) and predict()."""
    import shutil

    from emotion_perception.bench import bench_classifiers, report

    shutil.copy(tiny_model_path, tmp_path / "emotion_net.keras")
    results = bench_classifiers(tmp_path, 2)
    assert set(results) == {"baseline_predict_per_face", "keras_eager", "keras_tf_function"}
    for res in results.values():
        for b in ("batch1", "batch4"):
            expect = (results["keras_tf_function"][b]["per_face_median_ms"]
                      / res[b]["per_face_median_ms"])
            assert res[b]["speedup_vs_compiled"] == pytest.approx(expect)
    assert results["keras_tf_function"]["batch1"]["speedup_vs_compiled"] == 1.0
    assert results["baseline_predict_per_face"]["batch4"]["speedup_vs_baseline"] == 1.0
    text = report({"classifiers": results, "peak_rss_mb": 1.0})
    assert "vs compiled Keras" in text and "vs predict()" in text
    assert "keras_tf_function" in text and "1.0x / 1.0x" in text

"""`bench --targets`: verdicts on saved bench figures, in the shapes the bench modes write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotion_perception import bench_targets as bt

AVX2 = {"model": "AMD EPYC", "cores": 2, "simd": ["sse4_2", "avx", "avx2", "fma"],
        "no_simd": ["avx512f"]}


def _main(cores: float = 0.44, p95_1: float = 20.2, p95_4: float = 35.1,
          tracked_ms: float = 2.9, machine: dict | None = None, kept_up: float = 1.0) -> dict:
    """A `bench --json` file: the keys bench.main writes (detectors, graph)."""
    def graph_row(p95: float, fps: float, used: float) -> dict:
        return {"offered_fps": fps, "throughput_fps": fps * kept_up, "cpu_cores_used": used,
                "latency": {"median_ms": p95 / 2, "p95_ms": p95}}
    return {"machine": machine or AVX2, "command": "bench",
            "detectors": {
                "haar, max_side 320": {"ms": {"median_ms": 10.6}, "recall": 0.57},
                "default, tracked moving faces, full_scan_every 1": {
                    "ms": {"median_ms": 10.4}, "recall": 0.96},
                "default, tracked moving faces, full_scan_every 3 (default)": {
                    "ms": {"median_ms": tracked_ms, "p95_ms": 18.5}, "recall": 0.961}},
            "graph": {"ours_1face": graph_row(p95_1, 30.0, cores),
                      "ours_4face": graph_row(p95_4, 15.0, 0.47),
                      "baseline_1face": graph_row(97.3, 30.0, 1.62)}}


def _processes(detector_received: int = 599, fps: float = 30.0) -> dict:
    """A `bench --processes --json` file: transport and graph runs per profile."""
    def transport(profile: str, received: list[int]) -> dict:
        return {"profile": profile, "publisher_profile": profile, "width": 640, "height": 480,
                "fps": 30.0, "achieved_fps": fps, "published": 600, "received": received,
                "delivered_percent": [100.0 * r / 600 for r in received]}

    def node(received: int, source: str = "camera") -> dict:
        return {"input_from": source, "sent": 600, "received": received,
                "delivered_percent": 100.0 * received / 600}
    return {"machine": AVX2, "transport": [transport("shipped", [599, 600]),
                                           transport("none", [202, 201])],
            "graph": [{"profile": "shipped", "fps": 30.0, "camera_fps": fps,
                       "nodes": {"face_detector": node(detector_received),
                                 "debug_image": node(600),
                                 "emotion_classifier": node(40, "face_detector")}},
                      {"profile": "none", "fps": 30.0, "camera_fps": fps,
                       "nodes": {"face_detector": node(140)}}]}


def _peer(speedup: float | None = 3.2, clip: str = "demo: 90 frames") -> dict:
    """A `bench --peer --json` file."""
    side = {"rounds": 4, "ours": {"median_ms": 6.3}}
    if speedup is None:
        side["peer"] = {"skipped": "no --peer-python given"}
    else:
        side.update(peer={"median_ms": 6.3 * speedup}, speedup=speedup,
                    speedup_per_round=[speedup - 0.1, speedup + 0.1])
    return {"machine": AVX2, "clip": clip, "side_by_side": side}


def _files(tmp_path: Path, **contents: dict) -> list[Path]:
    paths = []
    for name, body in contents.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(body))
        paths.append(path)
    return paths


def _verdicts(checks: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in checks:
        out.setdefault(c.target, []).append(c.met)
    return out


def test_every_target_met_on_the_three_files(tmp_path, capsys):
    paths = _files(tmp_path, main=_main(), processes=_processes(), peer=_peer())
    checks, cpus = bt.check_files(paths)
    verdicts = _verdicts(checks)
    assert list(verdicts) == list(bt.TARGETS)  # every target, in the table's order
    assert all(all(v) for v in verdicts.values())
    assert len(verdicts["delivered"]) == 2  # the plain transport and the node processes
    assert bt.main([str(p) for p in paths]) == 0
    out = capsys.readouterr().out
    assert "AMD EPYC, 2 cores; sse4_2 avx avx2 fma" in out and "NOT met" not in out
    assert "median 2.90 ms, recall 96.1 %" in out and "0.44 cores" in out
    assert "demo: 90 frames: 3.20x (rounds 3.10-3.30x)" in out
    assert "lowest face_detector 99.8 %" in out  # 599 of 600, the node fed by the camera


def test_a_budget_overrun_is_not_met_and_fails_the_exit_status(tmp_path, capsys):
    paths = _files(tmp_path, main=_main(cores=0.68, p95_4=50.3, tracked_ms=3.01),
                   processes=_processes(detector_received=560), peer=_peer(speedup=1.8))
    verdicts = _verdicts(bt.check_files(paths)[0])
    assert verdicts["cores_1face"] == [False] and verdicts["p95_1face"] == [True]
    assert verdicts["p95_4face"] == [False] and verdicts["detector"] == [False]
    assert verdicts["vs_fer"] == [False] and verdicts["delivered"] == [True, False]
    assert bt.main([str(p) for p in paths]) == 1
    assert capsys.readouterr().out.count("NOT met") == 5


def test_a_graph_that_keeps_its_latency_by_skipping_frames_is_not_met(tmp_path):
    (path,) = _files(tmp_path, main=_main(kept_up=0.85))  # 25.5 of 30 fps answered
    verdicts = _verdicts(bt.check_files([path])[0])
    assert verdicts["p95_1face"] == [False] and verdicts["p95_4face"] == [False]
    assert verdicts["cores_1face"] == [False]  # little CPU for a third of the frames


def test_a_graph_row_that_answered_nothing_is_not_met(tmp_path):
    body = _main()
    body["graph"]["ours_1face"].update(throughput_fps=0.0, received=0)
    del body["graph"]["ours_1face"]["latency"]  # feed_at_rate writes none without answers
    (path,) = _files(tmp_path, main=body)
    checks, _ = bt.check_files([path])
    (row,) = [c for c in checks if c.target == "p95_1face"]
    assert row.met is False and row.measured.startswith("no answer")


def test_a_file_that_did_not_measure_a_target_does_not_outvote_one_that_did(tmp_path):
    no_graph = _main()
    del no_graph["graph"]  # bench --graph-seconds 0
    only_none = _processes()
    only_none["transport"] = only_none["transport"][1:]
    only_none["graph"] = only_none["graph"][1:]
    paths = _files(tmp_path, a=no_graph, b=_main(), c=only_none, d=_processes(), e=_peer())
    checks, _ = bt.check_files(paths)
    assert all(c.met for c in checks), [(c.target, c.measured) for c in checks if not c.met]
    assert bt.main([str(p) for p in paths]) == 0


def test_a_skipped_tracked_row_says_why(tmp_path):
    body = _main()
    body["detectors"]["default, tracked moving faces, full_scan_every 3 (default)"] = {
        "skipped": "no mediapipe wheel"}
    (path,) = _files(tmp_path, main=body)
    (row,) = [c for c in bt.check_files([path])[0] if c.target == "detector"]
    assert row.met is None and "no mediapipe wheel" in row.measured


def test_what_no_file_measured_is_not_measured_never_met(tmp_path, capsys):
    paths = _files(tmp_path, main=_main(), peer=_peer(speedup=None))
    checks, _ = bt.check_files(paths)
    verdicts = _verdicts(checks)
    assert verdicts["delivered"] == [None] and verdicts["vs_fer"] == [None]
    assert verdicts["p95_1face"] == [True]
    assert bt.main([str(p) for p in paths]) == 1
    out = capsys.readouterr().out
    assert "peer skipped (no --peer-python given)" in out and "no file measured it" in out


def test_slow_small_or_other_profile_runs_do_not_count_for_delivery(tmp_path):
    slow = _processes(fps=10.0)
    small = _processes()
    for run in small["transport"]:
        run.update(width=64, height=48)
    small["graph"] = [g for g in small["graph"] if g["profile"] == "none"]
    for body in (slow, small):
        (path,) = _files(tmp_path, p=body)
        assert _verdicts(bt.check_files([path])[0])["delivered"] == [None]


def test_files_from_different_cpus_are_said_to_be(tmp_path, capsys):
    other = {**AVX2, "model": "Intel(R) Xeon(R) Processor", "simd": AVX2["simd"] + ["avx512f"]}
    paths = _files(tmp_path, main=_main(machine=other), peer=_peer())
    bt.main([str(p) for p in paths])
    out = capsys.readouterr().out
    assert "Intel(R) Xeon(R) Processor" in out and "different CPUs" in out


@pytest.mark.parametrize("body, message", [
    ("not json", "cannot read it as JSON"),
    (json.dumps({"machine": AVX2}), "not a bench --json file"),
    (json.dumps([1, 2]), "not a bench --json file"),
    (json.dumps({"machine": AVX2, "clip": "x", "side_by_side": None}), "unexpected shape"),
    (json.dumps({"machine": AVX2, "transport": [], "graph": [{"profile": "shipped",
                                                              "camera_fps": 30,
                                                              "nodes": [1]}]}),
     "unexpected shape"),
])
def test_a_file_no_bench_mode_wrote_is_refused(tmp_path, capsys, body, message):
    path = tmp_path / "x.json"
    path.write_text(body)
    assert bt.main([str(path)]) == 2
    assert message in capsys.readouterr().err
    assert bt.main([str(tmp_path / "missing.json")]) == 2


def test_bench_hands_targets_to_bench_targets(monkeypatch):
    from emotion_perception import bench

    seen = []
    monkeypatch.setattr(bt, "main", lambda argv: seen.append(argv) or 0)
    assert bench.main(["--targets", "a.json", "b.json"]) == 0
    assert seen == [["a.json", "b.json"]]

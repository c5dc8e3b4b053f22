"""bench --processes: the multi-process benchmark's plumbing (its figures are not asserted)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from emotion_perception import bench_processes as bp


def test_interpolate_count_between_reports():
    series = [(10.0, 0.0), (11.0, 30.0), (12.0, 60.0)]
    assert bp.interpolate_count(series, 10.5) == pytest.approx(15.0)
    assert bp.interpolate_count(series, 11.0) == pytest.approx(30.0)
    assert bp.interpolate_count(series, 9.0) == 0.0  # before the first report: the first
    assert bp.interpolate_count(series, 13.0) == 60.0  # after the last: the last
    assert math.isnan(bp.interpolate_count([], 1.0))


def test_child_env_sets_or_clears_the_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/the/users/own.xml")
    env = bp.child_env("none")
    assert not any(v in env for v in bp.PROFILE_VARS)
    env = bp.child_env("shipped")
    shipped = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert shipped.name == "fastdds_shm.xml" and shipped.is_file()
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(shipped)
    mine = tmp_path / "mine.xml"
    assert bp.child_env(str(mine))["FASTDDS_DEFAULT_PROFILES_FILE"] == str(mine.resolve())


def test_machine_line_names_the_cpu_its_simd_flags_and_the_load():
    from emotion_perception.machine import SIMD_FLAGS, machine, machine_line

    info = machine()
    assert info["model"] and info["cores"] == os.cpu_count()
    assert set(info["simd"]) | set(info["no_simd"]) == set(SIMD_FLAGS)
    assert not set(info["simd"]) & set(info["no_simd"])
    line = machine_line(info)
    assert line.startswith(f"CPU: {info['model']}, {info['cores']} cores; SIMD: ")
    assert all(f in line for f in SIMD_FLAGS)  # each flag said, present or absent
    assert "load average" in line
    fake = {"model": "Test CPU", "cores": 2, "simd": ["avx2"], "no_simd": ["avx512f"],
            "load_average": [1.0, 2.5, 3.0]}
    assert machine_line(fake) == ("CPU: Test CPU, 2 cores; SIMD: avx2; no avx512f; load "
                                  "average 1.00 2.50 3.00")


@pytest.mark.ros
@pytest.mark.slow
def test_transport_benchmark_counts_frames_between_processes():
    r = bp.bench_transport("shipped", fps=10.0, seconds=1.5, subscribers=2, width=64,
                           height=48)
    assert r["published"] == 15
    assert len(r["received"]) == 2
    assert all(0 < n <= 15 for n in r["received"]), r  # matched before the first frame
    assert r["cpu_cores"] > 0
    text = bp.report({"transport": [r], "graph": []})
    assert "transport 64x48 bgr8 @ 10 fps, profile shipped: published 15" in text


def test_bench_hands_processes_to_bench_processes(monkeypatch):
    from emotion_perception import bench

    seen = []
    monkeypatch.setattr(bp, "main", lambda argv: seen.append(argv) or 0)
    assert bench.main(["--processes", "--mode", "transport"]) == 0
    assert seen == [["--mode", "transport"]]

"""`bench --targets`: the CPU-budget targets, checked against saved bench figures.

The front end has targets for a small 2-core robot CPU (README, "Performance"). Three bench
runs measure them, each saved with ``--json``:

- ``bench --json main.json``: the detector and the in-process graph.
- ``bench --processes --json processes.json``: frames delivered between processes.
- ``bench --peer --peer-python ... --json peer.json``: the per-frame pipeline beside `fer`.
  Repeat it with ``--clip`` for more clips: each file is a row.

``bench --targets main.json processes.json peer.json ...`` prints one row per target: what
the files measured, and whether it is met. It reads only the files, so it can check figures
from another machine. It says so when the files come from different CPUs, since targets
hold per CPU. A target that no file measured is "not measured", never "met".
Exit status: 0 when every target was measured and met; 1 otherwise; 2 for an unreadable
file or one that no bench mode wrote.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

#: 1 face at 30 fps and 4 faces at 15 fps through the in-process graph: p95 latency at most
#: this (image stamp to /emotion)
MAX_P95_MS = 50.0
#: ... while it keeps up: the share of the offered frames it must answer
MIN_RATE_SHARE = 0.95
#: CPU cores the in-process graph may use for 1 face at 30 fps
MAX_CORES_1FACE = 0.6
#: the detector's median per frame on the tracked moving faces, default parameters
MAX_DETECTOR_MS = 3.0
#: our per-frame pipeline against the fer package's on the same frames (peer median / ours)
MIN_SPEEDUP_VS_FER = 2.0
#: share of the camera's frames every node receives between processes (shipped DDS profile)
MIN_DELIVERED_PERCENT = 99.0


#: every target (issue: the perception front end), in the printed order
TARGETS = {
    "detector": f"detector <= {MAX_DETECTOR_MS:g} ms/frame (default, tracked moving faces)",
    "p95_1face": f"1 face at 30 fps: p95 <= {MAX_P95_MS:g} ms",
    "cores_1face": f"1 face at 30 fps: <= {MAX_CORES_1FACE:g} CPU cores",
    "p95_4face": f"4 faces at 15 fps: p95 <= {MAX_P95_MS:g} ms",
    "vs_fer": f"per-frame pipeline >= {MIN_SPEEDUP_VS_FER:g}x the fer package",
    "delivered": f">= {MIN_DELIVERED_PERCENT:g} % of 640x480 frames at 30 fps delivered "
                 "between processes (shipped profile)",
}


@dataclass
class Check:
    """One target's verdict: what was measured, from which file, and whether it is met."""

    target: str  # a key of TARGETS
    measured: str
    met: bool | None  # None: not measured
    source: str = ""


def kind_of(results: dict[str, Any]) -> str:
    """Return which bench mode wrote ``results``: main, processes or peer ('' if none)."""
    if "side_by_side" in results:
        return "peer"
    if isinstance(results.get("transport"), list) or isinstance(results.get("graph"), list):
        return "processes"
    if "detectors" in results or isinstance(results.get("graph"), dict):
        return "main"
    return ""


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _graph_checks(results: dict[str, Any], source: str) -> list[Check]:
    graph = results.get("graph") or {}
    out = []
    for row, target in (("ours_1face", "p95_1face"), ("ours_4face", "p95_4face")):
        r = graph.get(row)
        if not isinstance(r, dict):
            out.append(Check(target, f"no graph row {row}", None, source))
            if row == "ours_1face":
                out.append(Check("cores_1face", f"no graph row {row}", None, source))
            continue
        rate = _finite(r.get("throughput_fps")) or 0.0
        offered = _finite(r.get("offered_fps")) or float("nan")
        # a graph that keeps its latency or its CPU low by skipping frames does not run at
        # the rate: below MIN_RATE_SHARE of the offered frames both targets are not met
        kept_up = rate >= MIN_RATE_SHARE * offered
        answered = f"{rate:.1f} of {offered:.0f} fps"
        p95 = _finite((r.get("latency") or {}).get("p95_ms"))
        if p95 is None:  # a row without latencies: nothing came back
            out.append(Check(target, f"no answer ({answered})", False, source))
        else:
            out.append(Check(target, f"p95 {p95:.1f} ms ({answered})",
                             p95 <= MAX_P95_MS and kept_up, source))
        if row == "ours_1face":
            cores = _finite(r.get("cpu_cores_used"))
            out.append(Check("cores_1face", "no CPU figure" if cores is None else
                             f"{cores:.2f} cores ({answered})", None if cores is None else
                             cores <= MAX_CORES_1FACE and kept_up, source))
    return out


def _detector_check(results: dict[str, Any], source: str) -> Check:
    why = "no tracked default row"
    for label, r in (results.get("detectors") or {}).items():
        if not (label.startswith("default, tracked moving faces") and
                label.endswith("(default)")):
            continue
        if "skipped" in r:
            why = f"tracked default row skipped ({r['skipped']})"
            continue
        median = _finite((r.get("ms") or {}).get("median_ms"))
        if median is not None:
            recall = _finite(r.get("recall"))
            found = "" if recall is None else f", recall {100 * recall:.1f} %"
            return Check("detector", f"median {median:.2f} ms{found}",
                         median <= MAX_DETECTOR_MS, source)
    return Check("detector", why, None, source)


def _delivery_checks(results: dict[str, Any], source: str) -> list[Check]:
    out = []
    rate = MIN_RATE_SHARE * 30.0  # the frames must be published at 30 fps, not only asked for
    for r in results.get("transport") or []:
        if r.get("profile") != "shipped" or r.get("publisher_profile", "shipped") != "shipped" \
                or (_finite(r.get("achieved_fps")) or 0.0) < rate \
                or (r.get("width") or 0) * (r.get("height") or 0) < 640 * 480:
            continue
        shares = [_finite(p) for p in r.get("delivered_percent", [])]
        if shares and None not in shares:
            out.append(Check("delivered", f"plain rclpy transport at "
                                          f"{_finite(r.get('achieved_fps')):.1f} fps: lowest "
                                          f"subscriber {min(shares):.1f} %",
                             min(shares) >= MIN_DELIVERED_PERCENT, source))
    for r in results.get("graph") or []:
        if r.get("profile") != "shipped" or (_finite(r.get("camera_fps")) or 0.0) < rate:
            continue
        nodes = {n: _finite(v.get("delivered_percent")) for n, v in r.get("nodes", {}).items()
                 if v.get("input_from") == "camera"}
        if nodes and None not in nodes.values():
            low = min(nodes, key=nodes.get)
            out.append(Check("delivered", f"node processes, camera at "
                                          f"{_finite(r.get('camera_fps')):.1f} fps: lowest "
                                          f"{low} {nodes[low]:.1f} %",
                             nodes[low] >= MIN_DELIVERED_PERCENT, source))
    return out or [Check("delivered", "no run at 30 fps 640x480 with the shipped profile",
                         None, source)]


def _peer_check(results: dict[str, Any], source: str) -> Check:
    r = results.get("side_by_side", {})
    clip = results.get("clip", "?")
    speedup = _finite(r.get("speedup"))
    if speedup is None:
        why = r.get("peer", {}).get("skipped", "no speed-up figure")
        return Check("vs_fer", f"{clip}: peer skipped ({why})", None, source)
    rounds = [_finite(x) for x in r.get("speedup_per_round", [])]
    spread = f" (rounds {min(rounds):.2f}-{max(rounds):.2f}x)" \
        if rounds and None not in rounds else ""
    return Check("vs_fer", f"{clip}: {speedup:.2f}x{spread}", speedup >= MIN_SPEEDUP_VS_FER,
                 source)


CHECKERS: dict[str, Callable[[dict[str, Any], str], list[Check]]] = {
    "main": lambda r, s: [_detector_check(r, s), *_graph_checks(r, s)],
    "processes": _delivery_checks,
    "peer": lambda r, s: [_peer_check(r, s)],
}


def cpu_of(results: dict[str, Any]) -> str:
    """Return a file's CPU as model, cores and SIMD flags (the three modes store it alike)."""
    m = results.get("machine") or {}
    simd = " ".join(m.get("simd", [])) or "no SIMD flags listed"
    return f"{m.get('model', 'unknown CPU')}, {m.get('cores', '?')} cores; {simd}"


def check_files(paths: list[Path]) -> tuple[list[Check], dict[str, str]]:
    """Return every target's checks from the bench JSON files, and each file's CPU.

    Raises ValueError naming a file that cannot be read or that no bench mode wrote.
    """
    checks: list[Check] = []
    cpus: dict[str, str] = {}
    for path in paths:
        try:
            results = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read it as JSON ({exc})") from exc
        kind = kind_of(results) if isinstance(results, dict) else ""
        if not kind:
            raise ValueError(f"{path}: not a bench --json file (no detectors, graph, "
                             "transport or side_by_side figures)")
        cpus[str(path)] = cpu_of(results)
        try:
            checks += CHECKERS[kind](results, str(path))
        except (AttributeError, TypeError, KeyError) as exc:
            raise ValueError(f"{path}: a bench --json file of an unexpected shape "
                             f"({type(exc).__name__}: {exc})") from exc
    # a file that did not measure a target does not outvote one that did
    measured = {c.target for c in checks if c.met is not None}
    checks = [c for c in checks if c.met is not None or c.target not in measured]
    checks += [Check(t, "no file measured it", None) for t in TARGETS
               if not any(c.target == t for c in checks)]
    order = list(TARGETS)
    checks.sort(key=lambda c: order.index(c.target))
    return checks, cpus


def report(checks: list[Check], cpus: dict[str, str]) -> str:
    """Return the printed table, after one line per file naming its CPU."""
    from .bench import _fmt_table

    lines = [f"{path}: {cpu}" for path, cpu in cpus.items()]
    if len(set(cpus.values())) > 1:
        lines.append("the files come from different CPUs: each target holds for the CPU of "
                     "the file it was read from")
    rows = [["target", "measured", "verdict", "file"]]
    for c in checks:
        verdict = "not measured" if c.met is None else ("met" if c.met else "NOT met")
        rows.append([TARGETS[c.target], c.measured, verdict,
                     Path(c.source).name if c.source else "-"])
    lines += ["", _fmt_table(rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Check the targets against bench JSON files and print the verdicts."""
    p = argparse.ArgumentParser(prog="bench --targets", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="JSON files written by bench --json, "
                   "bench --processes --json and bench --peer --json")
    a = p.parse_args(argv)
    try:
        checks, cpus = check_files(a.files)
    except ValueError as exc:
        print(f"bench --targets: {exc}", file=sys.stderr)
        return 2
    print(report(checks, cpus))
    return 0 if all(c.met for c in checks) else 1

"""Side by side: ``bench --peer``, the default per-frame pipeline against the `fer` package.

The same decoded frames of one clip go through (a) this project's default per-frame pipeline
in this process, without ROS: the FramePipeline that ``bags/evaluate.py`` and the live nodes
build from the parameter file (by default BlazeFace, tracking, aligned crops, the shipped int8
classifier with mirror TTA), timed around ``FramePipeline.process``; and (b) the peer, `fer`'s
``FER().detect_emotions(frame)`` with its defaults (OpenCV's Haar frontal-face cascade; MTCNN
only with ``mtcnn=True``), run by ``fer_peer.py`` in the peer's own interpreter
(``--peer-python``, a virtual environment that holds `fer` with its TensorFlow and OpenCV, so
the project's pinned ones stay as they are), which times every call in that process on the
same frames, passed as a .npy file. The two sides alternate, one pass over the clip at a time
(ours first in even rounds, the peer first in odd ones), so that a load change on a shared
machine slows both instead of the one that happens to run then; only one side runs at a time.

Printed: ms/frame median and p95 over all passes, faces found per frame, the speed-up (peer
median / ours) overall and per round, with the CPU model, its SIMD flags and the load average
before and after in the header. Without ``--peer-python``, or where the peer cannot run (no
`fer` there, the interpreter missing, the process failing), the peer row says it is skipped and
why; the command still succeeds.

The clip: ``demo`` (the embedded demo input, 640x480, a drifting public-domain portrait),
``scenes`` (stills: that portrait's face turned up to 25 degrees, 80-320 px, on textured
backgrounds, ``bags/scenes.py``; our tracker confirms faces at the first hit there, as no still
shows a face twice), or a video file of your own (``--clip PATH``). Frames are made in memory;
no clip is shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .machine import SIMD_FLAGS, cpu_description

PEER_SCRIPT = Path(__file__).with_name("fer_peer.py")
WARMUP_FRAMES = 3


def clip_frames(clip: str, frames: int, faces: int = 1) -> tuple[list[np.ndarray], str]:
    """Return (up to ``frames`` BGR frames of ``clip``, a description of them).

    ``clip`` is ``demo``, ``scenes`` or a video file (read once, not looped: a shorter file
    gives fewer frames). ValueError for a clip that gives no frames.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if clip == "demo":
        from .core.sample_input import demo_frames

        out = [f for _, f in demo_frames(frames, fps=15.0, n_faces=faces)]
        what = (f"the embedded demo input ({faces} drifting portrait face"
                f"{'s' if faces != 1 else ''}, 15 fps)")
    elif clip == "scenes":
        from .bags.scenes import make_scenes
        from .bench import recall_faces

        images, labels, _ = recall_faces("", 2 * frames)  # a two-face frame takes two
        scenes = make_scenes(images, labels, seed=0)
        stills = [next(scenes) for _ in range(frames)]
        out = [s.frame for s in stills]
        truth = sum(len(s.faces) for s in stills) / frames
        what = ("stills: the demo portrait's face turned up to 25 deg, 80-320 px, textured "
                f"backgrounds, {truth:.2f} faces/frame (bags/scenes.py, seed 0)")
    else:
        from .core.sources import SourceError, open_source

        try:
            source = open_source(clip, loop=False)
        except SourceError as exc:
            raise ValueError(str(exc)) from exc
        out = []
        try:
            while len(out) < frames:
                frame = source.read()
                if frame is None:
                    break
                out.append(np.ascontiguousarray(frame))
        finally:
            source.close()
        what = f"video file {clip}"
    if not out:
        raise ValueError(f"clip {clip!r} gave no frames")
    h, w = out[0].shape[:2]
    return out, f"{what}: {len(out)} frames {w}x{h}"


def our_pipeline(params_file: str = "", overrides: dict | None = None) -> tuple[Any, str]:
    """Return (the default FramePipeline the live nodes build, a description of it).

    ``overrides`` ({node: {param: value}}) go over the parameter file's values.
    """
    from .bags.evaluate import CLASSIFIER_NODE, DETECTOR_NODE, build_pipeline, resolve_params

    params = resolve_params(params_file or None, overrides)
    pipeline = build_pipeline(params)
    det, clf = params[DETECTOR_NODE], params[CLASSIFIER_NODE]
    name = det["detector"]
    setting = (f" input_side {det['blazeface.input_side']}" if name == "blazeface"
               else f" max_side {det['max_side']}" if name in ("haar", "yunet") else "")
    model = Path(str(getattr(pipeline.classifier, "path", clf["model_path"] or "?"))).name
    tta = (", mirror TTA over frames" if pipeline.over_time is not None
           else ", mirror TTA" if clf["tta_mirror"] else "")
    crops = "aligned crops" if pipeline.crop_align else "crops"
    tracking = f"tracking (min_hits {det['tracking.min_hits']}"
    if pipeline.region_passes:
        tracking += f", full scan every {pipeline.full_scan_every}"
    tracking += ")"
    return pipeline, f"ours: {name}{setting} + {tracking} + {crops} + {model}{tta}"


def time_ours(pipeline: Any, frames: list[np.ndarray], start_index: int = 0
              ) -> dict[str, list]:
    """Run ``pipeline.process`` on every frame; return seconds, faces found and classified."""
    seconds, found, classified = [], [], []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        estimates = pipeline.process(frame, (start_index + i) / 15.0)
        seconds.append(time.perf_counter() - t0)
        found.append(len(pipeline.last_tracked))
        classified.append(len(estimates))
    return {"seconds": seconds, "faces": found, "classified": classified}


class PeerError(RuntimeError):
    """The peer process could not be used (the message says why)."""


class PeerProcess:
    """``fer_peer.py`` running in the peer's interpreter, spoken to over stdin/stdout."""

    def __init__(self, python: str, script: Path, frames_path: Path, kwargs: dict,
                 timeout: float) -> None:
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # the peer's interpreter sees its own packages only
        try:
            self.proc = subprocess.Popen(
                [python, str(script), str(frames_path), json.dumps(kwargs)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                text=True, env=env)
        except OSError as exc:
            self._stderr.close()
            raise PeerError(f"cannot start {python}: {exc}") from exc
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.info = self._reply()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _stderr_tail(self, chars: int = 400) -> str:
        self._stderr.seek(0)
        text = " ".join(self._stderr.read().split())
        return f"; its stderr ends: ...{text[-chars:]}" if text else ""

    def _reply(self) -> dict:
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            raise PeerError(f"the peer gave no answer in {self.timeout:.0f} s"
                            f"{self._stderr_tail()}") from None
        if line is None:
            code = self.proc.wait(timeout=10)
            raise PeerError(f"the peer exited ({code}) without an answer{self._stderr_tail()}")
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise PeerError(f"the peer answered {line[:200]!r}, not JSON") from None
        if "error" in reply:
            raise PeerError(f"the peer failed: {reply['error']}{self._stderr_tail()}")
        return reply

    def run(self) -> dict:
        """Have the peer process every frame once; return its {"seconds", "faces"}."""
        try:
            self.proc.stdin.write("run\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise PeerError(f"the peer is gone ({exc}){self._stderr_tail()}") from exc
        return self._reply()

    def close(self) -> None:
        """Ask the peer to quit; kill it if it does not."""
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def _summary(passes: list[dict], label: str) -> dict[str, Any]:
    seconds = np.concatenate([p["seconds"] for p in passes]) * 1e3
    res = {"label": label, "median_ms": float(np.median(seconds)),
           "p95_ms": float(np.percentile(seconds, 95)), "n": int(seconds.size),
           "faces_per_frame": float(np.mean(np.concatenate([p["faces"] for p in passes]))),
           "round_median_ms": [float(np.median(p["seconds"]) * 1e3) for p in passes]}
    if "classified" in passes[0]:
        res["classified_per_frame"] = float(np.mean(np.concatenate(
            [p["classified"] for p in passes])))
    return res


def _peer_label(info: dict) -> str:
    s = info.get("settings", {})
    if not s:
        return info.get("peer", "peer")
    detector = "MTCNN" if s.get("mtcnn") else (
        f"Haar cascade (scale {s.get('scale_factor')}, min_neighbors {s.get('min_neighbors')}, "
        f"min {s.get('min_face_size')} px)")
    model = "TFLite" if s.get("use_tflite") else "Keras"
    return f"{info.get('peer', 'peer')}: FER() {detector} + mini-Xception {model}"


def side_by_side(frames: list[np.ndarray], peer_python: str, rounds: int = 3,
                 peer_script: Path = PEER_SCRIPT, peer_kwargs: dict | None = None,
                 params_file: str = "", timeout: float = 300.0,
                 overrides: dict | None = None) -> dict[str, Any]:
    """Time ours and the peer on ``frames``, alternating passes; return all figures.

    ``overrides`` ({node: {param: value}}) change our pipeline's parameters.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    out: dict[str, Any] = {"rounds": rounds, "load_before": list(os.getloadavg())}
    pipeline, label = our_pipeline(params_file, overrides)
    for frame in frames[:WARMUP_FRAMES]:
        pipeline.process(frame, 0.0)
    peer, tmp = None, None
    if not peer_python:
        out["peer"] = {"skipped": "no --peer-python given (the interpreter of a virtual "
                                  "environment with fer installed; see README, Performance)"}
    elif not Path(peer_python).is_file() and not shutil.which(peer_python):
        out["peer"] = {"skipped": f"peer python {peer_python} does not exist"}
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_peer_")
        frames_path = Path(tmp.name) / "frames.npy"
        np.save(frames_path, np.stack(frames))
        try:
            peer = PeerProcess(peer_python, peer_script, frames_path, peer_kwargs or {},
                               timeout)
            if "skipped" in peer.info:
                out["peer"] = {"skipped": peer.info["skipped"]}
                peer.close()
                peer = None
        except PeerError as exc:
            out["peer"] = {"skipped": str(exc)}
    ours_passes, peer_passes = [], []
    try:
        for r in range(rounds):
            order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
            for side in order:
                if side == "ours":
                    ours_passes.append(time_ours(pipeline, frames, r * len(frames)))
                elif peer is not None:
                    try:
                        peer_passes.append(peer.run())
                    except PeerError as exc:
                        out["peer"] = {"skipped": f"in round {r + 1}: {exc}"}
                        peer.close()
                        peer, peer_passes = None, []
    finally:
        if peer is not None:
            peer.close()
        if tmp is not None:
            tmp.cleanup()
    out["ours"] = _summary(ours_passes, label)
    if peer_passes and peer is not None:
        out["peer"] = {**_summary(peer_passes, _peer_label(peer.info)),
                       "versions": peer.info.get("versions", {}),
                       "settings": peer.info.get("settings", {})}
        ours = out["ours"]
        out["speedup"] = out["peer"]["median_ms"] / ours["median_ms"]
        out["speedup_per_round"] = [p / o for p, o in zip(out["peer"]["round_median_ms"],
                                                          ours["round_median_ms"])]
    out["load_after"] = list(os.getloadavg())
    return out


def report(results: dict[str, Any]) -> str:
    """Return the printed side-by-side table with its header."""
    cpu, r = results["machine"], results["side_by_side"]
    simd = " ".join(f.upper() for f in cpu["simd"]) or "none of " + ", ".join(SIMD_FLAGS)
    lines = [f"side by side on the same frames: {results['clip']}",
             f"CPU: {cpu['model']}, {cpu['cores']} cores; SIMD: {simd}"
             + (f"; no {' '.join(f.upper() for f in cpu['no_simd'])}" if cpu["no_simd"] else ""),
             "load average 1/5/15 min: before " + " ".join(f"{v:.2f}" for v in r["load_before"])
             + ", after " + " ".join(f"{v:.2f}" for v in r["load_after"]),
             f"{r['rounds']} rounds, the sides alternating one pass over the clip at a time", ""]
    rows = [["pipeline", "ms/frame median / p95", "faces found/frame", "speed-up"]]
    ours, peer = r["ours"], r["peer"]
    rows.append([ours["label"], f"{ours['median_ms']:.2f} / {ours['p95_ms']:.2f}",
                 f"{ours['faces_per_frame']:.2f} ({ours.get('classified_per_frame', 0):.2f} "
                 "classified)", f"{r['speedup']:.2f}x" if "speedup" in r else "-"])
    if "skipped" in peer:
        rows.append(["peer (fer)", "skipped", "-", "-"])
    else:
        rows.append([peer["label"], f"{peer['median_ms']:.2f} / {peer['p95_ms']:.2f}",
                     f"{peer['faces_per_frame']:.2f}", "1.00x (baseline)"])
    from .bench import _fmt_table

    lines.append(_fmt_table(rows))
    if "skipped" in peer:
        lines.append(f"peer row skipped: {peer['skipped']}")
    if "speedup_per_round" in r:
        lines.append("speed-up per round (peer median / ours): "
                     + ", ".join(f"{s:.2f}x" for s in r["speedup_per_round"]))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``bench --peer``."""
    p = argparse.ArgumentParser(prog="bench --peer", description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", default="", help="python of a virtual environment with "
                   "the fer package (without it the peer row is skipped)")
    p.add_argument("--peer-script", type=Path, default=PEER_SCRIPT,
                   help="the peer-side script (default: fer_peer.py of this package)")
    p.add_argument("--peer-kwargs", default="{}", help='JSON keyword arguments for fer.FER() '
                   '(default {}: its defaults, the Haar cascade; e.g. {"mtcnn": true})')
    p.add_argument("--clip", default="demo", help="demo (default) | scenes | a video file")
    p.add_argument("--clip-faces", type=int, default=1, help="faces in the demo clip")
    p.add_argument("--frames", type=int, default=90, help="frames of the clip (default 90)")
    p.add_argument("--rounds", type=int, default=3, help="passes per side (default 3)")
    p.add_argument("--params-file", default="", help="parameter YAML for our pipeline "
                   "(default: the package's config/emotion_perception.yaml)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds the peer may take to load or to run one pass")
    p.add_argument("--json", type=Path, help="write all figures to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the side by side and print it."""
    a = parser().parse_args(argv)
    try:
        kwargs = json.loads(a.peer_kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("not a JSON object")
        frames, clip = clip_frames(a.clip, a.frames, a.clip_faces)
    except ValueError as exc:
        print(f"bench --peer: {exc}", file=sys.stderr)
        return 2
    print(f"side by side on {clip} ...", file=sys.stderr, flush=True)
    # stills are unrelated frames: a track would never see a face twice, so with the default
    # min_hits 2 nothing would be classified; every detection is classified at once instead
    # (and no still shows a face where the last one did: no region passes between full scans)
    overrides = ({"face_detector": {"tracking.min_hits": 1, "full_scan_every": 1}}
                 if a.clip == "scenes" else None)
    results = {"machine": cpu_description(), "clip": clip, "date": time.strftime("%Y-%m-%d %H:%M"),
               "side_by_side": side_by_side(frames, a.peer_python, a.rounds, a.peer_script,
                                            kwargs, a.params_file, a.timeout, overrides)}
    print(report(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {a.json}")
    return 0

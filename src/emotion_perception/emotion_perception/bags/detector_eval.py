"""``emotion_eval_detectors``: detectors and crop framings scored on rotated, textured frames.

Makes the frames of :mod:`.scenes` from one split of the FER npz (default PublicTest: every
face once, turned up to 25 degrees, 80-320 px, textured backgrounds, brightness and contrast
changes, about a third of the frames with two faces) and runs, on every frame, each detector
given by ``--detector`` (``NAME`` or ``NAME:key=value,...``, e.g. ``blazeface:model=full``),
then crops and classifies the faces it found with the live default classifier (shipped int8
model with mirror TTA; ``--model-path`` for another) through the same
:class:`~emotion_perception.core.pipeline.FramePipeline` and crop function as the nodes and
``emotion_eval_bag``. Each detector is scored with three crop framings: ``calibrated`` (its own
``crop_framing``, aligned upright with its eye keypoints when it has them), ``unaligned`` (the
same framing, not rotated) and ``legacy`` (the old fixed margin 0.1, no offset, no rotation);
a detector with a ``crop_eye_offset`` (BlazeFace) also with ``eye-centred`` (aligned, the
square centred that many box sides below the eyes' midpoint instead of on the box).

A labelled face counts as detected when a detection's box centre lies within 0.3 face sides
of the face's centre and its side is within a factor 2 of the face's (each detection matches
one face at most; the others are false positives). Reported per row: detection rate, false
positives per frame, accuracy on detected faces, end-to-end accuracy (missed faces count as
wrong) and its gap to the ``direct`` accuracy of the same faces classified as the original
48x48 crops, plus the detector's milliseconds per frame (median and p95, measured in this run
on this machine). The ``oracle`` row crops each face's true rotated square: the accuracy lost
to the frame itself (resampling, brightness, noise) rather than to detection and framing.

``--calibrate`` instead prints, per detector, the median size and centre of the labelled face
squares relative to the detector's boxes (in box sides, along the face's own axes), from which
``crop_framing`` is set: run it on Training faces, never on the faces you evaluate on.

Nothing is written but the printed table (``--json`` for a file).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.detectors.blazeface import FIRST_PASS, SINGLE_LOOK, WITHOUT_CHECK
from ..core.preprocessing import eye_roll
from ..core.types import Box, FaceDetection, TrackedFace, eye_points
from .scenes import (Scene, SceneFace, add_scene_arguments, face_to_frame_matrix, make_scenes,
                     scene_options)

MATCH_DISTANCE = 0.3   # detection centre within this many face sides of the face centre
FRAMINGS = ("calibrated", "unaligned", "legacy", "eye-centred")
LEGACY_FRAMING = (0.1, 0.0)


def _spec(values: dict[str, Any]) -> str:
    """Return a ``--detector`` spec of blazeface with ``values``."""
    return "blazeface:" + ",".join(f"{k}={str(v).lower()}" for k, v in values.items())


DEFAULT_DETECTORS = ("haar", _spec({"input_side": 128, **FIRST_PASS}),
                     _spec({"input_side": 192, **FIRST_PASS}), _spec(FIRST_PASS),
                     _spec(WITHOUT_CHECK),  # the default before the face check (session 12)
                     _spec(SINGLE_LOOK),    # the default of sessions 13-14
                     "blazeface", "blazeface:model=full")


def parse_detector(spec: str) -> tuple[str, str, dict[str, Any]]:
    """Parse ``NAME`` or ``NAME:key=value,...``; return (label, plugin name, kwargs)."""
    from ..graph import parse_value

    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--detector {spec!r}: expected NAME:key=value,..., got {item!r}")
        kwargs[key.strip()] = parse_value(value.strip())
    if not name:
        raise ValueError(f"--detector {spec!r} names no plugin")
    return spec, name, kwargs


def match_faces(faces: Sequence[SceneFace], detections: Sequence[FaceDetection | TrackedFace]
                ) -> tuple[list[int | None], int]:
    """Return (index of the detection matched to each face or None, unmatched detections).

    ``detections``: anything with a ``box`` (a detector's or a pipeline's faces).

    Closest pairs first; a pair matches when the box centre is within MATCH_DISTANCE face
    sides of the face centre and the box side within a factor 2 of the face side.
    """
    pairs = []
    for fi, face in enumerate(faces):
        for di, det in enumerate(detections):
            cx, cy = det.box.center
            dist = math.hypot(cx - face.center[0], cy - face.center[1]) / face.side
            ratio = max(det.box.w, det.box.h) / face.side
            if dist <= MATCH_DISTANCE and 0.5 <= ratio <= 2.0:
                pairs.append((dist, fi, di))
    pairs.sort()
    out: list[int | None] = [None] * len(faces)
    used: set[int] = set()
    for _, fi, di in pairs:
        if out[fi] is None and di not in used:
            out[fi] = di
            used.add(di)
    return out, len(detections) - len(used)


def oracle_crop(frame: np.ndarray, face: SceneFace) -> np.ndarray:
    """Return the face's true rotated square resampled upright at its pasted size."""
    import cv2

    side = max(1, int(round(face.side)))
    unit = face_to_frame_matrix(face)
    to_frame = unit @ np.array([[1.0 / side, 0, 0.5 / side], [0, 1.0 / side, 0.5 / side],
                                [0, 0, 1]])
    to_frame[:, 2] -= 0.5  # continuous frame coordinates -> pixel indices
    return cv2.warpAffine(frame, to_frame, (side, side),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Tally:
    """Counts of one (detector, framing) row."""

    faces: int = 0
    detected: int = 0
    correct: int = 0
    direct_correct: int = 0           # of all faces (same faces, original 48x48)
    direct_correct_detected: int = 0  # of the detected faces
    false_positives: int = 0
    frames: int = 0

    def row(self) -> dict[str, float]:
        """Return the rates of this row."""
        n, d = max(self.faces, 1), max(self.detected, 1)
        return {"faces": self.faces, "frames": self.frames,
                "detection_rate": self.detected / n,
                "false_positives_per_frame": self.false_positives / max(self.frames, 1),
                "accuracy_on_detected": self.correct / d if self.detected else math.nan,
                "direct_accuracy_on_detected": self.direct_correct_detected / d
                if self.detected else math.nan,
                "end_to_end_accuracy": self.correct / n,
                "direct_accuracy": self.direct_correct / n,
                "end_to_end_minus_direct": (self.correct - self.direct_correct) / n}


@dataclass
class Calibration:
    """Labelled face squares relative to matched detector boxes."""

    size: list[float] = field(default_factory=list)      # face side / box side
    along: list[float] = field(default_factory=list)     # centre offset across the face
    down: list[float] = field(default_factory=list)      # centre offset down the face
    eye_down: list[float] = field(default_factory=list)  # centre below the eyes' midpoint

    def add(self, face: SceneFace, box: Box, landmarks: np.ndarray | None = None) -> None:
        """Add one matched pair (with its keypoints when the detector gives them)."""
        side = float(max(box.w, box.h))
        cx, cy = box.center
        dx, dy = face.center[0] - cx, face.center[1] - cy
        a = math.radians(face.angle)  # counter-clockwise on screen
        self.size.append(face.side / side)
        self.along.append((dx * math.cos(a) - dy * math.sin(a)) / side)
        self.down.append((dx * math.sin(a) + dy * math.cos(a)) / side)
        eyes = eye_points(landmarks)
        if eyes is not None:
            # along the eye line's own down axis: what crop_face(eye_offset=...) moves along
            roll = eye_roll(eyes)
            mx, my = (eyes[0] + eyes[1]) / 2.0
            ex, ey = face.center[0] - mx, face.center[1] - my
            self.eye_down.append((-ex * math.sin(roll) + ey * math.cos(roll)) / side)

    def summary(self) -> dict[str, float]:
        """Return the medians and the crop_framing they imply."""
        if not self.size:
            return {"pairs": 0}
        size, down = float(np.median(self.size)), float(np.median(self.down))
        out = {"pairs": len(self.size), "median_face_over_box": size,
               "median_centre_across_box_sides": float(np.median(self.along)),
               "median_centre_down_box_sides": down,
               "crop_margin": (size - 1.0) / 2.0, "crop_offset": down}
        if self.eye_down:
            out["crop_eye_offset"] = float(np.median(self.eye_down))
        return out


def load_faces(npz: Path, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (images (N, 48, 48) uint8, labels) of one split of the FER npz."""
    if not npz.is_file():
        raise ValueError(f"npz file not found: {npz}")
    with np.load(npz) as data:
        missing = {"images", "labels"} - set(data.files)
        if missing:
            raise ValueError(f"{npz}: missing arrays {sorted(missing)}; has {data.files}")
        images, labels = data["images"], data["labels"].astype(np.int64)
        if split:
            if "usage" not in data.files:
                raise ValueError(f"{npz}: no 'usage' array, cannot select split {split!r}")
            usage = data["usage"].astype(str)
            mask = usage == split
            if not mask.any():
                raise ValueError(f"{npz}: no rows with usage {split!r}; have "
                                 f"{sorted(set(usage.tolist()))}")
            images, labels = images[mask], labels[mask]
    if images.ndim != 3:
        raise ValueError(f"{npz}: images must be (N, H, W) grayscale, got {images.shape}")
    if limit:
        images, labels = images[:limit], labels[:limit]
    return np.ascontiguousarray(images), labels


def evaluate(scenes: Sequence[Scene] | Any, detectors: Sequence[tuple[str, str, dict]],
             classifier: Any, direct_labels: np.ndarray | None, *, calibrate: bool = False,
             progress: bool = True, total: int | None = None) -> dict[str, Any]:
    """Run every detector on every scene; return the rows (or the calibration) as a dict.

    ``direct_labels``: the classifier's label for each source face (by ``SceneFace.index``),
    from the original 48x48 images.
    """
    from tqdm import tqdm

    from ..core import plugins
    from ..core.pipeline import FramePipeline

    pipes = []
    for label, name, kwargs in detectors:
        det = plugins.create("detector", name, **kwargs)
        margin, offset = getattr(det, "crop_framing", LEGACY_FRAMING)
        variants = {"calibrated": FramePipeline(det, classifier, None, crop_margin=margin,
                                                crop_offset=offset, crop_align=True,
                                                max_faces=10),
                    "unaligned": FramePipeline(det, classifier, None, crop_margin=margin,
                                               crop_offset=offset, max_faces=10),
                    "legacy": FramePipeline(det, classifier, None,
                                            crop_margin=LEGACY_FRAMING[0], max_faces=10)}
        eye_offset = getattr(det, "crop_eye_offset", None)
        if eye_offset is not None:
            variants["eye-centred"] = FramePipeline(det, classifier, None, crop_margin=margin,
                                                    crop_align=True, max_faces=10,
                                                    crop_eye_offset=eye_offset)
        pipes.append((label, det, variants))
    tallies = {(label, f): Tally() for label, _, variants in pipes for f in variants}
    oracle = Tally()
    calibrations = {label: Calibration() for label, _, _ in pipes}
    times: dict[str, list[float]] = {label: [] for label, _, _ in pipes}
    bar = tqdm(total=total, unit="frame", desc="eval detectors", disable=not progress,
               file=sys.stderr)
    try:
        for scene in scenes:
            bar.update(1)
            faces = list(scene.faces)
            if not calibrate:
                probs, _ = classifier.classify([oracle_crop(scene.frame, f) for f in faces])
                oracle.frames += 1
                for face, p in zip(faces, probs):
                    oracle.faces += 1
                    oracle.detected += 1
                    oracle.correct += int(np.argmax(p)) == face.label
                    direct_ok = direct_labels[face.index] == face.label
                    oracle.direct_correct += direct_ok
                    oracle.direct_correct_detected += direct_ok
            for label, det, variants in pipes:
                start = time.perf_counter()
                found = variants["legacy"].detect(scene.frame)
                times[label].append(time.perf_counter() - start)
                matched, extra = match_faces(faces, found)
                if calibrate:
                    for face, di in zip(faces, matched):
                        if di is not None:
                            calibrations[label].add(face, found[di].box, found[di].landmarks)
                    continue
                hits = [(face, found[di]) for face, di in zip(faces, matched) if di is not None]
                for framing, pipe in variants.items():
                    tally = tallies[(label, framing)]
                    tally.frames += 1
                    tally.false_positives += extra
                    crops = pipe.crops(scene.frame, [h for _, h in hits])
                    probs, _ = classifier.classify(crops) if crops else ([], [])
                    for face in faces:
                        tally.faces += 1
                        tally.direct_correct += direct_labels[face.index] == face.label
                    for (face, _), p in zip(hits, probs):
                        tally.detected += 1
                        tally.correct += int(np.argmax(p)) == face.label
                        tally.direct_correct_detected += direct_labels[face.index] == face.label
    finally:
        bar.close()
    timing = {label: {"median_ms": float(np.median(t) * 1e3),
                      "p95_ms": float(np.percentile(t, 95) * 1e3)} if t else {}
              for label, t in times.items()}
    if calibrate:
        return {"calibration": {label: c.summary() for label, c in calibrations.items()},
                "detector_ms": timing}
    rows = {f"{label} / {framing}": t.row() for (label, framing), t in tallies.items()}
    rows["oracle crop (true square)"] = oracle.row()
    return {"rows": rows, "detector_ms": timing}


def format_report(result: dict[str, Any]) -> str:
    """Return the result as a plain-text table."""
    def pct(v: float) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    if "calibration" in result:
        lines = ["detector  pairs  face/box  centre across  centre down  -> crop_margin "
                 "crop_offset"]
        for label, c in result["calibration"].items():
            if not c.get("pairs"):
                lines.append(f"{label}  0 matched faces")
                continue
            lines.append(f"{label}  {c['pairs']}  {c['median_face_over_box']:.3f}  "
                         f"{c['median_centre_across_box_sides']:+.3f}  "
                         f"{c['median_centre_down_box_sides']:+.3f}  -> "
                         f"{c['crop_margin']:.3f} {c['crop_offset']:+.3f}"
                         + (f"  crop_eye_offset {c['crop_eye_offset']:+.3f}"
                            if "crop_eye_offset" in c else ""))
        return "\n".join(lines)
    head = ["detector / framing", "faces", "detected %", "FP/frame", "acc. detected %",
            "end-to-end %", "direct %", "e2e - direct"]
    table = [head]
    for label, r in result["rows"].items():
        table.append([label, str(r["faces"]), pct(r["detection_rate"]),
                      f"{r['false_positives_per_frame']:.3f}", pct(r["accuracy_on_detected"]),
                      pct(r["end_to_end_accuracy"]), pct(r["direct_accuracy"]),
                      f"{100 * r['end_to_end_minus_direct']:+.1f}"])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("detector ms/frame (median / p95, this run, this machine):")
    for label, t in result["detector_ms"].items():
        if t:
            lines.append(f"  {label}: {t['median_ms']:.2f} / {t['p95_ms']:.2f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="emotion_eval_detectors",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--npz", type=Path, required=True, help="FER npz (images, labels, usage)")
    p.add_argument("--split", default="PublicTest", help="usage rows to use (default "
                   "PublicTest; Training for --calibrate)")
    p.add_argument("--limit", type=int, default=0, help="first N faces only (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="scene generator seed (default 0)")
    p.add_argument("--detector", action="append", default=[],
                   help="NAME or NAME:key=value,... (repeatable; default "
                        f"{', '.join(DEFAULT_DETECTORS)})")
    p.add_argument("--model-path", default="", help="classifier model (default: the shipped "
                   "int8 model, as live)")
    p.add_argument("--no-tta", action="store_true", help="classify without mirror TTA")
    add_scene_arguments(p)
    p.add_argument("--calibrate", action="store_true", help="print the crop framing each "
                   "detector's boxes need instead of the table")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Score the detectors; return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        if args.limit < 0:
            raise ValueError("--limit must be >= 0")
        detectors = [parse_detector(s) for s in
                     (args.detector or DEFAULT_DETECTORS)]
        images, labels = load_faces(args.npz, args.split, args.limit)
        from ..builders import build_classifier
        from ..core.params import CLASSIFIER, by_name

        values = {name: p.default for name, p in by_name(CLASSIFIER).items()}
        values["model_path"] = args.model_path
        values["tta_mirror"] = not args.no_tta
        classifier = build_classifier(values)
        direct = None
        if not args.calibrate:
            probs, _ = classifier.classify(list(images))
            direct = np.argmax(probs, axis=1)
        scenes = make_scenes(images, labels, seed=args.seed, **scene_options(args))
        result = evaluate(scenes, detectors, classifier, direct, calibrate=args.calibrate,
                          progress=not args.quiet)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"emotion_eval_detectors: error: {exc}", file=sys.stderr)
        return 2
    result["settings"] = {"npz": str(args.npz), "split": args.split, "faces": int(len(images)),
                          "seed": args.seed, "max_rotation": args.max_rotation,
                          "sizes": [args.min_face, args.max_face],
                          "two_face_share": args.two_face_share,
                          "classifier": str(getattr(classifier, "path", "")),
                          "tta_mirror": not args.no_tta, "cpus": os.cpu_count()}
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

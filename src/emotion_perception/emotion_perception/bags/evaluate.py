"""``emotion_eval_bag``: score emotion perception on a labelled bag.

Two modes:

* **offline** (default): read the bag's images and run the same core the live graph runs
  (detector + tracker + shared crop/preprocessing + classifier: ``FramePipeline``; then the
  smoother plugin per face id, fed with header stamps), configured from the same parameter
  YAML as the nodes (``--params-file``, default the package's ``config/emotion_perception.yaml``)
  with the same overrides (``--detector``, ``--classifier``, ``--model-path``, ``--smoother``,
  ``--set NODE.PARAM=VALUE``). No ROS needed.
* **predictions** (``--predictions-bag OUT_BAG``): score what the live graph published while
  the bag was replayed and recorded (``/emotion`` and ``/emotion_raw`` of OUT_BAG, matched to
  BAG's images and labels by header stamp; see ``emotion_play_bag`` / ``emotion_record_bag`` and
  ``python -m emotion_perception.bags.replay run``). Frames without an output count as dropped.

Scoring (labels: see :mod:`.typestore`): a labelled frame is compared with the prediction of
its **largest detected face** (box area; the label's own face is the largest labelled one).
``accuracy`` is over labelled frames where a face was detected; ``end_to_end_accuracy`` counts
frames without a detection as wrong; ``detection_rate`` is their complement. Per-class
precision/recall/F1 and the confusion matrix use the detected frames (missed frames are
listed per class). Flicker and transition lag (:mod:`emotion_perception.core.metrics`) are
computed over runs of consecutive labelled frames with a detection, for the per-frame
(``raw``) and the smoothed outputs. Offline mode also times every stage per frame
(read+decode, detect incl. tracking, classify incl. cropping and preprocessing, smooth).

Outputs in ``--out``: ``report.json`` (everything), ``summary.md`` (tables for a team),
``predictions.json`` (per frame: stamp, label, faces with id, label, probabilities, box, for
comparing runs) and PNG plots (confusion matrix, per-class recall, latency histogram,
label timeline).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..builders import build_smoother, smooth_estimates
from ..core import metrics
from ..graph import parse_value
from ..core.classes import CLASS_NAMES, NUM_CLASSES
from ..core.types import Box, EmotionEstimate
from .io import BagError, BagReader, LabelFace, read_emotion_arrays
from .typestore import LABEL_TOPIC, stamp_to_ns

STAGES = ("read_decode", "detect", "classify", "smooth", "total")
DETECTOR_NODE, CLASSIFIER_NODE, SMOOTHER_NODE = "face_detector", "emotion_classifier", \
    "emotion_smoother"


# -- configuration (mirrors the nodes' builders; no rclpy) ------------------------------------
def resolve_params(params_file: str | Path | None = None,
                   overrides: dict[str, dict[str, Any]] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Return the full parameter values of detector, classifier and smoother nodes.

    Declared defaults (``core/params.py``), then the YAML file (default: the package's
    ``config/emotion_perception.yaml``), then ``overrides`` ({node: {param: value}}); every
    value is checked against its declaration (ValueError naming the parameter). The merge is
    ``core.params.merge_params``, the one the in-process runner ``live`` uses.
    """
    from ..core.params import merge_params
    from ..graph import default_params_file, load_params_file

    path = Path(params_file) if params_file else default_params_file()
    return merge_params((DETECTOR_NODE, CLASSIFIER_NODE, SMOOTHER_NODE), load_params_file(path),
                        overrides)


def build_pipeline(params: dict[str, dict[str, Any]]) -> Any:
    """Return the FramePipeline (detector, tracker, classifier) the live nodes would build."""
    from ..builders import build_classifier, build_over_time
    from ..builders import build_pipeline as build_detector_pipeline

    classifier = build_classifier(params[CLASSIFIER_NODE])
    pipeline = build_detector_pipeline(params[DETECTOR_NODE], classifier)
    pipeline.over_time = build_over_time(classifier, params[CLASSIFIER_NODE])
    return pipeline


# -- per-frame results ----------------------------------------------------------------------
@dataclass
class FacePrediction:
    """One face's output in one frame."""

    face_id: int
    probabilities: np.ndarray           # (7,) float32
    box: Box
    detection_score: float = 1.0

    @property
    def label(self) -> int:
        """Return the most probable class."""
        return int(np.argmax(self.probabilities))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"face_id": int(self.face_id), "label": self.label,
                "label_name": CLASS_NAMES[self.label],
                "probabilities": [float(p) for p in self.probabilities],
                "box": list(self.box.as_tuple()), "detection_score": float(self.detection_score)}


@dataclass
class FrameResult:
    """Everything known about one frame after evaluation."""

    index: int
    stamp_ns: int
    labels: list[LabelFace] | None      # None: unlabelled
    raw: list[FacePrediction] | None    # None: no output for this frame (dropped / rejected)
    smoothed: list[FacePrediction] | None = None
    error: str = ""

    @property
    def label(self) -> int | None:
        """Return the scored label of the frame (of its largest labelled face) or None."""
        if not self.labels:
            return None
        best = max(range(len(self.labels)),
                   key=lambda i: (self.labels[i].box.area if self.labels[i].box else 0, -i))
        return self.labels[best].label


def largest(faces: Sequence[FacePrediction] | None) -> FacePrediction | None:
    """Return the face with the largest box (first among equals), None if there is none."""
    if not faces:
        return None
    faces = list(faces)
    return faces[max(range(len(faces)), key=lambda i: (faces[i].box.area, -i))]


@dataclass
class EvalRun:
    """The raw material of a report: per-frame results plus how they were obtained."""

    bag: str
    mode: str                           # "offline" or "predictions"
    image_topic: str
    label_topic: str
    frames: list[FrameResult]
    smoother: str = ""                  # "" when no smoothing was applied
    config: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, list[float]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _to_predictions(estimates: Iterable[EmotionEstimate]) -> list[FacePrediction]:
    return [FacePrediction(int(e.face_id), np.asarray(e.probabilities, np.float32), e.box,
                           float(e.detection_score)) for e in estimates]


def evaluate_offline(bag: str | Path, params: dict[str, dict[str, Any]] | None = None, *,
                     image_topic: str | None = None, label_topic: str | None = LABEL_TOPIC,
                     smoothing: bool = True, limit: int = 0, progress: bool = True,
                     skip_invalid: bool = False) -> EvalRun:
    """Run the core on every image of ``bag``; return the per-frame results and timings."""
    from tqdm import tqdm

    params = params or resolve_params()
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    frames: list[FrameResult] = []
    with BagReader(bag) as reader:  # bag problems first, before loading any model
        topic = reader.image_topic(image_topic)
        total = reader.info.topics[topic].count
        pipeline = build_pipeline(params)
        smoother_name = params[SMOOTHER_NODE]["smoother"] if smoothing else ""
        smoother = build_smoother(params[SMOOTHER_NODE]) if smoothing else None
        max_pixels = int(params[DETECTOR_NODE]["max_image_pixels"])
        start = time.perf_counter()
        if limit:
            total = min(total, limit)
        source = reader.frames(topic, label_topic, max_pixels=max_pixels,
                               skip_invalid=skip_invalid,
                               labels_required=bool(label_topic and label_topic != LABEL_TOPIC))
        bar = tqdm(total=total, unit="frame", desc="evaluate", disable=not progress,
                   file=sys.stderr)
        try:
            while not limit or len(frames) < limit:
                t0 = time.perf_counter()
                frame = next(source, None)
                if frame is None:
                    break
                t1 = time.perf_counter()
                bar.update(1)
                if frame.error:
                    frames.append(FrameResult(frame.index, frame.stamp_ns, frame.labels, None,
                                              None, frame.error))
                    continue
                faces = pipeline.detect(frame.bgr)
                estimates = pipeline.classify(frame.bgr, faces, frame.stamp)
                t2 = time.perf_counter()
                result = FrameResult(frame.index, frame.stamp_ns, frame.labels,
                                     _to_predictions(estimates))
                if smoother is not None:
                    result.smoothed = _to_predictions(
                        smooth_estimates(smoother, smoother_name, estimates, frame.stamp))
                t3 = time.perf_counter()
                frames.append(result)
                for stage, seconds in (("read_decode", t1 - t0),
                                       ("detect", pipeline.timings["detect"]),
                                       ("classify", pipeline.timings["classify"]),
                                       ("smooth", t3 - t2), ("total", t3 - t0)):
                    if stage != "smooth" or smoother is not None:
                        timings[stage].append(seconds * 1e3)
        finally:
            bar.close()
    elapsed = time.perf_counter() - start
    config = {node: dict(values) for node, values in params.items()}
    run = EvalRun(str(bag), "offline", topic, label_topic or "", frames, smoother_name, config,
                  {k: v for k, v in timings.items() if v}, elapsed)
    if label_topic and not any(f.labels is not None for f in frames):
        run.notes.append(f"no frame is labelled: the bag has no messages on {label_topic} "
                         "matching its image stamps, so nothing is scored")
    if pipeline.invalid_count:
        run.notes.append(f"{pipeline.invalid_count} face(s) dropped: the classifier returned "
                         "non-finite scores")
    return run


def _msg_predictions(msg: Any) -> list[FacePrediction]:
    out = []
    for e in msg.emotions:
        roi = e.roi
        out.append(FacePrediction(int(e.face_id), np.asarray(e.probabilities, np.float32),
                                  Box(int(roi.x_offset), int(roi.y_offset), int(roi.width),
                                      int(roi.height)), float(e.detection_score)))
    return out


def evaluate_predictions(bag: str | Path, predictions_bag: str | Path, *,
                         image_topic: str | None = None, label_topic: str | None = LABEL_TOPIC,
                         emotion_topic: str = "/emotion", raw_topic: str = "/emotion_raw"
                         ) -> EvalRun:
    """Pair the recorded outputs of the live graph with ``bag``'s frames and labels."""
    start = time.perf_counter()
    with BagReader(predictions_bag) as out_reader:
        out_topics = out_reader.info.topics
        if emotion_topic not in out_topics:
            raise BagError(f"predictions bag {predictions_bag} has no {emotion_topic!r}; its "
                           f"topics: {out_reader.info.describe_topics()}")
        has_raw = bool(raw_topic) and raw_topic in out_topics and raw_topic != emotion_topic
    final, dup_final = read_emotion_arrays(predictions_bag, emotion_topic)
    raw, dup_raw = read_emotion_arrays(predictions_bag, raw_topic) if has_raw else ({}, 0)
    smoother = ""
    for msg in final.values():
        for e in msg.emotions:
            if e.smoothed:
                smoother = e.smoother or "smoothed"
                break
        if smoother:
            break
    if has_raw and not smoother:
        smoother = "none"
    frames: list[FrameResult] = []
    with BagReader(bag) as reader:
        topic = reader.image_topic(image_topic)
        labels = reader.labels(label_topic,
                               required=bool(label_topic and label_topic != LABEL_TOPIC))
        for index, (_, _, msg) in enumerate(reader.messages([topic])):
            stamp = stamp_to_ns(msg.header.stamp)
            fin = final.get(stamp)
            result = FrameResult(index, stamp, labels.get(stamp), None)
            if has_raw:
                result.raw = _msg_predictions(raw[stamp]) if stamp in raw else None
                result.smoothed = _msg_predictions(fin) if fin is not None else None
            else:
                result.raw = _msg_predictions(fin) if fin is not None else None
            frames.append(result)
    matched = sum(1 for f in frames if f.stamp_ns in final)
    if frames and not matched:
        raise BagError(f"none of the {len(frames)} image stamps of {bag} occurs on "
                       f"{emotion_topic} in {predictions_bag}: was it recorded while replaying "
                       "this bag?")
    run = EvalRun(str(bag), "predictions", topic, label_topic or "", frames,
                  smoother if has_raw else "", {"predictions_bag": str(predictions_bag),
                                                "emotion_topic": emotion_topic,
                                                "raw_topic": raw_topic if has_raw else ""},
                  {}, time.perf_counter() - start)
    if label_topic and not labels:
        run.notes.append(f"no frame is labelled: {bag} has no messages on {label_topic}, so "
                         "nothing is scored")
    extra = len(final) - matched
    if extra:
        run.notes.append(f"{extra} message(s) on {emotion_topic} match no image of the bag")
    if dup_final or dup_raw:
        run.notes.append(f"{dup_final + dup_raw} duplicate output message(s) (same stamp) "
                         "ignored")
    return run


# -- scoring --------------------------------------------------------------------------------
def _percentiles(samples: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples, np.float64)
    return {"count": int(a.size), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _temporal(runs: list[tuple[list[int], list[int], list[float]]], hold: int,
              frame_interval: float) -> dict[str, Any]:
    changes, seconds, lags, unresolved = 0, 0.0, [], 0
    for y, g, t in runs:
        if len(y) < 2:
            continue
        stamps = np.asarray(t, np.float64)
        if (np.diff(stamps) <= 0).any():  # duplicate or disordered stamps: use frame spacing
            stamps = np.arange(len(y)) * (frame_interval if frame_interval > 0 else 1.0)
        c, s = metrics.flicker_counts(y, stamps, g)
        changes += c
        seconds += s
        lag, unres = metrics.transition_lag(y, g, hold)
        lags += lag
        unresolved += unres
    mean_lag = float(np.mean(lags)) if lags else math.nan
    return {"flicker_per_s": changes / seconds if seconds > 0 else math.nan,
            "changes": int(changes), "seconds": float(seconds), "mean_lag_frames": mean_lag,
            "median_lag_frames": float(np.median(lags)) if lags else math.nan,
            "mean_lag_s": mean_lag * frame_interval if lags else math.nan,
            "transitions": int(len(lags) + unresolved), "unresolved": int(unresolved),
            "lag_hold_frames": int(hold)}


def score_predictions(frames: Sequence[FrameResult], which: str, hold: int = 3,
                      frame_interval: float = math.nan) -> dict[str, Any]:
    """Return accuracy, per-class metrics, confusion and temporal metrics of one output set.

    ``which`` is ``raw`` or ``smoothed`` (the FrameResult attribute scored).
    """
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    missed = np.zeros(NUM_CLASSES, np.int64)
    no_output = 0
    runs: list[tuple[list[int], list[int], list[float]]] = []
    y: list[int] = []
    g: list[int] = []
    t: list[float] = []
    for f in frames:
        label = f.label
        faces = getattr(f, which)
        face = largest(faces)
        if label is None or face is None:
            if label is not None:
                missed[label] += 1
                no_output += faces is None
            if y:
                runs.append((y, g, t))
                y, g, t = [], [], []
            continue
        conf[label, face.label] += 1
        y.append(face.label)
        g.append(label)
        t.append(f.stamp_ns * 1e-9)
    if y:
        runs.append((y, g, t))
    detected = int(conf.sum())
    labelled = detected + int(missed.sum())
    correct = int(np.trace(conf))
    # the one classification-metrics implementation (core.metrics, scikit-learn's macro-F1)
    cls = metrics.classification_metrics(conf)
    per_class = {}
    for c, name in enumerate(CLASS_NAMES):
        entry = dict(cls["per_class"][name])
        entry.pop("error_rate")
        entry.update(missed=int(missed[c]), predicted=int(conf[:, c].sum()))
        if not entry["support"]:
            entry["recall"] = math.nan  # undefined without faces of that class
        per_class[name] = entry
    recalls = [per_class[name]["recall"] for name in CLASS_NAMES if per_class[name]["support"]]
    out = {
        "labelled_frames": labelled,
        "scored_frames": detected,
        "accuracy": correct / detected if detected else math.nan,
        "end_to_end_accuracy": correct / labelled if labelled else math.nan,
        "detection_rate": detected / labelled if labelled else math.nan,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else math.nan,
        "macro_f1": cls["macro_f1"] if detected else math.nan,
        "labelled_frames_without_output": int(no_output),
        "per_class": per_class,
        "confusion": conf.tolist(),
        "missed_per_class": missed.tolist(),
    }
    out.update(_temporal(runs, hold, frame_interval))
    return out


def score(run: EvalRun, hold: int = 3) -> dict[str, Any]:
    """Return the full report (JSON-ready, NaN as null) of an evaluation run."""
    frames = run.frames
    stamps = np.array([f.stamp_ns for f in frames], np.int64)
    interval = float(np.median(np.diff(stamps))) * 1e-9 if len(stamps) > 1 else math.nan
    final = "smoothed" if run.smoother else "raw"
    counts = {
        "frames": len(frames),
        "labelled_frames": sum(1 for f in frames if f.label is not None),
        "labelled_no_face_frames": sum(1 for f in frames if f.labels == []),
        "unlabelled_frames": sum(1 for f in frames if f.labels is None),
        "frames_with_output": sum(1 for f in frames if getattr(f, final) is not None),
        "frames_without_output": sum(1 for f in frames if getattr(f, final) is None),
        "frames_rejected": sum(1 for f in frames if f.error),
        "frames_no_face": sum(1 for f in frames if getattr(f, final) == []),
        "frames_one_face": sum(1 for f in frames if len(getattr(f, final) or ()) == 1),
        "frames_several_faces": sum(1 for f in frames if len(getattr(f, final) or ()) > 1),
        "false_detections_on_no_face_frames": sum(
            1 for f in frames if f.labels == [] and getattr(f, final)),
    }
    sets = {"raw": score_predictions(frames, "raw", hold, interval)}
    if run.smoother:
        sets["smoothed"] = score_predictions(frames, "smoothed", hold, interval)
    report = {
        "bag": run.bag,
        "mode": run.mode,
        "image_topic": run.image_topic,
        "label_topic": run.label_topic,
        "class_names": list(CLASS_NAMES),
        "smoother": run.smoother,
        "final_output": final,
        "frame_interval_s": interval,
        "counts": counts,
        "metrics": sets,
        "latency_ms": {k: _percentiles(v) for k, v in run.timings_ms.items() if v},
        "elapsed_s": run.elapsed_s,
        "frames_per_s": len(frames) / run.elapsed_s if run.elapsed_s > 0 else math.nan,
        "config": run.config,
        "notes": list(run.notes),
        "matching": "a labelled frame is scored with its largest detected face (box area)",
    }
    return metrics.json_safe(report)


def predictions_json(run: EvalRun) -> dict[str, Any]:
    """Return the per-frame predictions (for comparing runs) as a JSON-ready dict."""
    def faces(items: list[FacePrediction] | None) -> list[dict[str, Any]] | None:
        return None if items is None else [f.to_json() for f in items]

    return {
        "bag": run.bag, "mode": run.mode, "smoother": run.smoother,
        "class_names": list(CLASS_NAMES),
        "note": "stamp_ns = header stamp of the image; faces = final output (smoothed when a "
                "smoother ran), raw_faces = per-frame classifier output; null = no output",
        "frames": [{"index": f.index, "stamp_ns": f.stamp_ns, "label": f.label,
                    "faces": faces(f.smoothed if run.smoother else f.raw),
                    "raw_faces": faces(f.raw), "error": f.error or None}
                   for f in run.frames],
    }


# -- command line ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="emotion_eval_bag", description=__doc__.split("\n\n")[0],
                                epilog="See emotion_perception/bags/README.md.")
    p.add_argument("bag", type=Path, help="labelled input bag (directory, .mcap or .db3)")
    p.add_argument("--image-topic", help="image topic (default: the bag's only image topic)")
    p.add_argument("--label-topic", default=LABEL_TOPIC,
                   help=f"ground-truth topic (default {LABEL_TOPIC}; '' = none)")
    p.add_argument("--predictions-bag", type=Path, help="score this bag recorded from the live "
                   "graph instead of running the core")
    p.add_argument("--emotion-topic", default="/emotion", help="predictions: final output topic")
    p.add_argument("--raw-topic", default="/emotion_raw", help="predictions: per-frame topic")
    p.add_argument("--params-file", type=Path, help="parameter YAML (default: the package's)")
    p.add_argument("--detector", help="detector plugin (haar, yunet, ...)")
    p.add_argument("--classifier", help="classifier plugin (keras, tflite, ...)")
    p.add_argument("--model-path", help="classifier model file")
    p.add_argument("--smoother", help="smoother plugin (none, ema, hysteresis, lstm)")
    p.add_argument("--no-smoothing", action="store_true", help="score per-frame outputs only")
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node parameter, e.g. face_detector.tracking.min_hits=1")
    p.add_argument("--limit", type=int, default=0, help="first N frames only (offline)")
    p.add_argument("--lag-hold", type=int, default=3,
                   help="frames a new label must hold to end a transition's lag (default 3)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="count undecodable images instead of stopping")
    p.add_argument("--out", type=Path, help="output folder (default ./<bag name>_eval)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Return {node: {param: value}} from the plugin options and --set."""
    out: dict[str, dict[str, Any]] = {}
    if getattr(args, "detector", None):
        out.setdefault(DETECTOR_NODE, {})["detector"] = args.detector
    if getattr(args, "classifier", None):
        out.setdefault(CLASSIFIER_NODE, {})["classifier"] = args.classifier
    if getattr(args, "model_path", None):
        out.setdefault(CLASSIFIER_NODE, {})["model_path"] = str(args.model_path)
    if getattr(args, "smoother", None):
        out.setdefault(SMOOTHER_NODE, {})["smoother"] = args.smoother
    for item in getattr(args, "set", []) or []:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set expects NODE.PARAM=VALUE, got {item!r}")
        out.setdefault(node, {})[name] = parse_value(value)
    return out


def run_and_report(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Evaluate as the arguments say, write the outputs; return (report, output folder)."""
    from .report import write_outputs

    out_dir = args.out or Path(f"{args.bag.resolve().name}_eval")
    label_topic = args.label_topic or None
    if args.predictions_bag:
        run = evaluate_predictions(args.bag, args.predictions_bag, image_topic=args.image_topic,
                                   label_topic=label_topic, emotion_topic=args.emotion_topic,
                                   raw_topic=args.raw_topic)
    else:
        params = resolve_params(args.params_file, overrides_from_args(args))
        run = evaluate_offline(args.bag, params, image_topic=args.image_topic,
                               label_topic=label_topic, smoothing=not args.no_smoothing,
                               limit=args.limit, progress=not args.quiet,
                               skip_invalid=args.skip_invalid)
    report = score(run, hold=args.lag_hold)
    write_outputs(report, predictions_json(run), out_dir, plots=not args.no_plots,
                  timings_ms=run.timings_ms)
    return report, out_dir


def main(argv: list[str] | None = None) -> int:
    """Evaluate a bag; return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.limit < 0 or args.lag_hold < 1:
        print("emotion_eval_bag: error: --limit must be >= 0 and --lag-hold >= 1",
              file=sys.stderr)
        return 2
    try:
        report, out_dir = run_and_report(args)
    except (ValueError, OSError, RuntimeError) as exc:  # BagError, parameters, plugins, models
        print(f"emotion_eval_bag: error: {exc}", file=sys.stderr)
        return 2
    from .report import console_summary

    print(console_summary(report, out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``emotion_scene_crops``: Training faces as the live detector crops them, for training.

The live graph classifies the crops the face detector cuts from camera frames; the model was
trained on FER2013's own 48x48 crops. On the frames of ``emotion_eval_detectors`` (PublicTest
faces pasted turned up to 25 degrees, 80-320 px, on textured backgrounds, with brightness and
contrast changes) the crops of the true face square were already about 2 points less accurate
than the 48x48 originals, and the detector's framing (its box jitters in size and place) cost
about 1 more on the faces it found (README, "Trained on the detector's crops"). This tool
makes those crops from *Training* faces, so that a model can be trained on what it will see:

1. the Training rows of the FER npz are pasted into frames by
   :func:`emotion_perception.bags.scenes.make_scenes` (the evaluation's own generator; each
   ``--copies`` pass with its own seed, so every face appears that many times, each time
   elsewhere, at another size, angle and light);
2. the detector (``--detector``, default the live default BlazeFace with its second pass) runs
   on every frame, and each found face is matched to its labelled face
   (:func:`emotion_perception.bags.detector_eval.match_faces`);
3. the matched face is cut with the live crop code (:class:`FramePipeline`'s ``crops``: the
   detector's calibrated framing, turned upright along its eye keypoints) and made 48x48
   grayscale by the classifier's own preprocessing (``preprocess_face``), kept as uint8.

Written: one ``.npz`` with ``images`` (N, 48, 48) uint8, ``labels`` (the source face's FER2013
label), ``source_row`` (the face's row in the input npz, so training applies its own cleaning
and leakage checks to the source image: see ``TrainConfig.scene_crops``), ``copy`` (the pass),
and ``meta`` (JSON: input file and its row count, detector, seeds, detection rate). Only
``Training`` rows can be used: crops of PublicTest faces would carry the validation faces
into training, and PrivateTest is never loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SPLIT = "Training"


def training_rows(npz: Path, limit: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Return (images, labels, rows, total rows) of the npz's Training faces (first ``limit``)."""
    from .data import load_npz

    ds = load_npz(npz)
    if ds.images.shape[1:] != (48, 48):
        raise ValueError(f"{npz}: images must be (N, 48, 48) grayscale, got {ds.images.shape}")
    rows = np.flatnonzero(ds.usage == SPLIT)
    if not rows.size:
        raise ValueError(f"{npz}: no {SPLIT} rows (usage has {sorted(set(ds.usage.tolist()))})")
    if limit:
        rows = rows[:limit]
    return np.ascontiguousarray(ds.images[rows]), ds.labels[rows], rows, len(ds)


def crop_scene(scene: Any, pipeline: Any, rows: np.ndarray
               ) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Detect, match and crop one scene's faces; return (crops, labels, npz rows) of those found.

    ``pipeline``: a detect-only :class:`FramePipeline` (no tracker: the frames are unrelated);
    ``rows``: the npz row of each source face (by ``SceneFace.index``).
    """
    from emotion_perception.bags.detector_eval import match_faces
    from emotion_perception.core.preprocessing import preprocess_face

    found = pipeline.detect(scene.frame)
    matched, _ = match_faces(scene.faces, found)
    hits = [(face, found[di]) for face, di in zip(scene.faces, matched) if di is not None]
    # the classifier's own preprocessing, back to the uint8 it started from (exact)
    crops = [np.rint(preprocess_face(crop)[:, :, 0] * 255.0).astype(np.uint8)
             for crop in pipeline.crops(scene.frame, [t for _, t in hits])]
    return (crops, [int(face.label) for face, _ in hits],
            [int(rows[face.index]) for face, _ in hits])


def build_pipeline(spec: str) -> Any:
    """Return a detect-only FramePipeline for ``--detector`` ``spec`` with the live framing."""
    from emotion_perception.bags.detector_eval import parse_detector
    from emotion_perception.core import plugins
    from emotion_perception.core.pipeline import FramePipeline

    _, name, kwargs = parse_detector(spec)
    detector = plugins.create("detector", name, **kwargs)
    margin, offset = getattr(detector, "crop_framing", (0.1, 0.0))
    return FramePipeline(detector, None, None, crop_margin=margin, crop_offset=offset,
                         crop_align=True, max_faces=10)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    from emotion_perception.bags.scenes import add_scene_arguments

    p = argparse.ArgumentParser(prog="emotion_scene_crops", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="FER npz (images, labels, usage)")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--copies", type=int, default=1, help="passes over the faces, each with "
                   "its own scenes (default 1)")
    p.add_argument("--seed", type=int, default=100, help="first pass's scene seed; pass k "
                   "uses seed + k (default 100; emotion_eval_detectors' PublicTest frames use "
                   "0, other faces)")
    p.add_argument("--limit", type=int, default=0, help="first N Training faces (0 = all)")
    p.add_argument("--detector", default="blazeface", help="NAME or NAME:key=value,... "
                   "(default blazeface: the live default)")
    add_scene_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Write the crops; return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from emotion_perception.bags.scenes import make_scenes, scene_options

    options = scene_options(args)
    try:
        if args.copies < 1 or args.limit < 0:
            raise ValueError("--copies must be >= 1 and --limit >= 0")
        if args.out.suffix != ".npz":
            raise ValueError(f"--out must name a .npz file, got {args.out}")
        images, labels, rows, total = training_rows(args.data, args.limit)
        pipeline = build_pipeline(args.detector)
        crops: list[np.ndarray] = []
        out_labels: list[int] = []
        sources: list[int] = []
        copies: list[int] = []
        faces_seen = 0
        start = time.perf_counter()
        bar = tqdm(total=len(images) * args.copies, unit="face", desc="scene crops",
                   disable=args.quiet, file=sys.stderr)
        try:
            for k in range(args.copies):
                scenes = make_scenes(images, labels, seed=args.seed + k, **options)
                for scene in scenes:
                    c, lab, src = crop_scene(scene, pipeline, rows)
                    crops += c
                    out_labels += lab
                    sources += src
                    copies += [k] * len(c)
                    faces_seen += len(scene.faces)
                    bar.update(len(scene.faces))
        finally:
            bar.close()
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"emotion_scene_crops: error: {exc}", file=sys.stderr)
        return 2
    found = len(crops)
    meta = {"data": str(args.data), "data_rows": total, "split": SPLIT,
            "faces": int(len(images)), "copies": args.copies,
            "seeds": [args.seed + k for k in range(args.copies)], "detector": args.detector,
            "crop_framing": [pipeline.crop_margin, pipeline.crop_offset], "crop_align": True,
            "sizes": list(options["sizes"]), "max_rotation": options["max_rotation"],
            "two_face_share": options["two_face_share"], "faces_pasted": faces_seen,
            "faces_found": found, "detection_rate": found / max(1, faces_seen),
            "seconds": round(time.perf_counter() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, images=np.stack(crops) if crops else np.zeros((0, 48, 48), np.uint8),
        labels=np.asarray(out_labels, np.int64), source_row=np.asarray(sources, np.int64),
        copy=np.asarray(copies, np.int64), meta=np.asarray(json.dumps(meta)))
    print(f"{found} crops of {faces_seen} pasted faces ({100 * meta['detection_rate']:.1f} % "
          f"found) in {meta['seconds']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

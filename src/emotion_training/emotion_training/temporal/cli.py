"""Temporal smoothing: synthetic face sequences, LSTM training and the smoother benchmark.

The command line of :mod:`emotion_training.temporal` (make, train, bench, all); the package
docstring describes each step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from emotion_perception.core.metrics import json_safe

from ..export import sha256_of
from .benchmark import BENCH_COLUMNS, bench, plot_bench
from .card import write_model_card
from .config import CARD_STEM, LSTM_FILE, TemporalConfig
from .synth import SequenceSet, file_classifier, load_splits, make_sequences, plot_frames
from .training import train_lstm


def _paths(args: argparse.Namespace) -> dict[str, Path]:
    work = Path(args.out)
    return {
        "train_seq": Path(getattr(args, "train_sequences_file", None)
                          or work / "sequences" / "train.npz"),
        "test_seq": Path(getattr(args, "test_sequences_file", None)
                         or work / "sequences" / "test.npz"),
        "lstm_dir": work / "lstm",
        "lstm": Path(getattr(args, "lstm", None) or work / "lstm" / LSTM_FILE),
        "bench": work / "bench",
    }


def _config(args: argparse.Namespace) -> TemporalConfig:
    cfg = TemporalConfig.from_yaml(args.config) if args.config else TemporalConfig()
    if args.seed is not None:
        cfg.seed = args.seed
    for key in ("train_sequences", "test_sequences"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    for key in ("frames", "fps"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg.sequences, key, value)
    for key in ("epochs", "window", "units"):
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg.lstm, key, value)
    # re-validate after the overrides
    return TemporalConfig(seed=cfg.seed, train_sequences=cfg.train_sequences,
                          test_sequences=cfg.test_sequences, tta_mirror=cfg.tta_mirror,
                          tta_shift=cfg.tta_shift,
                          tta_mirror_over_time=cfg.tta_mirror_over_time,
                          sequences=asdict(cfg.sequences), lstm=asdict(cfg.lstm),
                          bench=asdict(cfg.bench))


def cmd_make(args: argparse.Namespace, cfg: TemporalConfig) -> None:
    """Generate the training and benchmark sequence sets."""
    paths = _paths(args)
    if not args.data or not args.classifier:
        raise ValueError("make needs --data and --classifier")
    splits = load_splits(args.data)
    over_time = cfg.tta_mirror and cfg.tta_mirror_over_time and not cfg.tta_shift
    classifier = file_classifier(args.classifier, tta_mirror=cfg.tta_mirror,
                                 tta_shift=cfg.tta_shift,
                                 over_time_frames=cfg.sequences.frames if over_time else 0)
    common = {"data": str(Path(args.data).resolve()), "data_sha256": sha256_of(args.data),
              "classifier": str(Path(args.classifier).resolve()),
              "classifier_sha256": sha256_of(args.classifier),
              "classifier_tta_mirror": cfg.tta_mirror, "classifier_tta_shift": cfg.tta_shift,
              "classifier_tta_mirror_over_time": over_time,
              "cleaning": splits["cleaning"]}
    for split, n, seed, path in (("Training", cfg.train_sequences, cfg.seed, paths["train_seq"]),
                                 ("PublicTest", cfg.test_sequences, cfg.seed + 1,
                                  paths["test_seq"])):
        ds = splits[split]
        seqs = make_sequences(ds.images, ds.labels, classifier, n, cfg.sequences, seed,
                              progress=True, split=split)
        raw_acc = float((seqs.probs.argmax(-1) == seqs.labels).mean())
        seqs.meta.update(common, raw_frame_accuracy=raw_acc)
        seqs.save(path)
        print(f"{split}: {n} sequences x {cfg.sequences.frames} frames -> {path} "
              f"(classifier frame accuracy {raw_acc:.3f}, "
              f"{int((seqs.switch_frame >= 0).sum())} with a switch)", flush=True)
    plot_frames(splits["PublicTest"].images, splits["PublicTest"].labels, cfg.sequences,
                cfg.seed, paths["test_seq"].parent / "example_frames.png")


def cmd_train(args: argparse.Namespace, cfg: TemporalConfig) -> dict[str, Any]:
    """Train the LSTM on the training sequences."""
    paths = _paths(args)
    seqs = SequenceSet.load(paths["train_seq"])
    if seqs.meta.get("split") not in ("Training", ""):
        raise ValueError(f"{paths['train_seq']} holds {seqs.meta.get('split')} sequences; "
                         "the LSTM trains on Training sequences only")
    verbose = 1 if sys.stdout.isatty() else 2
    _, summary = train_lstm(seqs, cfg.lstm, cfg.seed, paths["lstm_dir"], verbose=verbose)
    print(f"LSTM: best epoch {summary['best_epoch']}/{summary['epochs_run']}, validation loss "
          f"{summary['initial_val_loss']:.4f} -> {summary['best_val_loss']:.4f}, accuracy "
          f"{summary['initial_val_accuracy']:.3f} -> {summary['best_val_accuracy']:.3f}; "
          f"saved {paths['lstm_dir'] / LSTM_FILE}", flush=True)
    return summary


def cmd_bench(args: argparse.Namespace, cfg: TemporalConfig) -> dict[str, Any]:
    """Benchmark the smoothers on the held-out sequences; optionally export the LSTM."""
    from emotion_perception.core.metrics import format_table

    paths = _paths(args)
    seqs = SequenceSet.load(paths["test_seq"])
    if seqs.meta.get("split") == "Training":
        raise ValueError(f"{paths['test_seq']} holds Training sequences; benchmark on "
                         "PublicTest sequences")
    lstm = paths["lstm"] if paths["lstm"].is_file() else None
    if lstm is None:
        print(f"no LSTM at {paths['lstm']}: benchmarking the other smoothers only",
              file=sys.stderr)
    result = bench(seqs, lstm, cfg.bench, progress=True)
    table = format_table(result["metrics"], BENCH_COLUMNS)
    print(table)
    out = paths["bench"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.txt").write_text(table + "\n")
    record = {"metrics": result["metrics"], "config": cfg.to_dict(),
              "sequences": str(paths["test_seq"]), "sequences_meta": seqs.meta,
              "lstm": str(lstm) if lstm else None,
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / "bench.json").write_text(json.dumps(json_safe(record), indent=2, default=str,
                                               allow_nan=False))
    plot_bench(seqs, result["outputs"], result["metrics"], out / "bench.png")
    print(f"wrote {out / 'bench.json'}, {out / 'bench.txt'}, {out / 'bench.png'}")
    if args.export:
        if lstm is None:
            raise ValueError("--export needs a trained LSTM")
        summary_file = lstm.parent / "train_summary.json"
        train_summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
        write_model_card(Path(args.export), lstm, result, train_summary, seqs.meta, cfg)
        print(f"exported {Path(args.export) / LSTM_FILE} and {CARD_STEM}.md/.json")
        _export_tflite(Path(args.export) / LSTM_FILE)
    return result


def _export_tflite(keras_file: Path) -> None:
    """Write the runtime's ``emotion_lstm.tflite`` beside ``keras_file`` and into its card.

    The ``lstm`` smoother runs the ``.tflite`` by default (no TensorFlow in the live process);
    see :mod:`emotion_training.lstm_export`. Without TensorFlow (training on another Keras
    backend) the step is skipped with the command to run where TensorFlow is installed.
    """
    from ..export import require_tensorflow_backend
    from ..lstm_export import TFLITE_FILE, export_lstm_tflite

    try:
        require_tensorflow_backend()
    except RuntimeError as exc:
        print(f"not writing {TFLITE_FILE}: {exc}; run python -m emotion_training.lstm_export "
              f"--model {keras_file} where TensorFlow is installed", file=sys.stderr)
        return
    entry = export_lstm_tflite(keras_file)
    print(f"exported {keras_file.parent / entry['file']} (max |diff| to Keras "
          f"{entry['parity']['max_abs_prob_diff']:.2e}) and added it to {CARD_STEM}.md/.json")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the CLI."""
    p = argparse.ArgumentParser(prog="python -m emotion_training.temporal",
                                description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", required=True, help="work folder (sequences/, lstm/, bench/)")
        sp.add_argument("--config", type=Path, help="YAML (configs/temporal.yaml); defaults "
                        "if omitted")
        sp.add_argument("--seed", type=int, help="overrides the config's seed")

    def make_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", help="dataset .npz/.csv/folder (Training and PublicTest)")
        sp.add_argument("--classifier", help="classifier .keras or .tflite whose outputs are "
                        "smoothed (best: the live default, emotion_net_int8.tflite)")
        sp.add_argument("--train-sequences", type=int, help="number of training sequences")
        sp.add_argument("--test-sequences", type=int, help="number of benchmark sequences")
        sp.add_argument("--frames", type=int, help="frames per sequence")
        sp.add_argument("--fps", type=float, help="nominal frame rate")

    def train_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--epochs", type=int, help="maximum LSTM epochs")
        sp.add_argument("--window", type=int, help="frames per LSTM window")
        sp.add_argument("--units", type=int, help="LSTM units")

    def bench_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--lstm", help="LSTM model to benchmark (default WORK/lstm/...)")
        sp.add_argument("--export", help="folder to receive emotion_lstm.keras, its .tflite "
                        "and the model card")

    sp = sub.add_parser("make", help="generate training and benchmark sequences")
    common(sp)
    make_args(sp)
    sp = sub.add_parser("train", help="train the LSTM smoother")
    common(sp)
    train_args(sp)
    sp.add_argument("--train-sequences-file", help="default WORK/sequences/train.npz")
    sp = sub.add_parser("bench", help="compare the smoothers on benchmark sequences")
    common(sp)
    bench_args(sp)
    sp.add_argument("--test-sequences-file", help="default WORK/sequences/test.npz")
    sp = sub.add_parser("all", help="make, train and bench")
    common(sp)
    make_args(sp)
    train_args(sp)
    bench_args(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the temporal-smoothing tool."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        cfg = _config(args)
    except (ValueError, OSError, TypeError) as exc:
        print(f"temporal: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    (out / f"config_{args.command}.yaml").write_text(yaml.safe_dump(cfg.to_dict(),
                                                                    sort_keys=False))
    try:
        if args.command in ("make", "all"):
            cmd_make(args, cfg)
        if args.command in ("train", "all"):
            cmd_train(args, cfg)
        if args.command in ("bench", "all"):
            cmd_bench(args, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"temporal: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

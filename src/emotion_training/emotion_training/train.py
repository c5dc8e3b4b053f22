"""Training CLI: ``emotion_train --config configs/emotion_net.yaml --out runs/emotion_net``.

Plain mode trains on the cleaned Training split and validates on PublicTest (the only split
models are chosen on). ``--folds K`` runs K-fold cross-validation on Training (duplicate groups
kept within a fold) and reports each fold's validation accuracy plus PublicTest accuracy.
A run writes ``config.yaml``, ``history.csv``, ``best.keras`` (highest validation accuracy),
``last.keras`` + ``state.json`` (for ``--resume``) and ``summary.json`` into its folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from emotion_perception.core.classes import NUM_CLASSES

from .config import TrainConfig


def _keras():
    import keras
    return keras


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend."""
    keras = _keras()
    keras.utils.set_random_seed(seed)


def lr_schedule(cfg: TrainConfig):
    """Return epoch -> learning rate: linear warm-up then cosine decay to 1 % of the peak."""
    def schedule(epoch: int, _lr: float = 0.0) -> float:
        if epoch < cfg.warmup_epochs:
            return cfg.learning_rate * (epoch + 1) / (cfg.warmup_epochs + 1)
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        t = min(1.0, (epoch - cfg.warmup_epochs) / span)
        return cfg.learning_rate * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t)))
    return schedule


def prepare_data(cfg: TrainConfig) -> dict[str, Any]:
    """Load, clean and split the data; return arrays and a cleaning report."""
    from emotion_perception.core.preprocessing import preprocess_faces
    from . import data as D

    ds = D.load_dataset(cfg.data)
    train = ds.split("Training")
    val = ds.split("PublicTest")
    train, report = D.clean(train, drop_not_face=cfg.drop_not_face)
    train, overlap = D.remove_overlap(train, val)
    report.overlap_with_validation = overlap
    if cfg.limit:
        rng = np.random.default_rng(cfg.seed)
        train = train.subset(np.sort(rng.permutation(len(train))[:cfg.limit]))
    x_train = preprocess_faces(train.images)
    y_train = D.targets(train, cfg.label_mode, cfg.ferplus_weight)
    if cfg.teacher:
        y_train = distillation_targets(cfg, x_train, y_train)
    report = report.as_dict()
    if cfg.scene_crops:
        crops, take = scene_crop_rows(cfg.scene_crops, ds, train)
        x_train = np.concatenate([x_train, preprocess_faces(crops)])
        y_train = np.concatenate([y_train, y_train[take]])
        report["scene_crops_added"] = int(len(take))
    return {
        "train": train, "val": val, "report": report,
        "x_train": x_train, "y_train": y_train,
        "x_val": preprocess_faces(val.images),
        "y_val": np.eye(NUM_CLASSES, dtype=np.float32)[val.labels],
    }


def scene_crop_rows(path: str | Path, ds: Any, train: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (crops, index into ``train`` of their source faces) of an emotion_scene_crops file.

    ``ds``: the whole dataset the crops were cut from (checked by its row count); ``train``: the
    cleaned Training faces. A crop is kept only when its source image (by pixel hash) is one of
    ``train``'s, so crops of faces that cleaning dropped, of PublicTest faces or of Training
    faces that also occur in PublicTest never reach training; the targets (label mode, FER+
    votes, teacher) are then the source face's (for a duplicate that cleaning dropped: its kept
    twin's, whose pixels it has).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene crops not found: {path} (config key scene_crops)")
    with np.load(path) as f:
        missing = {"images", "source_row", "meta"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: not an emotion_scene_crops file (missing "
                             f"{sorted(missing)})")
        crops, rows = f["images"], f["source_row"].astype(np.int64)
        meta = json.loads(str(f["meta"]))
    if meta.get("data_rows") != len(ds):
        raise ValueError(f"{path} was cut from a dataset of {meta.get('data_rows')} rows "
                         f"({meta.get('data')}), this one has {len(ds)}")
    if crops.ndim != 3 or crops.shape[1:] != (48, 48) or len(crops) != len(rows):
        raise ValueError(f"{path}: images must be (N, 48, 48) with one source_row each")
    if len(rows) and (rows.min() < 0 or rows.max() >= len(ds)):
        raise ValueError(f"{path}: source_row outside the dataset's {len(ds)} rows")
    where = {h: i for i, h in enumerate(train.hashes)}
    index = np.array([where.get(h, -1) for h in ds.hashes[rows]], dtype=np.int64)
    keep = index >= 0
    return crops[keep], index[keep]


def distillation_targets(cfg: TrainConfig, x_train: np.ndarray, y_train: np.ndarray
                         ) -> np.ndarray:
    """Mix the label targets with the teacher's probabilities on the (unaugmented) faces.

    ``(1 - teacher_weight) * y_train + teacher_weight * teacher(x_train)``, the teacher's output
    averaged with its mirror image's when ``teacher_tta`` (then it is mirror-consistent with the
    on-the-fly flips). Only Training faces are shown to the teacher.
    """
    from .evaluate import load_predictor, predict_probabilities

    if not Path(cfg.teacher).is_file():
        raise FileNotFoundError(f"teacher model not found: {cfg.teacher} (config key teacher)")
    teacher = load_predictor(cfg.teacher)
    probs = predict_probabilities(teacher, x_train, tta_mirror=cfg.teacher_tta,
                                  desc="teacher targets")
    if probs.shape != y_train.shape or not np.isfinite(probs).all():
        raise ValueError(f"teacher {cfg.teacher} gave {probs.shape} outputs (finite: "
                         f"{bool(np.isfinite(probs).all())}), expected {y_train.shape}")
    probs = probs / probs.sum(axis=1, keepdims=True)
    w = cfg.teacher_weight
    return ((1.0 - w) * y_train + w * probs).astype(np.float32)


def _save_atomically(model, path: Path) -> None:
    """Save ``model`` to ``path`` through a temporary file.

    A run killed mid-save (a CPU run stopped at the end of a session) then never leaves a
    truncated checkpoint behind.
    """
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def _accuracy(model, x: np.ndarray, labels: np.ndarray) -> float:
    """Return the share of ``x`` that ``model`` labels as ``labels`` (class indices)."""
    return float((model.predict(x, batch_size=256, verbose=0).argmax(1) == labels).mean())


def _write_json_atomically(data: Any, path: Path) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file (see _save_atomically)."""
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def time_left(epochs_done: int, epochs: int, seconds_per_epoch: float) -> str:
    """Return the line printed after each epoch: where the run is, and about how long is left.

    ``seconds_per_epoch`` is this process's pace so far (a resumed run's earlier processes
    may have run on another CPU).
    """
    left = max(0, epochs - epochs_done) * seconds_per_epoch
    hours, minutes = divmod(int(round(left / 60.0)), 60)
    eta = f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"
    return (f"epoch {epochs_done}/{epochs} done at {seconds_per_epoch:.0f} s an epoch: "
            + (f"about {eta} left" if epochs_done < epochs else "finished"))


class _Checkpointer:
    """Keras callback factory saving best/last models and a resumable state file."""

    @staticmethod
    def make(model, out: Path, cfg: TrainConfig, start_best: float, start_seconds: float = 0.0):
        keras = _keras()

        class Checkpointer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.best = start_best
                self.t0 = 0.0
                self.epochs_here = 0
                # adds up every process that trained this run (--resume)
                self.seconds = start_seconds

            def on_train_begin(self, logs: dict | None = None) -> None:
                self.t0 = time.time()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                logs = logs or {}
                acc = float(logs.get("val_accuracy", -1.0))
                if acc > self.best:
                    self.best = acc
                    _save_atomically(float32_copy(model, cfg), out / "best.keras")
                _save_atomically(self.model, out / "last_wrapper.keras")
                self.seconds = round(start_seconds + time.time() - self.t0, 1)
                state = {"epoch": epoch + 1, "best_val_accuracy": self.best,
                         "train_seconds": self.seconds,
                         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                _write_json_atomically(state, out / "state.json")
                self.epochs_here += 1
                print(time_left(epoch + 1, cfg.epochs, (time.time() - self.t0)
                                / self.epochs_here), flush=True)

        return Checkpointer()


class _Averager:
    """Keras callback factory keeping the mean of the weights over the run's last epochs."""

    @staticmethod
    def make(model, out: Path, cfg: TrainConfig, x_val: np.ndarray, y_val: np.ndarray,
             resume: bool):
        """Return the callback; a resumed run goes on from ``average.json``, a new one afresh.

        From epoch ``cfg.average_from`` (1-based) on, each epoch's end adds the classifier's
        weights to a running mean (batch-norm statistics included, averaged like the rest),
        saved as ``average.keras`` (float32) and scored on the validation images into
        ``average.json``: epochs averaged and the average's validation accuracy after each.
        """
        keras = _keras()
        from .models import build_model

        record_file, model_file = out / "average.json", out / "average.keras"
        twin = build_model(cfg.model, **cfg.model_args)  # float32, never the trained model
        record: dict[str, list] = {"epochs": [], "val_accuracy": []}
        mean = None
        if resume and record_file.exists() and model_file.exists():
            record = json.loads(record_file.read_text())
            mean = keras.models.load_model(model_file, compile=False).get_weights()

        class Averager(keras.callbacks.Callback):
            #: the float32 model holding the mean, and the record (epochs, val_accuracy)
            twin, record = None, None

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                nonlocal mean
                if epoch + 1 < cfg.average_from or epoch + 1 in record["epochs"]:
                    return
                weights = [np.asarray(w, np.float64) for w in model.get_weights()]
                count = len(record["epochs"])
                mean = weights if mean is None else [m + (w - m) / (count + 1)
                                                     for m, w in zip(mean, weights)]
                twin.set_weights([m.astype(np.float32) for m in mean])
                _save_atomically(twin, model_file)
                acc = _accuracy(twin, x_val, y_val.argmax(1))
                record["epochs"].append(epoch + 1)
                record["val_accuracy"].append(acc)
                _write_json_atomically(record, record_file)
                print(f"\nweight average of epochs {record['epochs'][0]}-{epoch + 1}: "
                      f"val accuracy {acc:.4f}", flush=True)

        averager = Averager()
        averager.twin, averager.record = twin, record
        return averager


def build_trainer(cfg: TrainConfig):
    """Return (classifier, wrapper): the wrapper adds augmentation in front for ``fit``."""
    keras = _keras()
    from .augment import build_augmenter
    from .models import INPUT_SHAPE, build_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(cfg.precision)
    try:
        model = build_model(cfg.model, **cfg.model_args)
    finally:
        keras.config.set_dtype_policy(previous)
    # the augmenter stays float32 (its JPEG step needs it); the classifier casts its input
    wrapper = keras.Sequential([keras.Input(INPUT_SHAPE), build_augmenter(cfg.augment, cfg.seed),
                                model], name="trainer")
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=cfg.learning_rate, momentum=cfg.momentum,
                                   nesterov=True, weight_decay=cfg.weight_decay or None)
    else:
        opt = keras.optimizers.AdamW(learning_rate=cfg.learning_rate,
                                     weight_decay=cfg.weight_decay)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    wrapper.compile(optimizer=opt, loss=loss,
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    return model, wrapper


def float32_copy(model, cfg: TrainConfig):
    """Return ``model`` itself when it computes in float32, else a float32 twin with its weights.

    Under ``precision: mixed_bfloat16`` the variables are float32 already, so the copy is exact;
    every saved classifier (best, last) is then a plain float32 model for evaluation, export
    and the runtime, whatever precision trained it.
    """
    if cfg.precision == "float32":
        return model
    from .models import build_model

    twin = build_model(cfg.model, **cfg.model_args)
    twin.set_weights(model.get_weights())
    return twin


def init_from(model, path: str | Path) -> None:
    """Copy the weights of the saved model at ``path`` into ``model`` (a warm start).

    The architectures must match layer for layer; a mismatch is an error naming the file, not a
    silently half-initialised model.
    """
    keras = _keras()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init_weights: no such model file: {path}")
    source = keras.models.load_model(path, compile=False)
    theirs, ours = source.get_weights(), model.get_weights()
    shapes = [w.shape for w in theirs], [w.shape for w in ours]
    if shapes[0] != shapes[1]:
        raise ValueError(f"init_weights: {path} ({source.name}, {source.count_params():,} "
                         f"parameters) does not match {model.name} "
                         f"({model.count_params():,} parameters)")
    model.set_weights(theirs)
    print(f"initialised from {path}", flush=True)


def fit_one(cfg: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
            y_val: np.ndarray, out: Path, resume: bool = False, verbose: int | None = None,
            carry: Path | None = None) -> dict[str, Any]:
    """Train one model into ``out``; return its summary.

    ``carry``: a folder kept up to date after every epoch with a compact copy of the run
    (see emotion_training.carry).
    """
    keras = _keras()
    from . import data as D

    out.mkdir(parents=True, exist_ok=True)
    set_seeds(cfg.seed)
    model, wrapper = build_trainer(cfg)
    initial_epoch, best, seconds_before, state = 0, -1.0, 0.0, {}
    state_file = out / "state.json"
    if cfg.init_weights and not (resume and state_file.exists()):
        init_from(model, cfg.init_weights)
    stopped_early = False
    if resume and state_file.exists():
        state = json.loads(state_file.read_text())
        wrapper = keras.models.load_model(out / "last_wrapper.keras")
        model = wrapper.layers[-1]
        trained_in = "mixed_bfloat16" if any(
            getattr(layer.dtype_policy, "compute_dtype", "") == "bfloat16"
            for layer in model.layers) else "float32"
        if trained_in != cfg.precision:  # the saved trainer carries its own precision
            print(f"warning: this run trains in {trained_in}, as it began; precision "
                  f"{cfg.precision} applies to new runs only", flush=True)
            # and saves float32 models as every run does (float32_copy follows cfg)
            cfg = dataclasses.replace(cfg, precision=trained_in)
        initial_epoch, best = int(state["epoch"]), float(state["best_val_accuracy"])
        stopped_early = bool(state.get("stopped_early", False))
        seconds_before = float(state.get("train_seconds", 0.0))
        print(f"resuming from epoch {initial_epoch} (best val accuracy {best:.4f})"
              + (": it had stopped early, nothing left to train" if stopped_early else ""),
              flush=True)
    labels = y_train.argmax(axis=1)
    weights = D.class_weights(labels, cfg.class_weight_power)[labels]
    checkpointer = _Checkpointer.make(model, out, cfg, best, seconds_before)
    callbacks = [
        keras.callbacks.LearningRateScheduler(lr_schedule(cfg)),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=resume),
    ]
    averager = None
    if cfg.average_from:  # before the checkpointer: an epoch is averaged before it counts done
        averager = _Averager.make(model, out, cfg, x_val, y_val, resume)
        callbacks.append(averager)
    callbacks.append(checkpointer)
    if carry is not None:  # after the files it copies are written
        from .carry import carrier_callback, pack_run
        if state:  # a resumed run: its carried copy is complete before training goes on
            pack_run(out, carry)
        callbacks.append(carrier_callback(model, out, carry, checkpointer, averager))
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                            patience=cfg.early_stopping_patience)
    callbacks.append(stopper)
    if cfg.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard")))
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    trains = initial_epoch < cfg.epochs and not stopped_early
    if trains:
        wrapper.fit(x_train, y_train, sample_weight=weights, batch_size=cfg.batch_size,
                    epochs=cfg.epochs, initial_epoch=initial_epoch,
                    validation_data=(x_val, y_val), callbacks=callbacks, shuffle=True,
                    verbose=verbose)
        if stopper.stopped_epoch > 0 and state_file.exists():
            # a resumed run must not train on past the point where it stopped early
            state = json.loads(state_file.read_text())
            state["stopped_early"] = True
            state_file.write_text(json.dumps(state, indent=2))
    _save_atomically(float32_copy(model, cfg), out / "last.keras")
    best_model = keras.models.load_model(out / "best.keras") if (out / "best.keras").exists() \
        else model
    acc = _accuracy(best_model, x_val, y_val.argmax(1))
    epochs_run, last_val = _history_digest(out)
    # the sum over every process that trained this run; a run this process did not train keeps
    # its state file's figure, None (unknown) where that file is older than the counter
    train_seconds = checkpointer.seconds if trains else state.get("train_seconds")
    summary = {"val_accuracy": acc, "last_epoch_val_accuracy": last_val,
               "epochs_run": epochs_run,
               "train_seconds": train_seconds, "n_train": int(len(x_train)),
               "n_val": int(len(x_val))}
    if cfg.average_from and (out / "average.json").exists():
        averaged = json.loads((out / "average.json").read_text())
        if averaged["epochs"]:
            summary["average"] = {"epochs": averaged["epochs"],
                                  "val_accuracy": averaged["val_accuracy"][-1]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _history_digest(out: Path) -> tuple[int, float | None]:
    """Return (epochs logged, last epoch's validation accuracy) from one read of history.csv."""
    from .plots import read_history

    try:
        history = read_history(out / "history.csv")
    except (FileNotFoundError, ValueError):
        return 0, None
    epochs = len(next(iter(history.values()), []))
    values = history.get("val_accuracy", [])
    return epochs, float(values[-1]) if values else None


def run(cfg: TrainConfig, out: Path, resume: bool = False, carry: Path | None = None
        ) -> dict[str, Any]:
    """Run plain training or K-fold cross-validation as the config says.

    ``carry``: see ``emotion_training.carry``; with ``resume`` a missing run folder is first
    rebuilt from it.
    """
    import yaml

    if carry is not None:
        _take_carried_run(cfg, out, resume, carry)
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "config.yaml").is_file():
        try:  # a resumed run goes on in the precision it began in (its saved trainer's)
            began = TrainConfig.from_yaml(out / "config.yaml").precision
        except (OSError, ValueError, TypeError):
            began = cfg.precision
        if began != cfg.precision:
            print(f"warning: this run trains in {began}, as it began; precision "
                  f"{cfg.precision} applies to new runs only", flush=True)
            cfg = dataclasses.replace(cfg, precision=began)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    d = prepare_data(cfg)
    print(f"data: {len(d['x_train'])} training images after cleaning {d['report']}, "
          f"{len(d['x_val'])} PublicTest images", flush=True)
    if not cfg.folds:
        summary = fit_one(cfg, d["x_train"], d["y_train"], d["x_val"], d["y_val"], out, resume,
                          carry=carry)
        summary["cleaning"] = d["report"]
        summary["label_mode"] = cfg.label_mode
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(f"PublicTest accuracy of best checkpoint: {summary['val_accuracy']:.4f}")
        return summary
    from . import data as D

    keras = _keras()
    folds = []
    for k, (tr, va) in enumerate(D.kfold_indices(d["train"], cfg.folds, cfg.seed)):
        fold_dir = out / f"fold{k + 1}"
        s = fit_one(cfg, d["x_train"][tr], d["y_train"][tr], d["x_train"][va],
                    np.eye(NUM_CLASSES, dtype=np.float32)[d["train"].labels[va]], fold_dir, resume)
        m = keras.models.load_model(fold_dir / "best.keras")
        pub = _accuracy(m, d["x_val"], d["val"].labels)
        s["public_test_accuracy"] = pub
        folds.append(s)
        print(f"fold {k + 1}/{cfg.folds}: val (best epoch) {s['val_accuracy']:.4f}, (last "
              f"epoch) {s['last_epoch_val_accuracy']:.4f}; PublicTest {pub:.4f}", flush=True)
    cv = np.array([f["val_accuracy"] for f in folds])
    last = np.array([f["last_epoch_val_accuracy"] for f in folds], dtype=float)
    pub = np.array([f["public_test_accuracy"] for f in folds])
    # cv_* scores each fold's best epoch, chosen on that same fold (slightly optimistic);
    # cv_last_* scores the last epoch, which no choice touched (the original's protocol).
    summary = {"folds": folds, "cv_mean": float(cv.mean()), "cv_std": float(cv.std()),
               "cv_last_mean": float(last.mean()), "cv_last_std": float(last.std()),
               "public_test_mean": float(pub.mean()), "public_test_std": float(pub.std()),
               "cleaning": d["report"], "label_mode": cfg.label_mode}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{cfg.folds}-fold CV accuracy (last epoch) {last.mean():.4f} +- {last.std():.4f}, "
          f"(best epoch per fold) {cv.mean():.4f} +- {cv.std():.4f}; PublicTest of the "
          f"folds' best checkpoints {pub.mean():.4f} +- {pub.std():.4f}")
    return summary


def _take_carried_run(cfg: TrainConfig, out: Path, resume: bool, carry: Path) -> None:
    """Check that ``carry`` fits this run; with ``resume``, rebuild a missing ``out`` from it.

    Refused (CarryError), so that no carried epoch is lost: cross-validation (one folder per
    fold), a new run (no ``resume``) into a folder that carries one, and a local run folder
    that is behind its carried copy.
    """
    from .carry import MANIFEST, CarryError, unpack_run

    if cfg.folds:
        raise CarryError("--carry carries one run folder; cross-validation (folds) has one "
                         "per fold")
    manifest = Path(carry) / MANIFEST
    carried = json.loads(manifest.read_text())["epoch"] if manifest.is_file() else None
    if carried is None:
        return
    if not resume:
        raise CarryError(f"{carry} carries a run at epoch {carried}: add --resume to go on "
                         "with it, or carry a new run in another folder")
    state = out / "state.json"
    here = json.loads(state.read_text())["epoch"] if state.is_file() else None
    if here is not None and here < carried:
        raise CarryError(f"{out} is at epoch {here} but its carried copy {carry} is at epoch "
                         f"{carried}: move {out} away to go on from the carried copy")
    unpack_run(Path(carry), out, cfg)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion_train``."""
    p = argparse.ArgumentParser(prog="emotion_train", description=__doc__.split("\n")[0])
    p.add_argument("--config", type=Path, help="YAML training config (defaults if omitted)")
    p.add_argument("--out", type=Path, required=True, help="run folder for all outputs")
    p.add_argument("--data", help="dataset (.npz, .csv or image folder); overrides the config")
    p.add_argument("--model", help="registered model name; overrides the config")
    p.add_argument("--epochs", type=int, help="overrides the config")
    p.add_argument("--folds", type=int, help="K for K-fold cross-validation (0 = off)")
    p.add_argument("--limit", type=int, help="use only N training images (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last epoch")
    p.add_argument("--init-weights", help="start from this .keras model's weights; overrides "
                   "the config")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"),
                   help="compute precision; overrides the config (mixed_bfloat16 pays where the "
                   "CPU has AMX or AVX512-BF16)")
    p.add_argument("--carry", type=Path, help="a folder (one to commit) kept up to date after "
                   "every epoch with a compact, resumable copy of the run; with --resume a "
                   "missing run folder is rebuilt from it (emotion_training/carry.py)")
    p.add_argument("--scene-crops", help="emotion_scene_crops .npz added to the training "
                   "images; overrides the config")
    a = p.parse_args(argv)
    overrides = {"data": a.data, "model": a.model, "epochs": a.epochs, "folds": a.folds,
                 "limit": a.limit, "init_weights": a.init_weights, "precision": a.precision,
                 "scene_crops": a.scene_crops}
    try:
        if a.config:
            cfg = TrainConfig.from_yaml(a.config, **overrides)
        else:
            cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    except (ValueError, OSError, TypeError) as exc:
        print(f"emotion_train: {exc}", file=sys.stderr)
        return 2
    if cfg.init_weights and not Path(cfg.init_weights).is_file():
        print(f"emotion_train: init_weights: no such model file: {cfg.init_weights}",
              file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .carry import CarryError

    try:
        run(cfg, a.out, resume=a.resume, carry=a.carry)
    except CarryError as exc:
        print(f"emotion_train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

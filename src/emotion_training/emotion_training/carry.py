"""A training run carried across machines: a compact, resumable copy of its folder.

Why it exists: this project's development machines keep nothing outside git from one session
to the next, and a long CPU schedule (``configs/emotion_net_long.yaml``: 150 epochs, about 3.6 h
on 2 cores) spans sessions. Every run folder so far was lost with its machine (session 16's
long run at epoch 85 among them). ``emotion_train --carry DIR`` keeps DIR, a folder that can be
committed, up to date after every epoch; ``emotion_train --resume --carry DIR`` on a machine
where the run folder is missing (or has no ``state.json``) rebuilds the folder from DIR and
goes on from the carried epoch.

What travels: the run's ``config.yaml``, ``history.csv``, ``state.json`` and ``average.json``
as they are, and the classifier weights of the last epoch, of the best epoch and of the weight
average. Arrays of more than ``FLOAT16_ABOVE`` values are stored as float16, the rest
(batch-norm statistics, biases) as float32: about 2.2 MB a model at width 32, where the
float32 ``.keras`` file is 4.8 MB and ``last_wrapper.keras`` with its optimizer 9.6 MB.
Rounding a weight to float16 changes it by at most 1 part in 2,048, less than one SGD step
moves it late in a schedule.

What does not travel: the optimizer's state. SGD's momentum at 0.9 is an average over about
the last 10 steps, and an epoch is about 425 of them, so a rebuilt run starts with zero
momentum and has its old one back within a few dozen steps; the learning rate comes from the
schedule, by epoch. The augmentation's random stream restarts from the config's seed, as in
any ``--resume``. Neither TensorBoard logs nor ``summary.json`` travel.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: the run folder's text files that travel unchanged
TEXT_FILES = ("config.yaml", "history.csv", "state.json", "average.json")
#: classifier copies that travel: carried name -> the run folder's file it comes from
MODELS = {"best": "best.keras", "average": "average.keras"}
#: arrays with more values than this are stored as float16
FLOAT16_ABOVE = 4096
MANIFEST = "carry.json"


def weights_file(folder: Path, name: str) -> Path:
    """Return the carried weights file of model ``name`` (last, best, average) in ``folder``."""
    return Path(folder) / f"{name}.weights.npz"


class CarryError(ValueError):
    """A carried run that does not fit the run asked for (nothing was changed)."""


def _save_weights(weights: Sequence[np.ndarray], path: Path) -> None:
    """Write ``weights`` (a model's ``get_weights()``) to ``path`` through a temporary file."""
    arrays = {f"w{i:03d}": (np.asarray(w, np.float16) if np.size(w) > FLOAT16_ABOVE
                            else np.asarray(w, np.float32)) for i, w in enumerate(weights)}
    tmp = path.with_name(f"{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_weights(path: Path) -> list[np.ndarray]:
    """Return the carried weights at ``path`` as float32 arrays, in the model's order."""
    with np.load(path) as f:
        names = sorted(f.files)
        if names != [f"w{i:03d}" for i in range(len(names))]:
            raise CarryError(f"{path}: not a carried weights file (arrays {names[:3]}...)")
        return [f[n].astype(np.float32) for n in names]


def _classifier_weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


def pack_run(run: Path, dest: Path, last_weights: Sequence[np.ndarray] | None = None,
             changed: dict[str, Sequence[np.ndarray]] | None = None) -> dict[str, Any]:
    """Write the carried copy of the run folder ``run`` into ``dest``; return its manifest.

    By default every model is read from its file in ``run`` (the last epoch's from
    ``last_wrapper.keras``; the best and averaged ones only when their file is newer than the
    carried copy). The trainer's callback passes them from memory instead, so that no model
    is loaded while ``fit`` runs: ``last_weights``, the classifier's weights at the end of the
    epoch, and ``changed``, the weights of the carried models (``best``, ``average``) that
    this epoch rewrote; the others keep their carried copy. Files of ``dest`` are replaced
    one by one through temporary files, the manifest last.
    """
    run, dest = Path(run), Path(dest)
    state_file = run / "state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{run} is not a run folder with a finished epoch "
                                "(no state.json)")
    dest.mkdir(parents=True, exist_ok=True)
    if last_weights is None:
        import keras

        wrapper = keras.models.load_model(run / "last_wrapper.keras", compile=False)
        last_weights = wrapper.layers[-1].get_weights()
    _save_weights(last_weights, weights_file(dest, "last"))
    carried = ["last"]
    for name, source in MODELS.items():
        src, out = run / source, weights_file(dest, name)
        if not src.is_file():
            out.unlink(missing_ok=True)
            continue
        if changed is not None and name in changed:
            _save_weights(changed[name], out)
        elif not out.is_file() or (changed is None
                                   and out.stat().st_mtime < src.stat().st_mtime):
            _save_weights(_classifier_weights(src), out)
        carried.append(name)
    for name in TEXT_FILES:
        if (run / name).is_file():
            tmp = dest / f"{name}.tmp"
            shutil.copyfile(run / name, tmp)
            os.replace(tmp, dest / name)
        else:
            (dest / name).unlink(missing_ok=True)
    state = json.loads(state_file.read_text())
    manifest = {"epoch": state["epoch"], "models": carried,
                "files": [n for n in TEXT_FILES if (dest / n).is_file()],
                "float16_above": FLOAT16_ABOVE,
                "resume": "emotion_train --config <its config> --out <run folder> --resume "
                          f"--carry {dest}"}
    tmp = dest / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, dest / MANIFEST)
    return manifest


def unpack_run(src: Path, run: Path, cfg: Any) -> bool:
    """Rebuild the run folder ``run`` from the carried copy ``src``; return whether it did.

    Nothing happens (False) when ``run`` already holds a ``state.json`` (a run folder on this
    machine is newer than or as new as its carried copy) or ``src`` holds no carried run.
    ``cfg``: the run's TrainConfig. Its precision applies from here on, also where the run
    began in another one: only float32 weights travel (mixed_bfloat16 keeps its variables in
    float32), so a run begun in bfloat16 on a CPU with AVX512-BF16 can go on in float32 on
    one without (``--precision float32``), and the rebuilt folder's ``config.yaml`` says so.
    Writes ``last_wrapper.keras`` (a fresh trainer holding the carried weights, its
    optimizer's momentum at zero), ``best.keras`` and ``average.keras`` (float32 classifiers)
    and the text files.
    """
    import yaml

    from .models import build_model
    from .train import _save_atomically, build_trainer

    src, run = Path(src), Path(run)
    if (run / "state.json").is_file() or not (src / MANIFEST).is_file():
        return False
    manifest = json.loads((src / MANIFEST).read_text())
    _, wrapper = build_trainer(cfg)
    _set_weights(wrapper.layers[-1], load_weights(weights_file(src, "last")),
                 weights_file(src, "last"))
    twins = {}
    for name in manifest["models"]:
        if name != "last":
            twins[name] = build_model(cfg.model, **cfg.model_args)
            _set_weights(twins[name], load_weights(weights_file(src, name)),
                         weights_file(src, name))
    # the optimizer's variables (SGD's momentum: zeros) exist, so the trainer saves and loads
    # like one that trained
    wrapper.optimizer.build(wrapper.trainable_variables)
    run.mkdir(parents=True, exist_ok=True)  # only once every carried model fits
    _save_atomically(wrapper, run / "last_wrapper.keras")
    for name, twin in twins.items():
        _save_atomically(twin, run / MODELS[name])
    for name in manifest["files"]:
        shutil.copyfile(src / name, run / name)
    note = ""
    if (run / "config.yaml").is_file():
        record = yaml.safe_load((run / "config.yaml").read_text()) or {}
        if record.get("precision", cfg.precision) != cfg.precision:
            note = f"; it trained in {record['precision']} so far and goes on in {cfg.precision}"
            record["precision"] = cfg.precision
            (run / "config.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    print(f"rebuilt {run} from the carried run {src} (epoch {manifest['epoch']}; "
          f"{', '.join(manifest['models'])}; the optimizer starts with zero momentum{note})",
          flush=True)
    return True


def _set_weights(model: Any, weights: list[np.ndarray], path: Path) -> None:
    """Set ``model``'s weights from a carried file, refusing one of another architecture."""
    ours = [w.shape for w in model.get_weights()]
    if [w.shape for w in weights] != ours:
        raise CarryError(f"{path} holds {len(weights)} arrays that do not match "
                         f"{model.name} ({len(ours)} arrays): carried from another model or "
                         "model_args")
    model.set_weights(weights)


def carrier_callback(model: Any, run: Path, dest: Path, checkpointer: Any,
                     averager: Any | None = None):
    """Return a Keras callback that packs ``run`` into ``dest`` after every epoch.

    Put it after the checkpointer and the averager, so the files it copies are the epoch's.
    Every model comes from memory (see :func:`pack_run`): the classifier ``model``; the best
    one is the classifier itself in an epoch where ``checkpointer.best`` rose (the
    checkpointer then saved it), the averaged one ``averager.twin`` in an epoch that
    ``averager.record`` lists. (A run that loaded the best model's file here, inside ``fit``,
    hung once at an epoch's end: TensorFlow's data iterator waiting, no CPU used. Whether the
    load caused it is not known; nothing needs it, so nothing is loaded.)
    """
    import keras

    class Carrier(keras.callbacks.Callback):
        best = checkpointer.best

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            weights = model.get_weights()
            changed = {}
            if checkpointer.best != self.best:
                changed["best"], self.best = weights, checkpointer.best
            if averager is not None and averager.record["epochs"][-1:] == [epoch + 1]:
                changed["average"] = averager.twin.get_weights()
            pack_run(run, dest, last_weights=weights, changed=changed)

    return Carrier()

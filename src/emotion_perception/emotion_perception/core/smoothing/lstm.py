"""``lstm``: a small learned smoother over each track's recent probability vectors.

Design (shared with the trainer in ``emotion_training.temporal``):

* Each track keeps its last ``window`` (default 16) probability vectors in a preallocated
  float32 ring buffer.
* The model input is always a fixed-length window ``(batch, window, 7)``, oldest frame first,
  newest last. A track with fewer than ``window`` frames so far (just started, or restarted
  after a gap) is **left-padded with all-zero rows**; the model starts with a
  ``keras.layers.Masking(mask_value=0.0)`` layer, so padding is skipped by the LSTM (a real
  probability vector sums to 1 and can never be all zero). :func:`sliding_windows` builds
  exactly these windows from a whole sequence; training uses it, so training and inference
  cannot disagree on the input layout.
* The model outputs the smoothed (7,) softmax for the newest frame (many-to-one).
* ``update_many`` stacks the windows of all tracks updated in one frame and calls the model
  once (LiteRT's interpreter for a ``.tflite``; for a Keras file a ``tf.function`` with a
  fixed input signature under the TensorFlow backend, traced once, or a direct model call
  under another backend; never ``model.predict``).
* Model outputs are clipped at 0 and renormalised; a non-finite or all-zero output (a broken
  model) falls back to the newest input vector and is counted in ``fallbacks``.

Model files and runtimes:

* ``model_path`` empty: the shipped ``emotion_lstm.tflite`` (found by
  :func:`emotion_perception.core.model_lookup.find_model`), run with LiteRT
  (``ai_edge_litert``, the classifier's runtime; ``tf.lite`` only when LiteRT is missing), so a
  live process with ``smoother:=lstm`` never imports TensorFlow. When no ``.tflite`` is
  installed, the shipped ``emotion_lstm.keras`` is used through Keras instead (logged).
* ``model_path`` ending in ``.tflite``: that file through LiteRT; any other suffix
  (``.keras``, ``.h5``): Keras, loaded with ``safe_mode=True`` (no Lambda layers, no arbitrary
  code). Keras is what the trainer and the export's parity check use.

The ``.tflite`` is the Keras model with its LSTM unrolled over the fixed window
(``emotion_training.lstm_export``): builtin ops only, so LiteRT runs it without TensorFlow's
select ops; its batch dimension is resized to the number of tracks updated per call.
A model must take ``(None, window, 7)`` (Keras also ``(None, None, 7)``) inputs and return
``(None, 7)``; otherwise ``ModelError`` names the file.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..classes import NUM_CLASSES
from ..classifiers.base import ModelError
from .simple import Observation, TrackedSmoother, _check_stamp, finish, validate_probs

_LOG = logging.getLogger(__name__)

DEFAULT_MODEL = "emotion_lstm.tflite"
#: used when no ``.tflite`` is installed (a tree exported before the TFLite step existed)
FALLBACK_KERAS_MODEL = "emotion_lstm.keras"
PARAMETER = "lstm.model_path"


def sliding_windows(probs: np.ndarray, window: int) -> np.ndarray:
    """Return the (T, window, C) model inputs of a (T, C) sequence, one per frame.

    Row ``t`` holds frames ``max(0, t - window + 1) .. t`` in time order at its end, preceded
    by all-zero padding rows: the exact input :class:`LstmSmoother` builds for frame ``t`` of a
    track that started at frame 0.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (T, C), got shape {probs.shape}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    t_len, c = probs.shape
    padded = np.concatenate([np.zeros((window - 1, c), np.float32), probs])
    idx = np.arange(t_len)[:, None] + np.arange(window)[None, :]
    return padded[idx]


class _Ring:
    """The last ``window`` vectors of one track in a preallocated ring buffer."""

    __slots__ = ("buf", "pos", "count")

    def __init__(self, window: int, num_classes: int) -> None:
        self.buf = np.zeros((window, num_classes), np.float32)
        self.pos = 0
        self.count = 0

    def push(self, p: np.ndarray) -> None:
        self.buf[self.pos] = p
        self.pos = (self.pos + 1) % len(self.buf)
        self.count = min(self.count + 1, len(self.buf))

    def write_into(self, out: np.ndarray) -> None:
        """Write the window, oldest first and left-padded with zeros, into ``out``."""
        w = len(self.buf)
        if self.count < w:  # never wrapped: rows 0..count-1 are in time order
            out[:w - self.count] = 0.0
            out[w - self.count:] = self.buf[:self.count]
        else:
            out[:w - self.pos] = self.buf[self.pos:]
            out[w - self.pos:] = self.buf[:self.pos]


class LstmSmoother(TrackedSmoother):
    """``lstm``: a learned LSTM over the last ``window`` vectors of each track (module doc).

    ``runtime`` says what runs the model: ``litert``, ``tf.lite`` or ``keras``.
    """

    name = "lstm"

    def __init__(self, model_path: str = "", window: int = 16, max_gap: float = 1.0,
                 max_tracks: int = 256) -> None:
        super().__init__(max_gap=max_gap, max_tracks=max_tracks)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be an integer >= 1 frames, got {window!r}")
        if not isinstance(model_path, (str, Path)):
            raise ValueError(f"model_path must be a string, got {model_path!r}")
        self.window = int(window)
        self.fallbacks = 0
        self.model_path = _resolve(str(model_path))
        if self.model_path.suffix.lower() == ".tflite":
            runner = _TfliteRunner(self.model_path, self.window)
            self.runtime, self._infer = runner.runtime, runner
        else:
            model = _load(self.model_path, self.window)
            self.runtime, self._infer = "keras", _inference_fn(model, self.window)
        self._batch = np.zeros((8, self.window, NUM_CLASSES), np.float32)
        self._check_output(self._run(_probe(self.window)), 1)

    # -- public API -----------------------------------------------------------------------
    def update(self, face_id: int, stamp: float, probs: np.ndarray) -> np.ndarray:
        """Fold one observation into the track's window; return the model's (7,) output."""
        return self.update_many([(face_id, stamp, probs)])[0]

    def update_many(self, items: Iterable[Observation]) -> list[np.ndarray]:
        """Update several tracks and run the model once for all of them; outputs in order.

        All vectors are validated before any state changes (one bad vector raises
        ``ValueError`` and changes nothing). A face id that occurs twice is handled in order:
        the batch is split so its second observation sees its first.
        """
        checked = [(int(fid), _check_stamp(stamp), validate_probs(p).astype(np.float32))
                   for fid, stamp, p in items]
        outputs: list[np.ndarray] = [np.empty(0, np.float32)] * len(checked)
        if len(checked) > len(self._batch):
            self._batch = np.zeros((len(checked), self.window, NUM_CLASSES), np.float32)
        pending: list[tuple[int, np.ndarray]] = []  # (index in items, newest vector)
        in_batch: set[int] = set()
        for i, (fid, stamp, p) in enumerate(checked):
            if fid in in_batch:
                self._flush(pending, outputs)
                pending, in_batch = [], set()
            entry = self._begin(fid, stamp)
            if entry is None:
                ring = _Ring(self.window, NUM_CLASSES)
                self._insert(fid, stamp, ring)
            else:
                ring = entry[1]
                entry[0] = stamp
            ring.push(p)
            ring.write_into(self._batch[len(pending)])
            pending.append((i, p))
            in_batch.add(fid)
        self._flush(pending, outputs)
        return outputs

    def window_of(self, face_id: int) -> np.ndarray:
        """Return a copy of the (window, 7) model input of a track as it stands now."""
        entry = self._tracks.get(int(face_id))
        if entry is None:
            raise KeyError(f"no track {face_id}")
        out = np.zeros((self.window, NUM_CLASSES), np.float32)
        entry[1].write_into(out)
        return out

    # -- internals ----------------------------------------------------------------------------
    def _flush(self, pending: list[tuple[int, np.ndarray]], outputs: list[np.ndarray]) -> None:
        if not pending:
            return
        raw = self._run(self._batch[:len(pending)])
        self._check_output(raw, len(pending))
        for row, (i, p) in zip(raw, pending):
            outputs[i] = self._postprocess(row, p)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._infer(batch), dtype=np.float64)

    def _check_output(self, raw: np.ndarray, n: int) -> None:
        if raw.shape != (n, NUM_CLASSES):
            raise ModelError(f"temporal model {self.model_path} returned shape {raw.shape}, "
                             f"expected ({n}, {NUM_CLASSES})")

    def _postprocess(self, row: np.ndarray, newest: np.ndarray) -> np.ndarray:
        if np.isfinite(row).all():
            row = np.clip(row, 0.0, None)
            if row.sum() > 0:
                return finish(row)
        self.fallbacks += 1
        return finish(newest)


def _probe(window: int) -> np.ndarray:
    x = np.zeros((1, window, NUM_CLASSES), np.float32)
    x[0, -1] = 1.0 / NUM_CLASSES
    return x


def _resolve(explicit: str) -> Path:
    """Return the model file: ``explicit``, else the shipped .tflite, else the shipped .keras."""
    from ..model_lookup import find_model

    if explicit.strip():
        return find_model(DEFAULT_MODEL, explicit, PARAMETER)
    try:
        return find_model(DEFAULT_MODEL, "", PARAMETER)
    except FileNotFoundError as exc:
        try:
            path = find_model(FALLBACK_KERAS_MODEL, "", PARAMETER)
        except FileNotFoundError:
            raise exc from None
        _LOG.info("%s not installed; running %s through Keras (export the .tflite with "
                  "python -m emotion_training.lstm_export)", DEFAULT_MODEL, path)
        return path


class _TfliteRunner:
    """batch (N, window, 7) -> (N, 7): a float32 ``.tflite`` LSTM run by LiteRT."""

    def __init__(self, path: Path, window: int) -> None:
        from ..litert import interpreter_class, load_interpreter, runtime_name

        self.runtime = runtime_name(interpreter_class())
        # one thread: a 5 k-weight model on a handful of tracks gains nothing from more
        self._interp = load_interpreter("temporal model", path=path, num_threads=1,
                                        parameter=PARAMETER)
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"temporal model {path} must have one input and one output, has "
                             f"{len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0]
        in_shape = tuple(int(v) for v in self._in.get("shape_signature", self._in["shape"]))
        out_shape = tuple(int(v) for v in self._out.get("shape_signature", self._out["shape"]))
        if len(in_shape) != 3 or in_shape[1:] != (window, NUM_CLASSES):
            raise ModelError(f"temporal model {path} takes inputs of shape {in_shape}; expected "
                             f"(-1, {window}, {NUM_CLASSES}) for window={window} (a .tflite "
                             "LSTM is unrolled over a fixed window)")
        if len(out_shape) != 2 or out_shape[1] != NUM_CLASSES:
            raise ModelError(f"temporal model {path} returns shape {out_shape}; expected "
                             f"(-1, {NUM_CLASSES})")
        for what, detail in (("input", self._in), ("output", self._out)):
            if np.dtype(detail["dtype"]) != np.float32:
                raise ModelError(f"temporal model {path}: {what} is "
                                 f"{np.dtype(detail['dtype'])}, expected float32")
        self._window = window
        self._batch = int(self._in["shape"][0])
        self._lock = threading.Lock()  # one interpreter: calls from two threads take turns

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a (N, window, 7) float32 batch; return a (N, 7) copy."""
        n = len(batch)
        with self._lock:
            if n != self._batch:
                self._interp.resize_tensor_input(self._in["index"],
                                                 [n, self._window, NUM_CLASSES])
                self._interp.allocate_tensors()
                self._batch = n
            self._interp.set_tensor(self._in["index"], np.ascontiguousarray(batch, np.float32))
            self._interp.invoke()
            return self._interp.get_tensor(self._out["index"]).copy()


def _load(path: Path, window: int) -> Any:
    """Load and shape-check the Keras model at ``path``."""
    from ..model_lookup import load_keras_model

    try:  # a truncated or corrupt file is reported as such, naming it
        model = load_keras_model(path, PARAMETER, "temporal model")
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ModelError(f"temporal model {path} must have exactly one input, has {len(inputs)}")
    in_shape = tuple(inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape) if len(model.outputs) == 1 else None
    if len(in_shape) != 3 or in_shape[2] != NUM_CLASSES or in_shape[1] not in (None, window):
        raise ModelError(f"temporal model {path} takes inputs of shape {in_shape}; expected "
                         f"(None, {window}, {NUM_CLASSES}) or (None, None, {NUM_CLASSES}) "
                         f"for window={window}")
    if out_shape is None or len(out_shape) != 2 or out_shape[1] != NUM_CLASSES:
        raise ModelError(f"temporal model {path} returns {out_shape if out_shape else 'several'}"
                         f" outputs; expected one of shape (None, {NUM_CLASSES})")
    return model


def _inference_fn(model: Any, window: int) -> Callable[[np.ndarray], Any]:
    """Return batch -> outputs: a traced tf.function under TensorFlow, else a direct call."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, window, NUM_CLASSES), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

        def infer(batch: np.ndarray) -> np.ndarray:
            return fn(tf.constant(batch)).numpy()
        return infer

    def call(batch: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(model(batch, training=False))
    return call

"""Keras 3 emotion classifier (plugin ``keras``): runs the trained ``.keras`` model as is.

The model is loaded with ``safe_mode=True`` (no arbitrary code from the file) and without its
training configuration. Inference goes through one ``tf.function`` with a batch dimension of
``None`` in its input signature, traced once at load time: every batch size then reuses the
same graph (no retracing, no Python-level Keras overhead), which keeps batch 1 fast. On a
non-TensorFlow Keras backend ``predict_on_batch`` is used instead, with batches padded to the
next power of two so that only a handful of shapes are ever compiled.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..classes import NUM_CLASSES
from ..model_lookup import DEFAULT_KERAS_MODEL, find_model, load_keras_model
from .base import EmotionClassifier, ModelError
from .tflite_classifier import check_batch, check_io_shapes

_LOG = logging.getLogger(__name__)


def _next_power_of_two(n: int, cap: int) -> int:
    size = 1
    while size < n and size < cap:
        size *= 2
    return size


def _set_threads(threads: int) -> None:
    """Limit TensorFlow's thread pools (only possible before its runtime has started)."""
    if threads <= 0:
        return
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError as exc:  # the TensorFlow context is already initialised
        _LOG.warning("threads=%d ignored: TensorFlow is already initialised (%s)", threads, exc)


class KerasClassifier(EmotionClassifier):
    """Emotion classifier running a Keras 3 model file (see the module docstring)."""

    name = "keras"

    def __init__(self, model_path: str = "", threads: int = 0, max_batch: int = 16,
                 model: Any = None) -> None:
        """Load ``model_path`` (empty: the shipped model), or wrap an in-memory ``model``.

        ``model`` is a Keras model already loaded or just trained (training-side evaluation
        and export run it through this class, so they score what the runtime runs); the path
        is then only a name for messages.
        """
        if int(threads) != threads or threads < 0:
            raise ValueError(f"threads must be an integer >= 0 (0 = library default), got "
                             f"{threads}")
        if int(max_batch) != max_batch or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch}")
        self.max_batch = int(max_batch)
        if model is None:
            self.path = find_model(DEFAULT_KERAS_MODEL, model_path)
        else:
            self.path = Path(model_path or f"<in-memory Keras model {model.name}>")
        _set_threads(int(threads))
        try:
            import keras
        except ImportError as exc:
            raise ModelError(f"the keras classifier needs Keras 3 with TensorFlow to load "
                             f"{self.path}: {exc}") from exc
        if model is None:
            try:  # a truncated or corrupt file is reported as such, naming it
                model = load_keras_model(self.path, "model_path")
            except ValueError as exc:
                raise ModelError(str(exc)) from exc
        try:
            inputs, outputs = list(model.inputs), list(model.outputs)
        except (AttributeError, ValueError) as exc:
            raise ModelError(f"model {self.path}: cannot read its input/output shapes "
                             f"({exc}); save a built functional or Sequential model") from exc
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"model {self.path}: expected 1 input and 1 output, got "
                             f"{len(inputs)} and {len(outputs)}")
        self.input_size = check_io_shapes(self.path, tuple(inputs[0].shape),
                                          tuple(outputs[0].shape))
        self.model = model
        self.tf_function: Any = None  # the traced inference function (TensorFlow backend)
        self._fn = self._make_inference(keras.backend.backend())
        self.predict(np.zeros((1, *self.input_size, 1), np.float32))  # trace now, not later

    def _make_inference(self, backend: str) -> Callable[[np.ndarray], Any]:
        model = self.model
        if backend == "tensorflow":
            import tensorflow as tf
            height, width = self.input_size
            spec = tf.TensorSpec([None, height, width, 1], tf.float32, name="faces")

            @tf.function(input_signature=[spec], reduce_retracing=True)
            def infer(x: Any) -> Any:
                return model(x, training=False)

            self.tf_function = infer
            return lambda x: infer(x).numpy()

        def infer_padded(x: np.ndarray) -> np.ndarray:
            n = x.shape[0]
            size = _next_power_of_two(n, self.max_batch)
            if size > n:
                x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), x.dtype)])
            return np.asarray(model.predict_on_batch(x))[:n]

        return infer_padded

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Return (N, 7) float32 probabilities for a (N, H, W, 1) float32 batch."""
        batch = check_batch(batch, self.input_size)
        if batch.shape[0] == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        parts = [np.asarray(self._fn(batch[i:i + self.max_batch]), dtype=np.float32)
                 for i in range(0, batch.shape[0], self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

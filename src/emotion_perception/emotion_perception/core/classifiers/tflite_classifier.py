"""LiteRT (TFLite) emotion classifier (plugin ``tflite``): small, fast, no full TensorFlow.

Runs the exported ``emotion_net_int8.tflite`` (or any model with one (N, H, W, 1) input and
one (N, 7) output) with ``ai_edge_litert``'s Interpreter, falling back to ``tf.lite`` when
LiteRT is not installed. float32, float16 and int8/uint8-quantised inputs and outputs are
handled: inputs are quantised with the input tensor's scale and zero point, outputs
dequantised. The input tensor is resized only when the batch size changes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..classes import NUM_CLASSES
from ..model_lookup import DEFAULT_TFLITE_MODEL, find_model
from .base import EmotionClassifier, ModelError

_LOG = logging.getLogger(__name__)
_SUPPORTED_DTYPES = (np.float32, np.float16, np.int8, np.uint8)


def check_io_shapes(path: Path, input_shape: Sequence[Any], output_shape: Sequence[Any]
                    ) -> tuple[int, int]:
    """Check a model's (N, H, W, 1) input and (N, 7) output; return (H, W).

    The batch dimension may be anything (None, -1 or a number). Raises ModelError naming the
    file on a mismatch.
    """
    shape_in = tuple(input_shape)
    if len(shape_in) != 4 or shape_in[3] != 1 or not all(
            isinstance(v, (int, np.integer)) and v > 0 for v in shape_in[1:3]):
        raise ModelError(f"model {path}: input shape {shape_in} is not (batch, H, W, 1) with "
                         "fixed H and W (one grayscale channel)")
    shape_out = tuple(output_shape)
    if len(shape_out) != 2 or shape_out[1] != NUM_CLASSES:
        classes = shape_out[-1] if shape_out else "?"
        raise ModelError(f"model {path}: output shape {shape_out} has {classes} classes, "
                         f"expected (batch, {NUM_CLASSES}) for the {NUM_CLASSES} FER2013 "
                         "classes")
    return int(shape_in[1]), int(shape_in[2])


def check_batch(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return ``batch`` as float32 (N, H, W, 1); raise ValueError on another shape."""
    batch = np.asarray(batch, dtype=np.float32)
    if batch.ndim != 4 or batch.shape[1:] != (size[0], size[1], 1):
        raise ValueError(f"expected a (N, {size[0]}, {size[1]}, 1) batch, got shape "
                         f"{batch.shape}")
    return batch


def _quant_params(detail: dict) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class TFLiteClassifier(EmotionClassifier):
    """Emotion classifier running a TFLite/LiteRT flatbuffer (see the module docstring)."""

    name = "tflite"

    def __init__(self, model_path: str = "", num_threads: int = 2,
                 model_content: bytes | None = None) -> None:
        """Load ``model_path`` (empty: the shipped model), or ``model_content`` (in-memory).

        ``model_content`` is a flatbuffer just converted (``emotion_export``'s parity check);
        the path is then only a name for messages.
        """
        if int(num_threads) != num_threads or num_threads < 0:
            raise ValueError(f"num_threads must be an integer >= 0 (0 = library default), "
                             f"got {num_threads}")
        if model_content is None:
            self.path = find_model(DEFAULT_TFLITE_MODEL, model_path)
        else:
            self.path = Path(model_path or "<in-memory TFLite model>")
        from ..litert import load_interpreter

        self._interp = load_interpreter(
            "TFLite model", content=model_content, parameter="model_path",
            path=self.path if model_content is None else None, num_threads=int(num_threads))
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"model {self.path}: expected 1 input and 1 output, got "
                             f"{len(inputs)} and {len(outputs)}")
        self._in, self._out = inputs[0], outputs[0]
        in_sig = self._in.get("shape_signature", self._in["shape"])
        out_sig = self._out.get("shape_signature", self._out["shape"])
        self.input_size = check_io_shapes(self.path, list(in_sig), list(out_sig))
        for what, detail in (("input", self._in), ("output", self._out)):
            dtype = np.dtype(detail["dtype"])
            if dtype not in [np.dtype(d) for d in _SUPPORTED_DTYPES]:
                raise ModelError(f"model {self.path}: unsupported {what} type {dtype}")
            if dtype.kind in "iu" and _quant_params(detail)[0] == 0.0:
                raise ModelError(f"model {self.path}: {what} is {dtype} without quantisation "
                                 "parameters")
        self._in_dtype = np.dtype(self._in["dtype"])
        self._out_dtype = np.dtype(self._out["dtype"])
        self._batch = int(self._in["shape"][0])
        self._per_row = False  # set when the model cannot be resized to other batch sizes
        self._lock = threading.Lock()

    @property
    def interpreter(self) -> Any:
        """Return the LiteRT object that runs the model (for tools that read its tensors)."""
        return self._interp

    @property
    def input_dtype(self) -> np.dtype:
        """Return the dtype of the model's input tensor (float32, float16, int8 or uint8)."""
        return self._in_dtype

    def _quantize(self, batch: np.ndarray) -> np.ndarray:
        if self._in_dtype.kind == "f":
            return batch.astype(self._in_dtype, copy=False)
        scale, zero = _quant_params(self._in)
        info = np.iinfo(self._in_dtype)
        q = np.round(batch / scale + zero)
        return np.clip(q, info.min, info.max).astype(self._in_dtype)

    def _dequantize(self, out: np.ndarray) -> np.ndarray:
        if self._out_dtype.kind == "f":
            return out.astype(np.float32)
        scale, zero = _quant_params(self._out)
        return ((out.astype(np.float32) - zero) * scale).astype(np.float32)

    def _resize(self, n: int) -> None:
        if n == self._batch:
            return
        h, w = self.input_size
        self._interp.resize_tensor_input(self._in["index"], [n, h, w, 1], strict=False)
        self._interp.allocate_tensors()
        self._batch = n

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._interp.set_tensor(self._in["index"], self._quantize(batch))
        self._interp.invoke()
        return self._dequantize(self._interp.get_tensor(self._out["index"]))

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Return (N, 7) float32 probabilities for a (N, H, W, 1) float32 batch."""
        batch = check_batch(batch, self.input_size)
        n = batch.shape[0]
        if n == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        with self._lock:
            if not self._per_row and n != self._batch:
                try:
                    self._resize(n)
                except Exception as exc:  # a model with a fixed batch size
                    _LOG.info("model %s cannot be resized to batch %d (%s); running one face "
                              "at a time", self.path, n, exc)
                    self._per_row = True
                    self._batch = -1
                    self._resize(1)
            if self._per_row:
                return np.concatenate([self._run(batch[i:i + 1]) for i in range(n)])
            return self._run(batch)

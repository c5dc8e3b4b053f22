"""One way to load a TFLite flatbuffer: LiteRT's interpreter, ``tf.lite`` when LiteRT is missing.

The emotion classifier (``tflite``), the BlazeFace detector, the LSTM smoother and the
training side's export checks all load their ``.tflite`` files here, so the runtime choice,
the fallback and the error a truncated or foreign file gives are the same everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .classifiers.base import ModelError

_LOG = logging.getLogger(__name__)


def interpreter_class() -> type:
    """Return LiteRT's ``Interpreter`` (``ai_edge_litert``), else ``tf.lite.Interpreter``.

    Raises ModelError when neither is importable.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise ModelError("TFLite models need ai-edge-litert (pip install ai-edge-litert) "
                             "or TensorFlow; neither is importable") from exc
        _LOG.info("ai_edge_litert not installed; using tf.lite.Interpreter")
        return tf.lite.Interpreter
    return Interpreter


def runtime_name(cls: type) -> str:
    """Return ``litert`` or ``tf.lite`` for an interpreter class of :func:`interpreter_class`."""
    return "litert" if cls.__module__.startswith("ai_edge_litert") else "tf.lite"


def load_interpreter(what: str, path: Path | str | None = None, content: bytes | None = None,
                     num_threads: int | None = None, parameter: str = "") -> Any:
    """Return an allocated interpreter of the file ``path`` or the flatbuffer ``content``.

    ``what`` names the model (and ``parameter`` the parameter that chose it) in the error
    raised when the file cannot be loaded (garbage, truncated, not a flatbuffer): a
    ModelError with the runtime's own message. ``num_threads`` None or 0 = the runtime's default.
    """
    if (path is None) == (content is None):
        raise ValueError("give exactly one of path and content")
    cls = interpreter_class()
    source = {"model_path": str(path)} if content is None else {"model_content": content}
    try:
        interp = cls(**source, num_threads=int(num_threads) if num_threads else None)
        interp.allocate_tensors()
    except Exception as exc:  # ValueError / RuntimeError on garbage or truncated files
        where = path if path is not None else "<in-memory model>"
        chose = f" (parameter {parameter})" if parameter else ""
        raise ModelError(f"cannot load {what} {where}{chose}: {type(exc).__name__}: "
                         f"{exc}") from exc
    return interp

"""Start-up shared by the ``soak`` and ``fuzz`` commands: model, synthetic input, graph run.

Both run the perception graph in their own process (:class:`~.probe.ProbedGraph`) and feed it
synthetic frames. :func:`resolve_model` picks the classifier model (the given one, the shipped
one, else a tiny untrained Keras model made on the fly), :func:`scene_messages` makes the
frames, and :func:`run_graph_command` does the rest of the start-up and tear-down the same
way for both: model resolution into a temporary folder, rclpy without its signal handlers
(Ctrl-C arrives as KeyboardInterrupt), the graph built and waited for, the command's body run,
start-up errors and Ctrl-C turned into exit statuses, and everything closed again.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


def make_tiny_model(path: Path) -> Path:
    """Save a tiny untrained 48x48x1 -> 7 Keras classifier at ``path`` and return the path."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax")(x)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, outputs).save(path)
    return path


def resolve_model(classifier: str, model_path: str, tmp_dir: Path) -> tuple[str, str, str]:
    """Return (classifier, model path, notice): the given or shipped model, else a tiny one."""
    from .core.model_lookup import DEFAULT_KERAS_MODEL, DEFAULT_TFLITE_MODEL, find_model

    if model_path:
        return classifier, str(find_model("", model_path)), ""
    name = DEFAULT_TFLITE_MODEL if classifier == "tflite" else DEFAULT_KERAS_MODEL
    try:
        return classifier, str(find_model(name)), ""
    except FileNotFoundError:
        pass
    if classifier not in ("keras", "tflite"):
        raise ValueError(f"classifier {classifier!r} needs --model-path (no shipped model)")
    path = make_tiny_model(Path(tmp_dir) / "tiny_soak.keras")
    return "keras", str(path), (f"notice: no shipped {name} found; using a tiny untrained Keras "
                                f"model ({path}) with the keras classifier. Pass --model-path "
                                "to soak the real model.")


def scene_messages(n_faces: int, count: int = 30, size: tuple[int, int] = (480, 640),
                   fps: float = 15.0) -> list:
    """Return ``count`` precomputed synthetic scenes as sensor_msgs/Image (bgr8)."""
    from .core.sample_input import synthetic_scene
    from .nodes.convert import array_to_image

    msgs = []
    for i in range(count):
        msg = array_to_image(synthetic_scene(n_faces, size=size, t=i / fps), "bgr8")
        msg.header.frame_id = "soak_camera"
        msgs.append(msg)
    return msgs


@dataclass
class GraphRun:
    """What :func:`run_graph_command` did.

    ``status`` is 0 when the body ran to its end (its return value is ``result``), 2 when the
    model could not be resolved or the graph or body raised RuntimeError, TimeoutError or
    ValueError (the message went to stderr), 130 on Ctrl-C.
    """

    status: int
    result: Any = None
    classifier: str = ""
    model: str = ""


def run_graph_command(prog: str, classifier: str, model_path: str,
                      body: Callable[[Any, str, str], Any], **graph_kwargs: Any) -> GraphRun:
    """Resolve the model, run ``body(graph, classifier, model)`` on a fresh graph, clean up.

    ``graph_kwargs`` go to :class:`~.probe.ProbedGraph` (namespace, smoothing, params_file,
    debug_image); the graph is waited for before ``body`` runs. Whatever happens, the graph is
    closed and rclpy shut down before this returns. Errors are printed as ``PROG: message``.
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from .probe import ProbedGraph

    with tempfile.TemporaryDirectory(prefix=f"ep_{prog}_") as tmp:
        try:
            classifier, model, notice = resolve_model(classifier, model_path, Path(tmp))
        except (FileNotFoundError, ValueError) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return GraphRun(2, classifier=classifier, model=model_path)
        if notice:
            print(notice, flush=True)
        # Ctrl-C raises KeyboardInterrupt instead of shutting the context down
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        graph = None
        try:
            graph = ProbedGraph(model, classifier, **graph_kwargs)
            graph.wait_ready()
            result = body(graph, classifier, model)
        except (RuntimeError, TimeoutError, ValueError) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return GraphRun(2, classifier=classifier, model=model)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return GraphRun(130, classifier=classifier, model=model)
        finally:
            if graph is not None:
                graph.close()
            rclpy.try_shutdown()
    return GraphRun(0, result, classifier, model)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, period: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; return its last value.

    The one polling wait of the fuzz run and the tests (``conftest.wait_for``): DDS matching
    and deliveries are waited for, never slept for.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())

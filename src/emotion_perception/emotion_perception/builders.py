"""Build the core objects from node parameter values (no rclpy).

The nodes and the offline bag evaluation both call these, so a replayed bag is processed with
exactly the objects the live graph would build from the same parameters.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import numpy as np

from .core import plugins
from .core.mirror_over_time import MirrorOverTime
from .core.pipeline import FramePipeline
from .core.tracking import FaceTracker
from .core.types import EmotionEstimate
from .core.params import prefixed

BUILTIN_DETECTORS = ("haar", "yunet", "blazeface")
#: built-in detectors that take the shared ``max_side`` (blazeface has blazeface.input_side)
MAX_SIDE_DETECTORS = ("haar", "yunet")
#: smoothers that read the parameters prefixed with their name (ema.tau, lstm.window ...)
BUILTIN_SMOOTHERS = ("ema", "hysteresis", "lstm")


def detector_kwargs(values: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments for the configured detector plugin."""
    name = values["detector"]
    try:
        extra = json.loads(values["plugin_params"] or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"parameter 'plugin_params' is not valid JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise ValueError("parameter 'plugin_params' must be a JSON object")
    if name in BUILTIN_DETECTORS:
        kwargs = prefixed(values, name)
        if name in MAX_SIDE_DETECTORS:
            kwargs["max_side"] = values["max_side"]
        kwargs.update(extra)
        return kwargs
    return extra


def name_parameters(message: str, prefix: str, keys: Sequence[str]) -> str:
    """Rewrite a plugin's keyword names in ``message`` as the node parameters that set them.

    A built-in plugin's errors name its keyword arguments (``model_path``); the user sets
    ``yunet.model_path``, so that is the name the message must give.
    """
    if not keys:
        return message
    words = "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))
    return re.sub(rf"(?<![\w.])({words})(?![\w])", rf"{prefix}.\1", message)


def build_detector(detector_values: dict[str, Any]) -> Any:
    """Create the detector plugin from face_detector parameters (errors name parameters)."""
    name = detector_values["detector"]
    try:
        return plugins.create("detector", name, **detector_kwargs(detector_values))
    except (ValueError, OSError) as exc:
        if name in BUILTIN_DETECTORS and len(exc.args) == 1 and isinstance(exc.args[0], str):
            exc.args = (name_parameters(exc.args[0], name,
                                        list(prefixed(detector_values, name))),)
        raise


def param_prefix(name: str, builtin: Sequence[str]) -> str:
    """Return the parameter prefix a built-in plugin reads (``haar``, ``ema`` ...), or ""."""
    return name if name in builtin else ""


def crop_framing(detector: Any, values: dict[str, Any]) -> tuple[float, float]:
    """Return (crop margin, crop offset) for the face crops of ``detector``.

    The parameters, or with ``crop_margin`` -1 (the default) the detector's own calibrated
    ``crop_framing``.
    """
    if values["crop_margin"] < 0:
        margin, offset = getattr(detector, "crop_framing", (0.1, 0.0))
        return float(margin), float(offset)
    return float(values["crop_margin"]), float(values["crop_offset"])


def framing_text(pipeline: FramePipeline) -> str:
    """Return the crop framing ``pipeline`` cuts its face crops with, as a JSON object.

    The face detector publishes this on ``crop_framing`` whenever it changes; the debug image
    node reads it back with :func:`parse_framing` (its class activation maps cover the crops
    the classifier saw).
    """
    return json.dumps({"crop_margin": pipeline.crop_margin, "crop_offset": pipeline.crop_offset,
                       "crop_align": pipeline.crop_align})


def parse_framing(text: str) -> tuple[float, float]:
    """Return (crop margin, crop offset) from :func:`framing_text`'s JSON; ValueError if bad."""
    try:
        data = json.loads(text)
        margin, offset = float(data["crop_margin"]), float(data["crop_offset"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"crop_framing {text!r} is not a framing: {exc}") from exc
    if not (0.0 <= margin <= 1.0 and -0.5 <= offset <= 0.5):
        raise ValueError(f"crop_framing {text!r} is outside crop_margin [0, 1] / "
                         "crop_offset [-0.5, 0.5]")
    return margin, offset


def build_pipeline(detector_values: dict[str, Any], classifier: Any = None) -> FramePipeline:
    """Build detector + tracker (+ an optional classifier) from face_detector parameters."""
    detector = build_detector(detector_values)
    tracker = FaceTracker(**prefixed(detector_values, "tracking"))
    margin, offset = crop_framing(detector, detector_values)
    return FramePipeline(detector, classifier, tracker, crop_margin=margin,
                         max_faces=detector_values["max_faces"], crop_offset=offset,
                         crop_align=bool(detector_values["crop_align"]),
                         full_scan_every=int(detector_values["full_scan_every"]))


def resolve_classifier_name(name: str, model_path: str) -> str:
    """Resolve ``auto``: keras for .keras/.h5 files, else tflite (the shipped int8 model).

    TFLite runs through LiteRT, so the live process then never imports TensorFlow; how the
    int8 model's accuracy and speed compare with the Keras model's is measured in its model
    card and the README (with the commands), not restated here.
    """
    if name != "auto":
        return name
    return "keras" if model_path.lower().endswith((".keras", ".h5")) else "tflite"


def build_classifier(values: dict[str, Any]) -> Any:
    """Create the classifier plugin from emotion_classifier parameters."""
    name = resolve_classifier_name(values["classifier"], values["model_path"])
    kwargs: dict[str, Any] = {"model_path": values["model_path"]}
    if name == "keras":
        kwargs["threads"] = values["threads"]
    elif name == "tflite":
        kwargs["num_threads"] = values["threads"] or 2
    classifier = plugins.create("classifier", name, **kwargs)
    classifier.tta_mirror = bool(values["tta_mirror"])
    classifier.tta_shift = int(values["tta_shift"])
    return classifier


def build_over_time(classifier: Any, values: dict[str, Any]) -> MirrorOverTime | None:
    """Return the MirrorOverTime the emotion_classifier parameters ask for, or None.

    Only with ``tta_mirror`` and ``tta_mirror_over_time`` on and ``tta_shift`` 0 (shift views
    are not spread over frames).
    """
    if values["tta_mirror"] and values["tta_mirror_over_time"] and MirrorOverTime.applies(
            classifier):
        return MirrorOverTime()
    return None


def build_smoother(values: dict[str, Any]) -> Any:
    """Create the smoother plugin from emotion_smoother parameters."""
    name = values["smoother"]
    kwargs: dict[str, Any] = {"max_gap": values["max_gap"], "max_tracks": values["max_tracks"]}
    if name in BUILTIN_SMOOTHERS:
        kwargs.update(prefixed(values, name))
    return plugins.create("smoother", name, **kwargs)


def smooth_estimates(smoother: Any, name: str, estimates: Sequence[EmotionEstimate],
                     stamp: float) -> list[EmotionEstimate]:
    """Smooth one frame's estimates (one batched update, then prune) as the smoother node does."""
    items = [(int(e.face_id), stamp, np.asarray(e.probabilities, np.float32)) for e in estimates]
    if hasattr(smoother, "update_many"):
        outputs = smoother.update_many(items)
    else:
        outputs = [smoother.update(*item) for item in items]
    smoother.prune(stamp)
    smoothed = name != "none"
    return [EmotionEstimate(face_id=e.face_id, probabilities=np.asarray(p, np.float32),
                            box=e.box, detection_score=e.detection_score, stamp=stamp,
                            smoothed=smoothed, smoother=name if smoothed else "")
            for e, p in zip(estimates, outputs)]

"""Every node parameter, declared once: name, default, description, range. No rclpy import.

The nodes declare these with descriptors (so ``ros2 param describe`` shows them), the
in-process runner and the offline bag evaluation merge and check the same YAML with them,
and a test checks that ``config/emotion_perception.yaml`` holds every declared key, and only
declared keys, with values inside their ranges. The schema lives in ``core/`` (not
``nodes/``) so that builders, bag evaluation and training read it without the node layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Param:
    """One declared parameter."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    read_only: bool = False
    choices: tuple[str, ...] | None = None

    def check(self, value: Any) -> None:
        """Raise ValueError naming the parameter if ``value`` has the wrong type or range."""
        want = type(self.default)
        ok_type = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = True
        if not ok_type:
            raise ValueError(f"parameter '{self.name}' must be of type {want.__name__}, "
                             f"got {type(value).__name__} ({value!r})")
        if self.min is not None and value < self.min:
            raise ValueError(f"parameter '{self.name}' = {value} is below its minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ValueError(f"parameter '{self.name}' = {value} is above its maximum {self.max}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter '{self.name}' = {value!r} is not one of "
                             f"{', '.join(self.choices)}")


COMMON = (
    Param("autostart", True, "Configure and activate the lifecycle node on start-up.",
          read_only=True),
    Param("image_qos", "sensor_data", "QoS of image subscriptions: sensor_data (best effort, "
          "connects to any camera) or reliable.", choices=("sensor_data", "reliable"),
          read_only=True),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", 0.1, 60.0),
)

# Every node with an input: how old an input may be, and which stamps are of this clock.
STAMPS = (
    Param("max_age", 2.0, "Inputs whose header stamp is older than this (s) when their turn "
          "comes are dropped (counted as dropped and stale), so a node resumed after a stall "
          "never publishes old results; 0 = off. Applies only to stamps within "
          "max_clock_offset of the node clock (replayed bags keep their recorded stamps).",
          0.0, 3600.0),
    Param("max_clock_offset", 300.0, "Stamps further than this (s) from the node clock, either "
          "way, are from another clock (a bag, another machine, an unset stamp): max_age does "
          "not apply to them and their latency is not recorded (counted as foreign_stamps).",
          0.1, 1e9),
)

MAX_IMAGE_PIXELS = Param("max_image_pixels", 16_777_216, "Images (and face crops) with more "
                         "pixels are rejected (with a warning and a diagnostics counter).",
                         1, 268_435_456)

# One classifier / smoother serving many cameras (nodes/multicam.py, launch/multi.launch.py).
CAMERAS = Param("cameras", "", "Camera namespaces this node serves, comma separated "
                "(front,back): it subscribes to <camera>/<input> of each and publishes "
                "<camera>/<output> with that camera's header; the classifier batches the "
                "faces of all waiting cameras into one inference call. Empty = one camera: "
                "the plain input and output topics.", read_only=True)

# Consumers of face lists: the work per message is bounded.
MAX_FACES = Param("max_faces", 100, "At most this many faces of one message are used (the "
                  "first ones; the detector sends the largest first); the rest are dropped "
                  "and counted as faces_dropped, so one huge message cannot stall the node.",
                  1, 10000)

CAMERA = (
    Param("source", "auto", "Camera source: a device index ('0'), a video file, a stream URL, "
          "an image folder, 'demo' for the embedded astronaut clip, or 'auto' (device 0 when "
          "present, else the demo).", read_only=True),
    Param("width", 640, "Requested/produced frame width in pixels (0 = source's own).", 0, 8192),
    Param("height", 480, "Requested/produced frame height in pixels (0 = source's own).",
          0, 8192),
    Param("fps", 15.0, "Frame rate: requested from devices, used to pace files, folders and "
          "the demo.", 0.1, 240.0),
    Param("frame_id", "camera", "frame_id written into every image header."),
    Param("loop", True, "Start video files and image folders over at their end."),
    Param("demo_faces", 1, "Number of faces in the embedded demo clip.", 1, 4),
    Param("reconnect_initial_delay", 0.5, "First wait (s) before reopening a failed source.",
          0.01, 60.0),
    Param("reconnect_max_delay", 8.0, "Longest wait (s) between reopen attempts (exponential "
          "backoff).", 0.1, 600.0),
    Param("stall_timeout", 3.0, "A source delivering no frame for this long (s) is reopened.",
          0.1, 600.0),
    Param("max_frames", 0, "Stop publishing after this many frames (0 = never).", 0,
          2_147_483_647),
)

DETECTOR = (
    Param("detector", "blazeface", "Face detector plugin (entry-point group "
          "emotion_perception.detectors): blazeface, haar, yunet, or a third-party name.",
          read_only=True),
    Param("plugin_params", "{}", "Extra keyword arguments for the detector plugin, as a JSON "
          "object (for third-party plugins).", read_only=True),
    Param("haar.scale_factor", 1.1, "Haar: image pyramid step.", 1.01, 2.0),
    Param("haar.min_neighbors", 5, "Haar: neighbours a candidate needs to be kept.", 0, 50),
    Param("haar.min_size", 40, "Haar: smallest face side in pixels (full resolution).", 8, 4096),
    Param("yunet.model_path", "", "YuNet: path of the face_detection_yunet .onnx model file "
          "(required when detector is yunet)."),
    Param("yunet.score_threshold", 0.7, "YuNet: minimum face score.", 0.0, 1.0),
    Param("yunet.nms_threshold", 0.3, "YuNet: non-maximum suppression IoU.", 0.0, 1.0),
    Param("blazeface.model", "short", "BlazeFace: short (short-range model, resizable input) "
          "or full (full-range model, fixed 192x192 input).", choices=("short", "full")),
    Param("blazeface.model_path", "", "BlazeFace: model file; empty = the one inside the "
          "installed mediapipe wheel (never downloaded)."),
    Param("blazeface.input_side", 256, "BlazeFace short range: the frame is scaled so its "
          "longer side is this (px) before detection; larger finds smaller faces for more "
          "time (0 = the model's own 128; the full-range model always takes 192).", 0, 1024),
    Param("blazeface.score_threshold", 0.4, "BlazeFace: minimum face score (first-pass faces "
          "below verify_below go through the face check).", 0.01, 0.99),
    Param("blazeface.nms_threshold", 0.3, "BlazeFace: IoU above which candidate boxes merge "
          "(weighted non-maximum suppression).", 0.0, 1.0),
    Param("blazeface.refine_threshold", 0.1, "BlazeFace: second pass for weak candidates: "
          "up to refine_max candidates scoring at least this (and below score_threshold) are "
          "looked at again on an upscaled tile of refine_scale box sides resampled to "
          "refine_side and kept if the tile scores them as faces (0 = no second pass).",
          0.0, 0.99),
    Param("blazeface.refine_max", 5, "BlazeFace: at most this many second-pass tiles per "
          "frame (each one more network run, on a refine_side square).", 0, 16),
    Param("blazeface.refine_side", 96, "BlazeFace short range: input side (px, a multiple of "
          "16) of the second pass's tiles (0 = the model's own 128).", 0, 256),
    Param("blazeface.refine_scale", 2.0, "BlazeFace: tile side in box sides, for the second "
          "pass and for the looks near tracked faces between full scans (full_scan_every).",
          1.0, 8.0),
    Param("blazeface.refine_accept", 0.4, "BlazeFace: score a face found on a second-pass "
          "tile needs to be kept (higher: fewer false faces, fewer small faces found; without "
          "the face check, verify_threshold 0, use 0.7).", 0.01, 0.99),
    Param("blazeface.verify_threshold", 0.1, "BlazeFace face check: doubtful faces (first "
          "pass scored below verify_below, and every face the second pass adds) are kept only "
          "if MediaPipe's face-mesh network, from the same wheel, gives them at least this "
          "face-presence score (0 = no check).", 0.0, 0.99),
    Param("blazeface.verify_below", 0.7, "BlazeFace face check: first-pass faces scored below "
          "this are checked (1 = all, 0 = none but the second pass's).", 0.0, 1.0),
    Param("blazeface.verify_model_path", "", "BlazeFace face check: face-mesh model file; "
          "empty = face_landmark.tflite inside the installed mediapipe wheel."),
    Param("blazeface.region_side", 96, "BlazeFace short range: input side (px, a multiple "
          "of 16) of the tiles that look near tracked faces between full scans "
          "(full_scan_every); the face fills about half of it whatever its size (0 = the "
          "model's own 128).", 0, 256),
    Param("blazeface.mirror_pass", True, "BlazeFace: the full scan also runs on the mirrored "
          "frame and both passes' candidates are merged (a second look that finds faces the "
          "first misses; twice the full scan's network work, none between full scans)."),
    Param("max_side", 320, "Haar and YuNet: detect on a copy downscaled so its longer side is "
          "at most this (0 = full resolution); boxes are mapped back.", 0, 8192),
    Param("crop_margin", -1.0, "Face crops are squares of the box's longer side enlarged by "
          "this fraction per side; -1 = the detector's calibrated framing (its own margin and "
          "offset that make its crops look like FER2013 faces, measured with "
          "emotion_eval_detectors --calibrate). The framing in use is published on "
          "crop_framing.", -1.0, 1.0),
    Param("crop_offset", 0.0, "With crop_margin >= 0: move the crop down the face by this "
          "fraction of the box side (negative: up).", -0.5, 0.5),
    Param("crop_align", True, "Turn each face upright along its eye keypoints before "
          "cropping (detectors with keypoints: blazeface, yunet; haar crops stay unrotated)."),
    Param("max_faces", 10, "At most this many faces per frame (largest first).", 1, 100),
    Param("full_scan_every", 3, "Detect on the whole frame every this many frames; in "
          "between, only around the tracked faces (one small tile each; blazeface), with a "
          "whole-frame scan at once when a tracked face is not found there. A new face is "
          "found within this many frames. 1 = the whole frame every frame.", 1, 1000),
    Param("tracking.min_iou", 0.3, "Tracker: overlap needed to continue a track.", 0.01, 1.0),
    Param("tracking.min_hits", 2, "Tracker: detections before a track is confirmed.", 1, 100),
    Param("tracking.max_misses", 5, "Tracker: missed frames before a track is retired.", 1, 1000),
)

CLASSIFIER = (
    Param("classifier", "auto", "Emotion classifier plugin (entry-point group "
          "emotion_perception.classifiers): keras, tflite, a third-party name, or auto (keras "
          "for a .keras/.h5 model_path, else tflite: the shipped int8 model by default).",
          read_only=True),
    Param("model_path", "", "Model file; empty = the shipped model from the package's share "
          "directory (emotion_net_int8.tflite for tflite, emotion_net.keras for keras).",
          read_only=True),
    Param("threads", 0, "Inference threads (0 = runtime default).", 0, 64, read_only=True),
    Param("tta_mirror", True, "Average each face's probabilities with those of its mirror "
          "image (test-time augmentation): twice the inference work per face. What it gains "
          "depends on the model (emotion_evaluate measures it; README, The model).",
          read_only=True),
    Param("tta_mirror_over_time", True, "With tta_mirror (and tta_shift 0): classify a "
          "tracked face once a frame, as it is and mirrored on alternate frames, and average "
          "with its previous frame's view: half the inference work, one frame of lag when the "
          "face changes. A new or untracked face, or one that missed a frame, gets both views "
          "at once (README, The model).", read_only=True),
    Param("tta_shift", 0, "Also average each face (and its mirror) moved this many pixels of "
          "the model input up, down, left and right: 5x the inference work; 0 = off.", 0, 8,
          read_only=True),
)

SMOOTHER = (
    Param("smoother", "ema", "Temporal smoother plugin (entry-point group "
          "emotion_perception.smoothers): none, ema, hysteresis, lstm.", read_only=True),
    Param("max_gap", 1.0, "A track unseen for longer (s) starts afresh.", 0.01, 3600.0),
    Param("max_tracks", 256, "At most this many tracks are kept in memory.", 1, 100000),
    Param("ema.tau", 0.5, "EMA: time constant in seconds.", 0.001, 60.0),
    Param("hysteresis.window", 7, "Hysteresis: frames in the majority window.", 1, 300),
    Param("hysteresis.margin", 0.25, "Hysteresis: probability lead a new label needs.", 0.0, 1.0),
    Param("lstm.model_path", "", "LSTM: model file; empty = shipped emotion_lstm.keras.",
          read_only=True),
    Param("lstm.window", 16, "LSTM: frames of history per track.", 2, 512),
)

DEBUG_IMAGE = (
    Param("history", 30, "Images kept while waiting for their emotions.", 1, 1000),
    Param("cam", False, "Paint each face's class activation map (where the classifier looked "
          "for the estimated emotion) under its box; needs Keras and a model with a "
          "global-average-pooling head.", read_only=True),
    Param("cam_model_path", "", "Keras model for the maps; empty = the shipped "
          "emotion_net.keras.", read_only=True),
    Param("cam_alpha", 0.45, "Weight of the heat map in the blend.", 0.0, 1.0),
    Param("lazy", True, "Subscribe to image and emotion only while something subscribes to "
          "debug_image (nothing is drawn for nobody); false: always.", read_only=True),
    # no crop framing here: the map covers the crop the face detector announces on
    # crop_framing (see nodes/debug_image_node.py), so nothing is kept equal by hand
)

# ROS4HRI (REP-155) output and input nodes (nodes/hri_bridge_node.py, nodes/hri_input_node.py)
HRI_TRACKED = Param("max_tracked", 256, "At most this many faces are live at once (each has "
                    "its per-face topics); beyond it the face seen longest ago goes first.",
                    1, 100000, read_only=True)

HRI_BRIDGE = (
    Param("id_prefix", "f", "ROS4HRI face id = this prefix + our track id (f17): a letter or "
          "'_' first, as topic-name tokens must not start with a digit.", read_only=True),
    Param("grace", 0.5, "A face absent from 'faces' keeps its id and per-face topics this "
          "long (s) before it leaves /humans/faces/tracked (our detector publishes only the "
          "faces matched in a frame).", 0.0, 3600.0),
    HRI_TRACKED,
    Param("publish_roi", True, "Publish /humans/faces/<id>/roi "
          "(hri_msgs/NormalizedRegionOfInterest2D).", read_only=True),
    Param("publish_cropped", True, "Publish /humans/faces/<id>/cropped (the detector's face "
          "crop, sensor_msgs/Image).", read_only=True),
)

HRI_INPUT = (
    Param("image", "cropped", "Which per-face image of the ROS4HRI detector to classify: "
          "/humans/faces/<id>/cropped or /aligned.", read_only=True,
          choices=("cropped", "aligned")),
    Param("image_width", 640, "Width (px) of the detector's source image: its normalized "
          "ROIs are scaled by it into the pixel ROIs of our FaceArray.", 1, 65535),
    Param("image_height", 480, "Height (px) of the detector's source image (see "
          "image_width).", 1, 65535),
    Param("max_wait", 0.1, "A tracked list waits at most this long (s) for its faces' images "
          "before its FaceArray is published with the faces that came.", 0.0, 10.0),
    Param("history", 30, "Stamps whose lists or images wait at most (older ones dropped).",
          1, 1000, read_only=True),
    HRI_TRACKED,
    Param("tracked_timeout", 2.0, "With no /humans/faces/tracked message for this long (s) "
          "every face is forgotten (its subscriptions removed).", 0.1, 3600.0),
    Param("publish_expression", True, "Publish our emotions back as "
          "/humans/faces/<detector's id>/expression (hri_msgs/Expression), from 'emotion'.",
          read_only=True),
)

#: Every parameter not declared ``read_only`` is applied by its node while it runs (see
#: ``PerceptionNode.prepare_params`` / ``apply_params``; test_live_params checks each one).
NODE_PARAMS: dict[str, tuple[Param, ...]] = {
    "camera": COMMON + CAMERA,
    "face_detector": COMMON + (MAX_IMAGE_PIXELS,) + STAMPS + DETECTOR,
    "emotion_classifier": COMMON + (MAX_IMAGE_PIXELS, MAX_FACES, CAMERAS) + STAMPS
    + CLASSIFIER,
    "emotion_smoother": COMMON + (MAX_FACES, CAMERAS) + STAMPS + SMOOTHER,
    "emotion_debug_image": COMMON + (MAX_IMAGE_PIXELS, MAX_FACES) + STAMPS + DEBUG_IMAGE,
    "hri_bridge": COMMON + (MAX_FACES,) + HRI_BRIDGE,
    "hri_input": COMMON + (MAX_IMAGE_PIXELS, MAX_FACES) + HRI_INPUT,
}


def by_name(params: Iterable[Param]) -> dict[str, Param]:
    """Index parameters by name."""
    return {p.name: p for p in params}


def prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Return ``{key without prefix: value}`` for keys starting with ``prefix + '.'``."""
    head = prefix + "."
    return {k[len(head):]: v for k, v in values.items() if k.startswith(head)}


def coerce(spec: Param, value: Any) -> Any:
    """Return ``value`` as a float where ``spec`` is a float parameter and the int is exact.

    YAML and ``--set NODE.PARAM=15`` give the integer 15 for ``fps``; ROS 2 refuses an integer
    for a double parameter, so a whole number given for a float parameter becomes that float.
    Nothing else is converted (a float for an integer parameter stays an error naming it).
    """
    if isinstance(spec.default, float) and isinstance(value, int) \
            and not isinstance(value, bool) and float(value) == value:
        return float(value)
    return value


def validate(node: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``values`` coerced (:func:`coerce`) and checked against ``node``'s declarations.

    Raises ValueError naming the parameter: one not declared for ``node``, or a value of the
    wrong type or outside its range or choices (:meth:`Param.check`).
    """
    if node not in NODE_PARAMS:
        raise ValueError(f"no parameters are declared for node {node!r}; nodes: "
                         f"{sorted(NODE_PARAMS)}")
    specs = by_name(NODE_PARAMS[node])
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = specs.get(key)
        if spec is None:
            raise ValueError(f"parameter '{key}' is not declared for node {node!r}")
        value = coerce(spec, value)
        spec.check(value)
        out[key] = value
    return out


def merge_params(nodes: Iterable[str], loaded: Mapping[str, Mapping[str, Any]] | None = None,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 overrides_name: str = "overrides") -> dict[str, dict[str, Any]]:
    """Return {node: every declared parameter's value} for ``nodes``: the one merge path.

    Declared defaults, then ``loaded`` (a parameter file as ``graph.load_params_file`` reads
    it), then ``overrides`` ({node: {param: value}}, e.g. from ``--set``); each value passes
    :func:`validate`. ``loaded`` may hold other nodes (a file serves every graph): those are
    not read. An override for a node not in ``nodes`` raises ValueError (a typo would
    otherwise be ignored), its message starting with ``overrides_name``. The in-process runner
    (``live``), the offline bag evaluation and the nodes' own start-up check all go through
    :func:`validate`; the nodes additionally declare each parameter to ROS from this schema.
    """
    names = list(dict.fromkeys(nodes))
    unknown = sorted(set(overrides or {}) - set(names))
    if unknown:
        raise ValueError(f"{overrides_name}: no node {', '.join(map(repr, unknown))} in this "
                         f"graph; nodes: {sorted(names)}")
    out: dict[str, dict[str, Any]] = {}
    for node in names:
        values = {p.name: p.default for p in NODE_PARAMS.get(node, ())}
        for layer in (loaded or {}, overrides or {}):
            values.update(validate(node, layer.get(node, {})))
        out[node] = values
    return out

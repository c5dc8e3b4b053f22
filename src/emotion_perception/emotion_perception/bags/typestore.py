"""Message types for reading and writing bags without ROS: a rosbags typestore + emotion_msgs.

The typestore is ``rosbags``' built-in ROS 2 Jazzy store (std_msgs, sensor_msgs, ...) with
``emotion_msgs`` registered from the package's own ``.msg`` files: from the installed share
directory (``ament_index``) when the package is installed, else from the source tree next to
this package. Type hashes (RIHS01) computed from those definitions equal the ones rosidl
generates, so bags written here carry the same ``type_description_hash`` as
``ros2 bag record`` would.

Ground-truth labels
-------------------
Labels travel in the bag on :data:`LABEL_TOPIC` (``/ground_truth/emotion``) as
``emotion_msgs/EmotionArray``, one message per labelled image, *not* as ``std_msgs/String``:
a String has no header, so it could only be matched to an image by receive time, which
``ros2 bag play`` and recording do not preserve exactly. The EmotionArray's header is a copy of
the image's header (same stamp, same frame_id), and it holds one ``Emotion`` per labelled face:

* ``label`` / ``label_name``: the true class; ``probabilities`` one-hot; ``confidence`` 1;
* ``roi``: the face box when known (all zero when not); ``detection_score`` 1;
* ``face_id`` 0, ``smoothed`` false, ``smoother`` ""; valence/arousal = the class anchors.

An image without a label message with its stamp is *unlabelled* (it inherits nothing from
earlier frames); a label message with no ``Emotion`` says "labelled: no face here". Time-range
labels (CSV ``start_s,end_s,label``) are expanded into one message per image in the range when
the bag is made. See ``README.md`` in this directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.classes import CLASS_NAMES, NUM_CLASSES, VALENCE_AROUSAL
from ..core.image_conversion import array_to_image_fields
from ..core.types import Box

LABEL_TOPIC = "/ground_truth/emotion"
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)
EMOTION_ARRAY_TYPE = "emotion_msgs/msg/EmotionArray"
FACE_ARRAY_TYPE = "emotion_msgs/msg/FaceArray"
MSG_PACKAGE = "emotion_msgs"
#: rosbag2 metadata version written (Iron/Jazzy readers accept it)
BAG_VERSION = 8


def emotion_msgs_dir() -> Path:
    """Return the directory holding ``emotion_msgs``' ``.msg`` files.

    The installed share directory (``<prefix>/share/emotion_msgs/msg``) when ament_index finds
    the package, else ``src/emotion_msgs/msg`` of the source tree this module lives in.
    """
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory(MSG_PACKAGE)) / "msg"
        if any(installed.glob("*.msg")):
            return installed
    except Exception:  # not installed (or no ament_index): use the source tree
        pass
    source = Path(__file__).resolve().parents[3] / MSG_PACKAGE / "msg"
    if any(source.glob("*.msg")):
        return source
    raise FileNotFoundError(f"cannot find the {MSG_PACKAGE} .msg files: not in an installed "
                            f"share directory (ament_index) nor in the source tree at {source}")


def emotion_msg_types(msg_dir: str | Path | None = None) -> dict[str, Any]:
    """Parse every ``.msg`` file of ``msg_dir`` (default :func:`emotion_msgs_dir`) for rosbags."""
    from rosbags.typesys import get_types_from_msg

    directory = Path(msg_dir) if msg_dir is not None else emotion_msgs_dir()
    types: dict[str, Any] = {}
    for path in sorted(directory.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{MSG_PACKAGE}/msg/{path.stem}"))
    if not types:
        raise FileNotFoundError(f"no .msg files in {directory}")
    return types


@lru_cache(maxsize=1)
def get_typestore() -> Any:
    """Return the shared rosbags Typestore: ROS 2 Jazzy types plus emotion_msgs."""
    from rosbags.typesys import Stores, get_typestore as rosbags_typestore

    store = rosbags_typestore(Stores.ROS2_JAZZY)
    store.register(emotion_msg_types())
    return store


def msg_class(msgtype: str) -> Any:
    """Return the typestore's message class of ``msgtype`` (e.g. ``sensor_msgs/msg/Image``)."""
    store = get_typestore()
    try:
        return store.types[msgtype]
    except KeyError:
        raise KeyError(f"message type {msgtype!r} is not in the typestore (ROS 2 Jazzy + "
                       f"{MSG_PACKAGE})") from None


def stamp_to_ns(stamp: Any) -> int:
    """Return a ``builtin_interfaces/Time`` (any object with sec, nanosec) as nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(stamp_ns: int, frame_id: str) -> Any:
    """Return a typestore ``std_msgs/Header`` for a stamp in nanoseconds."""
    if stamp_ns < 0:
        raise ValueError(f"stamp_ns must be >= 0, got {stamp_ns}")
    time_cls = msg_class("builtin_interfaces/msg/Time")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return msg_class("std_msgs/msg/Header")(stamp=time_cls(sec=sec, nanosec=nanosec),
                                            frame_id=str(frame_id))


def make_image(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    """Return a typestore ``sensor_msgs/Image`` holding ``array`` (dtype/channels as encoding)."""
    fields = array_to_image_fields(array, encoding)
    fields["data"] = np.frombuffer(fields["data"], dtype=np.uint8)
    return msg_class(IMAGE_TYPE)(header=make_header(stamp_ns, frame_id), **fields)


def _roi(box: Box | None) -> Any:
    roi_cls = msg_class("sensor_msgs/msg/RegionOfInterest")
    if box is None:
        return roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return roi_cls(x_offset=int(box.x), y_offset=int(box.y), height=int(box.h), width=int(box.w),
                   do_rectify=False)


def make_label(stamp_ns: int, frame_id: str, faces: Sequence[tuple[int, Box | None]]) -> Any:
    """Return the ground-truth EmotionArray of one image: one Emotion per (label, box) pair.

    ``faces`` empty means "labelled, no face in this image". See the module docstring.
    """
    header = make_header(stamp_ns, frame_id)
    emotion_cls = msg_class("emotion_msgs/msg/Emotion")
    emotions = []
    for label, box in faces:
        label = int(label)
        if not 0 <= label < NUM_CLASSES:
            raise ValueError(f"label must be a class index in [0, {NUM_CLASSES - 1}], "
                             f"got {label}")
        probs = np.zeros(NUM_CLASSES, np.float32)
        probs[label] = 1.0
        valence, arousal = VALENCE_AROUSAL[label]
        emotions.append(emotion_cls(
            header=header, face_id=0, label=label, label_name=CLASS_NAMES[label],
            confidence=1.0, probabilities=probs, roi=_roi(box), detection_score=1.0,
            valence=float(valence), arousal=float(arousal), smoothed=False, smoother=""))
    return msg_class(EMOTION_ARRAY_TYPE)(header=header, emotions=emotions)


def serialize(msg: Any, msgtype: str | None = None) -> bytes:
    """Return the CDR bytes of a typestore message (the rosbag2 'cdr' serialization)."""
    return bytes(get_typestore().serialize_cdr(msg, msgtype or msg.__msgtype__))


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    """Return the typestore message of CDR bytes."""
    return get_typestore().deserialize_cdr(raw, msgtype)

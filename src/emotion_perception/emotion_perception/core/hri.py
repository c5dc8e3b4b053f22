"""ROS4HRI (REP-155) without ROS: the label mapping, ROIs, face ids and their lifecycle.

The nodes ``hri_bridge`` (our faces and emotions out as ROS4HRI topics) and ``hri_input``
(another ROS4HRI detector's faces in as our FaceArray) keep everything that can be got wrong
here, so it is tested where ``hri_msgs`` is not installed:

* :data:`EXPRESSION_OF_CLASS`: our seven FER2013 classes onto ``hri_msgs/Expression``'s
  string constants, and :func:`to_expression` (expression, valence, arousal, confidence);
* :func:`hri_face_id`: our stable integer track id as a ROS4HRI face id (a string that is
  also a topic-name token: ``/humans/faces/<id>/expression``);
* :class:`TrackRegistry` / :class:`HriIdRegistry`: which faces are live now, when one appears
  and when one vanishes (after a grace time), bounded however many ids pass by;
  :class:`FaceChannels` creates and destroys each live face's publishers or subscriptions
  from the registry's changes;
* :class:`FrameAssembler`: groups a ROS4HRI detector's per-face images and ROIs by the stamp
  of its ``/humans/faces/tracked`` list into one frame.

The mapping (hri_msgs 2.0.0, ``msg/Expression.msg``; a node test compares these strings with
the installed message's constants):

========  ===========================  ==================================================
ours      Expression constant          exact?
========  ===========================  ==================================================
angry     ANGRY ("angry")              yes (no intensity: never ANNOYED or FURIOUS)
disgust   DISGUSTED ("disgusted")      yes
fear      SCARED ("scared")            nearest: FER2013 "fear" also holds HORRIFIED faces
happy     HAPPY ("happy")              yes
sad       SAD ("sad")                  yes (never DESPAIRED, DISAPPOINTED)
surprise  SURPRISED ("surprised")      yes (FER2013 surprise has no valence: not AMAZED)
neutral   NEUTRAL ("neutral")          yes
========  ===========================  ==================================================

What the message cannot carry: our distribution over the seven classes (one expression and one
confidence only; the full ``probabilities`` stay on ``/emotion``), whether the value is
smoothed, and the detection score. The other 18 constants (PLEADING ... EXCITED) are never
produced: the model has no such class. Valence and arousal are our probability-weighted
circumplex anchors (:data:`~emotion_perception.core.classes.VALENCE_AROUSAL`), an
interpretation of the class distribution, not a separately trained regressor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Sequence, TypeVar

import numpy as np

from .classes import CLASS_NAMES, NUM_CLASSES, VALENCE_AROUSAL
from .types import Box

#: our class name -> hri_msgs/Expression string constant (value)
EXPRESSION_OF_CLASS: dict[str, str] = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "neutral",
}
#: our class name -> name of the hri_msgs/Expression constant holding that value
CONSTANT_OF_CLASS: dict[str, str] = {name: value.upper()
                                     for name, value in EXPRESSION_OF_CLASS.items()}
#: our classes whose Expression constant is only the nearest one (see the module docstring)
INEXACT_CLASSES: dict[str, str] = {
    "fear": "SCARED is the nearest constant: FER2013 'fear' also holds faces ROS4HRI would "
            "call HORRIFIED",
}

#: REP-155 topic of the tracked face list, and the namespace of the per-face topics
TRACKED_TOPIC = "/humans/faces/tracked"
FACES_NAMESPACE = "/humans/faces"

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VA = np.asarray(VALENCE_AROUSAL, dtype=np.float64)
#: largest face id an emotion_msgs message holds (uint32)
MAX_FACE_ID = 2**32 - 1


@dataclass(frozen=True)
class HriExpression:
    """The fields of one hri_msgs/Expression (without its header)."""

    expression: str
    valence: float
    arousal: float
    confidence: float


def to_expression(label_name: str, confidence: float,
                  probabilities: Sequence[float] | None = None,
                  valence: float = math.nan, arousal: float = math.nan) -> HriExpression:
    """Return the Expression fields of one of our estimates.

    ``valence`` / ``arousal`` as our Emotion message carries them (clipped to [-1, 1]); when
    one is NaN (unknown) it is computed from ``probabilities`` with the circumplex anchors,
    and stays NaN without usable probabilities. ``confidence`` is clipped to [0, 1]. Raises
    ValueError for a label that is not one of our classes or a non-finite confidence.
    """
    key = str(label_name).strip().lower()
    if key not in EXPRESSION_OF_CLASS:
        raise ValueError(f"label {label_name!r} is not one of {', '.join(CLASS_NAMES)}")
    confidence = float(confidence)
    if not math.isfinite(confidence):
        raise ValueError(f"confidence {confidence} is not a finite number")
    va = [float(valence), float(arousal)]
    if not all(math.isfinite(v) for v in va) and probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape == (NUM_CLASSES,) and np.isfinite(probs).all() and probs.sum() > 0:
            anchors = (probs / probs.sum()) @ _VA
            va = [v if math.isfinite(v) else float(a) for v, a in zip(va, anchors)]
    va = [min(1.0, max(-1.0, v)) if math.isfinite(v) else math.nan for v in va]
    return HriExpression(EXPRESSION_OF_CLASS[key], va[0], va[1],
                         min(1.0, max(0.0, confidence)))


# --- ids ------------------------------------------------------------------------------------

def is_valid_hri_id(text: str) -> bool:
    """Return True when ``text`` can be a ROS4HRI id: one topic-name token.

    ``/humans/faces/<id>/...`` must be a valid ROS 2 name: letters, digits and underscores,
    not starting with a digit.
    """
    return isinstance(text, str) and bool(_TOKEN.match(text))


def check_id_prefix(prefix: str) -> str:
    """Return ``prefix`` when our ids can follow it in a topic name; else raise ValueError."""
    if not is_valid_hri_id(prefix):
        raise ValueError(f"id prefix {prefix!r} must start with a letter or '_' and hold only "
                         "letters, digits and '_' (ROS4HRI ids are topic-name tokens, which "
                         "must not start with a digit)")
    return prefix


def hri_face_id(track_id: int, prefix: str = "f") -> str:
    """Return the ROS4HRI face id of our track ``track_id``: ``prefix`` + the decimal id.

    Deterministic (the same track always gets the same string, across nodes and restarts of
    the bridge) and unique as long as our ids are (they are never reused within one run of
    the detector). Raises ValueError for 0 (untracked) or a negative id.
    """
    track_id = int(track_id)
    if track_id < 1:
        raise ValueError(f"face id {track_id} is not a track id (0 means untracked)")
    return f"{check_id_prefix(prefix)}{track_id}"


# --- live faces -----------------------------------------------------------------------------

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class LiveFace:
    """One live face: its ROS4HRI string id and our integer id, when it was seen."""

    hri_id: str
    face_id: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class Changes:
    """What one registry call changed: faces that appeared, vanished, ids it refused."""

    appeared: tuple[LiveFace, ...] = ()
    vanished: tuple[LiveFace, ...] = ()
    refused: tuple[Any, ...] = ()

    def __bool__(self) -> bool:
        """Return True when a face appeared or vanished."""
        return bool(self.appeared or self.vanished)


class _Registry(Generic[K]):
    """The live faces keyed by ``K``; see :class:`TrackRegistry` and :class:`HriIdRegistry`.

    ``update(keys, now)`` reports a frame: every key in it is seen at ``now`` (one that is not
    live appears), and every live face not seen for more than ``grace`` seconds vanishes.
    ``expire(now)`` applies the grace alone (a timer's call, so faces vanish when the frames
    stop). At most ``capacity`` faces are live: when more appear, the ones seen longest ago
    vanish first (counted in ``evicted``); keys beyond ``capacity`` in one frame are refused.
    Memory is the live faces only: ids that passed by leave nothing behind.
    """

    def __init__(self, grace: float = 0.0, capacity: int = 1024) -> None:
        if not (math.isfinite(grace) and grace >= 0.0):
            raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace}")
        if int(capacity) != capacity or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity}")
        self.grace = float(grace)
        self.capacity = int(capacity)
        self.evicted = 0
        self._live: dict[K, LiveFace] = {}        # insertion order = order of appearance
        self._by_face_id: dict[int, K] = {}
        self._by_hri_id: dict[str, K] = {}

    # subclasses: the ids of a new face, and whether a key is acceptable
    def _ids(self, key: K) -> tuple[str, int]:
        raise NotImplementedError

    def _key(self, key: Any) -> K | None:
        raise NotImplementedError

    def __len__(self) -> int:
        """Return the number of live faces."""
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        """Return True when ``key`` is live."""
        return key in self._live

    def get(self, key: K) -> LiveFace | None:
        """Return the live face of ``key`` (None when it is not live)."""
        return self._live.get(key)

    def by_face_id(self, face_id: int) -> LiveFace | None:
        """Return the live face with our integer id ``face_id`` (None when not live)."""
        key = self._by_face_id.get(int(face_id))
        return None if key is None else self._live[key]

    def by_hri_id(self, hri_id: str) -> LiveFace | None:
        """Return the live face with ROS4HRI id ``hri_id`` (None when not live)."""
        key = self._by_hri_id.get(hri_id)
        return None if key is None else self._live[key]

    def live(self) -> list[LiveFace]:
        """Return the live faces in the order they appeared."""
        return list(self._live.values())

    def hri_ids(self) -> list[str]:
        """Return the ROS4HRI ids of the live faces, in the order they appeared."""
        return [f.hri_id for f in self._live.values()]

    def sizes(self) -> tuple[int, int, int]:
        """Return the sizes of the internal maps (all equal ``len(self)``; for leak tests)."""
        return len(self._live), len(self._by_face_id), len(self._by_hri_id)

    def update(self, keys: Iterable[Any], now: float, expire: bool = True) -> Changes:
        """Report the faces of one frame at time ``now`` (seconds, non-decreasing).

        With ``expire`` false the keys are seen but nobody vanishes (an input that lists only
        some of the faces, e.g. the ones that got an emotion).
        """
        wanted: list[K] = []
        refused: list[Any] = []
        for raw in keys:
            key = self._key(raw)
            if key is None:
                refused.append(raw)
            elif key not in wanted:
                wanted.append(key)
        if len(wanted) > self.capacity:
            refused += wanted[self.capacity:]
            wanted = wanted[:self.capacity]
        vanished = list(self._expire(now, self.grace, keep=set(wanted))) if expire else []
        appeared: list[LiveFace] = []
        new = [k for k in wanted if k not in self._live]
        overflow = len(self._live) + len(new) - self.capacity
        if overflow > 0:  # the faces seen longest ago make room
            keep = set(wanted)
            oldest = sorted((f.last_seen, i, k) for i, (k, f) in enumerate(self._live.items())
                            if k not in keep)
            for _, _, k in oldest[:overflow]:
                vanished.append(self._remove(k))
                self.evicted += 1
        for key in wanted:
            face = self._live.get(key)
            if face is None:
                hri_id, face_id = self._ids(key)
                face = LiveFace(hri_id, face_id, now, now)
                self._live[key] = face
                self._by_face_id[face_id] = key
                self._by_hri_id[hri_id] = key
                appeared.append(face)
            else:
                face.last_seen = max(face.last_seen, now)
        return Changes(tuple(appeared), tuple(vanished), tuple(refused))

    def expire(self, now: float, grace: float | None = None) -> Changes:
        """Remove the faces not seen for more than ``grace`` (default: the registry's) s."""
        return Changes(vanished=tuple(self._expire(now, self.grace if grace is None
                                                   else float(grace), keep=set())))

    def clear(self) -> Changes:
        """Remove every live face (they all vanish)."""
        return Changes(vanished=tuple(self._remove(k) for k in list(self._live)))

    def _expire(self, now: float, grace: float, keep: set) -> list[LiveFace]:
        gone = [k for k, f in self._live.items() if k not in keep and now - f.last_seen > grace]
        return [self._remove(k) for k in gone]

    def _remove(self, key: K) -> LiveFace:
        face = self._live.pop(key)
        self._by_face_id.pop(face.face_id, None)
        self._by_hri_id.pop(face.hri_id, None)
        return face


class TrackRegistry(_Registry[int]):
    """Our tracks (integer ids >= 1) as ROS4HRI faces named ``prefix`` + id.

    For ``hri_bridge``: a track absent from the detector's messages for more than ``grace``
    seconds vanishes (our detector publishes only the faces it matched in a frame and retires a
    track after ``tracking.max_misses`` frames; the grace stands in for that retirement, which
    the messages do not carry). Id 0 (untracked) and negative ids are refused.
    """

    def __init__(self, grace: float = 0.5, capacity: int = 1024, prefix: str = "f") -> None:
        super().__init__(grace, capacity)
        self.prefix = check_id_prefix(prefix)

    def _key(self, key: Any) -> int | None:
        try:
            value = int(key)
        except (TypeError, ValueError):
            return None
        return value if 1 <= value <= MAX_FACE_ID else None

    def _ids(self, key: int) -> tuple[str, int]:
        return hri_face_id(key, self.prefix), key


class HriIdRegistry(_Registry[str]):
    """Another detector's ROS4HRI face ids (strings), each given one of our integer ids.

    For ``hri_input``: the integer is assigned when the id appears, counting up from 1, and
    kept while the face is live, so our classifier and smoother see a stable track. A face that
    vanished and comes back gets a new integer: its smoother history starts afresh, which is
    right for detectors that reuse ids (hri_face_detect's deterministic ids wrap at 10000).
    Integers are not reused until ``max_face_id`` (uint32) is passed, then the count starts
    at 1 again, skipping live ones. Ids that are no topic-name token are refused.
    """

    def __init__(self, grace: float = 0.0, capacity: int = 1024,
                 max_face_id: int = MAX_FACE_ID) -> None:
        super().__init__(grace, capacity)
        if not 1 <= int(max_face_id) <= MAX_FACE_ID or max_face_id <= capacity:
            raise ValueError(f"max_face_id must be in ({capacity}, {MAX_FACE_ID}], "
                             f"got {max_face_id}")
        self.max_face_id = int(max_face_id)
        self._next = 1

    def _key(self, key: Any) -> str | None:
        return key if is_valid_hri_id(key) else None

    def _ids(self, key: str) -> tuple[str, int]:
        while True:  # at most capacity + 1 steps: fewer faces are live than ids exist
            face_id = self._next
            self._next = face_id + 1 if face_id < self.max_face_id else 1
            if face_id not in self._by_face_id:
                return key, face_id


class FaceChannels(Generic[T]):
    """Per-face ROS objects (publishers or subscriptions) that follow a registry's changes.

    ``create(face)`` makes the face's objects when it appears, ``destroy(obj)`` releases them
    when it vanishes; ``apply`` takes a :class:`Changes`. The nodes keep no other per-face
    state, so the objects alive always match the live faces.
    """

    def __init__(self, create: Callable[[LiveFace], T], destroy: Callable[[T], None]) -> None:
        self._create = create
        self._destroy = destroy
        self._items: dict[str, T] = {}

    def __len__(self) -> int:
        """Return the number of faces with objects."""
        return len(self._items)

    def get(self, hri_id: str) -> T | None:
        """Return the objects of a face (None when it has none)."""
        return self._items.get(hri_id)

    def apply(self, changes: Changes) -> None:
        """Destroy the objects of the vanished faces, then create those of the new ones."""
        for face in changes.vanished:
            item = self._items.pop(face.hri_id, None)
            if item is not None:
                self._destroy(item)
        for face in changes.appeared:
            if face.hri_id not in self._items:
                self._items[face.hri_id] = self._create(face)

    def close(self) -> None:
        """Destroy every face's objects."""
        while self._items:
            self._destroy(self._items.popitem()[1])


# --- ROIs -----------------------------------------------------------------------------------

def normalized_roi(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    """Return (xmin, ymin, xmax, ymax) of a pixel box in a ``width`` x ``height`` image.

    Each in [0, 1] (the box is clipped to the image), as hri_msgs/NormalizedRegionOfInterest2D
    has them. Raises ValueError for an image without size.
    """
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} cannot normalise a face roi")
    b = box.clipped(width, height)
    return b.x / width, b.y / height, (b.x + b.w) / width, (b.y + b.h) / height


def pixel_box(xmin: float, ymin: float, xmax: float, ymax: float, width: int,
              height: int) -> Box:
    """Return the pixel box of a normalized ROI in a ``width`` x ``height`` image.

    Coordinates are clipped to [0, 1]; raises ValueError for non-finite ones, an inverted
    box (max below min) or an image without size.
    """
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} cannot scale a normalized roi")
    coords = [float(v) for v in (xmin, ymin, xmax, ymax)]
    if not all(math.isfinite(v) for v in coords):
        raise ValueError(f"normalized roi {coords} holds a non-finite value")
    x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in coords)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"normalized roi {coords} has its max below its min")
    # nearest pixel edges: exact for ROIs normalised from pixels (floor/ceil are not, with
    # values like 31 / 480 * 480 = 31.000000000000004)
    px0, py0 = int(round(x0 * width)), int(round(y0 * height))
    px1, py1 = int(round(x1 * width)), int(round(y1 * height))
    return Box(px0, py0, px1 - px0, py1 - py0).clipped(width, height)


# --- frames of a ROS4HRI detector ------------------------------------------------------------

@dataclass
class HriFrame:
    """One frame of a ROS4HRI detector: its stamp, listed ids, and per-face data found.

    ``faces``: (hri id, image, roi or None) of each listed face whose image of this stamp
    arrived, in list order; ``missing``: listed ids without one (a face the detector kept in
    its list without detecting it in this frame, or an image lost on the way).
    """

    stamp: int
    header: Any
    ids: list[str]
    faces: list[tuple[str, Any, Any]]
    missing: list[str]


@dataclass
class _Pending:
    header: Any
    ids: list[str]
    since: float


class FrameAssembler:
    """Group per-face images and ROIs by the stamp of the tracked list they belong to.

    ROS4HRI detectors publish each face's ``roi`` and ``cropped``/``aligned`` image and the
    ``/humans/faces/tracked`` list with the header (stamp) of the source image, on separate
    topics, so they arrive in any order (an executor takes ready subscriptions in its own
    order, whatever the publishing order was). A frame is the tracked list of one stamp with
    the images and ROIs of that stamp; it is handed out (:meth:`pop_ready`) as soon as every
    listed face has both, when a newer list arrives (the older one cannot complete any more in
    the usual publishing order), or ``max_wait`` seconds after its list arrived. Images and
    ROIs may also come before their list: they wait for it. A face without a ROI of the
    frame's stamp gets its latest one (None when none came). Frames are handed out in stamp
    order; data older
    than the last frame handed out is dropped (``late``). Memory is bounded: at most
    ``history`` stamps wait, each with at most ``max_faces`` images.
    """

    def __init__(self, max_wait: float = 0.1, history: int = 30, max_faces: int = 100) -> None:
        if not (math.isfinite(max_wait) and max_wait >= 0.0):
            raise ValueError(f"max_wait must be a finite number of seconds >= 0, got "
                             f"{max_wait}")
        if int(history) != history or history < 1:
            raise ValueError(f"history must be an integer >= 1, got {history}")
        self.max_wait = float(max_wait)
        self.history = int(history)
        self.max_faces = int(max_faces)
        self.late = 0        # images, rois or lists older than the last frame handed out
        self.overflow = 0    # data dropped because a bound was reached
        self._lists: dict[int, _Pending] = {}
        self._images: dict[int, dict[str, Any]] = {}
        self._rois: dict[int, dict[str, Any]] = {}
        self._last_roi: dict[str, Any] = {}
        self._done = -1      # stamp of the last frame handed out

    def pending(self) -> int:
        """Return the number of stamps with data waiting (lists or images)."""
        return len(set(self._lists) | set(self._images) | set(self._rois))

    def tracked(self, stamp: int, header: Any, ids: Sequence[str], now: float) -> None:
        """Add the tracked list of ``stamp`` (ns), received at ``now`` (s)."""
        if stamp <= self._done:
            self.late += 1
            return
        unique = list(dict.fromkeys(ids))
        self._lists[stamp] = _Pending(header, unique, now)
        self._bound(self._lists)
        known = set(unique)  # forget the latest roi of faces no longer listed
        for key in [k for k in self._last_roi if k not in known]:
            del self._last_roi[key]

    def image(self, hri_id: str, stamp: int, image: Any) -> None:
        """Add the image of face ``hri_id`` at ``stamp``."""
        self._add(self._images, hri_id, stamp, image)

    def roi(self, hri_id: str, stamp: int, roi: Any) -> None:
        """Add the ROI of face ``hri_id`` at ``stamp``."""
        if self._add(self._rois, hri_id, stamp, roi):
            self._last_roi[hri_id] = roi
            while len(self._last_roi) > self.history * self.max_faces:
                self._last_roi.pop(next(iter(self._last_roi)))

    def forget(self, hri_id: str) -> None:
        """Drop the latest ROI of a face that vanished."""
        self._last_roi.pop(hri_id, None)

    def _add(self, store: dict[int, dict[str, Any]], hri_id: str, stamp: int,
             value: Any) -> bool:
        if stamp <= self._done:
            self.late += 1
            return False
        faces = store.setdefault(stamp, {})
        if hri_id not in faces and len(faces) >= self.max_faces:
            self.overflow += 1
            return False
        faces[hri_id] = value
        self._bound(store)
        return True

    def _bound(self, store: dict[int, Any]) -> None:
        while len(store) > self.history:
            del store[min(store)]
            self.overflow += 1

    def pop_ready(self, now: float) -> list[HriFrame]:
        """Return the frames that are complete, superseded or waited ``max_wait``, oldest first."""
        out: list[HriFrame] = []
        newest = max(self._lists) if self._lists else None
        for stamp in sorted(self._lists):
            pending = self._lists[stamp]
            images, rois = self._images.get(stamp, {}), self._rois.get(stamp, {})
            complete = all(i in images and i in rois for i in pending.ids)
            if not (complete or stamp < newest or now - pending.since >= self.max_wait):
                continue
            out.append(self._frame(stamp))
        return out

    def _frame(self, stamp: int) -> HriFrame:
        pending = self._lists.pop(stamp)
        images = self._images.pop(stamp, {})
        rois = self._rois.pop(stamp, {})
        faces, missing = [], []
        for hri_id in pending.ids:
            if hri_id in images:
                faces.append((hri_id, images[hri_id],
                              rois.get(hri_id, self._last_roi.get(hri_id))))
            else:
                missing.append(hri_id)
        self._done = stamp
        for store in (self._images, self._rois):  # older data can never be used now
            for old in [s for s in store if s <= stamp]:
                self.late += len(store.pop(old))
        for old in [s for s in self._lists if s <= stamp]:
            del self._lists[old]
            self.late += 1
        return HriFrame(stamp, pending.header, pending.ids, faces, missing)


def stamp_ns(stamp: Any) -> int:
    """Return a builtin_interfaces/Time (anything with sec, nanosec) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)

"""Many cameras on one classifier, without ROS: camera namespaces and cross-camera batching.

A fleet robot has several cameras, each with its own camera and face detector, but one
classifier (and one smoother) serves all of them: the faces of every camera waiting at that
moment go through one inference call (:func:`classify_groups`), and each camera gets its own
results back. Cameras are named by their ROS namespace relative to the graph's (``front``,
``back``, ``head/left``); :func:`parse_cameras` checks a list of them.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Callable, Iterable, Sequence

import numpy as np

from .classifiers.base import EmotionClassifier
from .mirror_over_time import MirrorOverTime
from .pipeline import build_estimates, track_keys
from .types import EmotionEstimate, TrackedFace

#: one namespace token: what ROS 2 accepts in a topic name (no leading digit)
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_cameras(spec: str | Iterable[str]) -> list[str]:
    """Return the camera namespaces of ``spec``: a comma/space separated string or a list.

    Each is relative (``front``, ``head/left``): tokens of letters, digits and ``_`` that do
    not start with a digit, joined by ``/``. An empty spec means no camera list (the
    single-camera graph). Duplicates and malformed names raise ValueError naming them.
    """
    items = re.split(r"[,\s]+", spec) if isinstance(spec, str) else [str(s) for s in spec]
    out: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name.startswith("/") or name.endswith("/") \
                or not all(_TOKEN.match(t) for t in name.split("/")):
            raise ValueError(f"camera namespace {name!r}: use relative names of letters, "
                             "digits and '_' (not starting with a digit), joined by '/', "
                             "e.g. front,back,head/left")
        if name in out:
            raise ValueError(f"camera namespace {name!r} is listed twice")
        out.append(name)
    return out


def camera_frame_id(camera: str) -> str:
    """Return the default frame_id of a camera's images: ``front`` -> ``front_camera``."""
    return camera.replace("/", "_") + "_camera"


def classify_groups(classifier: EmotionClassifier,
                    groups: Sequence[tuple[Sequence[np.ndarray], Sequence[TrackedFace], float]],
                    chunk: int = 0, pad_to: int | Callable[[int], int] = 0,
                    over_time: MirrorOverTime | None = None,
                    cameras: Sequence[str] = ()
                    ) -> list[tuple[list[EmotionEstimate], int]]:
    """Classify the crops of several cameras in one inference call; split the results.

    ``groups``: one ``(crops, faces, stamp)`` per camera. Every crop of every group goes into
    one ``classifier.classify`` call (or, with ``chunk`` > 0, calls of at most ``chunk``
    crops, as :func:`~.pipeline.classify_crops` does); returns per group what
    ``classify_crops`` returns for it alone: (estimates of the valid rows, invalid count).
    No call is made when no group has a crop.

    ``pad_to``: a single call (all crops within ``chunk``) is padded with copies of the first
    crop up to this many crops, whose rows are discarded (see :class:`BatchSizer`); or a
    function of the call's size that returns it (``BatchSizer.size``).
    ``over_time``: mirror TTA spread over each tracked face's frames (for a classifier it
    applies to), one state for all the groups, each group's tracks keyed by its entry in
    ``cameras``; ``pad_to`` and ``chunk`` then count inference views, not crops.
    """
    for crops, faces, _ in groups:
        if len(crops) != len(faces):
            raise ValueError(f"got {len(crops)} crops for {len(faces)} faces")
    crops_all = [c for crops, _, _ in groups for c in crops]
    if not crops_all:
        return [([], 0) for _ in groups]
    n = len(crops_all)
    if over_time is not None and over_time.applies(classifier):
        if len(cameras) != len(groups):
            raise ValueError(f"got {len(cameras)} camera names for {len(groups)} groups")
        keys = [k for (_, faces, _), cam in zip(groups, cameras) for k in track_keys(faces, cam)]
        stamps = [stamp for crops, _, stamp in groups for _ in crops]
        probs, valid = over_time.classify(classifier, crops_all, keys, stamps, chunk, pad_to)
    elif chunk <= 0 or n <= chunk:
        if callable(pad_to):
            pad_to = int(pad_to(n))
        padded = crops_all + [crops_all[0]] * max(0, pad_to - n)
        probs, valid = classifier.classify(padded)
        probs, valid = np.asarray(probs), np.asarray(valid, dtype=bool)
        if len(probs) != len(padded) or len(valid) != len(padded):
            raise ValueError(f"classifier returned {len(probs)} rows for {len(padded)} crops")
        probs, valid = probs[:n], valid[:n]
    else:
        parts = [classifier.classify(crops_all[i:i + chunk])
                 for i in range(0, len(crops_all), chunk)]
        probs = np.concatenate([np.asarray(p) for p, _ in parts])
        valid = np.concatenate([np.asarray(v, dtype=bool) for _, v in parts])
    if len(probs) != len(crops_all) or len(valid) != len(crops_all):
        raise ValueError(f"classifier returned {len(probs)} rows for {len(crops_all)} crops")
    out, start = [], 0
    for crops, faces, stamp in groups:
        end = start + len(crops)
        out.append(build_estimates(faces, probs[start:end], valid[start:end], stamp))
        start = end
    return out


class BatchSizer:
    """Chooses the padded batch size of cross-camera calls: the largest of the recent ones.

    The number of faces waiting changes from call to call (1 camera ready, then 3, ...). A
    TFLite interpreter resizes its input tensor and re-allocates (re-plans XNNPACK) whenever
    the batch size changes, which costs far more than classifying a few extra rows (measured
    in ``bench --multi``: a batch of about 3 faces took 5x one face until the sizes were
    held steady). So calls are padded to the largest size among the last ``window`` calls
    (never above ``limit``): under a steady load the size settles and stays.
    """

    def __init__(self, window: int = 64, limit: int = 32) -> None:
        self._recent: deque[int] = deque(maxlen=window)
        self.limit = int(limit)

    def size(self, n: int) -> int:
        """Record a call of ``n`` crops; return the size to pad it to (>= ``n``)."""
        self._recent.append(int(n))
        return max(n, min(self.limit, max(self._recent)))

"""Mirror test-time augmentation spread over a tracked face's consecutive frames.

Mirror TTA (``tta_mirror``) classifies every face twice, as it is and mirrored, and averages
the two: two inferences per face and frame, the largest single item of the live graph's CPU
(README, Performance). A tracked face changes little from one frame to the next, so
:class:`MirrorOverTime` classifies such a face *once* per frame, in the orientation its previous
frame was not classified in, and averages this view with that previous one: one inference per
face and frame, and still every face is seen both ways in any two frames. A face without a
previous frame (a new track, one that missed a frame, an untracked face: ``face_id`` 0, a
previous frame more than ``max_gap`` seconds old, or one that does not look like this frame's
face: the Pearson correlation of the two 48x48 inputs below ``min_similarity``, as at a cut
or when two tracks swap faces) is classified both ways at once, as before.

Measured on the temporal benchmark's perturbed PublicTest sequences (README, The model), the
mean of two consecutive frames is *more* accurate per frame than both views of one frame (the
two frames' perturbations differ); what it costs is one frame of lag: on the frame where a
track's face changes expression, half of its output is still the previous face's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import numpy as np

from .classes import NUM_CLASSES
from .classifiers.base import EmotionClassifier, ModelError, sanitize_probabilities
from .preprocessing import preprocess_faces


@dataclass
class _View:
    stamp: float
    mirrored: bool
    probs: np.ndarray
    face: np.ndarray  # the preprocessed model input, as it is (not mirrored)


#: below this Pearson correlation of two consecutive 48x48 inputs a track's face counts as
#: another face. On the temporal benchmark's perturbed frames (jitter, blur, noise, occlusion:
#: harsher than consecutive camera frames) 84 % of same-face pairs are above it and 3 % of
#: pairs of different PublicTest faces.
MIN_SIMILARITY = 0.5


def similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the Pearson correlation of the pixels of faces ``a[i]`` and ``b[i]``.

    1: the same image up to brightness and contrast; (N, ...) arrays in, (N,) out, 0 for a
    constant face.
    """
    a = np.asarray(a, np.float32).reshape(len(a), -1)
    b = np.asarray(b, np.float32).reshape(len(b), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


class MirrorOverTime:
    """Per-track state of mirror TTA spread over frames (see the module docstring).

    ``classify(classifier, crops, keys, stamps)`` takes one hashable key per crop,
    ``(camera, face_id)`` for a tracked face or None for an untracked one, and each crop's stamp
    in seconds, and runs ``classifier.predict`` on the views it needs. A key's state is kept
    while its camera's calls keep naming it: a call for camera ``c`` forgets the keys of ``c``
    it does not name (a track that missed a frame starts afresh). It serves the classifiers
    :meth:`applies` to (mirror TTA on, no shift TTA); callers classify the others as usual.
    """

    def __init__(self, max_gap: float = 0.25, min_similarity: float = MIN_SIMILARITY
                 ) -> None:
        if not max_gap > 0:
            raise ValueError(f"max_gap must be > 0 seconds, got {max_gap}")
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [-1, 1], got {min_similarity}")
        self.max_gap = float(max_gap)
        self.min_similarity = float(min_similarity)
        self._last: dict[Hashable, _View] = {}
        #: inferences run and faces classified (views / faces: 1.0 in a steady state, 2.0
        #: when every face is new)
        self.views = self.faces = 0

    @staticmethod
    def applies(classifier: object) -> bool:
        """Whether ``classifier`` does mirror TTA that this can spread: no shift TTA."""
        return (bool(getattr(classifier, "tta_mirror", False))
                and not int(getattr(classifier, "tta_shift", 0))
                and callable(getattr(classifier, "predict", None)))

    def reset(self) -> None:
        """Forget every track (a new bag, a restart)."""
        self._last.clear()

    def _previous(self, key: Hashable | None, stamp: float, face: np.ndarray) -> _View | None:
        if key is None:
            return None
        prev = self._last.get(key)
        if prev is None or not 0.0 < stamp - prev.stamp <= self.max_gap:
            return None
        if similarities(face[None], prev.face[None])[0] < self.min_similarity:
            return None  # another face under the same track (a cut, a swap): start afresh
        return prev

    def classify(self, classifier: EmotionClassifier, crops: Sequence[np.ndarray],
                 keys: Sequence[Hashable | None], stamps: Sequence[float], chunk: int = 0,
                 pad_to: int | Callable[[int], int] = 0) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(probabilities, valid)`` as ``EmotionClassifier.classify`` does.

        ``chunk`` > 0 bounds the views per inference call; ``pad_to`` pads a single call's
        views with copies of the first one (rows discarded) to keep the batch size steady: a
        count, or a function of the view count returning it (``BatchSizer.size``).
        Raises ValueError for a classifier this does not :meth:`apply <applies>` to.
        """
        if not self.applies(classifier):
            raise ValueError("MirrorOverTime needs a classifier with tta_mirror on, tta_shift "
                             "0 and a predict method")
        n = len(crops)
        if len(keys) != n or len(stamps) != n:
            raise ValueError(f"got {n} crops, {len(keys)} keys and {len(stamps)} stamps")
        cameras = {k[0] for k in keys if isinstance(k, tuple) and k}
        named = set(keys)
        for key in [k for k in self._last if isinstance(k, tuple) and k and k[0] in cameras
                    and k not in named]:
            del self._last[key]
        if n == 0:
            return np.zeros((0, NUM_CLASSES), np.float32), np.zeros(0, bool)
        batch = preprocess_faces(list(crops), classifier.input_size)
        plan: list[tuple[_View | None, int, bool]] = []  # (previous view, first row, mirrored)
        views: list[np.ndarray] = []
        for i, (key, stamp) in enumerate(zip(keys, stamps)):
            prev = self._previous(key, float(stamp), batch[i])
            if prev is not None:
                mirrored = not prev.mirrored
                plan.append((prev, len(views), mirrored))
                views.append(batch[i, :, ::-1] if mirrored else batch[i])
            else:
                plan.append((None, len(views), True))
                views.extend((batch[i], batch[i, :, ::-1]))
        if callable(pad_to):
            pad_to = int(pad_to(len(views)))
        probs = self._predict(classifier, np.ascontiguousarray(np.stack(views)), chunk, pad_to)
        self.views += len(views)
        self.faces += n
        out = np.zeros((n, NUM_CLASSES), np.float32)
        for i, (key, stamp, (prev, row, mirrored)) in enumerate(zip(keys, stamps, plan)):
            if prev is None:
                out[i] = (probs[row] + probs[row + 1]) / 2
                this = probs[row + 1]
            else:
                out[i] = (probs[row] + prev.probs) / 2
                this = probs[row]
            if key is None:
                continue
            if np.isfinite(this).all():
                self._last[key] = _View(float(stamp), mirrored, this.copy(), batch[i].copy())
            else:
                self._last.pop(key, None)
        return sanitize_probabilities(out)

    @staticmethod
    def _predict(classifier: EmotionClassifier, views: np.ndarray, chunk: int, pad_to: int
                 ) -> np.ndarray:
        m = len(views)
        if chunk > 0 and m > chunk:
            return np.concatenate([MirrorOverTime._predict(classifier, views[i:i + chunk], 0, 0)
                                   for i in range(0, m, chunk)])
        if pad_to > m:
            views = np.concatenate([views, np.repeat(views[:1], pad_to - m, axis=0)])
        probs = np.asarray(classifier.predict(views), dtype=np.float32)
        if probs.shape != (len(views), NUM_CLASSES):
            raise ModelError(f"classifier {classifier.name!r} returned shape "
                             f"{probs.shape}, expected ({len(views)}, {NUM_CLASSES})")
        return probs[:m]

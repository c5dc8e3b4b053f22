"""One frame through detection, tracking, cropping and classification, without ROS.

The node graph splits this work: the detector node runs :meth:`FramePipeline.detect` and
publishes :meth:`FramePipeline.crops` in a FaceArray, the classifier node turns those crops
into estimates with :func:`classify_crops`. The in-process runner and the offline bag
evaluation call :meth:`FramePipeline.process`, which is exactly those steps in sequence, so
both paths give the same numbers. (Colour conversion to BGR is per pixel, so converting a crop
in the classifier node equals cropping the converted frame here.)
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from .classifiers.base import EmotionClassifier
from .detectors.base import FaceDetector
from .mirror_over_time import MirrorOverTime
from .preprocessing import crop_face
from .tracking import FaceTracker
from .types import EmotionEstimate, FaceDetection, TrackedFace, eye_points


def build_estimates(faces: Sequence[TrackedFace], probabilities: np.ndarray,
                    valid: np.ndarray, stamp: float) -> tuple[list[EmotionEstimate], int]:
    """Pair faces with their classifier rows; return (estimates of valid rows, invalid count)."""
    if len(faces) != len(probabilities) or len(faces) != len(valid):
        raise ValueError(f"got {len(faces)} faces but {len(probabilities)} probability rows "
                         f"and {len(valid)} validity flags")
    estimates = []
    for face, probs, ok in zip(faces, probabilities, valid):
        if not ok:
            continue
        estimates.append(EmotionEstimate(
            face_id=face.face_id, probabilities=np.array(probs, dtype=np.float32),
            box=face.box, detection_score=float(face.score), stamp=float(stamp)))
    return estimates, int(len(faces) - int(np.count_nonzero(valid)))


def track_keys(faces: Sequence[TrackedFace], camera: str = "") -> list[tuple[str, int] | None]:
    """Return :class:`MirrorOverTime`'s keys: (camera, face_id), None for untracked faces."""
    return [(camera, int(f.face_id)) if f.face_id > 0 else None for f in faces]


def classify_crops(classifier: EmotionClassifier, crops: Sequence[np.ndarray],
                   faces: Sequence[TrackedFace], stamp: float, chunk: int = 0,
                   over_time: MirrorOverTime | None = None, camera: str = ""
                   ) -> tuple[list[EmotionEstimate], int]:
    """Classify ``crops`` (one per face); return (estimates, invalid count).

    All crops go in one batch, or with ``chunk`` > 0 in batches of at most ``chunk`` crops,
    which bounds the memory one call needs (preprocessed views, TTA copies, activations)
    whatever the number of faces; the results are the same. With ``over_time`` (and a
    classifier it :meth:`~MirrorOverTime.applies` to), mirror TTA is spread over each tracked
    face's frames (:mod:`.mirror_over_time`; ``camera`` names the
    tracks' camera).
    """
    if len(crops) != len(faces):
        raise ValueError(f"got {len(crops)} crops for {len(faces)} faces")
    crops = list(crops)
    if over_time is not None and over_time.applies(classifier):
        probs, valid = over_time.classify(classifier, crops, track_keys(faces, camera),
                                          [stamp] * len(crops), chunk)
    elif chunk <= 0 or len(crops) <= chunk:
        probs, valid = classifier.classify(crops)
    else:
        parts = [classifier.classify(crops[i:i + chunk]) for i in range(0, len(crops), chunk)]
        probs = np.concatenate([np.asarray(p) for p, _ in parts])
        valid = np.concatenate([np.asarray(v, dtype=bool) for _, v in parts])
    return build_estimates(faces, probs, valid, stamp)


class FramePipeline:
    """Detector + tracker + shared crop/preprocessing + classifier for single frames.

    ``tracker=None`` means no tracking: every detection is used at once with face id 0
    ("untracked" in ``emotion_msgs/Emotion``). ``max_faces`` keeps the best detections only.
    ``classifier=None`` makes a detect-only pipeline (the detector node): ``detect`` and
    ``crops`` work, ``classify``/``process`` raise RuntimeError.
    Crops (:func:`crop_face`, the same function for the nodes, bag evaluation and
    ``emotion_eval_detectors``): squares of the box's longer side enlarged by ``crop_margin``
    per side, moved ``crop_offset`` box sides down the face and, with ``crop_align`` and a
    detector that gives eye keypoints, turned upright along the eye line; with
    ``crop_eye_offset`` (not None) and keypoints, centred ``crop_eye_offset`` box sides below
    the eyes' midpoint instead of on the box (``crop_offset`` then unused).
    After each call ``timings`` holds the seconds spent in ``detect`` and ``classify``.

    ``full_scan_every`` > 1, with a tracker and a detector that ``detects_regions``: between
    full-frame scans, :meth:`detect` looks only around the live tracks' boxes (one small
    tile each, while that is less work than a full scan), and scans the whole frame every
    ``full_scan_every``-th frame, or at once when a track was missed or a tile finds nothing
    (so a face lost to a region pass costs no frame); a new face is found within
    ``full_scan_every`` frames. ``scans`` counts both. 1 = the whole frame every frame.
    """

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier | None,
                 tracker: FaceTracker | None = None, crop_margin: float = 0.1,
                 max_faces: int = 10, crop_offset: float = 0.0, crop_align: bool = False,
                 crop_eye_offset: float | None = None, full_scan_every: int = 1,
                 over_time: MirrorOverTime | None = None) -> None:
        if int(full_scan_every) != full_scan_every or full_scan_every < 1:
            raise ValueError(f"full_scan_every must be an integer >= 1, got {full_scan_every}")
        if not 0.0 <= crop_margin <= 1.0:
            raise ValueError(f"crop_margin must be in [0, 1], got {crop_margin}")
        if not -0.5 <= crop_offset <= 0.5:
            raise ValueError(f"crop_offset must be in [-0.5, 0.5], got {crop_offset}")
        if int(max_faces) != max_faces or max_faces < 1:
            raise ValueError(f"max_faces must be an integer >= 1, got {max_faces}")
        self.detector = detector
        self.classifier = classifier
        self.tracker = tracker
        self.crop_margin = float(crop_margin)
        self.crop_offset = float(crop_offset)
        self.crop_align = bool(crop_align)
        self.crop_eye_offset = None if crop_eye_offset is None else float(crop_eye_offset)
        self.max_faces = int(max_faces)
        self.full_scan_every = int(full_scan_every)
        #: mirror TTA spread over the tracked faces' frames, as the classifier node does with
        #: ``tta_mirror_over_time`` (None: each frame's faces classified on their own)
        self.over_time = over_time
        self.scans = {"full": 0, "regions": 0}
        self._since_full_scan = 0
        self.invalid_count = 0
        self.frames = 0
        self.last_tracked: list[TrackedFace] = []
        self.timings: dict[str, float] = {"detect": 0.0, "classify": 0.0}

    def detect(self, image_bgr: np.ndarray) -> list[TrackedFace]:
        """Detect and track faces; return the confirmed ones in detector order.

        The tracker sees every detection (up to ``max_faces``), confirmed or not; all of them
        are kept in ``last_tracked``.
        """
        start = time.perf_counter()
        detections = self._near_tracks(image_bgr)
        if detections is None:
            detections = [d for d in self.detector.detect(image_bgr) if d.box.area > 0]
            self.scans["full"] += 1
            self._since_full_scan = 0
        else:
            self.scans["regions"] += 1
            self._since_full_scan += 1
        detections = detections[:self.max_faces]
        if self.tracker is None:
            tracked = [TrackedFace(face_id=0, box=d.box, score=float(d.score), confirmed=True)
                       for d in detections]
        else:
            tracked = self.tracker.update(detections)
        for face, det in zip(tracked, detections):  # the tracker returns one per detection
            face.landmarks = det.landmarks
        self.last_tracked = tracked
        self.frames += 1
        self.timings["detect"] = time.perf_counter() - start
        return [face for face in tracked if face.confirmed]

    @property
    def region_passes(self) -> bool:
        """Return whether frames between full scans look only near the tracks (see above).

        True with ``full_scan_every`` > 1, a tracker and a detector that ``detects_regions``.
        """
        return (self.full_scan_every > 1 and self.tracker is not None
                and bool(getattr(self.detector, "detects_regions", False)))

    def _near_tracks(self, image: np.ndarray) -> list[FaceDetection] | None:
        """Return the faces re-found around every live track, or None: scan the frame.

        None when region passes are off or unsupported, a full scan is due, there is no
        track, a track missed its last frame, the tiles would cost a full scan or more
        (``region_cost`` times the tracks >= 1), or a tile found nothing overlapping its
        track's box by the tracker's ``min_iou``. Faces re-found by two
        tiles (two tracks on one face) count once, best first, as :meth:`detect` expects.
        """
        if not self.region_passes or self._since_full_scan >= self.full_scan_every - 1:
            return None
        tracks = self.tracker.tracks
        if not tracks or any(t.misses for t in tracks):
            return None
        cost = getattr(self.detector, "region_cost", None)
        if cost is not None and len(tracks) * cost(image.shape) >= 1.0:
            return None  # as much work as a full scan, or more
        found = self.detector.detect_regions(image, [t.box for t in tracks])
        # each track's face found again where the tracker would match it (overlapping its box
        # by min_iou): else another face may have come there (a cut, a bag of stills)
        if any(face is None or face.box.iou(t.box) < self.tracker.min_iou
               for face, t in zip(found, tracks)):
            return None
        unique: list[FaceDetection] = []
        for face in sorted(found, key=lambda f: -f.score):
            if all(face.box.iou(kept.box) <= 0.5 for kept in unique):
                unique.append(face)
        return unique

    def crops(self, image: np.ndarray, faces: Sequence[TrackedFace]) -> list[np.ndarray]:
        """Return the crop of every face (see the class docstring).

        Unrotated crops are views into ``image``, aligned ones new arrays.
        """
        return [crop_face(image, face.box.as_tuple(), self.crop_margin,
                          offset=self.crop_offset,
                          eyes=eye_points(face.landmarks) if self.crop_align else None,
                          eye_offset=self.crop_eye_offset)
                for face in faces]

    def classify(self, image: np.ndarray, faces: Sequence[TrackedFace], stamp: float
                 ) -> list[EmotionEstimate]:
        """Classify all ``faces`` of ``image`` in one batch; invalid rows are dropped, counted."""
        if self.classifier is None:
            raise RuntimeError("this FramePipeline has no classifier (detect-only)")
        start = time.perf_counter()
        estimates, invalid = classify_crops(self.classifier, self.crops(image, faces), faces,
                                            stamp, over_time=self.over_time)
        self.invalid_count += invalid
        self.timings["classify"] = time.perf_counter() - start
        return estimates

    def process(self, image_bgr: np.ndarray, stamp: float) -> list[EmotionEstimate]:
        """Run detect, crops and classify on one frame; return the per-frame estimates."""
        return self.classify(image_bgr, self.detect(image_bgr), stamp)

    def pop_retired(self) -> list[int]:
        """Return the track ids retired since the last call (empty without a tracker)."""
        return [] if self.tracker is None else self.tracker.pop_retired()

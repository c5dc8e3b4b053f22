"""Frame-to-frame face tracking that gives every face a stable id.

Greedy association: all (track, detection) pairs with IoU >= ``min_iou`` are matched best IoU
first; the pairs left over may still be matched when their centres are close (centre distance
divided by the mean side of the two boxes <= ``max_center_distance``) and their sizes differ by
at most a factor of two, closest first. This fallback keeps the id of a face that moves fast
enough between two frames for the boxes to stop overlapping (low frame rate, dropped frames).

A track is confirmed after ``min_hits`` matched frames (1 = at once) and stays confirmed;
it is retired after ``max_misses`` consecutive frames without a match. Ids start at 1 and are
never reused, not even after :meth:`FaceTracker.reset`, so a downstream smoother can never mix
two people's histories. Retired ids are collected for :meth:`FaceTracker.pop_retired`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .types import Box, FaceDetection, TrackedFace


@dataclass
class _Track:
    face_id: int
    box: Box
    fbox: tuple[float, float, float, float]  # smoothed box in float, (x, y, w, h)
    score: float
    hits: int = 1
    misses: int = 0
    confirmed: bool = False

    def snapshot(self) -> TrackedFace:
        return TrackedFace(face_id=self.face_id, box=self.box, score=self.score,
                           confirmed=self.confirmed, hits=self.hits, misses=self.misses)


def _center_distance(a: Box, b: Box) -> float:
    """Return the centre distance of two boxes divided by their mean side length."""
    (ax, ay), (bx, by) = a.center, b.center
    side = (a.w + a.h + b.w + b.h) / 4.0
    if side <= 0:
        return math.inf
    return math.hypot(ax - bx, ay - by) / side


def _similar_size(a: Box, b: Box) -> bool:
    sa, sb = math.sqrt(max(a.area, 1)), math.sqrt(max(b.area, 1))
    return max(sa, sb) <= 2.0 * min(sa, sb)


class FaceTracker:
    """Assign stable ids to face detections across frames (see the module docstring).

    ``box_smoothing`` in [0, 1): weight of the previous box in an exponential average of the
    track's box (0 = the reported box is the detection's box, unchanged).
    """

    def __init__(self, min_iou: float = 0.3, max_center_distance: float = 0.5,
                 min_hits: int = 2, max_misses: int = 5, box_smoothing: float = 0.0) -> None:
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if not 0.0 <= max_center_distance < math.inf:
            raise ValueError(f"max_center_distance must be a finite value >= 0 (0 = no "
                             f"centre fallback), got {max_center_distance}")
        if int(min_hits) != min_hits or min_hits < 1:
            raise ValueError(f"min_hits must be an integer >= 1, got {min_hits}")
        if int(max_misses) != max_misses or max_misses < 1:
            raise ValueError(f"max_misses must be an integer >= 1, got {max_misses}")
        if not 0.0 <= box_smoothing < 1.0:
            raise ValueError(f"box_smoothing must be in [0, 1), got {box_smoothing}")
        self.min_iou = float(min_iou)
        self.max_center_distance = float(max_center_distance)
        self.min_hits = int(min_hits)
        self.max_misses = int(max_misses)
        self.box_smoothing = float(box_smoothing)
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._retired: list[int] = []

    @property
    def active_ids(self) -> list[int]:
        """Return the ids of all live tracks (confirmed or not), oldest first."""
        return [t.face_id for t in self._tracks]

    @property
    def tracks(self) -> list[TrackedFace]:
        """Return snapshots of all live tracks, oldest first."""
        return [t.snapshot() for t in self._tracks]

    def _associate(self, boxes: Sequence[Box]) -> dict[int, int]:
        """Return {detection index: track index} by greedy IoU, then centre distance."""
        pairs = []
        for ti, track in enumerate(self._tracks):
            for di, box in enumerate(boxes):
                iou = track.box.iou(box)
                if iou >= self.min_iou:
                    pairs.append((-iou, ti, di))
        pairs.sort()
        matches: dict[int, int] = {}
        used_tracks: set[int] = set()
        for _, ti, di in pairs:
            if ti not in used_tracks and di not in matches:
                matches[di] = ti
                used_tracks.add(ti)
        if self.max_center_distance > 0:
            fallback = []
            for ti, track in enumerate(self._tracks):
                if ti in used_tracks:
                    continue
                for di, box in enumerate(boxes):
                    if di in matches or not _similar_size(track.box, box):
                        continue
                    dist = _center_distance(track.box, box)
                    if dist <= self.max_center_distance:
                        fallback.append((dist, ti, di))
            fallback.sort()
            for _, ti, di in fallback:
                if ti not in used_tracks and di not in matches:
                    matches[di] = ti
                    used_tracks.add(ti)
        return matches

    def _smoothed(self, track: _Track, box: Box) -> tuple[tuple[float, ...], Box]:
        a = self.box_smoothing
        if a == 0.0:
            return (float(box.x), float(box.y), float(box.w), float(box.h)), box
        new = tuple(a * old + (1.0 - a) * cur
                    for old, cur in zip(track.fbox, (box.x, box.y, box.w, box.h)))
        x, y, w, h = new
        return new, Box(int(round(x)), int(round(y)), int(round(w)), int(round(h)))

    def update(self, detections: Sequence[FaceDetection]) -> list[TrackedFace]:
        """Fold one frame's detections in; return one TrackedFace per detection, in order.

        Returned faces carry ``confirmed`` (only confirmed ones should be published). Tracks
        not matched in this frame count a miss and are retired after ``max_misses``.
        """
        boxes = [d.box for d in detections]
        matches = self._associate(boxes)
        matched_tracks = set(matches.values())
        out: list[TrackedFace] = []
        new_tracks: list[_Track] = []
        for di, det in enumerate(detections):
            ti = matches.get(di)
            if ti is None:
                track = _Track(face_id=self._next_id, box=det.box,
                               fbox=(float(det.box.x), float(det.box.y), float(det.box.w),
                                     float(det.box.h)),
                               score=float(det.score), confirmed=self.min_hits <= 1)
                self._next_id += 1
                new_tracks.append(track)
            else:
                track = self._tracks[ti]
                track.fbox, track.box = self._smoothed(track, det.box)
                track.score = float(det.score)
                track.hits += 1
                track.misses = 0
                if track.hits >= self.min_hits:
                    track.confirmed = True
            out.append(track.snapshot())
        kept: list[_Track] = []
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.misses >= self.max_misses:
                    self._retired.append(track.face_id)
                    continue
            kept.append(track)
        self._tracks = kept + new_tracks
        return out

    def pop_retired(self) -> list[int]:
        """Return the ids retired since the last call (and forget them)."""
        retired, self._retired = self._retired, []
        return retired

    def reset(self) -> None:
        """Retire every live track (their ids go to :meth:`pop_retired`); ids stay unique."""
        self._retired.extend(t.face_id for t in self._tracks)
        self._tracks = []

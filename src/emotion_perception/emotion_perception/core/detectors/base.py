"""The face-detector extension point.

Contract: ``detect(image)`` takes one image as a NumPy array, uint8, either (H, W) grayscale or
(H, W, 3) BGR, and returns the faces in it as :class:`FaceDetection` with boxes in that image's
pixel coordinates, clipped to it, scores in [0, 1], best first. It never keeps a reference to
the image. Keypoints are optional: a detector that finds them sets ``FaceDetection.landmarks``
to a (K, 2) float32 array of pixel positions whose first two rows are the subject's right and
left eye and third (when K >= 3) the nose tip, the rest named in ``landmark_names`` (``yunet``:
5 points with the mouth corners; ``blazeface``: 6 with the mouth centre and ear tragions);
the aligned crops rotate each face upright with the two eyes. Detectors without keypoints
(``haar``) leave ``landmarks`` None and their faces are cropped unrotated. Constructors take
keyword parameters only and raise ``ValueError`` naming the parameter when one is out of
range, ``FileNotFoundError`` naming the file when a model file is missing. Third-party
detectors register under the entry-point group ``emotion_perception.detectors``.

Optional, for detectors that can look at parts of a frame for less work than at all of it
(``blazeface``): ``detects_regions = True`` and ``detect_regions(image, boxes)``, which
returns, for each box, the best face centred inside it or None, and ``region_cost(shape)``,
the work of one box relative to one ``detect`` on an image of that shape. The pipeline uses
it between full-frame scans to re-find faces it is already tracking (``full_scan_every``),
while the tracks times that cost stay below one full scan.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from ..types import Box, FaceDetection


class FaceDetector(ABC):
    """Base class of face detectors (see the module docstring for the contract)."""

    #: plugin name, set by subclasses
    name: str = ""
    #: (margin, offset) of the face crops that look most like FER2013 training faces for this
    #: detector's boxes (see ``preprocessing.crop_face``), used when the ``crop_margin``
    #: parameter is -1 (the default); subclasses measure theirs with
    #: ``emotion_eval_detectors --calibrate`` on Training faces
    crop_framing: tuple[float, float] = (0.1, 0.0)
    #: True when :meth:`detect_regions` is implemented
    detects_regions: bool = False

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Return the faces in ``image`` (uint8 gray or BGR), best first."""

    def detect_regions(self, image: np.ndarray, boxes: Sequence[Box]
                       ) -> list[FaceDetection | None]:
        """Return, per box of ``image``, the best face centred inside it, or None.

        Only detectors with ``detects_regions`` implement this; boxes are in ``image``'s
        pixels, and each returned face is as :meth:`detect` would give it (frame pixels,
        clipped, with keypoints where the detector has them).
        """
        raise NotImplementedError(f"detector {self.name or type(self).__name__!r} does not "
                                  "detect in regions (detects_regions is False)")

    def region_cost(self, image_shape: Sequence[int]) -> float:
        """Return the work of one :meth:`detect_regions` box relative to one :meth:`detect`.

        For an image of ``image_shape`` (H, W[, C]); 0 = negligible (the default).
        """
        return 0.0

"""On-the-fly augmentation as Keras preprocessing layers (training batches only).

The layers reproduce what Keras' old ``ImageDataGenerator`` did for the original system
(horizontal flip, rotation, zoom, shift) plus brightness and contrast jitter. They are active
only in training: the pipeline wraps the classifier as ``Sequential([augmenter, model])`` for
``fit`` and saves the bare classifier, so nothing is mirrored before a split and nothing of the
augmentation reaches inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers


@dataclass
class AugmentConfig:
    """Augmentation strengths; 0 disables a transform."""

    flip: bool = True
    rotation_deg: float = 10.0
    zoom: float = 0.1
    shift: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2

    def __post_init__(self) -> None:
        for name in ("rotation_deg", "zoom", "shift", "brightness", "contrast"):
            v = getattr(self, name)
            if v < 0:
                raise ValueError(f"augmentation {name} must be >= 0, got {v}")
        if self.rotation_deg > 180 or self.zoom >= 1 or self.shift >= 1 or self.contrast >= 1:
            raise ValueError(f"augmentation out of range: {asdict(self)}")


def build_augmenter(cfg: AugmentConfig | None = None, seed: int = 0) -> keras.Sequential:
    """Return a Sequential of random layers for [0, 1] grayscale images."""
    cfg = cfg or AugmentConfig()
    steps: list[layers.Layer] = []
    if cfg.flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if cfg.rotation_deg:
        steps.append(layers.RandomRotation(cfg.rotation_deg / 360.0, fill_mode="reflect",
                                           seed=seed + 1))
    if cfg.zoom:
        steps.append(layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=seed + 2))
    if cfg.shift:
        steps.append(layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect",
                                              seed=seed + 3))
    if cfg.brightness:
        steps.append(layers.RandomBrightness(cfg.brightness, value_range=(0.0, 1.0),
                                             seed=seed + 4))
    if cfg.contrast:
        steps.append(layers.RandomContrast(cfg.contrast, value_range=(0.0, 1.0), seed=seed + 5))
    return keras.Sequential(steps, name="augmenter")

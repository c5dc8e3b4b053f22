"""On-the-fly augmentation as Keras preprocessing layers (training batches only).

The geometric layers reproduce what Keras' old ``ImageDataGenerator`` did for the original
system (horizontal flip, rotation, zoom, shift) plus brightness and contrast jitter. The
degradations model what a robot's camera path does to a face and what the held-out test showed
the shipped model to be weak against: JPEG compression of the face (``jpeg``), low resolution
(``low_res``: down- then up-sampled), Gaussian blur (``blur``), sensor noise (``noise``) and
random erasing (``erase``, occlusion). Each degradation has a probability per face; 0 disables it.

They are active only in training: the pipeline wraps the classifier as
``Sequential([augmenter, model])`` for ``fit`` and saves the bare classifier, so nothing is
mirrored before a split and nothing of the augmentation reaches inference.
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
    jpeg: float = 0.0                 # probability per face of JPEG compression
    jpeg_quality: tuple[int, int] = (20, 90)
    low_res: float = 0.0              # probability per batch of down-/up-sampling (see layer)
    low_res_side: tuple[int, int] = (16, 32)
    blur: float = 0.0                 # probability per face of a Gaussian blur
    blur_sigma: float = 1.0
    erase: float = 0.0                # probability per face of erasing a random rectangle
    erase_scale: tuple[float, float] = (0.02, 0.2)
    noise: float = 0.0                # probability per face of additive Gaussian noise
    noise_sigma: float = 0.04         # its largest standard deviation ([0, 1] pixel scale)

    _PROBABILITIES = ("jpeg", "low_res", "blur", "erase", "noise")

    def __post_init__(self) -> None:
        for name in ("jpeg_quality", "low_res_side", "erase_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise ValueError(f"augmentation {name} must be a pair (low, high), got {value!r}")
            setattr(self, name, tuple(value))
        for name in ("rotation_deg", "zoom", "shift", "brightness", "contrast", "blur_sigma",
                     "noise_sigma"):
            v = getattr(self, name)
            if v < 0:
                raise ValueError(f"augmentation {name} must be >= 0, got {v}")
        for name in self._PROBABILITIES:
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augmentation {name} is a probability, got {v}")
        if self.rotation_deg > 180 or self.zoom >= 1 or self.shift >= 1 or self.contrast >= 1:
            raise ValueError(f"augmentation out of range: {asdict(self)}")
        q, side, scale = self.jpeg_quality, self.low_res_side, self.erase_scale
        if not (1 <= q[0] <= q[1] <= 100):
            raise ValueError(f"augmentation jpeg_quality must be 1 <= low <= high <= 100, got {q}")
        if not (4 <= side[0] <= side[1] <= 48):
            raise ValueError(f"augmentation low_res_side must be 4 <= low <= high <= 48, got "
                             f"{side}")
        if not (0.0 < scale[0] <= scale[1] < 1.0):
            raise ValueError(f"augmentation erase_scale must be 0 < low <= high < 1, got {scale}")


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
    if cfg.low_res:
        steps.append(RandomLowResolution(cfg.low_res, cfg.low_res_side, seed=seed + 6))
    # Keras reads a scalar factor as the range (0, factor) of a per-batch probability; a pair
    # (p, p) makes it exactly p per face
    if cfg.blur:
        steps.append(layers.RandomGaussianBlur(factor=(cfg.blur, cfg.blur), kernel_size=3,
                                               sigma=(0.5 * cfg.blur_sigma, cfg.blur_sigma),
                                               value_range=(0.0, 1.0), seed=seed + 7))
    if cfg.jpeg:
        steps.append(RandomJpeg(cfg.jpeg, cfg.jpeg_quality, seed=seed + 8))
    if cfg.noise:
        steps.append(RandomNoise(cfg.noise, cfg.noise_sigma, seed=seed + 10))
    if cfg.erase:
        steps.append(layers.RandomErasing(factor=(cfg.erase, cfg.erase), scale=cfg.erase_scale,
                                          fill_value=None, value_range=(0.0, 1.0),
                                          seed=seed + 9))
    return keras.Sequential(steps, name="augmenter")


@keras.saving.register_keras_serializable(package="emotion_training")
class RandomLowResolution(layers.Layer):
    """Down-sample a random subset of the faces to a random side, then back to full size.

    One side (uniform in ``side``) is drawn per batch, and each face is degraded with
    probability ``rate``: the look of a face that filled few camera pixels. Identity outside
    training.
    """

    def __init__(self, rate: float, side: tuple[int, int] = (16, 32), seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate, self.side, self.seed = float(rate), tuple(int(v) for v in side), int(seed)
        self._gen = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        """Return the batch with the degraded faces replaced."""
        if not training:
            return images
        ops = keras.ops
        h, w = images.shape[1], images.shape[2]
        # resizing needs static sizes: the batch's side is one of three fixed ones in the range
        sides = sorted({self.side[0], (self.side[0] + self.side[1]) // 2, self.side[1]})
        pick = keras.random.randint((), 0, len(sides), seed=self._gen)
        degraded = images
        for i, s in enumerate(sides):
            low = ops.image.resize(images, (s, s), interpolation="area")
            back = ops.image.resize(low, (h, w), interpolation="bilinear")
            degraded = ops.where(ops.equal(pick, i), back, degraded)
        mask = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self._gen) < self.rate
        return ops.where(mask, degraded, images)

    def compute_output_shape(self, input_shape):
        """Return the input shape: the layer keeps it."""
        return input_shape

    def get_config(self) -> dict:
        """Return the layer config (the wrapper is saved for --resume)."""
        return {**super().get_config(), "rate": self.rate, "side": list(self.side),
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="emotion_training")
class RandomNoise(layers.Layer):
    """Add Gaussian noise to each face with probability ``rate``, std uniform in (0, sigma].

    The result is clipped to [0, 1]. Identity outside training.
    """

    def __init__(self, rate: float, sigma: float = 0.04, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate, self.sigma, self.seed = float(rate), float(sigma), int(seed)
        self._gen = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        """Return the batch with the noisy faces replaced."""
        if not training:
            return images
        ops = keras.ops
        n = ops.shape(images)[0]
        std = keras.random.uniform((n, 1, 1, 1), 0.0, self.sigma, seed=self._gen)
        noisy = ops.clip(images + std * keras.random.normal(ops.shape(images), seed=self._gen),
                         0.0, 1.0)
        mask = keras.random.uniform((n, 1, 1, 1), seed=self._gen) < self.rate
        return ops.where(mask, noisy, images)

    def compute_output_shape(self, input_shape):
        """Return the input shape: the layer keeps it."""
        return input_shape

    def get_config(self) -> dict:
        """Return the layer config (the wrapper is saved for --resume)."""
        return {**super().get_config(), "rate": self.rate, "sigma": self.sigma,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="emotion_training")
class RandomJpeg(layers.Layer):
    """JPEG-compress each face with probability ``rate`` at a quality drawn from ``quality``.

    Needs the TensorFlow backend (``tf.image.adjust_jpeg_quality``); on another backend the
    layer refuses to build rather than silently training without it.
    """

    def __init__(self, rate: float, quality: tuple[int, int] = (20, 90), seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate, self.quality, self.seed = float(rate), tuple(int(v) for v in quality), \
            int(seed)
        if keras.backend.backend() != "tensorflow":
            raise ValueError("augmentation jpeg needs the TensorFlow backend (KERAS_BACKEND="
                             f"{keras.backend.backend()}); set jpeg: 0 there")

    def call(self, images, training=None):
        """Return the batch with the compressed faces replaced."""
        if not training:
            return images
        import tensorflow as tf

        n = tf.shape(images)[0]
        quality = tf.random.uniform((n,), self.quality[0], self.quality[1] + 1, dtype=tf.int32,
                                    seed=self.seed)

        def one(args):
            image, q = args
            return tf.image.adjust_jpeg_quality(image, q)

        compressed = tf.map_fn(one, (tf.clip_by_value(images, 0.0, 1.0), quality),
                               fn_output_signature=tf.TensorSpec(images.shape[1:], images.dtype))
        mask = tf.random.uniform((n, 1, 1, 1), seed=self.seed + 1) < self.rate
        return tf.where(mask, compressed, images)

    def compute_output_shape(self, input_shape):
        """Return the input shape: the layer keeps it."""
        return input_shape

    def get_config(self) -> dict:
        """Return the layer config (the wrapper is saved for --resume)."""
        return {**super().get_config(), "rate": self.rate, "quality": list(self.quality),
                "seed": self.seed}

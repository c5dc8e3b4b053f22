"""Model registry: the original's architectures and our own, as backend-agnostic Keras 3.

Every builder takes ``input_shape`` and ``num_classes`` and returns an uncompiled
``keras.Model`` ending in a softmax. ``build_model(name)`` looks one up; an unknown name fails
with the list of registered ones.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from emotion_perception.core.classes import NUM_CLASSES

INPUT_SHAPE = (48, 48, 1)
Builder = Callable[..., keras.Model]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a model builder under ``name``."""
    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn
    return deco


def available_models() -> list[str]:
    """Return the names of all registered models."""
    return sorted(_REGISTRY)


def build_model(name: str, input_shape: tuple[int, int, int] = INPUT_SHAPE,
                num_classes: int = NUM_CLASSES, **kwargs: object) -> keras.Model:
    """Build the registered model ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (H, W, C) with positive sizes, got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return _REGISTRY[name](input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)


@register("seed_cnn")
def seed_cnn(input_shape: tuple[int, int, int], num_classes: int,
             spatial_dropout: float = 0.2) -> keras.Model:
    """Build the original system's CNN layer for layer (555,079 parameters at 48x48x1, 7 classes).

    Conv 64 x2, SpatialDropout, MaxPool, Conv 128 x2, SpatialDropout, MaxPool, Conv 128 x2,
    GlobalAveragePooling, Dense softmax. The GAP head makes class activation maps direct.
    """
    inputs = keras.Input(input_shape, name="face")
    x = inputs
    for block, filters in enumerate((64, 128, 128)):
        for i in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"block{block + 1}_conv{i + 1}")(x)
        if block < 2:
            x = layers.SpatialDropout2D(spatial_dropout, name=f"block{block + 1}_drop")(x)
            x = layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = _softmax_head(x, num_classes)
    return keras.Model(inputs, outputs, name="seed_cnn")


@register("seed_cnn15")
def seed_cnn15(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Build the original's 15-layer variant: 3 conv/pool blocks, Dropout 0.5, Flatten, 3 Dense."""
    inputs = keras.Input(input_shape, name="face")
    x = inputs
    for block, filters in enumerate((32, 64, 128)):
        for i in range(2):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"block{block + 1}_conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="fc1")(x)
    x = layers.Dense(128, activation="relu", name="fc2")(x)
    outputs = _softmax_head(x, num_classes)
    return keras.Model(inputs, outputs, name="seed_cnn15")


def _softmax_head(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    """Return every model's output layer: a Dense softmax named ``predictions``.

    It computes in float32 under any global dtype policy, so a mixed-precision network
    (``TrainConfig.precision``) keeps its probabilities and loss exact.
    """
    return layers.Dense(num_classes, activation="softmax", name="predictions",
                        dtype="float32")(x)


def _conv_bn(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register("emotion_net")
def emotion_net(input_shape: tuple[int, int, int], num_classes: int, width: int = 32,
                dropout: float = 0.4) -> keras.Model:
    """Our model: a VGG-style net with batch norm and a GAP head, sized for a 2-core CPU.

    Four blocks of two 3x3 conv-BN-ReLU layers (width, 2w, 4w, 8w filters) with max pooling
    between them, global average pooling, dropout and a softmax. About 1.2 M parameters and
    0.12 GMAC per face at width 32. Batch norm lets it train in tens of epochs on a CPU; the
    GAP head keeps class activation maps exact; it exports cleanly to TFLite int8.
    """
    if width < 4:
        raise ValueError(f"width must be >= 4, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(input_shape, name="face")
    x = inputs
    for block in range(4):
        filters = width * 2 ** block
        x = _conv_bn(x, filters, f"block{block + 1}a")
        x = _conv_bn(x, filters, f"block{block + 1}b")
        if block < 3:
            x = layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
            x = layers.SpatialDropout2D(0.1, name=f"block{block + 1}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = _softmax_head(x, num_classes)
    return keras.Model(inputs, outputs, name="emotion_net")

"""Shared fixtures for the emotion_training tests: synthetic faces and a tiny trained model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_CLASSES = 7


@pytest.fixture(scope="session")
def tflite_converter() -> None:
    """Skip the requesting test where TFLite conversion cannot run (no TensorFlow backend).

    Training and evaluation tests run on any Keras backend (``KERAS_BACKEND=torch`` on the
    GPU machine); converting to TFLite needs TensorFlow, as ``emotion_export`` says.
    """
    from emotion_training.export import require_tensorflow_backend

    try:
        require_tensorflow_backend()
    except RuntimeError as exc:
        pytest.skip(str(exc))


def pattern_faces(n: int, seed: int = 0, noise: float = 12.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return n uint8 48x48 'faces' whose class is the orientation of a sine grating.

    Class c is a grating at angle c * 180 / 7 degrees with a random phase and pixel noise, so
    a small CNN learns the classes in a few epochs and every image is distinct.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % N_CLASSES
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    images = np.empty((n, 48, 48), np.uint8)
    for i, c in enumerate(labels):
        theta = np.pi * c / N_CLASSES
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / 8.0 + phase)
        im = 128 + 90 * wave + rng.normal(0, noise, (48, 48))
        images[i] = np.clip(im, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def write_npz(path: Path, n_train: int = 140, n_val: int = 70, seed: int = 0,
              votes: bool = True) -> Path:
    """Write a dataset npz like the shared one (images, labels, usage, ferplus_votes)."""
    images, labels = pattern_faces(n_train + n_val, seed)
    usage = np.array(["Training"] * n_train + ["PublicTest"] * n_val)
    arrays = {"images": images, "labels": labels, "usage": usage}
    if votes:
        rng = np.random.default_rng(seed + 1)
        v = np.zeros((len(labels), 10), np.int16)
        fer_to_ferplus = (4, 5, 6, 1, 3, 2, 0)
        for i, c in enumerate(labels):
            v[i, fer_to_ferplus[c]] = 7
            v[i, rng.integers(0, 7)] += 3
        v[0] = -1  # a row without FER+ votes
        arrays["ferplus_votes"] = v
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(scope="session")
def npz_writer() -> Callable[..., Path]:
    """Return the synthetic dataset writer (``write_npz``)."""
    return write_npz


@pytest.fixture(scope="session")
def make_faces() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Return the synthetic face generator."""
    return pattern_faces


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return the path of a small synthetic dataset npz (Training + PublicTest rows)."""
    return write_npz(tmp_path_factory.mktemp("data") / "synthetic.npz")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train emotion_net (width 4) on grating faces for a few epochs; return its .keras path."""
    import keras

    from emotion_perception.core.preprocessing import preprocess_faces
    from emotion_training.models import build_model

    keras.utils.set_random_seed(0)
    images, labels = pattern_faces(280, seed=1)
    x = preprocess_faces(images)
    y = np.eye(N_CLASSES, dtype=np.float32)[labels]
    model = build_model("emotion_net", width=4, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path

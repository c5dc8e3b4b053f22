"""Class activation maps (CAMs) for classifiers with a global-average-pooling head.

For a model ``features -> GlobalAveragePooling2D -> (Dropout) -> Dense`` the pre-softmax score
of class c is ``mean_xy(sum_k W[k, c] * F[y, x, k]) + b[c]``; the map inside the mean is the
class activation map (Zhou et al., 2016). It is exact for such heads: no gradients and no
approximation. ``class_activation_maps`` returns the maps upsampled to the input size and
scaled to [0, 1]; ``overlay`` draws one over a face for debug images.

CLI: ``emotion-cam --model M.keras --data NPZ [--n 8] [--split PublicTest] --out DIR`` writes
one PNG per face (the face and its 7 class maps, titled with class and probability) and an
index PNG with all of them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emotion_perception.core.classes import CLASS_NAMES
from emotion_perception.core.preprocessing import preprocess_faces, to_gray


def _identity_layer_types() -> tuple[type, ...]:
    from keras import layers

    return (layers.InputLayer, layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
            layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
            layers.AlphaDropout, layers.RandomFlip, layers.RandomRotation, layers.RandomZoom,
            layers.RandomTranslation, layers.RandomBrightness, layers.RandomContrast)


def _is_inference_identity(layer: Any) -> bool:
    """Return True for layers that pass data through unchanged at inference time."""
    import keras

    if isinstance(layer, keras.Model):
        return all(_is_inference_identity(sub) for sub in layer.layers)
    return isinstance(layer, _identity_layer_types())


def _find_gap_model(model: Any) -> tuple[Any, Any]:
    """Return (model, GAP layer); unwraps a training wrapper ``[augmenter, classifier]``."""
    import keras
    from keras import layers

    gaps = [lay for lay in model.layers if isinstance(lay, layers.GlobalAveragePooling2D)]
    if gaps:
        return model, gaps[-1]
    inner = model.layers[-1] if model.layers else None
    wrapped = all(_is_inference_identity(lay) for lay in model.layers[:-1])
    if isinstance(inner, keras.Model) and wrapped:
        return _find_gap_model(inner)
    raise ValueError(f"model {model.name!r} has no GlobalAveragePooling2D layer: class "
                     "activation maps need a GAP head (features -> GAP -> Dense)")


@dataclass
class CamExtractor:
    """A GAP classifier split into its feature map and its final Dense weights."""

    feature_model: Any           # inputs -> [feature map (N,h,w,K), Dense input, probabilities]
    weights: np.ndarray          # (K, classes)
    bias: np.ndarray             # (classes,)
    input_size: tuple[int, int]  # (H, W) of the model input

    @classmethod
    def from_model(cls, model: Any) -> "CamExtractor":
        """Build the extractor; raise ValueError if ``model`` lacks a GAP -> Dense head.

        The feature map is the input of the (last) GlobalAveragePooling2D layer. The final
        Dense layer must receive the pooled vector unchanged at inference (only dropout-like
        layers in between); this is checked on a probe batch.
        """
        import keras
        from keras import layers

        model, gap = _find_gap_model(model)
        dense = [lay for lay in model.layers if isinstance(lay, layers.Dense)]
        if not dense:
            raise ValueError(f"model {model.name!r} has no Dense layer after its GAP layer")
        dense = dense[-1]
        activation = getattr(dense.activation, "__name__", "")
        if activation not in {"softmax", "linear"}:
            raise ValueError(f"final Dense layer {dense.name!r} has activation {activation!r}; "
                             "CAMs need a linear or softmax classifier head")
        shape = tuple(model.input_shape)
        if len(shape) != 4:
            raise ValueError(f"model input must be (N, H, W, C), got {shape}")
        feature_model = keras.Model(model.inputs, [gap.input, dense.input, model.outputs[0]],
                                    name=f"{model.name}_cam")
        params = dense.get_weights()
        w = np.asarray(params[0], np.float32)
        b = (np.asarray(params[1], np.float32) if dense.use_bias
             else np.zeros(w.shape[1], np.float32))
        probe = np.random.default_rng(0).random((2,) + shape[1:], dtype=np.float32)
        fmap, dense_in, _ = feature_model.predict_on_batch(probe)
        if fmap.ndim != 4 or fmap.shape[-1] != w.shape[0] or not np.allclose(
                np.asarray(fmap).mean(axis=(1, 2)), dense_in, rtol=1e-4, atol=1e-5):
            raise ValueError(f"the final Dense layer {dense.name!r} does not act directly on "
                             f"the GAP output of {gap.name!r}; CAMs need a GAP head")
        return cls(feature_model, w, b, (int(shape[1]), int(shape[2])))

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """Return the model input for faces: float (N, H, W, 1) as is, others preprocessed."""
        batch = np.asarray(batch)
        if (batch.ndim == 4 and batch.dtype == np.float32 and batch.shape[-1] == 1
                and batch.shape[1:3] == self.input_size):
            return batch
        return preprocess_faces(batch, self.input_size)

    def raw(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return unnormalised maps (N, classes, h, w) at feature resolution and probabilities.

        ``raw_maps[n, c].mean() + bias[c]`` is the pre-softmax score of class c.
        """
        x = self.prepare(batch)
        fmap, _, probs = self.feature_model.predict_on_batch(x)
        cams = np.einsum("nhwk,kc->nchw", np.asarray(fmap, np.float32), self.weights)
        return cams.astype(np.float32), np.asarray(probs, np.float32)

    def maps(self, batch: np.ndarray, joint: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Return the maps upsampled to the input size, (N, classes, H, W) in [0, 1], and probs.

        Each map is min-max scaled on its own, or with ``joint`` over all classes of a face
        (which keeps the classes' relative strengths). A flat map becomes all zeros.
        """
        raw, probs = self.raw(batch)
        n, c, h, w = raw.shape
        height, width = self.input_size
        if n == 0:
            return np.zeros((0, c, height, width), np.float32), probs
        stack = raw.reshape(n * c, h, w).transpose(1, 2, 0)
        ups = []
        for i in range(0, n * c, 500):  # cv2.resize takes at most 512 channels
            part = cv2.resize(np.ascontiguousarray(stack[:, :, i:i + 500]), (width, height),
                              interpolation=cv2.INTER_LINEAR)
            ups.append(part.reshape(height, width, -1))
        up = np.concatenate(ups, axis=2).transpose(2, 0, 1).reshape(n, c, height, width)
        axes = (1, 2, 3) if joint else (2, 3)
        lo = up.min(axis=axes, keepdims=True)
        span = up.max(axis=axes, keepdims=True) - lo
        scaled = np.divide(up - lo, span, out=np.zeros_like(up), where=span > 1e-12)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32), probs


def class_activation_maps(model: Any, batch: np.ndarray, joint: bool = False) -> np.ndarray:
    """Return class activation maps (N, classes, H, W) in [0, 1] for a GAP classifier.

    ``model`` is a Keras model (or a ready :class:`CamExtractor`, cheaper for repeated calls);
    ``batch`` holds faces (uint8 crops or preprocessed float (N, H, W, 1)). Raises ValueError
    for a model without a GAP head.
    """
    extractor = model if isinstance(model, CamExtractor) else CamExtractor.from_model(model)
    return extractor.maps(batch, joint)[0]


def overlay(face: np.ndarray, cam: np.ndarray, alpha: float = 0.45,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a [0, 1] map (any size; resized) over a gray or BGR face; return BGR uint8.

    The output has the face's height and width. ``alpha`` is the heat map's weight.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    face = np.asarray(face)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"cam must be 2-D (H, W), got {cam.shape}")
    if face.ndim not in (2, 3) or face.size == 0:
        raise ValueError(f"face must be a gray or BGR image, got shape {face.shape}")
    if face.dtype != np.uint8:
        face = (np.clip(face.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    gray = to_gray(face)
    if face.ndim == 3 and face.shape[2] == 3:
        bgr = face
    else:
        bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    h, w = bgr.shape[:2]
    if cam.shape != (h, w):
        cam = cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((np.clip(cam, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), colormap)
    return cv2.addWeighted(heat, alpha, np.ascontiguousarray(bgr), 1.0 - alpha, 0.0)


def _display_face(face: np.ndarray, scale: int = 3) -> np.ndarray:
    h, w = face.shape[:2]
    return cv2.resize(face, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)


def write_cam_grids(extractor: CamExtractor, images: np.ndarray, labels: np.ndarray | None,
                    out_dir: str | Path, joint: bool = False,
                    names: list[str] | None = None) -> list[Path]:
    """Write one PNG per face (face + one overlay per class) and ``cam_index.png``."""
    from tqdm import tqdm

    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cams, probs = extractor.maps(images, joint)
    rows, row_titles, row_labels, written = [], [], [], []
    for i in tqdm(range(len(images)), desc="CAM grids", unit="face", leave=False):
        face = _display_face(np.asarray(images[i]))
        pred = int(probs[i].argmax())
        truth = "?" if labels is None else CLASS_NAMES[int(labels[i])]
        tiles = [face] + [overlay(face, cams[i, c]) for c in range(cams.shape[1])]
        titles = [f"true: {truth}"] + [f"{'*' if c == pred else ''}{CLASS_NAMES[c]} "
                                       f"{probs[i, c]:.2f}" for c in range(cams.shape[1])]
        name = (names[i] if names else f"{i:03d}")
        written.append(plots.plot_image_rows(
            [tiles], out / f"cam_{name}_{truth}.png", [titles],
            suptitle=f"face {name}: true {truth}, predicted {CLASS_NAMES[pred]} "
                     f"({probs[i, pred]:.2f}); * = predicted class", cell_inches=1.8))
        rows.append(tiles)
        row_titles.append(titles)
        row_labels.append(f"{name}")
    written.append(plots.plot_image_rows(
        rows, out / "cam_index.png", row_titles, row_labels,
        suptitle="class activation maps (each map scaled to [0, 1]; * = predicted)"
        if not joint else "class activation maps (scaled jointly per face; * = predicted)"))
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``emotion-cam``."""
    p = argparse.ArgumentParser(prog="emotion-cam", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help=".keras classifier with a GAP head")
    p.add_argument("--data", type=Path, required=True,
                   help="dataset: .npz, Kaggle .csv or image folder")
    p.add_argument("--split", default="PublicTest", help="usage split to draw faces from")
    p.add_argument("--n", type=int, default=8, help="number of faces (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the face selection")
    p.add_argument("--joint", action="store_true",
                   help="scale the 7 maps of a face together instead of one by one")
    p.add_argument("--out", type=Path, required=True, help="output folder for the PNGs")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be >= 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from .data import load_dataset

    try:
        ds = load_dataset(a.data).split(a.split)
        if not a.model.is_file():
            raise FileNotFoundError(f"model file not found: {a.model}")
        model = keras.saving.load_model(a.model, compile=False, safe_mode=True)
        extractor = CamExtractor.from_model(model)
    except (ValueError, OSError) as exc:
        print(f"emotion-cam: {exc}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(a.seed)
    idx = np.sort(rng.choice(len(ds), size=min(a.n, len(ds)), replace=False))
    files = write_cam_grids(extractor, ds.images[idx], ds.labels[idx], a.out, a.joint,
                            names=[f"{a.split}{i}" for i in idx])
    for f in files:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

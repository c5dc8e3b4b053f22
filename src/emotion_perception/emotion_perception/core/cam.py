"""Class activation maps (CAMs) for classifiers with a global-average-pooling head.

For a model ``features -> GlobalAveragePooling2D -> (Dropout) -> Dense`` the pre-softmax score
of class c is ``mean_xy(sum_k W[k, c] * F[y, x, k]) + b[c]``; the map inside the mean is the
class activation map (Zhou et al., 2016). It is exact for such heads: no gradients and no
approximation. ``class_activation_maps`` returns the maps upsampled to the input size and
scaled to [0, 1]; ``overlay`` draws one over a face; ``draw_face_cams`` paints the map of each
face's estimated class over that face in a camera frame (the debug image's ``cam`` option).
An ensemble made by ``emotion_ensemble`` (members averaged) gets the mean of its members' maps.

Keras is imported only when a model is given; the rest needs numpy and OpenCV. The training
package's ``emotion_cam`` CLI draws grids of these maps for dataset faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from .preprocessing import preprocess_faces, square_crop_box, to_gray


def _identity_layer_types() -> tuple[type, ...]:
    from keras import layers

    return (layers.InputLayer, layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
            layers.SpatialDropout3D, layers.GaussianNoise, layers.GaussianDropout,
            layers.AlphaDropout, layers.RandomFlip, layers.RandomRotation, layers.RandomZoom,
            layers.RandomTranslation, layers.RandomBrightness, layers.RandomContrast)


def is_inference_identity(layer: Any) -> bool:
    """Return True for layers that pass data through unchanged at inference time."""
    import keras

    if isinstance(layer, keras.Model):
        return all(is_inference_identity(sub) for sub in layer.layers)
    return isinstance(layer, _identity_layer_types())


def _find_gap_model(model: Any) -> tuple[Any, Any]:
    """Return (model, GAP layer); unwraps a training wrapper ``[augmenter, classifier]``."""
    import keras
    from keras import layers

    gaps = [lay for lay in model.layers if isinstance(lay, layers.GlobalAveragePooling2D)]
    if gaps:
        return model, gaps[-1]
    inner = model.layers[-1] if model.layers else None
    wrapped = all(is_inference_identity(lay) for lay in model.layers[:-1])
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
        # a half-precision model (emotion_export's float16 .keras) pools in float16
        half = np.dtype(getattr(gap, "compute_dtype", "float32")).itemsize < 4
        rtol, atol = (2e-2, 2e-3) if half else (1e-4, 1e-5)
        pooled = np.asarray(fmap, np.float32).mean(axis=(1, 2))
        if fmap.ndim != 4 or fmap.shape[-1] != w.shape[0] or not np.allclose(
                pooled, np.asarray(dense_in, np.float32), rtol=rtol, atol=atol):
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


@dataclass
class MeanCam:
    """The maps of an averaging ensemble: the mean of its members' [0, 1] maps.

    The ensemble's probabilities are the mean of its members' probabilities, so its maps are
    the members' maps (each scaled to [0, 1] as the members' own are) averaged the same way.
    """

    members: list[CamExtractor]

    @property
    def input_size(self) -> tuple[int, int]:
        """Return (H, W) of the model input."""
        return self.members[0].input_size

    def maps(self, batch: np.ndarray, joint: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Return the members' mean maps, shape (N, classes, H, W) in [0, 1], and mean probs."""
        x = self.members[0].prepare(batch)
        parts = [m.maps(x, joint) for m in self.members]
        cams = np.mean([c for c, _ in parts], axis=0).astype(np.float32)
        probs = np.mean([p for _, p in parts], axis=0).astype(np.float32)
        return cams, probs


def cam_extractor(model: Any) -> CamExtractor | MeanCam:
    """Return the map extractor of a GAP classifier or of an ensemble of GAP classifiers.

    An ensemble is a model whose output layer is ``Average`` over member models (what
    ``emotion_ensemble`` writes). Raises ValueError for anything else without a GAP head.
    """
    from keras import layers

    if isinstance(model, (CamExtractor, MeanCam)):
        return model
    try:
        return CamExtractor.from_model(model)
    except ValueError as single_error:
        last = model.layers[-1] if getattr(model, "layers", None) else None
        members = [lay for lay in getattr(model, "layers", [])
                   if hasattr(lay, "layers") and not is_inference_identity(lay)]
        if not isinstance(last, layers.Average) or len(members) < 2:
            raise single_error
        return MeanCam([CamExtractor.from_model(m) for m in members])


def class_activation_maps(model: Any, batch: np.ndarray, joint: bool = False) -> np.ndarray:
    """Return class activation maps (N, classes, H, W) in [0, 1] for a GAP classifier.

    ``model`` is a Keras model (or a ready extractor from :func:`cam_extractor`, cheaper for
    repeated calls); ``batch`` holds faces (uint8 crops or preprocessed float (N, H, W, 1)).
    Raises ValueError for a model without a GAP head.
    """
    return cam_extractor(model).maps(batch, joint)[0]


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


def draw_face_cams(image_bgr: np.ndarray, boxes: Sequence[Sequence[float]],
                   labels: Sequence[int], extractor: CamExtractor | MeanCam,
                   margin: float = 0.1, alpha: float = 0.45, offset: float = 0.0
                   ) -> np.ndarray:
    """Return a BGR copy of a frame with each face's class activation map painted over it.

    ``boxes`` are face boxes (x, y, w, h) in pixels and ``labels`` the class whose map is drawn
    for each (normally the estimated one). The map covers the square crop with ``margin`` and
    ``offset`` that the classifier saw (the detector's framing, ``square_crop_box``), unrotated.
    Boxes outside the frame are skipped.
    """
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    image = np.asarray(image_bgr)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_bgr must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    out = image.copy()
    regions, crops, keep = [], [], []
    for box, label in zip(boxes, labels):
        x, y, w, h = square_crop_box(box, margin, image.shape, offset)
        if w == 0 or h == 0:
            continue
        regions.append((x, y, w, h))
        crops.append(image[y:y + h, x:x + w])  # what crop_face cuts, box computed once
        keep.append(int(label))
    if not crops:
        return out
    cams, _ = extractor.maps(preprocess_faces(crops, extractor.input_size))
    for (x, y, w, h), label, cam in zip(regions, keep, cams):
        if not 0 <= label < cam.shape[0]:
            raise ValueError(f"label {label} outside the model's {cam.shape[0]} classes")
        out[y:y + h, x:x + w] = overlay(image[y:y + h, x:x + w], cam[label], alpha)
    return out

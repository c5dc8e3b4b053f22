"""Training configuration: a dataclass loaded from YAML, every key validated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .augment import AugmentConfig


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved beside its outputs for reproducibility."""

    data: str = "../shared/data/fer2013_trainval.npz"
    model: str = "emotion_net"
    model_args: dict[str, Any] = field(default_factory=dict)
    label_mode: str = "mixed"          # fer | ferplus | majority | mixed (see data.targets)
    ferplus_weight: float = 0.5
    class_weight_power: float = 0.5    # 0 = none, 1 = fully balanced
    drop_not_face: bool = True
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_epochs: int = 2
    weight_decay: float = 1e-4
    optimizer: str = "adamw"           # adamw | sgd (SGD with Nesterov momentum)
    momentum: float = 0.9              # sgd only
    label_smoothing: float = 0.0       # cross-entropy label smoothing
    # float32 | mixed_bfloat16: compute in bfloat16, weights and saved models in float32.
    # About 1.4-1.6x faster training on a CPU with AMX or AVX512-BF16 (lscpu flags
    # amx_bf16, avx512_bf16), slower where bfloat16 is emulated (AVX2 only); the saved
    # models are the same either way.
    precision: str = "float32"
    early_stopping_patience: int = 12
    folds: int = 0                     # 0 = train on Training, validate on PublicTest
    seed: int = 1234
    tensorboard: bool = False
    limit: int = 0                     # >0: use only this many training images (smoke tests)
    init_weights: str = ""             # start from this .keras model's weights (fine-tuning)
    teacher: str = ""                  # distillation: .keras/.tflite whose outputs are targets
    teacher_weight: float = 0.5        # targets = (1 - w) * labels + w * teacher probabilities
    teacher_tta: bool = True           # teacher probabilities averaged with the mirror image's
    # .npz of emotion_scene_crops: Training faces as the live detector crops them, added to
    # the training images (each with its source face's targets; sources that cleaning or the
    # PublicTest overlap check removed are left out with them)
    scene_crops: str = ""
    # > 0: also keep the mean of the weights at the end of every epoch from this one (1-based)
    # on, as average.keras (weight averaging over the tail of the schedule)
    average_from: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0, "folds": self.folds == 0 or self.folds >= 2,
            "ferplus_weight": 0.0 <= self.ferplus_weight <= 1.0,
            "class_weight_power": 0.0 <= self.class_weight_power <= 1.0,
            "label_mode": self.label_mode in {"fer", "ferplus", "majority", "mixed"},
            "warmup_epochs": self.warmup_epochs >= 0, "limit": self.limit >= 0,
            "weight_decay": self.weight_decay >= 0,
            "optimizer": self.optimizer in {"adamw", "sgd"},
            "momentum": 0.0 <= self.momentum < 1.0,
            "label_smoothing": 0.0 <= self.label_smoothing < 1.0,
            "precision": self.precision in {"float32", "mixed_bfloat16"},
            "teacher_weight": 0.0 <= self.teacher_weight <= 1.0,
            "average_from (0 or an epoch of the run)": 0 <= self.average_from <= self.epochs,
            # the teacher saw all of Training: its outputs would carry each fold's validation
            # images into the targets
            "teacher (not with folds)": not (self.teacher and self.folds),
            # crops of one fold's validation faces would train the other folds
            "scene_crops (not with folds)": not (self.scene_crops and self.folds),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid training config values: " + ", ".join(
                f"{k}={getattr(self, k.split()[0])!r}" for k in bad))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Load a YAML file; unknown keys are an error naming them."""
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping at top level")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """Return a YAML-serialisable dict (pairs as lists: safe YAML has no tuples)."""
        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value
        return plain(asdict(self))

"""Settings of the temporal pipeline (sequences, LSTM, benchmark), validated on construction."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from emotion_perception.core.params import CLASSIFIER, by_name

LSTM_FILE = "emotion_lstm.keras"
CARD_STEM = "emotion_lstm.model_card"
METHODS = ("none", "ema", "hysteresis", "lstm")


@dataclass
class SequenceConfig:
    """How synthetic sequences are made (see the module docstring)."""

    frames: int = 60                 # T frames per sequence
    fps: float = 15.0                # nominal frame rate of the stamps
    stamp_jitter: float = 0.1        # each frame interval is (1 +- U(jitter)) / fps
    drop_prob: float = 0.03          # probability that a frame is lost (a doubled interval)
    switch_prob: float = 0.7         # probability that a sequence changes expression once
    min_segment: int = 15            # frames before and after a switch, at least
    class_sampling: str = "data"     # data: images drawn uniformly; uniform: classes uniform
    rotation_deg: float = 6.0        # Keras augmenter strengths, drawn anew for every frame
    zoom: float = 0.08
    shift: float = 0.06
    brightness: float = 0.15
    contrast: float = 0.2
    blur_prob: float = 0.3           # per frame; Gaussian sigma U(0.5, blur_sigma_max) px
    blur_sigma_max: float = 1.5
    noise_std_max: float = 0.02      # per sequence sensor noise std ~ U(0, max), [0, 1] scale
    occlusion_rate: float = 0.04     # per frame probability that an occlusion starts
    occlusion_frames: tuple[int, int] = (3, 10)      # its duration range in frames
    occlusion_size: tuple[float, float] = (0.2, 0.5)  # its side, as a fraction of the face

    def __post_init__(self) -> None:
        self.occlusion_frames = tuple(int(v) for v in self.occlusion_frames)  # type: ignore
        self.occlusion_size = tuple(float(v) for v in self.occlusion_size)  # type: ignore
        checks = {
            "frames": self.frames >= 2, "fps": self.fps > 0,
            "stamp_jitter": 0 <= self.stamp_jitter < 1, "drop_prob": 0 <= self.drop_prob < 1,
            "switch_prob": 0 <= self.switch_prob <= 1,
            "min_segment": 1 <= self.min_segment and 2 * self.min_segment <= self.frames,
            "class_sampling": self.class_sampling in {"data", "uniform"},
            "rotation_deg": 0 <= self.rotation_deg <= 180, "zoom": 0 <= self.zoom < 1,
            "shift": 0 <= self.shift < 1, "brightness": 0 <= self.brightness < 1,
            "contrast": 0 <= self.contrast < 1, "blur_prob": 0 <= self.blur_prob <= 1,
            "blur_sigma_max": self.blur_sigma_max >= 0.5, "noise_std_max": self.noise_std_max >= 0,
            "occlusion_rate": 0 <= self.occlusion_rate <= 1,
            "occlusion_frames": len(self.occlusion_frames) == 2
            and 1 <= self.occlusion_frames[0] <= self.occlusion_frames[1],
            "occlusion_size": len(self.occlusion_size) == 2
            and 0 < self.occlusion_size[0] <= self.occlusion_size[1] <= 1,
        }
        _raise_bad("sequences", self, checks)


@dataclass
class LstmConfig:
    """The LSTM smoother's architecture and training."""

    window: int = 16
    units: int = 32
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 3e-3
    patience: int = 5                # early stopping on the validation loss
    val_fraction: float = 0.15       # of the training sequences

    def __post_init__(self) -> None:
        checks = {"window": self.window >= 1, "units": self.units >= 1,
                  "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
                  "learning_rate": self.learning_rate > 0, "patience": self.patience >= 0,
                  "val_fraction": 0 < self.val_fraction < 1}
        _raise_bad("lstm", self, checks)


@dataclass
class BenchConfig:
    """Parameters of the benchmarked smoothers and metrics."""

    ema_tau: float = 0.5
    hysteresis_window: int = 7
    hysteresis_margin: float = 0.25
    max_gap: float = 1.0
    hold: int = 3                    # frames a new label must hold to end a transition

    def __post_init__(self) -> None:
        checks = {"ema_tau": self.ema_tau > 0, "hysteresis_window": self.hysteresis_window >= 1,
                  "hysteresis_margin": 0 <= self.hysteresis_margin <= 1,
                  "max_gap": self.max_gap > 0, "hold": self.hold >= 1}
        _raise_bad("bench", self, checks)


def _live_tta_shift_ok(value: Any) -> bool:
    """Whether ``value`` is a ``tta_shift`` the live classifier node accepts (its declaration)."""
    try:
        by_name(CLASSIFIER)["tta_shift"].check(value)
    except ValueError:
        return False
    return True


@dataclass
class TemporalConfig:
    """Everything the temporal pipeline depends on; saved beside its outputs."""

    seed: int = 1234
    train_sequences: int = 300
    test_sequences: int = 100
    tta_mirror: bool = True   # classify frames as the live classifier does by default
    tta_shift: int = 0        # the live classifier's tta_shift (pixels; 0 = off)
    # the live classifier's tta_mirror_over_time: with tta_mirror (and no shift), each frame
    # is one view, alternately mirrored, averaged with the previous frame's view
    tta_mirror_over_time: bool = True
    sequences: SequenceConfig = field(default_factory=SequenceConfig)
    lstm: LstmConfig = field(default_factory=LstmConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self) -> None:
        for name, cls in (("sequences", SequenceConfig), ("lstm", LstmConfig),
                          ("bench", BenchConfig)):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, _from_mapping(cls, value, name))
        _raise_bad("config", self, {"train_sequences": self.train_sequences >= 2,
                                    "test_sequences": self.test_sequences >= 1,
                                    "tta_mirror": isinstance(self.tta_mirror, bool),
                                    "tta_mirror_over_time":
                                        isinstance(self.tta_mirror_over_time, bool),
                                    "tta_shift": _live_tta_shift_ok(self.tta_shift)})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TemporalConfig":
        """Load a YAML file; an unknown key is an error naming it."""
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping at top level")
        return _from_mapping(cls, raw, str(path))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON/YAML-serialisable dict."""
        return json.loads(json.dumps(asdict(self)))


def _from_mapping(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**raw)


def _raise_bad(section: str, obj: Any, checks: Mapping[str, bool]) -> None:
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"invalid {section} values: "
                         + ", ".join(f"{k}={getattr(obj, k)!r}" for k in bad))

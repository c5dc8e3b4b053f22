"""The FER2013 class order, defined once for the whole project.

The same order is written as constants in ``emotion_msgs/msg/Emotion.msg``; a test checks that
the two agree.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
)
NUM_CLASSES: int = len(CLASS_NAMES)

# Russell circumplex coordinates (valence, arousal) in [-1, 1] for each class. Rough, literature
# derived anchors (e.g. the placement of basic emotions in Russell 1980); used to fill the
# valence/arousal fields of the message as the probability-weighted mean. They are an
# interpretation of the label distribution, not a separately trained regressor.
VALENCE_AROUSAL: tuple[tuple[float, float], ...] = (
    (-0.6, 0.7),   # angry
    (-0.7, 0.3),   # disgust
    (-0.6, 0.6),   # fear
    (0.8, 0.5),    # happy
    (-0.7, -0.4),  # sad
    (0.3, 0.8),    # surprise
    (0.0, 0.0),    # neutral
)


def class_index(name: str) -> int:
    """Return the index of a class name (case-insensitive); raise ValueError if unknown."""
    key = name.strip().lower()
    if key not in CLASS_NAMES:
        raise ValueError(f"unknown emotion class {name!r}; known: {', '.join(CLASS_NAMES)}")
    return CLASS_NAMES.index(key)

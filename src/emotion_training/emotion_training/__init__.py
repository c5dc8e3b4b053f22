"""emotion_training: train, evaluate, explain and export emotion_perception's classifiers."""

__version__ = "0.1.0"

"""The built-in plugins, listed once: {entry-point group: {name: "module:attr"}}.

Plain data with no imports: ``setup.py`` reads this file by path (``runpy.run_path``, without
importing the package) to declare the entry points, and ``core.plugins`` uses it so that the
core also works from a source tree that was never installed. A new built-in plugin is added
here and nowhere else; ``test_plugins`` checks setup.py and the installed metadata against it.
"""

GROUPS = {
    "detector": "emotion_perception.detectors",
    "classifier": "emotion_perception.classifiers",
    "smoother": "emotion_perception.smoothers",
}

BUILTINS = {
    "emotion_perception.detectors": {
        "blazeface": "emotion_perception.core.detectors.blazeface:BlazeFaceDetector",
        "haar": "emotion_perception.core.detectors.haar:HaarDetector",
        "yunet": "emotion_perception.core.detectors.yunet:YuNetDetector",
    },
    "emotion_perception.classifiers": {
        "keras": "emotion_perception.core.classifiers.keras_classifier:KerasClassifier",
        "tflite": "emotion_perception.core.classifiers.tflite_classifier:TFLiteClassifier",
    },
    "emotion_perception.smoothers": {
        "none": "emotion_perception.core.smoothing.simple:NoSmoother",
        "ema": "emotion_perception.core.smoothing.simple:EmaSmoother",
        "hysteresis": "emotion_perception.core.smoothing.simple:HysteresisSmoother",
        "lstm": "emotion_perception.core.smoothing.lstm:LstmSmoother",
    },
}


def entry_points() -> dict[str, list[str]]:
    """Return :data:`BUILTINS` as setuptools ``entry_points`` lists ("name = module:attr")."""
    return {group: [f"{name} = {target}" for name, target in plugins.items()]
            for group, plugins in BUILTINS.items()}

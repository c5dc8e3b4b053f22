"""Packaging of emotion_training (ament_python; also installable with plain pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "emotion_training"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/configs", glob("configs/*.yaml")),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},
    zip_safe=True,
    maintainer="emotion_perception developers",
    maintainer_email="maintainers@emotion-perception.example.org",
    description="Training, evaluation, class activation maps and export of the "
                "emotion_perception classifiers (outside the runtime graph).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "emotion-train = emotion_training.train:main",
            "emotion-evaluate = emotion_training.evaluate:main",
            "emotion-cam = emotion_training.cam:main",
            "emotion-export = emotion_training.export:main",
            "emotion-augment-preview = emotion_training.preview:main",
            "emotion-ensemble = emotion_training.ensemble:main",
            "emotion-temporal = emotion_training.temporal:main",
            "emotion-robustness = emotion_training.robustness:main",
        ],
    },
)

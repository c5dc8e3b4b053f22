"""Packaging of emotion_training (ament_python; also installable with plain pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "emotion_training"


def with_dashed_aliases(scripts: list[str]) -> list[str]:
    """Return the console scripts plus each one's dashed name of 0.1.0 as an alias.

    The executables are named with underscores (the ROS convention, as emotion_perception's);
    the dashed names stay for one release and go in 0.3.0 (README, "Executables"). An old
    name runs emotion_perception.renamed: a deprecation line, then the new command.
    """
    return scripts + [f"{line.split(' = ')[0].replace('_', '-')} = "
                      "emotion_perception.renamed:main" for line in scripts]


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
        "console_scripts": with_dashed_aliases([
            "emotion_train = emotion_training.train:main",
            "emotion_evaluate = emotion_training.evaluate:main",
            "emotion_cam = emotion_training.cam:main",
            "emotion_export = emotion_training.export:main",
            "emotion_augment_preview = emotion_training.preview:main",
            "emotion_ensemble = emotion_training.ensemble:main",
            "emotion_temporal = emotion_training.temporal:main",
            "emotion_robustness = emotion_training.robustness:main",
        ]) + [
            # new since 0.1.0: no dashed name to keep
            "emotion_scene_crops = emotion_training.scene_crops:main",
        ],
    },
)

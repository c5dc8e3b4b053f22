"""Packaging of emotion_perception (ament_python)."""

import runpy
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "emotion_perception"
#: executables named with dashes up to 0.1.0; now with underscores (the ROS convention). The
#: dashed names stay as aliases for one release and go in 0.3.0 (README, "Executables").
RENAMED = ("emotion_make_bag", "emotion_eval_bag", "emotion_eval_detectors", "emotion_play_bag",
           "emotion_record_bag", "emotion_replay_eval")


def with_dashed_aliases(scripts: list[str]) -> list[str]:
    """Return the console scripts plus the old dashed name of each one in RENAMED.

    An old name runs emotion_perception.renamed: a deprecation line, then the new command.
    """
    names = [line.split(" = ")[0] for line in scripts]
    return scripts + [f"{name.replace('_', '-')} = {PACKAGE}.renamed:main" for name in names
                      if name in RENAMED]


# the built-in plugins' entry points, from the one list (read by path: no package import)
PLUGINS = runpy.run_path(str(Path(__file__).resolve().parent / PACKAGE / "core"
                             / "plugin_table.py"))["entry_points"]()

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.keras") + glob("models/*.tflite")
         + glob("models/*.json") + glob("models/*.md")),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},
    zip_safe=True,
    maintainer="emotion_perception developers",
    maintainer_email="maintainers@emotion-perception.example.org",
    description="Plugin-based ROS 2 facial emotion perception: camera, face detection and "
                "tracking, FER2013 CNN classification, temporal smoothing.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": with_dashed_aliases([
            "camera_node = emotion_perception.nodes.camera_node:main",
            "face_detector_node = emotion_perception.nodes.face_detector_node:main",
            "emotion_classifier_node = emotion_perception.nodes.classifier_node:main",
            "emotion_smoother_node = emotion_perception.nodes.smoother_node:main",
            "debug_image_node = emotion_perception.nodes.debug_image_node:main",
            "hri_bridge_node = emotion_perception.nodes.hri_bridge_node:main",
            "hri_input_node = emotion_perception.nodes.hri_input_node:main",
            "live = emotion_perception.live:main",
            "bench = emotion_perception.bench:main",
            "soak = emotion_perception.soak:main",
            "fuzz = emotion_perception.fuzz:main",
            "emotion_make_bag = emotion_perception.bags.make_bag:main",
            "emotion_eval_bag = emotion_perception.bags.evaluate:main",
            "emotion_eval_detectors = emotion_perception.bags.detector_eval:main",
            "emotion_play_bag = emotion_perception.bags.player:play_main",
            "emotion_record_bag = emotion_perception.bags.recorder:record_main",
            "emotion_replay_eval = emotion_perception.bags.replay:run_main",
        ]),
        **PLUGINS,
    },
)

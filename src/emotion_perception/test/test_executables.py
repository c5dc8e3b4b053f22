"""Executable names: underscores (the ROS convention), the dashed names of 0.1.0 as aliases.

Read from both packages' setup.py (run with ``setuptools.setup`` captured, nothing built) and
from the launch files, so a new dashed name or a launch file starting an alias fails here.
"""

from __future__ import annotations

import ast
import re
import runpy

import pytest

from conftest import REPO_ROOT

PACKAGES = ("emotion_perception", "emotion_training")


def _console_scripts(package: str, monkeypatch) -> dict[str, str]:
    import setuptools

    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(REPO_ROOT / "src" / package)
    runpy.run_path("setup.py", run_name="__main__")
    lines = captured["entry_points"]["console_scripts"]
    scripts = dict(line.split(" = ") for line in lines)
    assert len(scripts) == len(lines), "a console script is listed twice"
    return scripts


@pytest.mark.parametrize("package", PACKAGES)
def test_executables_are_underscored_and_dashed_names_are_aliases(package, monkeypatch):
    scripts = _console_scripts(package, monkeypatch)
    dashed = {name for name in scripts if "-" in name}
    for name in set(scripts) - dashed:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
    for name in dashed:
        new = name.replace("-", "_")
        assert scripts.get(new) == scripts[name], f"{name} is not an alias of {new}"
    if package == "emotion_training":  # every training command of 0.1.0 was dashed
        undashed = set(scripts) - dashed - {n.replace("-", "_") for n in dashed}
        assert "emotion-train" in dashed and undashed == {"emotion_scene_crops"}  # new since
    else:
        assert {"emotion-make-bag", "emotion-eval-bag", "emotion-play-bag",
                "emotion-record-bag"} <= dashed
        assert not {n for n in dashed if n.endswith("-node")}  # the nodes were never dashed


def test_launch_files_start_the_underscore_names(monkeypatch):
    scripts = _console_scripts("emotion_perception", monkeypatch)
    started = []
    for path in sorted((REPO_ROOT / "launch").glob("*.launch.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "executable" \
                    and isinstance(node.value, ast.Constant):
                started.append(node.value.value)
    assert "emotion_play_bag" in started and "emotion_record_bag" in started
    for name in started:
        assert "-" not in name and name in scripts, name

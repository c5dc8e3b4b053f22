"""Static checks of docker/ (no Docker engine runs here)."""

from __future__ import annotations

import os
import re

import pytest

from conftest import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
FILES = sorted(DOCKER.glob("Dockerfile*"))


def _instructions(path):
    text = path.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dockerfile_is_sound(path):
    lines = _instructions(path)
    assert lines[0].startswith("FROM ros:jazzy"), "must build on the official ROS 2 Jazzy image"
    known = {"FROM", "RUN", "COPY", "WORKDIR", "ENV", "CMD", "ENTRYPOINT", "SHELL", "ARG",
             "LABEL", "EXPOSE", "USER"}
    for line in lines:
        assert line.split()[0] in known, f"unknown instruction: {line}"
    for line in lines:
        if line.startswith("COPY"):
            src = line.split()[1]
            assert src == "." or (REPO_ROOT / src).exists(), f"COPY source missing: {src}"
    text = " ".join(lines)
    for script in set(re.findall(r"scripts/[\w.-]+\.sh", text)):
        p = REPO_ROOT / script
        assert p.is_file() and os.access(p, os.X_OK), f"{script} missing or not executable"
    assert "apt-get update" in text and "rm -rf /var/lib/apt/lists" in text


def test_entrypoint_is_executable_and_launches_live():
    ep = DOCKER / "entrypoint.sh"
    assert os.access(ep, os.X_OK)
    assert "ros2 launch emotion_perception live.launch.py" in ep.read_text()

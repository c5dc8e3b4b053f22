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
    for name in dashed:  # each runs the underscore command after a deprecation line
        assert name.replace("-", "_") in scripts, f"{name} has no underscore command"
        assert scripts[name] == "emotion_perception.renamed:main", name
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


def _fake_commands(monkeypatch, commands: dict) -> None:
    """Make ``commands`` (name -> function in this module) the installed console scripts."""
    from importlib import metadata

    import emotion_perception.renamed as renamed

    eps = metadata.EntryPoints(metadata.EntryPoint(name, f"{__name__}:{fn.__name__}",
                                                   "console_scripts")
                               for name, fn in commands.items())
    monkeypatch.setattr(renamed.metadata, "entry_points",
                        lambda group, name: eps.select(group=group, name=name))
    monkeypatch.setitem(globals(), "_CALLS", [])


_CALLS: list = []


def _tool() -> int:
    import sys
    _CALLS.append(list(sys.argv))
    return 7


def test_a_dashed_name_warns_then_runs_its_underscore_command(monkeypatch, capsys):
    from emotion_perception import renamed

    _fake_commands(monkeypatch, {"emotion_tool": _tool})
    monkeypatch.setattr("sys.argv", ["/ws/install/bin/emotion-tool", "--limit", "3"])
    assert renamed.main() == 7  # the command's own exit status
    assert _CALLS == [["/ws/install/bin/emotion_tool", "--limit", "3"]]  # same arguments
    err = capsys.readouterr().err
    assert "emotion-tool is deprecated" in err and "use emotion_tool" in err
    assert renamed.REMOVED_IN in err


@pytest.mark.parametrize("invoked", ["emotion-nothing", "emotion_tool"])
def test_a_name_that_is_not_a_renamed_command_is_refused(invoked, monkeypatch, capsys):
    from emotion_perception import renamed

    _fake_commands(monkeypatch, {"emotion_tool": _tool})
    monkeypatch.setattr("sys.argv", [invoked])
    assert renamed.main() == 2 and _CALLS == []
    assert "not one of the renamed executables" in capsys.readouterr().err

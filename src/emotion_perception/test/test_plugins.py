"""Tests of the entry-point plugin loader with the built-in plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emotion_perception.core import plugins
from emotion_perception.core.detectors.base import FaceDetector
from emotion_perception.core.detectors.haar import HaarDetector
from emotion_perception.core.plugins import PluginError, available, create, load_class


def test_available_lists_builtins() -> None:
    assert {"blazeface", "haar", "yunet"} <= set(available("detector"))
    assert {"keras", "tflite"} <= set(available("classifier"))
    assert {"none", "ema", "hysteresis", "lstm"} <= set(available("smoother"))
    assert available("emotion_perception.detectors") == available("detector")
    assert available("detector")["haar"] == "emotion_perception.core.detectors.haar:HaarDetector"


def test_unknown_name_lists_available() -> None:
    with pytest.raises(PluginError, match="unknown detector plugin 'dlib'") as info:
        load_class("detector", "dlib")
    assert "haar" in str(info.value) and "yunet" in str(info.value)
    with pytest.raises(PluginError, match="kinds: detector, classifier, smoother"):
        available("tracker")


def test_create_builtin_detector() -> None:
    detector = create("detector", "haar", min_size=30)
    assert isinstance(detector, HaarDetector) and isinstance(detector, FaceDetector)
    assert detector.name == "haar" and detector.min_size == 30


def test_builtin_classes_load_and_carry_their_names() -> None:
    for kind in ("detector", "classifier"):
        names = ("blazeface", "haar", "yunet") if kind == "detector" else ("keras", "tflite")
        for name in names:
            assert load_class(kind, name).name == name


def test_constructor_errors_pass_through() -> None:
    with pytest.raises(ValueError, match="scale_factor"):
        create("detector", "haar", scale_factor=0.5)
    with pytest.raises(FileNotFoundError, match="model_path"):
        create("classifier", "tflite", model_path="/nonexistent/model.tflite")


def test_broken_plugin_reports_reason_and_others_still_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ep_broken_plugin_mod.py").write_text(
        "raise RuntimeError('missing native library libfoo.so')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    group = plugins.GROUPS["detector"]
    patched = {key: dict(value) for key, value in plugins.BUILTINS.items()}
    patched[group]["broken"] = "ep_broken_plugin_mod:BrokenDetector"
    patched[group]["absent"] = "ep_no_such_module_anywhere:Detector"
    patched[group]["noattr"] = "emotion_perception.core.detectors.haar:NoSuchClass"
    monkeypatch.setattr(plugins, "BUILTINS", patched)
    assert {"broken", "absent", "noattr", "haar"} <= set(available("detector"))
    with pytest.raises(PluginError, match="missing native library libfoo.so") as info:
        load_class("detector", "broken")
    assert "ep_broken_plugin_mod:BrokenDetector" in str(info.value)
    with pytest.raises(PluginError, match="ep_no_such_module_anywhere"):
        create("detector", "absent")
    with pytest.raises(PluginError, match="NoSuchClass"):
        load_class("detector", "noattr")
    assert isinstance(create("detector", "haar"), HaarDetector)
    sys.modules.pop("ep_broken_plugin_mod", None)


def test_setup_py_declares_exactly_the_plugin_table(monkeypatch) -> None:
    """setup.py's entry points come from core/plugin_table.py: the two cannot diverge."""
    import runpy

    import setuptools

    root = Path(__file__).resolve().parents[1]
    captured: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    runpy.run_path(str(root / "setup.py"))
    declared = {group: dict(line.replace(" ", "").split("=", 1) for line in lines)
                for group, lines in captured["entry_points"].items()
                if group in plugins.GROUPS.values()}
    assert declared == plugins.BUILTINS
    assert set(declared) == set(plugins.GROUPS.values())
    assert "emotion_perception.core" not in (root / "setup.py").read_text(), \
        "setup.py lists a plugin by hand instead of reading core/plugin_table.py"


def test_installed_entry_points_match_the_plugin_table() -> None:
    """An install built from an older table (a stale build) shows here, not at runtime."""
    from importlib.metadata import entry_points

    for group, table in plugins.BUILTINS.items():
        installed = {ep.name: ep.value for ep in entry_points(group=group)
                     if ep.value.startswith("emotion_perception.")}
        if not installed:
            pytest.skip("emotion_perception's entry points are not installed")
        assert installed == table, group

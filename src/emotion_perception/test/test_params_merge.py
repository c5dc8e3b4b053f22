"""The one merge/validate path of node parameters (core/params.py) and who uses it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from emotion_perception.core.params import NODE_PARAMS, merge_params, validate

PKG = Path(__file__).resolve().parents[1] / "emotion_perception"


def test_merge_layers_defaults_file_overrides_in_that_order() -> None:
    loaded = {"camera": {"fps": 10.0, "width": 320}, "not_in_graph": {"anything": 1}}
    out = merge_params(["camera", "face_detector"], loaded, {"camera": {"fps": 20}})
    assert set(out) == {"camera", "face_detector"}
    assert out["camera"]["fps"] == 20.0 and isinstance(out["camera"]["fps"], float)
    assert out["camera"]["width"] == 320
    assert out["camera"]["height"] == 480  # the declared default
    assert set(out["face_detector"]) == {p.name for p in NODE_PARAMS["face_detector"]}


def test_merge_refuses_what_the_nodes_would_refuse() -> None:
    with pytest.raises(ValueError, match="'fps' = 0.0 is below its minimum"):
        merge_params(["camera"], {"camera": {"fps": 0}})
    with pytest.raises(ValueError, match="'width' must be of type int"):
        merge_params(["camera"], None, {"camera": {"width": 320.5}})
    with pytest.raises(ValueError, match="'fsp' is not declared for node 'camera'"):
        merge_params(["camera"], {"camera": {"fsp": 15.0}})
    with pytest.raises(ValueError, match="^--set: no node 'cam' in this graph"):
        merge_params(["camera"], None, {"cam": {"fps": 15.0}}, overrides_name="--set")


def test_validate_coerces_only_exact_whole_numbers_for_floats() -> None:
    assert validate("camera", {"fps": 15}) == {"fps": 15.0}
    assert validate("camera", {"loop": True}) == {"loop": True}
    with pytest.raises(ValueError, match="'loop' must be of type bool"):
        validate("camera", {"loop": 1})
    with pytest.raises(ValueError, match="no parameters are declared for node 'nosuch'"):
        validate("nosuch", {})


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("rel", ["live.py", "bags/evaluate.py", "nodes/base.py"])
def test_each_merge_site_uses_the_core_function(rel: str) -> None:
    names = _imported_names(PKG / rel)
    assert {"merge_params", "validate"} & names, f"{rel} must merge/check via core.params"


def test_core_and_builders_do_not_import_the_node_layer() -> None:
    """core/ and builders.py never import nodes/; bags/ read the schema from core/ too."""
    offenders = []
    for path in [PKG / "builders.py", *(PKG / "core").rglob("*.py"),
                 *(PKG / "bags").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            parts = node.module.split(".")
            bad = "nodes" in parts if path.parent.name != "bags" else \
                "nodes" in parts and "params" in parts
            if bad:
                offenders.append(f"{path.relative_to(PKG)}: from {node.module}")
    assert not offenders, offenders


def test_crop_framing_is_declared_by_the_face_detector_only() -> None:
    """The debug node reads the detector's announced framing (crop_framing), no copy."""
    framing = {"crop_margin", "crop_offset", "crop_align"}
    owners = {node for node, params in NODE_PARAMS.items() if framing & {p.name for p in params}}
    assert owners == {"face_detector"}


def test_descriptions_say_what_an_option_does_not_what_it_measured() -> None:
    """Measured figures (accuracy points, ms, percentages) go stale with every model."""
    import re

    figure = re.compile(r"[+-]?\d+(\.\d+)?\s*(%|ms\b|points?\b|pt\b)|quarter of|within \d")
    stale = [f"{node}.{p.name}: {p.description}" for node, params in NODE_PARAMS.items()
             for p in params if figure.search(p.description)]
    config = Path(__file__).resolve().parents[1] / "config" / "emotion_perception.yaml"
    stale += [line for line in config.read_text().splitlines()
              if "#" in line and figure.search(line.split("#", 1)[1])]
    assert not stale, stale

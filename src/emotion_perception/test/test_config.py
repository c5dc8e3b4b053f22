"""The YAML config matches the declared parameters; the graph spec is consistent."""

from __future__ import annotations

import pytest

from conftest import REPO_ROOT
from emotion_perception.graph import graph_spec, load_params_file
from emotion_perception.core.params import NODE_PARAMS, Param, by_name

CONFIG = REPO_ROOT / "config" / "emotion_perception.yaml"


def test_every_yaml_key_is_declared_and_in_range():
    params = load_params_file(CONFIG)
    assert set(params) <= set(NODE_PARAMS), f"unknown nodes {set(params) - set(NODE_PARAMS)}"
    for node, values in params.items():
        declared = by_name(NODE_PARAMS[node])
        for key, value in values.items():
            assert key in declared, f"{node}.{key} in {CONFIG.name} is not a declared parameter"
            declared[key].check(value)


def test_every_declared_parameter_is_in_the_yaml():
    params = load_params_file(CONFIG)
    missing = [f"{node}.{p.name}" for node, declared in NODE_PARAMS.items()
               for p in declared if p.name not in params.get(node, {})]
    assert not missing, f"declared but not in {CONFIG.name}: {missing}"


def test_every_node_of_the_graph_has_parameters_and_yaml():
    params = load_params_file(CONFIG)
    for spec in graph_spec(smoothing=True, debug_image=True):
        assert spec.name in NODE_PARAMS
        assert spec.name in params, f"{spec.name} has no section in {CONFIG.name}"


def test_graph_wiring():
    names = [s.name for s in graph_spec()]
    assert names == ["camera", "face_detector", "emotion_classifier", "emotion_smoother",
                     "emotion_debug_image"]
    ext = {s.name: s for s in graph_spec("/robot/cam", smoothing=False, debug_image=False)}
    assert "camera" not in ext and ext["face_detector"].remappings == {"image": "/robot/cam"}
    assert ext["emotion_classifier"].remappings == {"emotion_raw": "emotion"}


def test_param_check_messages_name_the_parameter():
    p = Param("haar.min_size", 40, "x", 8, 4096)
    with pytest.raises(ValueError, match="haar.min_size.*below its minimum"):
        p.check(2)
    with pytest.raises(ValueError, match="haar.min_size.*type int"):
        p.check("big")
    q = Param("image_qos", "sensor_data", "x", choices=("sensor_data", "reliable"))
    with pytest.raises(ValueError, match="image_qos.*not one of"):
        q.check("fast")


def test_params_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera:\n  source: 0\n")
    with pytest.raises(ValueError, match="ros__parameters"):
        load_params_file(bad)


def test_shipped_presets_hold_declared_parameters_that_change_something():
    from emotion_perception.graph import preset_file

    presets = sorted(p for p in CONFIG.parent.glob("*.yaml") if p != CONFIG)
    assert [p.stem for p in presets] == ["low_cpu"]
    base = load_params_file(CONFIG)
    for path in presets:
        found = preset_file(path.stem)  # the installed copy where installed, else this one
        assert found.name == path.name and found.read_text() == path.read_text()
        values = load_params_file(path)
        assert values, f"{path.name} sets nothing"
        for node, changed in values.items():
            declared = by_name(NODE_PARAMS[node])
            for key, value in changed.items():
                assert key in declared, f"{node}.{key} in {path.name} is not declared"
                declared[key].check(value)
                assert value != base[node][key], f"{path.name}: {node}.{key} is the default"


def test_preset_layers_over_the_params_file_in_live(tmp_path):
    from emotion_perception.graph import preset_file
    from emotion_perception.live import build_parser, node_params

    plain = node_params(build_parser().parse_args([]), graph_spec())
    low = node_params(build_parser().parse_args(["--preset", "low_cpu"]), graph_spec())
    assert plain["emotion_classifier"]["threads"] == 0
    assert low["emotion_classifier"]["threads"] == 1
    assert low["emotion_classifier"]["tta_mirror"] is True  # what the preset does not name
    assert low["face_detector"]["blazeface.input_side"] == 192
    # one look: the default's mirrored scan is what a small CPU gives up first
    assert plain["face_detector"]["blazeface.mirror_pass"] is True
    assert low["face_detector"]["blazeface.mirror_pass"] is False
    assert low["camera"] == plain["camera"]  # what the preset does not name stays
    # an explicit --set still wins over the preset
    mine = node_params(build_parser().parse_args(
        ["--preset", "low_cpu", "--set", "emotion_classifier.threads=2"]), graph_spec())
    assert mine["emotion_classifier"]["threads"] == 2
    own = tmp_path / "mine.yaml"
    own.write_text("/**/face_detector:\n  ros__parameters:\n    blazeface.input_side: 320\n")
    assert preset_file(str(own)) == own
    with pytest.raises(FileNotFoundError, match="shipped presets: low_cpu"):
        preset_file("nosuch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/emotion_classifier:\n  ros__parameters:\n    threads: -1\n")
    with pytest.raises(ValueError, match="threads"):
        node_params(build_parser().parse_args(["--preset", str(bad)]), graph_spec())

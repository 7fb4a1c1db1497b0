"""Experiment config: YAML validation errors are one clear line; overrides win."""

from __future__ import annotations

import pytest

from simla_bench.config import apply_overrides, load_config, parse_config
from simla_bench.errors import ConfigError
from simla_bench.interfaces import resolve_options


def test_default_config_loads():
    cfg = load_config()
    assert cfg.objective_names() == ["itc", "itm", "xmm", "psl"]
    assert set(cfg.tasks) == {"retrieval", "grounding", "vqa", "nlvr2"}
    assert cfg.model.name == "vlp" and cfg.model.options["layout"] == "single_stream"
    # the 5-minute default: the columns its budget can read, the none control, the others named with why
    assert cfg.active_tasks() == ["retrieval"] and cfg.controls == "none"
    assert [r.label for r in cfg.rows()] == ["itc,itm,xmm,psl", "none (control)"]
    assert all(cfg.tasks[t].note and "docs/tasks.md" in cfg.tasks[t].note for t in ("grounding", "vqa", "nlvr2"))
    assert apply_overrides(cfg, tasks="all").active_tasks() == ["retrieval", "grounding", "vqa", "nlvr2"]


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("pretrain:\n  stepz: 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.one_line()
    assert str(path) in message and "pretrain.stepz" in message and "steps" in message
    assert "\n" not in message


def test_wrong_type_names_key_and_value(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("pretrain:\n  lr: fast\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "pretrain.lr" in str(info.value) and "fast" in str(info.value)


def test_bad_literal_lists_choices():
    from simla_bench.plugins.models.vlp_plugin import VLPRecipe

    with pytest.raises(ConfigError) as info:
        VLPRecipe("vlp", {"layout": "dual"})
    assert "option 'layout'" in str(info.value) and "single_stream" in str(info.value)


def test_legacy_model_section_reads_as_vlp_options():
    """Configs written before models were plugins keep working: the vlp model's
    options directly under model: are read as model.options."""
    cfg = parse_config({"model": {"layout": "split", "fusion_layers": 3}}, "old.yaml")
    assert cfg.model.name == "vlp" and cfg.model.options == {"layout": "split", "fusion_layers": 3}
    with pytest.raises(ConfigError, match="write it under model.options"):
        parse_config({"model": {"name": "vlp", "layout": "split"}}, "mixed.yaml")


def test_unknown_model_option_is_one_line_naming_allowed():
    from simla_bench.plugins.models.vlp_plugin import VLPRecipe

    with pytest.raises(ConfigError) as info:
        VLPRecipe("vlp", {"pretrained": "/x"})
    msg = str(info.value)
    assert "unknown option 'pretrained'" in msg and "checkpoint" in msg and "\n" not in msg


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not valid YAML" in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError) as info:
        load_config("/nonexistent/exp.yaml")
    assert "does not exist" in str(info.value)


def test_undefined_dataset_reference():
    with pytest.raises(ConfigError) as info:
        parse_config({"tasks": {"vqa": {"dataset": "coco"}}})
    assert "tasks.vqa.dataset" in str(info.value) and "coco" in str(info.value)


def test_objectives_shorthands():
    cfg = parse_config({"objectives": {"itc": 0.5, "psl": None}})
    assert cfg.objectives["itc"].weight == 0.5 and cfg.objectives["psl"].weight == 1.0
    cfg = parse_config({"objectives": ["itc", "itm"]})
    assert cfg.objective_names() == ["itc", "itm"]


def test_cli_overrides_win(tmp_path):
    base = load_config()
    cfg = apply_overrides(base, objectives="itc,xmm", tasks="vqa", seeds="0,1,2", out=str(tmp_path), world="tiny",
                          data_fractions="0.1,1.0")
    assert cfg.objective_names() == ["itc", "xmm"]
    assert list(cfg.tasks) == ["vqa"] and cfg.tasks["vqa"].dataset == "world"
    assert cfg.seeds == [0, 1, 2] and cfg.output_dir == str(tmp_path)
    assert cfg.datasets["world"].options["preset"] == "tiny"
    assert cfg.data_fractions == [0.1, 1.0]
    with pytest.raises(ConfigError):
        apply_overrides(base, seeds="a,b")


def test_base_extends_another_file(tmp_path):
    (tmp_path / "parent.yaml").write_text("pretrain:\n  steps: 7\n  lr: 0.001\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\npretrain:\n  steps: 9\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.pretrain.steps == 9 and cfg.pretrain.lr == 0.001


def test_component_options_are_validated():
    assert resolve_options("task 'x'", {"k": 5, "lr": 1e-3}, {"lr": 1}) == {"k": 5, "lr": 1.0}
    with pytest.raises(ConfigError) as info:
        resolve_options("task 'x'", {"k": 5}, {"kk": 3})
    assert "unknown option(s) kk" in str(info.value) and "allowed: k" in str(info.value)
    with pytest.raises(ConfigError):
        resolve_options("task 'x'", {"k": 5}, {"k": "five"})


def test_child_config_replaces_task_and_objective_sets(tmp_path):
    (tmp_path / "parent.yaml").write_text("objectives: [itc, itm]\ntasks: [vqa, nlvr2]\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntasks:\n  retrieval: {}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert list(cfg.tasks) == ["retrieval"]
    assert cfg.objective_names() == ["itc", "itm"]


def test_legacy_child_config_extends_a_new_form_base(tmp_path):
    """A config written before 0.3 that says `base: default.yaml` and puts vlp options directly under
    model: still merges into the base's model.options."""
    path = tmp_path / "old.yaml"
    path.write_text("base: default.yaml\nmodel:\n  layout: split\n  fusion_layers: 1\n")
    cfg = load_config(path)
    assert cfg.model.name == "vlp"
    assert cfg.model.options["layout"] == "split" and cfg.model.options["fusion_layers"] == 1
    assert cfg.model.options["text_pool"] == "mean"  # the base's options are kept

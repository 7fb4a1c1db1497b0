"""The ``model`` kind: a third-party model recipe registers through the same
hook as the built-in ``vlp`` and runs through ``simla-bench run`` unchanged;
a target that is not a ModelPlugin, or a bad option, is refused in one line."""

from __future__ import annotations

import pytest
from test_registry_plugins import _plugin

from simla_bench.errors import ConfigError, PluginError
from simla_bench.testing.plugin_kit import TINY_MODEL


def _tiny_recipe():
    from simla_bench.plugins.models.vlp_plugin import VLPRecipe

    class TinyVLP(VLPRecipe):
        """The vlp model with the test kit's tiny shape as its defaults (a third party's own family)."""

        def validate_options(self, given):
            return super().validate_options({**TINY_MODEL, "text_pool": "mean", **given})

    return TinyVLP


def test_builtin_model_is_listed_with_its_origin(simla_registry):
    entry = simla_registry.get("model", "vlp")
    assert entry.plugin.dist_name == "simla-bench" and "SIMLA" in entry.summary
    assert [e.name for e in simla_registry.list("models", "vl*")] == ["vlp"]


def test_third_party_model_runs_through_the_runner(simla_registry, simla_tiny_world, tmp_path):
    """Registered in-process like an entry point would; the runner builds it by name, pretrains a few
    steps and scores retrieval; the record names the model and its options."""
    from simla_bench.config import parse_config
    from simla_bench.runner.matrix import MatrixRunner
    from simla_bench.runner.pipeline import DefaultPipeline

    simla_registry.add_plugin(_plugin(register_models=lambda register: register(
        "tiny_vlp", _tiny_recipe(), "tiny vlp defaults")))
    root = str(simla_tiny_world.root)
    cfg = parse_config({
        "device": "cpu", "output_dir": str(tmp_path / "run"),
        "model": {"name": "tiny_vlp", "options": {"embed_dim": 24}},
        "datasets": {"world": {"source": "world", "options": {"preset": "tiny", "root": root}}},
        "objectives": ["itc"], "pretrain": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "checkpoint_every": 3},
        "tasks": {"retrieval": {"options": {"mode": "zero_shot", "k": 10}}},
    })
    result = MatrixRunner(cfg, simla_registry, DefaultPipeline(), cfg.output_dir).run()
    assert not result.failures, result.failures
    (record,) = result.records
    assert record["config"]["model"] == {"name": "tiny_vlp", "options": {"embed_dim": 24}}
    assert 0.0 <= record["metrics"]["test/r_mean"] <= 100.0


def test_model_target_must_be_a_model_plugin(simla_registry):
    simla_registry.add_plugin(_plugin(register_models=lambda register: register("bad", dict, "not a recipe")))
    with pytest.raises(PluginError, match="not a subclass of simla_bench.interfaces.ModelPlugin"):
        simla_registry.load("model", "bad")


def test_bad_model_option_and_capability_hint_come_from_the_recipe(simla_registry):
    from simla_bench.assemble import model_recipe
    from simla_bench.config import ModelConfig

    with pytest.raises(ConfigError, match="model 'vlp': option 'fusion_layers'"):
        model_recipe(ModelConfig(name="vlp", options={"fusion_layers": -1}))
    recipe = model_recipe(ModelConfig(name="vlp", options={"layout": "split", "fusion_layers": 0}))
    assert "fusion_layers > 0" in recipe.capability_hints["fusion"]
    assert "fusion_layers=0" in recipe.describe()

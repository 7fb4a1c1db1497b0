"""Every ready config under configs/eval/ (released ALBEF/SIMLA checkpoints)
validates as a whole before a user points it at data: the experiment, the
model recipe's options, each task's and each dataset's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from simla_bench.config import CONFIG_DIR, load_config

EVAL_CONFIGS = sorted((CONFIG_DIR / "eval").glob("*.yaml"))


def test_there_is_a_config_per_released_checkpoint():
    names = {p.stem for p in EVAL_CONFIGS}
    assert {"albef_flickr30k", "albef_mscoco", "albef_zeroshot_flickr30k", "albef_refcoco", "albef_vqa",
            "albef_nlvr2", "albef_4m_zeroshot_flickr30k", "albef_4m_finetune", "simla_zeroshot_flickr30k",
            "simla_finetune"} <= names


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.stem)
def test_eval_config_validates(path: Path):
    from simla_bench.assemble import model_recipe
    from simla_bench.registry import get_registry

    cfg = load_config(path)
    registry = get_registry()
    recipe = model_recipe(cfg.model, registry)
    assert recipe.options["preset"] in ("albef", "simla") and recipe.options["text_pool"] == "cls"
    assert recipe.options["normalize"] == "clip" and recipe.options["special_tokens"] == "albef"
    assert cfg.pretrain.steps == 0 and recipe.options["checkpoint"]
    for name, tc in cfg.tasks.items():
        registry.load("task", name)(name, tc.options)
        ds = cfg.datasets[tc.dataset]
        registry.load("dataset", ds.source)(tc.dataset, ds.options)
    # no pretraining, so the pretraining dataset is one the tasks read anyway (the world is never generated)
    if cfg.tasks:  # the *_base.yaml files name no task
        assert cfg.pretrain.dataset in {tc.dataset for tc in cfg.tasks.values()}


def test_text_length_has_one_owner(tiny_world):
    """Tasks read the model's max_text_len (the recipe's option), the value pretraining uses."""
    from simla_bench.tasks.data import text_max_len
    from simla_bench.testing.plugin_kit import tiny_model

    model = tiny_model(tiny_world, max_text_len=17)
    assert model.max_text_len == 17
    assert text_max_len(model, {"max_text_len": 0}) == 17
    assert text_max_len(model, {"max_text_len": 30}) == 30  # a task's own option still wins

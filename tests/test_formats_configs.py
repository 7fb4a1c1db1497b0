"""configs/datasets/*.yaml: every real-dataset example config loads, names a registered source,
and passes that source's option check; pointing it at missing files is a one-line DataError."""

from __future__ import annotations

from pathlib import Path

import pytest

from simla_bench.config import load_config
from simla_bench.errors import DataError

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "datasets").glob("*.yaml"))
EXPECTED = {"albef_pretrain", "coco_karpathy", "flickr30k", "refcoco+", "vqa_v2", "nlvr2"}


def test_one_config_per_real_dataset():
    assert {p.stem for p in CONFIGS} == EXPECTED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_options_validate(path, simla_registry, tmp_path, monkeypatch):
    cfg = load_config(path)
    real = [(n, dc) for n, dc in cfg.datasets.items() if dc.source == path.stem]
    assert len(real) == 1
    name, dc = real[0]
    source = simla_registry.load("dataset", dc.source)(name, dc.options)
    monkeypatch.chdir(tmp_path)  # the example paths do not exist here
    kind = source.provides[0]
    split = {"pretrain": "train", "retrieval": "test", "grounding": "val", "vqa": "val", "nlvr2": "dev"}[kind]
    with pytest.raises(DataError) as info:
        source.load(kind, split)
    assert "does not exist" in info.value.one_line()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_real_data_configs_pretrain_on_real_pairs_with_a_real_tokenizer(path):
    """A config that evaluates real data must not pretrain on the world nor learn its tokenizer
    from world captions (was: every one inherited pretrain.dataset: world and a world WordPiece)."""
    cfg = load_config(path)
    real_tasks = [t for t, tc in cfg.tasks.items() if cfg.datasets[tc.dataset].source != "world"]
    pretrain_source = cfg.datasets[cfg.pretrain.dataset].source
    if real_tasks or path.stem == "albef_pretrain":
        assert pretrain_source != "world", f"{path.name} evaluates {real_tasks} but pretrains on the world"
        assert cfg.model.options.get("tokenizer"), f"{path.name} learns its tokenizer from pretraining captions"
        assert cfg.model.options.get("preset") in ("albef", "simla")

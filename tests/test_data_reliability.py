"""Issue 16, data: real data files in the key, an immutable world, validation before work,
real-data configs, ``base:`` resolution, backbone options and load reports, ALBEF's files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simla_bench.config import CONFIG_DIR, load_config
from simla_bench.errors import ConfigError


# ------------------------------------------------------------------ base: resolved relative to the file
def test_copied_dataset_config_finds_its_packaged_base(tmp_path):
    copy = tmp_path / "mine" / "coco_karpathy.yaml"
    copy.parent.mkdir()
    shutil.copy(CONFIG_DIR / "datasets" / "coco_karpathy.yaml", copy)
    cfg = load_config(copy)
    assert cfg.tasks["retrieval"].dataset == "coco"
    assert cfg.model.name == load_config().model.name  # default.yaml's model came through


def test_base_next_to_the_file_wins_and_a_missing_base_names_both_places(tmp_path):
    (tmp_path / "default.yaml").write_text("name: local_parent\nseeds: [7]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("base: ../default.yaml\n")
    assert load_config(tmp_path / "sub" / "child.yaml").seeds == [7]
    (tmp_path / "orphan.yaml").write_text("base: ../nowhere/parent_of_nothing.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "orphan.yaml")
    assert str(tmp_path) in str(err.value) and str(CONFIG_DIR) in str(err.value)
    assert "\n" not in str(err.value)

"""A configured task with ``enabled: false`` is not a column unless named (``--tasks all``/``--tasks NAME``)."""

from __future__ import annotations

import pytest

from simla_bench.config import apply_overrides, parse_config
from simla_bench.errors import ConfigError
from simla_bench.runner.cells import expand

BASE = {"objectives": ["itc"], "tasks": {"retrieval": {}, "nlvr2": {"enabled": False, "note": "at chance here"}}}


def test_disabled_task_is_left_out_with_a_note():
    matrix = expand(parse_config(BASE, "t"))
    assert matrix.tasks == ["retrieval"]
    assert any("task 'nlvr2' is left out of this run: at chance here (--tasks all or --tasks nlvr2 runs it)" == n
               for n in matrix.notes)


def test_tasks_all_runs_every_configured_task_in_order():
    cfg = apply_overrides(parse_config(BASE, "t"), tasks="all")
    assert expand(cfg).tasks == ["retrieval", "nlvr2"]
    assert cfg.tasks["nlvr2"].options == {} and cfg.tasks["nlvr2"].note == "at chance here"


def test_naming_a_disabled_task_runs_it():
    cfg = apply_overrides(parse_config(BASE, "t"), tasks="nlvr2")
    assert expand(cfg).tasks == ["nlvr2"]
    assert not expand(cfg).notes


def test_all_with_names_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="--tasks all cannot be combined"):
        apply_overrides(parse_config(BASE, "t"), tasks="all,vqa")


def test_only_disabled_tasks_says_how_to_run_them():
    cfg = parse_config({"objectives": ["itc"], "tasks": {"nlvr2": {"enabled": False}}}, "t")
    with pytest.raises(ConfigError, match="no tasks to run") as err:
        expand(cfg)
    assert "--tasks all" in str(err.value.hint)

"""Cell keys (what changes them and what does not), atomic writes, record
validation, the plain progress display and the loss-curve checks."""

from __future__ import annotations

import io
import json
import os

import pytest

from simla_bench.errors import PluginError
from simla_bench.runner import curves
from simla_bench.runner.matrix import MatrixRunner
from simla_bench.training.data import subset_records
from simla_bench.runner.progress import PlainProgress, Progress, make_progress
from simla_bench.runner.store import atomic_write_json, validate_record
from helpers.runner_fakes import FakePipeline, make_config, make_registry


def keys_of(cfg, tmp_path):
    runner = MatrixRunner(cfg, make_registry(), FakePipeline(), tmp_path / "unused")
    matrix = runner.matrix()
    data = FakePipeline().prepare(cfg, runner.registry, ["world"], lambda **k: None)
    return {(pc.cell.row.objective_set, pc.cell.seed, pc.cell.task): pc.key for pc in runner.plan(matrix, data)}


def one_key(cfg, tmp_path):
    return keys_of(cfg, tmp_path)[(frozenset({"itc", "itm"}), 0, "toy")]


def test_key_ignores_what_does_not_change_results(tmp_path):
    base = one_key(make_config(tmp_path), tmp_path)
    assert one_key(make_config(tmp_path, output_dir="elsewhere", name="other"), tmp_path) == base
    assert one_key(make_config(tmp_path, objectives={"itm": {}, "itc": {}}), tmp_path) == base  # a set
    assert one_key(make_config(tmp_path, seeds=[0, 5], tasks={"toy": {}}), tmp_path) == base
    assert one_key(make_config(tmp_path, pretrain={"steps": 6, "checkpoint_every": 3}), tmp_path) == base
    assert one_key(make_config(tmp_path, device="cuda"), tmp_path) == base


@pytest.mark.parametrize("change", [
    {"pretrain": {"steps": 7, "checkpoint_every": 2}},
    {"objectives": {"itc": {"weight": 0.5}, "itm": {}}},
    {"objectives": {"itc": {"options": {"rate": 0.2}}, "itm": {}}},
    {"tasks": {"toy": {"options": {"n": 100}}, "toy2": {}}},
    {"datasets": {"world": {"source": "fakeworld", "options": {"version": "v2"}}}},
    {"model": {"embed_dim": 64}},
])
def test_key_changes_with_what_determines_results(tmp_path, change):
    assert one_key(make_config(tmp_path, **change), tmp_path) != one_key(make_config(tmp_path), tmp_path)


def test_key_depends_on_seed_and_task(tmp_path):
    keys = keys_of(make_config(tmp_path, seeds=[0, 1]), tmp_path)
    assert len(set(keys.values())) == 4


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    path = tmp_path / "x" / "r.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["r.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # readable like any other file, not 0600


def test_validate_record_names_the_problem():
    assert validate_record([]) == "not a JSON object"
    assert "missing field" in validate_record({"schema": 1})
    assert validate_record({"schema": 2, "key": "k"}) == "schema 2, expected 1"  # named before its fields


def test_subsets_are_nested_and_deterministic():
    recs = list(range(100))
    small, big = subset_records(recs, 0.1), subset_records(recs, 0.5)
    assert len(small) == 10 and len(big) == 50 and set(small) <= set(big)
    assert small == subset_records(recs, 0.1)
    assert subset_records(recs, 1.0) == recs


def test_curve_check_names_objective_and_step():
    curves.check_finite([{"step": 1, "itc": 1.0}])
    with pytest.raises(PluginError, match="objective 'psl' became nan at pretraining step 7"):
        curves.check_finite([{"step": 6, "psl": 1.0}, {"step": 7, "psl": float("nan")}])
    with pytest.raises(PluginError, match="total loss became inf"):
        curves.check_finite([1.0, float("inf")])


def test_curve_summary_thins_and_keeps_last():
    s = curves.summarise([{"step": i, "itc": 10.0 / i} for i in range(1, 201)], max_points=50)
    assert s["points"] == 200 and len(s["curve"]) <= 51 and s["curve"][-1]["step"] == 200
    assert s["losses"]["itc"]["first"] == 10.0 and s["losses"]["itc"]["min"] == 10.0 / 200


def test_plain_progress_lines_and_quiet_mode(tmp_path):
    out = io.StringIO()
    p = PlainProgress(out)
    p.run_start(4, 1, "runs/x")
    p.row_start("itc", 0, 10)
    cb = p.pretrain_callback()
    for step in range(1, 11):
        cb(step=step, total=10, losses={"itc": 1.0 / step}, pairs_per_s=50.0)
    p.cell_done("done", "toy [itc] seed 0: test/acc = 50.00")
    text = out.getvalue()
    assert "4 cells, 1 already finished" in text and "step 10/10 itc=0.100 50.0 pairs/s" in text
    assert "[2/4] done" in text
    assert type(make_progress(quiet=True)) is Progress
    assert isinstance(make_progress(stream=io.StringIO()), PlainProgress)  # not a TTY


def test_runner_progress_output_in_plain_mode(tmp_path):
    out = io.StringIO()
    cfg = make_config(tmp_path)
    MatrixRunner(cfg, make_registry(), FakePipeline(), cfg.output_dir, progress=PlainProgress(out)).run()
    text = out.getvalue()
    assert "pretraining [itc,itm] seed 0: 6 steps" in text and "task toy2 [itc,itm] seed 0" in text


def test_rich_progress_drives_a_whole_run(tmp_path):
    from rich.console import Console

    from simla_bench.runner.progress import RichProgress

    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, force_terminal=True, width=120))
    cfg = make_config(tmp_path)
    try:
        result = MatrixRunner(cfg, make_registry(), FakePipeline(), cfg.output_dir, progress=progress).run()
    finally:
        progress.close()
    text = buf.getvalue()
    assert not result.failures
    assert "pretrain itc,itm s0" in text and "done" in text and "pairs/s" in text

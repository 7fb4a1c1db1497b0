"""Rows named by model, n/a cells, one leaderboard: a matrix that mixes a simla-bench
row with Hugging Face rows runs through the real pipeline and prints one leaderboard
whose cells a model cannot run are n/a (never a number, never in a mean) in every
report format; ``simla-bench run --model hf_clip:PATH`` evaluates one checkpoint."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml
from click.testing import CliRunner

from helpers import hf_checkpoints as hc
from simla_bench.cli import main
from simla_bench.report import export, leaderboard
from simla_bench.runner.store import SCHEMA_VERSION
from simla_bench.testing.plugin_kit import TINY_MODEL

TASKS = {"retrieval": {"options": {"max_steps": 1, "batch_size": 8, "eval_splits": ["test"]}},
         "grounding": {"options": {"max_steps": 1, "batch_size": 8, "eval_splits": []}}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def experiment(tmp_path, world, **extra) -> str:
    cfg = {"name": "hf", "datasets": {"world": {"source": "world", "options": dict(world.options)}},
           "model": {"name": "vlp", "options": TINY_MODEL}, "objectives": ["itc"],
           "pretrain": {"steps": 1, "batch_size": 8, "warmup_steps": 0}, "tasks": TASKS, **extra}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return str(path)


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_a_matrix_mixing_families_prints_one_leaderboard_with_na_cells(tmp_path, tiny_world):
    clip, blip = hc.clip(tiny_world, tmp_path / "clip"), hc.blip(tiny_world, tmp_path / "blip")
    matrix = [{"name": "simla-bench itc", "objectives": ["itc"]},
              {"objectives": [], "model": {"name": "hf_clip", "options": {"path": str(clip)}}},
              {"objectives": [], "model": {"name": "hf_blip", "options": {"path": str(blip)}}}]
    config = experiment(tmp_path, tiny_world, matrix=matrix)
    out = tmp_path / "run"
    result = invoke("run", "--config", config, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert "n/a" in result.output and "hf_clip" in result.output and "hf_blip" in result.output
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    by_row = {(r["row"], r["task"]): r for r in records}
    assert set(by_row) == {(row, task) for row in ("simla-bench itc", "hf_clip", "hf_blip") for task in TASKS}
    na = by_row[("hf_clip", "grounding")]["not_applicable"]
    assert na["model"] == "hf_clip" and na["missing"] == ["fusion", "itm_head"] and "hf_blip" in na["hint"]
    assert by_row[("hf_clip", "grounding")]["metrics"] == {}
    assert [r for r in records if r.get("not_applicable")] == [by_row[("hf_clip", "grounding")]]
    assert by_row[("hf_blip", "grounding")]["pretrain"]["steps"] == 0  # evaluated as loaded
    assert by_row[("simla-bench itc", "grounding")]["pretrain"]["steps"] == 1
    assert by_row[("hf_clip", "retrieval")]["config"]["model"]["name"] == "hf_clip"

    md = invoke("report", out, "--format", "markdown")
    assert md.exit_code == 0, md.output
    lines = md.output.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    clip = [c.strip() for c in next(line for line in lines if line.startswith("| hf_clip |")).strip("|").split("|")]
    cells = dict(zip(header, clip))
    assert cells["grounding val/acc ↑"] == "n/a" and float(cells["retrieval test/r_mean ↑"].strip("*")) >= 0
    assert "n/a: hf_clip does not run grounding: the model lacks fusion, itm_head" in md.output

    again = invoke("run", "--config", config, "--out", out)
    assert again.exit_code == 0 and "0 cells computed, 6 reused" in again.output  # the n/a records included


def test_run_model_option_evaluates_one_checkpoint(tmp_path, tiny_world):
    clip = hc.clip(tiny_world, tmp_path / "clip")
    out = tmp_path / "run"
    result = invoke("run", "--config", experiment(tmp_path, tiny_world), "--model", f"hf_clip:{clip}",
                    "--tasks", "retrieval,grounding", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert {r["row"] for r in records} == {"hf_clip:clip"}
    assert {r["task"]: bool(r.get("not_applicable")) for r in records} == {"retrieval": False, "grounding": True}
    assert all(r["pretrain"].get("steps", 0) == 0 for r in records)


@pytest.mark.parametrize("spec, message", [
    ("hf_clp:/x", "did you mean 'hf_clip'"),
    ("vlp:/x.pth", "takes no PATH"),
    ("hf_clip:", "PATH after ':' is empty"),
    ("hf_clip:/does/not/exist", "not a local directory"),
])
def test_run_model_option_errors_are_one_line(tmp_path, tiny_world, spec, message):
    result = invoke("run", "--config", experiment(tmp_path, tiny_world), "--model", spec, "--tasks", "retrieval",
                    "--out", tmp_path / "run", "-q")
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------ the report of n/a cells, every format
def _record(row, task, seed, acc=None, na=None):
    metric = "test/acc"
    record = {
        "schema": SCHEMA_VERSION, "key": f"{row}-{task}-{seed}", "row": row, "row_key": f"rk-{row}",
        "pretrain_key": f"pk-{row}", "objectives": [] if na or row.startswith("hf") else ["itc"],
        "objective_config": {}, "data_fraction": 1.0, "seed": seed, "task": task, "task_version": "1",
        "primary_metric": metric, "directions": {metric: "higher"} if acc is not None else {},
        "metrics": {metric: float(acc)} if acc is not None else {},
        "per_example": {metric: [1.0] * int(acc) + [0.0] * (100 - int(acc))} if acc is not None else {},
        "extra": {}, "config": {}, "key_parts": {}, "data_manifest": {}, "versions": {}, "device": {"name": "cpu"},
        "timings": {"task_seconds": 0.0, "pretrain_seconds": None, "pretrain_reused": False}, "pretrain": {},
        "created": "2026-01-01T00:00:00+00:00"}
    if na:
        record["not_applicable"] = {"model": "hf_clip", "missing": na, "hint": "use hf_blip or hf_vilt"}
    return record


@pytest.fixture
def records():
    recs = []
    for seed in (0, 1):
        recs += [_record("itc", "retrieval", seed, 40 + seed), _record("itc", "grounding", seed, 30 + seed),
                 _record("hf_clip", "retrieval", seed, 60 + seed),
                 _record("hf_clip", "grounding", seed, na=["fusion", "itm_head"])]
    return recs


@pytest.fixture
def board(records):
    return leaderboard.build(records, baseline="itc")


def test_na_cells_are_in_no_mean_best_or_comparison(board, records):
    rows = {r.label: r for r in board.rows}
    grounding = next(c for c in board.columns if c.task == "grounding")
    assert board.stat(rows["hf_clip"], grounding) is None
    assert board.na(rows["hf_clip"], grounding)["missing"] == ["fusion", "itm_head"]
    assert board.stat(rows["itc"], grounding).best  # the only scored row is the best
    retrieval = next(c for c in board.columns if c.task == "retrieval")
    assert board.stat(rows["hf_clip"], retrieval).delta == pytest.approx(20.0)
    assert [r.label for r in leaderboard.build(records, sort="grounding").rows] == ["itc", "hf_clip"]  # n/a last


def test_na_cells_read_na_in_every_format(board, tmp_path):
    md = export.to_markdown(board)
    assert "| hf_clip | **60.50 ± 0.71 (+20.00*)** | n/a |" in md
    assert "n/a: hf_clip does not run grounding: the model lacks fusion, itm_head" in md
    latex = export.to_latex(board)
    assert r"hf\_clip & \textbf{60.50 $\pm$ 0.71 (+20.00*)} & n/a \\" in latex and "% n/a: hf_clip" in latex
    rows = list(csv.DictReader(io.StringIO(export.to_csv(board))))
    na_rows = [r for r in rows if r["status"] == "n/a"]
    assert len(na_rows) == 1 and na_rows[0]["row"] == "hf_clip" and na_rows[0]["mean"] == ""
    assert na_rows[0]["missing"] == "fusion itm_head"
    data = {r["row"]: r for r in json.loads(export.to_json(board))}
    assert data["hf_clip"]["tasks"]["grounding"]["test/acc"] == {
        "status": "n/a", "primary": True, "model": "hf_clip", "missing": ["fusion", "itm_head"],
        "hint": "use hf_blip or hf_vilt"}
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(export.to_rich(board))
    text = " ".join(console.export_text().split())  # the caption wraps
    assert "│ n/a │" in text and "the model lacks fusion, itm_head" in text


def test_na_cells_are_labelled_in_the_plot(board, tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from simla_bench.report import plot

    texts = []
    original = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        texts.append(s)
        return original(self, x, y, s, *args, **kwargs)

    matplotlib.axes.Axes.text = spy
    try:
        path = plot.plot(board, tmp_path / "board.png")
    finally:
        matplotlib.axes.Axes.text = original
        plt.close("all")
    assert path.is_file() and texts.count("n/a") == 1

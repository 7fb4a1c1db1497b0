"""The leaderboard from stored records: golden Markdown, best/delta/marks,
exports (CSV, JSON, LaTeX), plots, merging run directories, bad input."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.errors import UserError
from simla_bench.report import export, leaderboard
from simla_bench.report.records import load_run_dirs
from simla_bench.runner.store import SCHEMA_VERSION, IncompatibleRunDirError, RunStore

GOLDEN = Path(__file__).parent / "golden"
N = 100


def scores(right: int) -> list[float]:
    """Per-example scores: the first ``right`` of N examples correct (nested, so paired)."""
    return [1.0] * right + [0.0] * (N - right)


def record(row, objectives, seed, task, acc, extra=None, fraction=1.0, key=None):
    metrics = {"test/acc": float(acc), **(extra or {})}
    return {
        "schema": SCHEMA_VERSION, "key": key or f"{row}-{fraction}-{seed}-{task}".replace(",", "_").replace(" ", ""),
        "row": row, "row_key": f"rk-{row}-{fraction}", "pretrain_key": f"pk-{row}-{seed}", "objectives": objectives,
        "objective_config": {}, "extra": {}, "key_parts": {}, "data_fraction": fraction, "seed": seed, "task": task, "task_version": "1", "primary_metric": "test/acc",
        "directions": {"test/acc": "higher", "test/loss": "lower"}, "metrics": metrics,
        "per_example": {"test/acc": scores(int(acc))}, "config": {}, "data_manifest": {}, "versions": {},
        "device": {"name": "cpu"},
        "timings": {"task_seconds": 1.0, "pretrain_seconds": 2.0, "pretrain_reused": False}, "pretrain": {}, "created": "2026-01-01T00:00:00+00:00",
    }


def fixed_records():
    """Three rows x two seeds x two tasks with hand-chosen accuracies."""
    table = {  # row -> task -> (seed0, seed1)
        "itc": {"retrieval": (50, 52), "vqa": (40, 40)},
        "itc,itm": {"retrieval": (70, 72), "vqa": (41, 41)},
        "itc,itm,xmm,psl": {"retrieval": (80, 84), "vqa": (40, 42)},
    }
    recs = []
    for row, tasks in table.items():
        for task, accs in tasks.items():
            for seed, acc in enumerate(accs):
                recs.append(record(row, row.split(","), seed, task, acc, {"test/loss": round(1 - acc / 100, 2)}))
    return recs


def write_run(path: Path, recs) -> Path:
    store = RunStore(path)
    store.ensure()
    for r in recs:
        store.write_record(r)
    rows = list(dict.fromkeys(r["row_key"] for r in recs))
    store.update_manifest({"schema": SCHEMA_VERSION, "rows": [{"row_key": k} for k in rows],
                           "cells": [{"key": r["key"], "task": r["task"]} for r in recs], "runs": []})
    return path


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SIMLA_BENCH_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_markdown_golden_with_baseline():
    board = leaderboard.build(fixed_records(), baseline="itc", n_boot=1000)
    check_golden("leaderboard.md", export.to_markdown(board))


def test_markdown_golden_detail_without_baseline():
    board = leaderboard.build(fixed_records(), detail=True)
    check_golden("leaderboard_detail.md", export.to_markdown(board))


def test_numbers_best_delta_and_marks():
    board = leaderboard.build(fixed_records(), baseline="itc", n_boot=1000, detail=True)
    rows = {r.label: r for r in board.rows}
    col = next(c for c in board.columns if c.task == "retrieval" and c.metric == "test/acc")
    s = board.stat(rows["itc,itm,xmm,psl"], col)
    assert (s.mean, round(s.std, 6), s.n) == (82.0, round(2 * 2 ** 0.5, 6), 2)
    assert s.best and s.delta == 31.0 and s.significant  # 82 vs 51 on 100 paired examples
    vqa = next(c for c in board.columns if c.task == "vqa" and c.metric == "test/acc")
    t = board.stat(rows["itc,itm"], vqa)
    assert t.delta == 1.0 and not t.significant  # one example of a hundred
    loss = next(c for c in board.columns if c.metric == "test/loss" and c.task == "retrieval")
    assert loss.direction == "lower" and board.stat(rows["itc,itm,xmm,psl"], loss).best
    assert board.stat(rows["itc"], col).delta is None  # the baseline itself


def test_baseline_by_objective_set_and_unknown_baseline():
    board = leaderboard.build(fixed_records(), baseline="itm,itc")
    assert board.baseline.label == "itc,itm"
    with pytest.raises(UserError, match="did you mean 'itc,itm'"):
        leaderboard.build(fixed_records(), baseline="itc,itn")


def test_csv_json_latex_exports():
    board = leaderboard.build(fixed_records(), baseline="itc", n_boot=500)
    rows = list(csv.DictReader(io.StringIO(export.to_csv(board))))
    assert len(rows) == 6
    r = next(x for x in rows if x["row"] == "itc,itm" and x["task"] == "retrieval")
    assert (float(r["mean"]), r["n"], r["significant"]) == (71.0, "2", "1") and float(r["delta"]) == 20.0
    data = json.loads(export.to_json(board))
    assert [d["objectives"] for d in data] == [["itc"], ["itc", "itm"], ["itc", "itm", "xmm", "psl"]]
    assert data[2]["tasks"]["retrieval"]["test/acc"]["mean"] == 82.0
    assert set(data[2]["tasks"]["retrieval"]["test/acc"]) >= {"mean", "std", "n", "delta", "p_value"}
    assert data[0]["baseline"] is True
    tex = export.to_latex(board)
    assert tex.startswith("\\begin{tabular}{lrr}") and "\\textbf{82.00 $\\pm$ 2.83 (+31.00*)}" in tex
    assert "retrieval test/acc" in tex and "\\bottomrule" in tex
    assert export.latex_escape("a_b & 5%") == "a\\_b \\& 5\\%"


def test_plot_bars_and_data_efficiency_curve(tmp_path):
    board = leaderboard.build(fixed_records())
    path = tmp_path / "m.png"
    from simla_bench.report.plot import plot

    plot(board, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    recs = [record("itc", ["itc"], 0, "vqa", acc, fraction=f) for f, acc in ((0.1, 30), (0.5, 40), (1.0, 45))]
    sweep = leaderboard.build(recs)
    plot(sweep, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > path.stat().st_size / 2


def test_merge_run_dirs_deduplicates_and_skips_corrupt(tmp_path, capsys):
    recs = fixed_records()
    a = write_run(tmp_path / "a", recs[:8])
    b = write_run(tmp_path / "b", recs[4:])  # overlaps a on four cells
    (b / "cells" / "broken.json").write_text("{")
    loaded = load_run_dirs([a, b])
    assert len(loaded.records) == 12 and loaded.duplicates == 4
    assert any("broken.json" in w for w in loaded.warnings)
    assert [r["row"] for r in loaded.records][:4] == ["itc"] * 4  # manifest order kept


def test_report_cli_formats_out_and_plot(tmp_path):
    run = write_run(tmp_path / "r", fixed_records())
    res = CliRunner().invoke(main, ["report", str(run), "--format", "markdown", "--baseline", "itc", "--bootstrap", "1000"])
    assert res.exit_code == 0
    assert res.output == (GOLDEN / "leaderboard.md").read_text()
    res = CliRunner().invoke(main, ["report", str(run), "--format", "latex", "--out", str(tmp_path / "t.tex"),
                                    "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0 and (tmp_path / "t.tex").read_text().startswith("\\begin{tabular}")
    assert (tmp_path / "p.png").exists()
    res = CliRunner().invoke(main, ["report", str(run), "--detail"])
    assert res.exit_code == 0 and "test/loss" in res.output.replace("\n", " ")


def test_report_bad_input(tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    empty = tmp_path / "empty"
    RunStore(empty).ensure()
    res = CliRunner().invoke(main, ["report", str(empty)])
    assert res.exit_code == 2 and "no finished cells" in res.output
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"schema": 0}))
    with pytest.raises(IncompatibleRunDirError):
        load_run_dirs([old])

"""``compare`` and ``report --format html`` on a real run of the tiny world (slow:
minutes on 2 cores): the four built-in tasks' saved predictions read back by
their ``examples`` hooks, the changed examples accounting for the whole
difference of the two rows' metric, and the page built from them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from simla_bench.cli import main

from test_report_html import parse
from test_runner_e2e_world import run_args

TASKS = ["retrieval", "vqa", "grounding", "nlvr2"]


@pytest.mark.slow
def test_compare_and_html_report_on_the_tiny_world(tmp_path):
    res = CliRunner().invoke(main, [*run_args(tmp_path, "itc", TASKS), "--controls", "-q"])
    assert res.exit_code == 0, res.output
    run = str(tmp_path / "run")
    res = CliRunner().invoke(main, ["report", run, "--format", "json"])
    board = {r["row"]: r["tasks"] for r in json.loads(res.output)}
    for task in TASKS:
        res = CliRunner().invoke(main, ["compare", run, "--rows", "none (control)", "--rows", "itc", "--task", task,
                                        "--format", "json"])
        assert res.exit_code == 0, res.output
        cmp = json.loads(res.output)
        metric, changes = cmp["metric"], cmp["changes"]
        assert cmp["pooled"]["wins"] + cmp["pooled"]["losses"] == len(changes)
        if task == "retrieval":  # ranks that moved, in either direction
            assert all(c["by"] == "measure" and c["a"]["measure"] != c["b"]["measure"] for c in changes)
            assert all((c["outcome"] == "win") == (c["b"]["measure"] < c["a"]["measure"]) for c in changes)
            continue
        # the examples listed carry the whole difference of the metric, to rounding
        diff = board["itc"][task][metric]["mean"] - board["none (control)"][task][metric]["mean"]
        moved = sum(c["b"]["value"] - c["a"]["value"] for c in changes)
        assert 100 * moved / cmp["pooled"]["paired"] == pytest.approx(diff, abs=1e-6)
        assert all(c["a"]["value"] != c["b"]["value"] and c["images"] for c in changes)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", run, "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    checker = parse(page)
    assert "no saved predictions" not in page and "itc vs none (control)" in page
    assert sum(s.startswith("data:image/jpeg;base64,") for s in checker.srcs) > 0

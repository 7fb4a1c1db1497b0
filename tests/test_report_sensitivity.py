"""Column sensitivity on fixed records (simla_bench/report/sensitivity.py): a
column whose best row does not beat the ``none`` control is marked in every
format, one that does is not; the MDE shrinks as seeds are added; without
controls every format says so in one line; records from before still read."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from simla_bench.cli import main
from simla_bench.report import export, leaderboard, sensitivity
from simla_bench.report.records import load_run_dirs
from simla_bench.runner.record import CellRecord
from simla_bench.runner.store import SCHEMA_VERSION, RunStore

from test_report_leaderboard import check_golden, fixed_records, record, write_run

#: row -> (objectives, control) ; task -> per-seed accuracies (nested per-example scores, so paired)
ROWS = {"itc,itm": (["itc", "itm"], None), "itc": (["itc"], None),
        "none (control)": ([], "none"), "shuffled (control)": (["itc", "itm"], "shuffled")}
ACCS = {
    "itc,itm": {"retrieval": (70, 72), "nlvr2": (51, 51)},
    "itc": {"retrieval": (60, 61), "nlvr2": (50, 51)},
    "none (control)": {"retrieval": (30, 31), "nlvr2": (50, 50)},
    "shuffled (control)": {"retrieval": (40, 42), "nlvr2": (50, 51)},
}


def control_records(rows=ROWS, accs=ACCS):
    recs = []
    for row, (objectives, control) in rows.items():
        for task, per_seed in accs[row].items():
            for seed, acc in enumerate(per_seed):
                rec = record(row, objectives, seed, task, acc)
                if control:
                    rec["control"] = control
                recs.append(rec)
    return recs


def board(recs=None, **kw):
    return leaderboard.build(control_records() if recs is None else recs, n_boot=1000, **kw)


def rich_words(table) -> str:
    """A rich table's text with runs of white space made one space (the caption wraps)."""
    console = Console(record=True, width=250)
    console.print(table)
    return " ".join(console.export_text().split())


def col(b, task):
    return next(c for c in b.columns if c.task == task and c.primary)


# ------------------------------------------------------------------ the figures


def test_a_column_that_cannot_beat_none_is_marked_and_one_that_can_is_not():
    b = board()
    ret, nlvr = b.sensitivity.columns["retrieval"], b.sensitivity.columns["nlvr2"]
    assert (ret.best_row, ret.best, ret.none.mean, ret.none.diff) == ("itc,itm", 71.0, 30.5, 40.5)
    assert ret.separates and ret.none.p_value < 0.001 and not ret.marked
    assert ret.shuffled.row == "shuffled (control)" and ret.shuffled.diff == 30.0 and ret.shuffled.separates
    assert (nlvr.best_row, nlvr.best, nlvr.none.mean) == ("itc,itm", 51.0, 50.0)
    assert not nlvr.separates and nlvr.marked and nlvr.none.p_value > 0.5
    assert [b.sensitivity.marked(col(b, t)) for t in ("retrieval", "nlvr2")] == [False, True]
    (line,) = b.sensitivity.lines()
    assert line.startswith("† nlvr2: best row 'itc,itm' 51.00 vs none 50.00 (+1.00, p=")
    assert f"MDE {nlvr.mde:.2f} at 2 seeds" in line and line.endswith("differences in this column are noise")


def test_the_mde_follows_its_formula():
    nlvr = board().sensitivity.columns["nlvr2"]
    # pooled seed std over the four rows of the column (each with 2 seeds)
    stds = [np.std(ACCS[r]["nlvr2"], ddof=1) for r in ACCS]
    pooled = math.sqrt(sum(s ** 2 for s in stds) / len(stds))
    assert nlvr.seed_std == pytest.approx(pooled) and nlvr.seed_std_rows == 4 and nlvr.n_seeds == 2
    z = 1.959964 + 0.841621
    assert nlvr.mde == pytest.approx(z * math.sqrt(2 * pooled ** 2 / 2 + nlvr.se_boot ** 2), rel=1e-5)
    assert sensitivity.mde(0.0, 1, 1.0) == pytest.approx(z, rel=1e-5)


def test_a_worse_than_none_best_row_and_a_lower_is_better_metric():
    accs = {r: {"nlvr2": v["nlvr2"]} for r, v in ACCS.items()}
    accs["none (control)"] = {"nlvr2": (60, 60)}  # no pretraining does better than every row
    s = board(control_records(accs=accs)).sensitivity.columns["nlvr2"]
    assert s.marked and not s.separates and s.none.diff == -9.0
    assert s.note().endswith("no row beats no pretraining in this column")
    recs = control_records()
    for r in recs:  # the same numbers read as an error rate: lower is better, so the worst row is "best"
        r["directions"] = {"test/acc": "lower"}
    s = board(recs).sensitivity.columns["retrieval"]
    assert s.best_row == "itc" and s.best == 60.5 and s.none.diff == 30.0 and not s.separates and s.marked


def test_one_seed_mde_counts_test_set_noise_only_and_says_so():
    recs = [r for r in control_records() if r["seed"] == 0]
    nlvr = board(recs).sensitivity.columns["nlvr2"]
    assert nlvr.seed_std == 0.0 and nlvr.seed_std_rows == 0 and nlvr.n_seeds == 1
    assert nlvr.mde == pytest.approx(sensitivity.mde(0.0, 1, nlvr.se_boot))
    assert "at 1 seed (seed noise unknown with 1 seed per row: test-set noise only)" in nlvr.note()


def noisy_records(n_seeds: int, gen_seed: int, n_examples: int = 400) -> list[dict]:
    """Rows of known per-example accuracy; each seed redraws every example's
    outcome (the same noise model whatever the number of seeds)."""
    rng = np.random.default_rng(gen_seed)
    rates = {"a": 0.62, "b": 0.60, "c": 0.58, "none (control)": 0.55}
    draws = {row: rng.random((16, n_examples)) < rate for row, rate in rates.items()}
    recs = []
    for row, hits in draws.items():
        for seed in range(n_seeds):
            per_ex = hits[seed].astype(float).tolist()
            rec = record(row, [] if row.startswith("none") else [row], seed, "vqa", 0)
            rec["metrics"]["test/acc"] = 100.0 * float(np.mean(per_ex))
            rec["per_example"]["test/acc"] = per_ex
            if row.startswith("none"):
                rec["control"] = "none"
            recs.append(rec)
    return recs


@pytest.mark.parametrize("gen_seed", range(5))
def test_the_mde_shrinks_as_seeds_are_added(gen_seed):
    mdes = [leaderboard.build(noisy_records(n, gen_seed), n_boot=500).sensitivity.columns["vqa"].mde
            for n in (2, 4, 8, 16)]
    assert all(later < earlier for earlier, later in zip(mdes, mdes[1:])), mdes
    assert mdes[-1] < 0.6 * mdes[0], mdes


# ------------------------------------------------------------------ every format


def test_markdown_golden_with_controls():
    check_golden("leaderboard_controls.md", export.to_markdown(board()))


def test_controls_appear_in_every_format(tmp_path, monkeypatch):
    b = board()
    md = export.to_markdown(b)
    assert "| nlvr2 test/acc ↑ † |" in md and "| retrieval test/acc ↑ |" in md
    assert md.count("\n† nlvr2: best row") == 1 and "none (control)" in md

    rich_text = rich_words(export.to_rich(b))
    assert "nlvr2 test/acc ↑ †" in rich_text and "† nlvr2: best row 'itc,itm' 51.00 vs none 50.00" in rich_text

    rows = list(csv.DictReader(io.StringIO(export.to_csv(b))))
    by = {(r["row"], r["task"]): r for r in rows}
    assert by[("itc,itm", "nlvr2")]["column_separates"] == "0" and by[("itc,itm", "retrieval")]["column_separates"] == "1"
    assert by[("none (control)", "nlvr2")]["control"] == "none" and by[("itc", "nlvr2")]["control"] == ""
    assert float(by[("itc", "nlvr2")]["column_mde"]) == pytest.approx(b.sensitivity.columns["nlvr2"].mde, rel=1e-5)

    data = json.loads(export.to_json(b))
    assert [d["control"] for d in data] == [None, None, "none", "shuffled"]
    sens = data[0]["tasks"]["nlvr2"]["sensitivity"]
    assert sens["marked"] and sens["separates"] is False and sens["best_row"] == "itc,itm" and sens["none"] == 50.0
    assert sens["note"].startswith("† nlvr2") and sens["shuffled"]["row"] == "shuffled (control)"
    assert data[3]["tasks"]["retrieval"]["sensitivity"]["separates"] is True

    tex = export.to_latex(b)
    assert r"nlvr2 test/acc $\uparrow$$^\dagger$" in tex and r"retrieval test/acc $\uparrow$ &" in tex
    assert r"\multicolumn{3}{l}{\footnotesize $^\dagger$ nlvr2: best row" in tex

    import matplotlib.figure

    from simla_bench.report import plot as plot_mod

    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: saved.append(fig))
    plot_mod.plot(b, tmp_path / "p.png")
    (fig,) = saved
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["retrieval test/acc", "nlvr2 test/acc †"]
    hatches = [p.get_hatch() for p in ax.patches]
    assert hatches.count("//") == len(b.rows) and hatches.count(None) == len(b.rows)  # the nlvr2 bar of each row
    assert any("† nlvr2: best row" in t.get_text() for t in fig.texts)


def test_without_controls_no_marks_and_one_line_everywhere(tmp_path, monkeypatch):
    b = leaderboard.build(fixed_records(), n_boot=200)
    line = sensitivity.NO_CONTROLS
    assert b.sensitivity.lines() == [line] and not any(b.sensitivity.marked(c) for c in b.columns)
    md = export.to_markdown(b)
    assert "†" not in md and md.count(line) == 1
    assert line in rich_words(export.to_rich(b))
    assert export.to_latex(b).count(line) == 1
    rows = list(csv.DictReader(io.StringIO(export.to_csv(b))))
    assert {r["column_separates"] for r in rows} == {""} and {r["control"] for r in rows} == {""}
    data = json.loads(export.to_json(b))
    assert data[0]["tasks"]["vqa"]["sensitivity"] == {"separates": None, "marked": False, "note": line}


def test_report_detail_prints_the_per_column_table(tmp_path):
    run = write_run(tmp_path / "r", control_records())
    res = CliRunner().invoke(main, ["report", str(run), "--detail", "--format", "markdown", "--bootstrap", "500"])
    assert res.exit_code == 0, res.output
    table = res.output.split("column sensitivity", 1)[1]
    assert "| column | best row | best | none (best − none, p) | shuffled (best − shuffled, p) | MDE | seeds |" in table
    assert "| nlvr2 test/acc | itc,itm | 51.00 | 50.00 (+1.00, p=" in table and "| no † |" in table
    assert "| retrieval test/acc | itc,itm | 71.00 | 30.50 (+40.50, p<0.001) | 41.00 (+30.00, p<0.001) |" in table
    res = CliRunner().invoke(main, ["report", str(run), "--detail"])  # rich: the second table follows
    words = " ".join(res.output.split())
    assert res.exit_code == 0 and "column sensitivity" in words and "minimum detectable effect" in words
    plain = CliRunner().invoke(main, ["report", str(run), "--format", "markdown"])
    assert "column sensitivity" not in plain.output and "† nlvr2" in plain.output


# ------------------------------------------------------------------ records


def test_records_from_before_read_and_control_comes_from_the_record_or_the_manifest(tmp_path):
    old = fixed_records()[0]
    assert "control" not in old and CellRecord.from_json(old).to_json() == old
    new = control_records()
    run = write_run(tmp_path / "r", new)
    loaded = load_run_dirs([run])
    assert {r["row"]: r.get("control") for r in loaded.records} == {
        "itc,itm": None, "itc": None, "none (control)": "none", "shuffled (control)": "shuffled"}
    # a cell reused by a control row (written without the field): the manifest names the row's control
    bare = [{k: v for k, v in r.items() if k != "control"} for r in control_records()]
    run = tmp_path / "m"
    write_run(run, bare)
    store = RunStore(run)
    rows = [{"row_key": k, "row": label, **({"control": c} if c else {})}
            for k, label, c in dict.fromkeys((r["row_key"], r["row"], ROWS[r["row"]][1]) for r in bare)]
    store.update_manifest({"schema": SCHEMA_VERSION, "rows": rows, "cells": [], "runs": []})
    recs = load_run_dirs([run]).records
    assert leaderboard.build(recs, n_boot=200).sensitivity.columns["nlvr2"].marked
    with pytest.raises(Exception, match="control"):
        CellRecord.from_json({**new[0], "control": "maybe"})


def test_best_row_per_example_scores_are_those_of_the_leaderboard():
    """The leaderboard's own --baseline bootstrap and the sensitivity use one comparison."""
    b = board(baseline="none (control)")
    rows = {r.label: r for r in b.rows}
    assert b.stat(rows["itc,itm"], col(b, "nlvr2")).p_value == b.sensitivity.columns["nlvr2"].none.p_value


@pytest.mark.parametrize("seed_std,se_boot", [(0.0, 1.0), (2.0, 0.5), (3.0, 1.5), (1.0, 2.0)])
def test_seeds_for_is_the_fewest_seeds_whose_mde_reaches_the_effect(seed_std, se_boot):
    for effect in (1.0, 3.0, 5.0, 10.0):
        n = sensitivity.seeds_for(effect, seed_std, se_boot)
        if n is None:  # the test-set term alone is at least the effect, or it needs more than 1000 seeds
            assert sensitivity.mde(seed_std, 1000, se_boot) > effect
            continue
        assert sensitivity.mde(seed_std, n, se_boot) <= effect + 1e-9
        if n > 1:
            assert sensitivity.mde(seed_std, n - 1, se_boot) > effect


def test_seeds_for_hand_case():
    # MDE = 2.8016 * sqrt(2 * 4 / n + 0): 5 points needs 2*4*2.8016^2/25 = 2.51 -> 3 seeds
    assert sensitivity.seeds_for(5.0, 2.0, 0.0) == 3
    assert sensitivity.seeds_for(1.0, 0.0, 1.0) is None  # the split's own noise is above the effect

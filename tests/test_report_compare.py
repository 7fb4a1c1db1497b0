"""``simla-bench compare`` (simla_bench/report/compare.py, cli/compare_cmd.py) on
hand-made examples: exactly the flipped examples are listed, largest change
first; the sign test's p against a hand computation; counts per seed and
pooled; rows from several run directories; one-line errors."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.errors import UserError
from simla_bench.interfaces import Example
from simla_bench.report import compare

from test_report_leaderboard import record, write_run


def hand_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test by hand: 2 * P(X <= min(w, l)), X ~ Bin(n, 1/2), at most 1."""
    n, k = wins + losses, min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def vqa_like(right: set[int], n: int = 20, prefix: str = "q") -> list[Example]:
    """Examples ``q0..q{n-1}``, value 1 on ``right`` else 0 (a VQA/NLVR2-style 0/1 outcome)."""
    return [Example(f"{prefix}{i}", 1.0 if i in right else 0.0, "yes" if i in right else "no", truth=["yes"] * 10,
                    text=f"question {i}?") for i in range(n)]


def test_sign_test_matches_hand_computation():
    assert compare.sign_test(7, 1) == pytest.approx(0.0703125, abs=1e-12)
    assert 2 * sum(math.comb(8, k) for k in range(2)) / 2 ** 8 == 0.0703125
    for w, l in ((0, 1), (3, 3), (10, 2), (0, 12), (25, 14), (1, 0)):
        assert compare.sign_test(w, l) == pytest.approx(hand_p(w, l), rel=1e-12)
    assert compare.sign_test(0, 0) is None


def test_flipped_examples_listed_exactly_with_counts_and_p():
    base = {0, 1, 2, 3, 4, 5, 6, 8, 9} - {0, 1, 2, 3, 4, 5, 6}  # a right on 8, 9 (and 7 below)
    a = vqa_like(base | {7})
    b = vqa_like(base | {0, 1, 2, 3, 4, 5, 6})  # b fixes 0..6, breaks 7
    cmp = compare.compare_examples({0: a}, {0: b}, task="vqa", row_a="itc", row_b="itc,itm", metric="test/overall")
    assert sorted(c.id for c in cmp.changes) == [f"q{i}" for i in range(8)]
    assert {c.id for c in cmp.changes if not c.win} == {"q7"}
    p = cmp.pooled
    assert (p.wins, p.losses, p.unchanged, p.paired) == (7, 1, 12, 20)
    assert p.p_value == pytest.approx(0.0703125)
    data = cmp.to_json()
    assert data["pooled"] == {"wins": 7, "losses": 1, "unchanged": 12, "paired": 20, "p_value": pytest.approx(0.0703125)}
    assert data["changes"][0]["a"]["prediction"] in ("yes", "no") and data["changes"][0]["truth"] == ["yes"] * 10
    assert "7 wins, 1 losses" in cmp.summary() and "p=0.0703" in cmp.summary()
    same = compare.compare_examples({0: a}, {0: a})
    assert same.changes == [] and same.pooled.p_value is None


def test_grounding_lists_hits_that_flipped_largest_iou_change_first():
    def ex(i, iou):
        return Example(f"r{i}", 1.0 if iou >= 0.5 else 0.0, [0, 0, 10, 10], measure=iou, measure_name="IoU",
                       text=f"the {i} shape")

    a = [ex(0, 0.9), ex(1, 0.55), ex(2, 0.6), ex(3, 0.1), ex(4, 0.45)]
    b = [ex(0, 0.1), ex(1, 0.45), ex(2, 0.95), ex(3, 0.3), ex(4, 0.7)]  # r2 and r3 move without crossing 0.5
    cmp = compare.compare_examples({0: a}, {0: b})
    assert [c.id for c in cmp.changes] == ["r0", "r4", "r1"]  # |dIoU| 0.8, 0.25, 0.1
    assert [c.win for c in cmp.changes] == [False, True, False] and {c.by for c in cmp.changes} == {"value"}
    assert "IoU 0.9" in compare.side_text(cmp.changes[0].a) and "IoU 0.1" in compare.side_text(cmp.changes[0].b)
    by_measure = compare.compare_examples({0: a}, {0: b}, by="measure")  # every IoU that moved
    assert len(by_measure.changes) == 5 and by_measure.pooled.wins == 3


def test_retrieval_lists_queries_whose_rank_moved():
    def q(kind, i, rank, value=None):
        return Example(f"{kind}:{i}", value, [i + rank], measure=float(rank), measure_name="rank", lower_is_better=True)

    a = [q("i2t", 0, 1, 1.0), q("i2t", 1, 20, 0.0), q("t2i", 5, 3), q("t2i", 6, 50), q("t2i", 7, 4)]
    b = [q("i2t", 0, 1, 1.0), q("i2t", 1, 30, 0.0), q("t2i", 5, 1), q("t2i", 6, 10), q("t2i", 7, 4)]
    cmp = compare.compare_examples({0: a}, {0: b})
    assert [(c.id, c.win) for c in cmp.changes] == [("t2i:6", True), ("i2t:1", False), ("t2i:5", True)]
    assert {c.by for c in cmp.changes} == {"measure"} and cmp.changes[0].delta == 40
    assert "rank 50" in compare.side_text(cmp.changes[0].a)


def test_several_seeds_counted_per_seed_and_pooled_unpaired_left_out():
    a = {0: vqa_like({0}), 1: vqa_like({0, 1, 2}), 2: vqa_like(set())}
    b = {0: vqa_like({1, 2, 3}), 1: vqa_like({0, 1, 2})[:-1] + [Example("extra", 1.0, "x")]}
    cmp = compare.compare_examples(a, b)
    assert cmp.seeds == [0, 1] and cmp.seeds_only_a == [2]
    assert (cmp.per_seed[0].wins, cmp.per_seed[0].losses) == (3, 1)
    assert (cmp.per_seed[1].wins, cmp.per_seed[1].losses, cmp.per_seed[1].paired) == (0, 0, 19)
    assert (cmp.only_a, cmp.only_b) == (1, 1)
    assert (cmp.pooled.wins, cmp.pooled.losses, cmp.pooled.paired) == (3, 1, 39)
    assert cmp.pooled.p_value == pytest.approx(hand_p(3, 1)) and cmp.per_seed[1].p_value is None
    assert [c.seed for c in cmp.changes] == [0, 0, 0, 0]


# ------------------------------------------------------------ records, rows, errors, the command
ROW_RIGHT = {"itc": {0: {7, 8, 9}, 1: {8, 9}}, "itc,itm": {0: set(range(7)) | {8, 9}, 1: {0, 8, 9}},
             "itc,itm,xmm,psl": {0: {9}}}


def records():
    recs = []
    for row, seeds in ROW_RIGHT.items():
        for seed, right in seeds.items():
            recs.append(record(row, row.split(","), seed, "vqa", 100 * len(right) / 20))
    recs.append(record("itc", ["itc"], 0, "nlvr2", 50))
    return recs


def fake_load(rec):
    if rec["task"] != "vqa":
        raise UserError(f"cell {rec['task']} [{rec['row']}] seed {rec['seed']} has no saved predictions")
    return vqa_like(ROW_RIGHT[rec["row"]][rec["seed"]])


def test_compare_rows_resolves_comma_labels_and_pools_seeds():
    recs = records()
    cmp = compare.compare_rows(recs, ["itc,itc,itm"], "vqa", fake_load)  # split at the one comma that works
    assert (cmp.row_a, cmp.row_b) == ("itc", "itc,itm") and cmp.seeds == [0, 1]
    assert (cmp.per_seed[0].wins, cmp.per_seed[0].losses) == (7, 1)
    assert (cmp.per_seed[1].wins, cmp.per_seed[1].losses) == (1, 0)
    assert cmp.pooled.p_value == pytest.approx(hand_p(8, 1)) and cmp.metric == "test/acc"
    swapped = compare.compare_rows(recs, ["itm,itc", "itc"], "vqa", fake_load)  # objective set, either order
    assert (swapped.pooled.wins, swapped.pooled.losses) == (1, 8)
    one_seed = compare.compare_rows(recs, ["itc", "itc,itm,xmm,psl"], "vqa", fake_load)
    assert one_seed.seeds == [0] and one_seed.seeds_only_a == [1]


@pytest.mark.parametrize("rows, task, message", [
    (["itc", "itc,xmm"], "vqa", "'itc,xmm' names no row of this run — did you mean 'itc,itm'"),
    (["itc", "zzz"], "vqa", "'zzz' names no row of this run — rows: itc; itc,itm; itc,itm,xmm,psl"),
    (["itc", "itc,itm"], "grounding", "task 'grounding' has no cells in this run — tasks: vqa, nlvr2"),
    (["itc"], "vqa", "--rows names 1 row; compare needs two"),
    (["itc", "itc"], "vqa", "--rows names 'itc' twice"),
    (["itc", "itc,itm"], "nlvr2", "row 'itc,itm' has no finished 'nlvr2' cell"),
    (["itc,nope"], "vqa", "--rows 'itc,nope' is not two rows of this run"),
])
def test_compare_rows_one_line_errors(rows, task, message):
    with pytest.raises(UserError) as err:
        compare.compare_rows(records(), rows, task, fake_load)
    assert message in err.value.one_line()


def test_compare_rows_needs_two_rows_and_predictions():
    with pytest.raises(UserError, match="the run has 1 row; compare needs two"):
        compare.compare_rows([r for r in records() if r["row"] == "itc"], ["itc", "x"], "vqa", fake_load)
    recs = records() + [record("itc,itm", ["itc", "itm"], 0, "nlvr2", 50)]
    with pytest.raises(UserError, match=r"nlvr2 \[itc\] seed 0 has no saved predictions"):
        compare.compare_rows(recs, ["itc", "itc,itm"], "nlvr2", fake_load)


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    """The records split over two run directories; the cells are read by ``fake_load``
    in place of ``report.examples.cell_examples``, which notes the directory each is asked of."""
    recs = records()
    a = write_run(tmp_path / "a", [r for r in recs if r["row"] == "itc"])
    b = write_run(tmp_path / "b", [r for r in recs if r["row"] != "itc"])
    asked = []
    fake = types.ModuleType("simla_bench.report.examples")
    fake.cell_examples = lambda run_dir, rec: (asked.append((run_dir.name, rec["row"])), fake_load(rec))[1]
    monkeypatch.setitem(sys.modules, "simla_bench.report.examples", fake)
    return a, b, asked


def test_cli_compare_across_run_dirs_rich_json_html(two_runs, tmp_path):
    a, b, asked = two_runs
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--rows", "itc", "--rows", "itc,itm", "--task", "vqa"])
    assert res.exit_code == 0, res.output
    words = " ".join(res.output.split())
    assert "8 wins, 1 losses" in words and "seed 0: 7 wins, 1 losses" in words and "question 7?" in words
    assert ("a", "itc") in asked and ("b", "itc,itm") in asked
    out = tmp_path / "c.json"
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--rows", "itc,itc,itm", "--task", "vqa",
                                    "--format", "json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["a"] == "itc" and data["b"] == "itc,itm" and len(data["changes"]) == 9
    assert data["per_seed"]["0"]["p_value"] == pytest.approx(0.0703125)
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--rows", "itc,itc,itm", "--task", "vqa",
                                    "--format", "html"])
    assert res.exit_code == 0 and res.output.startswith("<!DOCTYPE html>") and "question 0?" in res.output


def test_cli_compare_errors_are_one_line(two_runs):
    a, b, _ = two_runs
    res = CliRunner().invoke(main, ["compare", str(a), str(b), "--rows", "itc,bogus", "--task", "vqa"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "is not two rows of this run" in res.output and "itc,itm,xmm,psl" in res.output
    res = CliRunner().invoke(main, ["compare", str(a), "--rows", "itc,itc", "--task", "vqa"])
    assert res.exit_code == 2 and "the run has 1 row" in res.output


# ------------------------------------------------------------ end to end: the runner, a plugin task, two run dirs
def test_compare_plugin_task_across_two_real_run_dirs(tmp_path):
    """Two rows run by the real runner (fake pipeline) into two run directories; the plugin
    task ``pred`` saves its per-example hits and implements ``examples``: ``compare`` lists
    exactly the examples whose recorded per-example score differs, per seed and pooled."""
    from simla_bench.registry import set_registry
    from simla_bench.runner.matrix import MatrixRunner

    from helpers.runner_fakes import FakePipeline, make_config
    from test_runner_predictions import registry

    reg = registry()
    dirs, recs = [], []
    for name, objectives in (("a", ["itc"]), ("b", ["itc", "itm"])):
        cfg = make_config(tmp_path / name, tasks={"pred": {}}, seeds=[0, 1], objectives={o: {} for o in objectives})
        result = MatrixRunner(cfg, reg, FakePipeline(), cfg.output_dir).run()
        dirs.append(str(result.run_dir))
        recs += result.records
    by = {(r["row"], r["seed"]): r["per_example"]["test/acc"] for r in recs}
    expected = {s: {f"ex{i}" for i, (x, y) in enumerate(zip(by[("itc", s)], by[("itc,itm", s)])) if x != y}
                for s in (0, 1)}
    assert all(expected.values())  # the rows differ on some examples of each seed
    set_registry(reg)
    try:
        res = CliRunner().invoke(main, ["compare", *dirs, "--rows", "itc,itc,itm", "--task", "pred", "--format", "json"])
    finally:
        set_registry(None)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    for s in (0, 1):
        assert {c["id"] for c in data["changes"] if c["seed"] == s} == expected[s]
        flips = [(by[("itc", s)][int(i[2:])], by[("itc,itm", s)][int(i[2:])]) for i in expected[s]]
        wins = sum(y > x for x, y in flips)
        assert (data["per_seed"][str(s)]["wins"], data["per_seed"][str(s)]["losses"]) == (wins, len(flips) - wins)
        assert data["per_seed"][str(s)]["paired"] == 200
    pooled = data["pooled"]
    assert pooled["wins"] + pooled["losses"] == len(expected[0]) + len(expected[1])
    assert pooled["p_value"] == pytest.approx(hand_p(pooled["wins"], pooled["losses"]))

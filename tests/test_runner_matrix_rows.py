"""Matrix rows: a ``name``, per-row objective weights/options, model overrides,
distinct labels, ``--force-row``, and the report in the order the config lists
the rows (fake plugins, in process and through the CLI)."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.config import parse_config
from simla_bench.errors import ConfigError, UserError
from simla_bench.runner.cells import expand
from simla_bench.runner.matrix import MatrixRunner
from helpers.runner_fakes import FakePipeline, config_data, fakes, make_config, make_registry  # noqa: F401 (fixture)


def run(cfg, pipe=None, **kw):
    pipe = pipe or FakePipeline()
    return MatrixRunner(cfg, make_registry(), pipe, cfg.output_dir, **kw).run(), pipe


def by_row(result):
    return {r["row"]: r for r in result.records if r["task"] == "toy"}


# ------------------------------------------------------------------ objective options per row


def test_rows_with_the_same_objectives_but_other_options_are_different_rows(tmp_path):
    cfg = make_config(tmp_path, tasks={"toy": {}},
                      objectives={"itc": {}, "itm": {"weight": 2.0, "options": {"rate": 0.1, "nan_at": 99}}},
                      matrix=[{"objectives": ["itc", "itm"]},
                              {"objectives": ["itc", {"itm": {"options": {"rate": 0.3}}}]},
                              {"objectives": ["itc", {"itm": 0.5}]}])
    result, pipe = run(cfg)
    assert result.failures == [] and len(pipe.pretrain_calls) == 3
    rows = by_row(result)
    assert list(rows) == ["itc,itm", "itc,itm [itm.rate=0.3]", "itc,itm [itm.weight=0.5]"]
    # unset parts come from the experiment's objectives: entry; options merge key by key
    assert rows["itc,itm"]["objective_config"]["itm"] == {"weight": 2.0, "options": {"rate": 0.1, "nan_at": 99}}
    assert rows["itc,itm [itm.rate=0.3]"]["objective_config"]["itm"] == {"weight": 2.0,
                                                                        "options": {"rate": 0.3, "nan_at": 99}}
    assert rows["itc,itm [itm.weight=0.5]"]["objective_config"]["itm"]["weight"] == 0.5
    # the options reach the objective: a faster rate trains a better fake model
    assert rows["itc,itm [itm.rate=0.3]"]["metrics"]["test/loss"] < rows["itc,itm"]["metrics"]["test/loss"]
    assert len({r["pretrain_key"] for r in rows.values()}) == 3
    assert run(cfg)[0].computed == 0  # each row finds its own cells again


def test_rows_that_resolve_to_the_same_settings_are_run_once(tmp_path):
    cfg = make_config(tmp_path, tasks={"toy": {}}, objectives={"itc": {}, "itm": {"weight": 1.0}},
                      matrix=[{"name": "A", "objectives": ["itc", "itm"]},
                              {"name": "B", "objectives": {"itm": {"weight": 1.0}, "itc": None}}])
    result, pipe = run(cfg)
    assert len(pipe.pretrain_calls) == 1 and list(by_row(result)) == ["A = B"]


@pytest.mark.parametrize("entry, message", [
    ({"itm": {"rate": 0.3}}, "'rate' is not weight or options; write an objective's options under options:"),
    (["itm"], "objectives entry ['itm'] is not a name"),
    ({"itm": "heavy"}, "objective 'itm': 'heavy' is not a weight"),
    ({"itm": {"weight": -1}}, "matrix.0.objectives.itm.weight"),
    ({"itm": None, "itc": None}, "is not a name"),  # two keys in one list entry
])
def test_a_bad_row_objective_entry_is_one_line(tmp_path, entry, message):
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, matrix=[{"objectives": ["itc", entry]}])
    line = err.value.one_line()
    assert message in line and "\n" not in line


def test_an_option_the_objective_does_not_know_names_the_row(tmp_path):
    cfg = make_config(tmp_path, matrix=[{"name": "ok", "objectives": ["itc"]},
                                        {"name": "typo", "objectives": [{"itc": {"options": {"rat": 1}}}]}])
    with pytest.raises(ConfigError, match="matrix row 'typo'.*rat"):
        run(cfg)


# ------------------------------------------------------------------ labels


def test_a_name_is_the_label_and_a_duplicate_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="matrix rows 1 and 3 are both named 'x'") as err:
        make_config(tmp_path, matrix=[{"name": "x", "objectives": ["itc"]}, {"objectives": ["itm"]},
                                      {"name": "x", "objectives": ["itc", "itm"]}])
    assert "\n" not in err.value.one_line()


def test_rows_that_differ_only_in_their_model_get_distinct_labels(tmp_path):
    cfg = make_config(tmp_path, tasks={"toy": {}},
                      matrix=[{"objectives": ["itc", "itm"]},
                              {"objectives": ["itc", "itm"], "model": {"options": {"layout": "split"}}},
                              {"objectives": ["itc", "itm"],
                               "model": {"options": {"layout": "split", "fusion_layers": 1}}},
                              {"name": "itc", "objectives": ["itc", "itm"], "model": {"options": {"fusion_layers": 1}}},
                              {"objectives": [{"itc": {"options": {"rate": 0.2}}}]}])
    labels = [r.label for r in expand(cfg).rows]
    assert labels == ["itc,itm", "itc,itm [layout=split]", "itc,itm [fusion_layers=1, layout=split]", "itc",
                      "itc [itc.rate=0.2]"]  # the user's name is kept; the automatic label moves
    result, _ = run(cfg)
    assert list(by_row(result)) == labels


def test_a_name_that_is_another_rows_automatic_label_is_refused(tmp_path):
    cfg = make_config(tmp_path, matrix=[{"name": "itc", "objectives": ["itm"]}, {"objectives": ["itc"]}])
    with pytest.raises(ConfigError, match="matrix row name 'itc' is also the label of another row"):
        expand(cfg)


def test_data_fraction_suffix_follows_the_distinguishing_suffix(tmp_path):
    cfg = make_config(tmp_path, data_fractions=[0.5, 1.0],
                      matrix=[{"objectives": ["itc"]}, {"objectives": [{"itc": {"options": {"rate": 0.2}}}]}])
    assert [r.label for r in expand(cfg).rows] == ["itc @50%", "itc @100%", "itc [itc.rate=0.2] @50%",
                                                   "itc [itc.rate=0.2] @100%"]


# ------------------------------------------------------------------ through the CLI




def test_cli_matrix_file_with_names_options_and_models(tmp_path, fakes):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(config_data(tmp_path, tasks={"toy": {}})))
    matrix = tmp_path / "rows.yaml"
    matrix.write_text(
        "matrix:\n"
        "  - {name: slow itm, objectives: [itc, {itm: {options: {rate: 0.05}}}]}\n"
        "  - {name: fast itm, objectives: [itc, {itm: {options: {rate: 0.4}}}]}\n"
        "  - {objectives: [itc, itm], model: {options: {layout: split}}}\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--matrix", str(matrix), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(fakes.pretrain_calls) == 3
    report = json.loads(CliRunner().invoke(main, ["report", str(out), "--format", "json"]).output)
    assert [r["row"] for r in report] == ["slow itm", "fast itm", "itc,itm"]
    matrix.write_text("matrix:\n  - {name: a, objectives: [itc]}\n  - {name: a, objectives: [itm]}\n")
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--matrix", str(matrix), "--out", str(out)])
    assert res.exit_code != 0 and "both named 'a'" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------ --force-row


def three_rows(tmp_path, **over):
    return make_config(tmp_path, matrix=[{"name": "A", "objectives": ["itc"]}, {"name": "B", "objectives": ["itm"]},
                                         {"objectives": ["itc", "itm"]}], **over)


def test_force_row_recomputes_only_the_named_rows(tmp_path):
    cfg = three_rows(tmp_path)
    first, _ = run(cfg)
    assert first.computed == 6
    pretrained = {r["row"]: r["pretrain_key"] for r in first.records}
    forced, pipe = run(cfg, force=["B", "itc,itm"])
    assert [c[0] for c in pipe.pretrain_calls] == [("itm",), ("itc", "itm")]
    assert all(c[2] == 1 for c in pipe.pretrain_calls)  # from scratch, not resumed
    assert forced.computed == 4 and forced.cached == 2
    assert (tmp_path / "run" / "pretrain" / pretrained["A"] / "pretrain.json").exists()  # A untouched
    everything, pipe = run(cfg, force=True)
    assert everything.computed == 6 and len(pipe.pretrain_calls) == 3


def test_force_row_with_a_data_fraction_sweep_takes_the_row_at_every_fraction(tmp_path):
    cfg = three_rows(tmp_path, data_fractions=[0.5, 1.0], tasks={"toy": {}})
    run(cfg)
    forced, pipe = run(cfg, force=["A"])
    assert sorted(c[0] for c in pipe.pretrain_calls) == [("itc",), ("itc",)] and forced.computed == 2
    forced, pipe = run(cfg, force=["A @50%"])
    assert len(pipe.pretrain_calls) == 1 and forced.computed == 1


def test_force_row_that_names_no_row_is_one_line_listing_the_rows(tmp_path):
    cfg = three_rows(tmp_path)
    first, _ = run(cfg)
    with pytest.raises(UserError, match="--force-row 'C' names no row of this run") as err:
        run(cfg, force=["C"])
    assert "rows: A; B; itc,itm" in err.value.one_line()
    assert len(list((tmp_path / "run" / "cells").glob("*.json"))) == 6  # nothing was deleted


def test_cli_force_row(tmp_path, fakes):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(config_data(tmp_path, tasks={"toy": {}}, matrix=[
        {"name": "A", "objectives": ["itc"]}, {"name": "B", "objectives": ["itm"]}])))
    runner = CliRunner()
    assert runner.invoke(main, ["run", "--config", str(cfg)]).exit_code == 0
    fakes.pretrain_calls.clear()
    res = runner.invoke(main, ["run", "--config", str(cfg), "--force-row", "B"])
    assert res.exit_code == 0, res.output
    assert "1 cells computed, 1 reused" in res.output and [c[0] for c in fakes.pretrain_calls] == [("itm",)]
    res = runner.invoke(main, ["run", "--config", str(cfg), "--force-row", "b"])
    assert res.exit_code != 0 and "names no row of this run" in res.output and "rows: A; B" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(main, ["run", "--config", str(cfg), "--force", "--force-row", "B"])
    assert res.exit_code != 0 and "give one of them" in res.output


def test_force_row_survives_the_torchrun_relaunch():
    from simla_bench.cli.run_cmd import run_command, torchrun_argv

    ctx = run_command.make_context("run", ["--force-row", "A", "--force-row", "itc,itm", "--nproc-per-node", "2"])
    rest = torchrun_argv(2, ctx)[8:]
    assert rest == ["--force-row", "A", "--force-row", "itc,itm"]


# ------------------------------------------------------------------ report order


def test_report_lists_rows_in_the_order_and_under_the_names_of_the_latest_config(tmp_path):
    from simla_bench.report import leaderboard
    from simla_bench.report.records import load_run_dirs

    first = make_config(tmp_path, tasks={"toy": {}},
                        matrix=[{"name": "A", "objectives": ["itc"]}, {"name": "B", "objectives": ["itm"]}])
    run(first)
    again = make_config(tmp_path, tasks={"toy": {}},
                        matrix=[{"name": "B renamed", "objectives": ["itm"]}, {"name": "C", "objectives": ["itc", "itm"]},
                                {"name": "A", "objectives": ["itc"]}])
    result, pipe = run(again)
    assert len(pipe.pretrain_calls) == 1  # only C is new; the name is not part of the key
    assert [r["row"] for r in result.records] == ["B renamed", "C", "A"]
    loaded = load_run_dirs([tmp_path / "run"])
    assert [r.label for r in leaderboard.build(loaded.records).rows] == ["B renamed", "C", "A"]
    # sorted only when asked: by a column, best first
    board = leaderboard.build(loaded.records, sort="toy")
    means = [board.stat(r, board.columns[0]).mean for r in board.rows]
    assert means == sorted(means, reverse=True) and [r.label for r in board.rows] != ["B renamed", "C", "A"]
    with pytest.raises(UserError, match="--sort 'vqa' names no column.*columns: toy, toy:test/acc"):
        leaderboard.build(loaded.records, sort="vqa")


def test_cli_report_sort(tmp_path, fakes):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(config_data(tmp_path, tasks={"toy": {}}, matrix=[
        {"name": "weak", "objectives": [{"itc": {"options": {"rate": 0.01}}}]},
        {"name": "strong", "objectives": [{"itc": {"options": {"rate": 0.5}}}]}])))
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(out)]).exit_code == 0
    plain = json.loads(CliRunner().invoke(main, ["report", str(out), "--format", "json"]).output)
    ranked = json.loads(CliRunner().invoke(main, ["report", str(out), "--format", "json", "--sort", "toy"]).output)
    assert [r["row"] for r in plain] == ["weak", "strong"] and [r["row"] for r in ranked] == ["strong", "weak"]


def test_rows_that_only_spell_out_defaults_are_run_once(tmp_path):
    cfg = make_config(tmp_path, tasks={"toy": {}},
                      matrix=[{"objectives": ["itc", "itm"]},
                              {"name": "explicit", "objectives": ["itc", {"itm": {"options": {"rate": 0.1}}}],
                               "model": {"options": {"layout": "single_stream"}}}])
    result, pipe = run(cfg)
    assert len(pipe.pretrain_calls) == 1
    assert [r["row"] for r in result.records] == ["itc,itm = explicit"]

"""Prediction files beside each cell (issue 22) with the fake pipeline: the runner
writes ``cells/<key>/`` before the record and lists each file's sha256; a cell whose
files are missing or altered is recomputed (that cell only); ``--force`` rewrites
them; a task that returns none still works; ``report --rescore`` and ``report
--examples`` read them back."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.errors import UserError
from simla_bench.hookspecs import hookimpl
from simla_bench.interfaces import Example
from simla_bench.runner.matrix import MatrixRunner
from helpers.runner_fakes import FakePipeline, FakeTask, make_config, make_registry

HITS = "test_hits.json"


class PredTask(FakeTask):
    """The fake task, keeping its per-example hits as a prediction file."""

    defaults = {**FakeTask.defaults, "file_name": HITS}

    def run(self, ctx):
        result = super().run(ctx)
        result.predictions = {self.options["file_name"]: json.dumps(result.per_example["test/acc"])}
        return result

    def score_predictions(self, predictions, data, **options):
        hits = json.loads((predictions / HITS).read_text())
        return {"test/acc": 100.0 * sum(hits) / len(hits)}

    def examples(self, predictions, data):
        hits = json.loads((predictions / HITS).read_text())
        return [Example(id=f"ex{i}", value=h, prediction=bool(h), measure=float(i)) for i, h in enumerate(hits)]


class PredPlugin:
    SIMLA_BENCH_DIST = "pred-dist"

    @hookimpl
    def register_tasks(self, register):
        register("pred", PredTask, "fake task with prediction files")


def registry():
    reg = make_registry()
    reg.add_plugin(PredPlugin())
    return reg


@pytest.fixture
def cfg(tmp_path):
    return make_config(tmp_path, tasks={"pred": {}, "toy": {}}, seeds=[0, 1])


def run(cfg, force=False, reg=None):
    return MatrixRunner(cfg, reg or registry(), FakePipeline(), cfg.output_dir, force=force).run()


def cells_of(result, task):
    return [r for r in result.records if r["task"] == task]


def test_predictions_are_written_beside_the_record_with_their_sha256(cfg):
    result = run(cfg)
    assert not result.failures and result.computed == 4
    for record in cells_of(result, "pred"):
        path = result.run_dir / "cells" / record["key"] / HITS
        assert json.loads(path.read_text()) == record["per_example"]["test/acc"]
        assert record["predictions"] == {HITS: hashlib.sha256(path.read_bytes()).hexdigest()}
        stored = json.loads((result.run_dir / "cells" / f"{record['key']}.json").read_text())
        assert stored["predictions"] == record["predictions"]
    for record in cells_of(result, "toy"):  # a task that returns no predictions: no folder, no field
        assert "predictions" not in record and not (result.run_dir / "cells" / record["key"]).exists()
    assert sorted(p.name for p in (result.run_dir / "cells").iterdir() if p.is_dir()) == \
        sorted(r["key"] for r in cells_of(result, "pred"))


@pytest.mark.parametrize("damage", ["delete", "edit"])
def test_a_missing_or_altered_prediction_file_recomputes_that_cell_only(cfg, damage):
    first = run(cfg)
    victim = cells_of(first, "pred")[1]
    path = first.run_dir / "cells" / victim["key"] / HITS
    if damage == "delete":
        path.unlink()
    else:
        path.write_text(path.read_text().replace("1.0", "0.0", 1))
    again = run(cfg)
    assert (again.computed, again.cached) == (1, 3)
    redone = next(r for r in again.records if r["key"] == victim["key"])
    assert redone["created"] >= victim["created"] and redone["metrics"] == victim["metrics"]
    assert redone["predictions"] == victim["predictions"]   # the same content again
    assert run(cfg).computed == 0


def test_force_rewrites_the_prediction_folders(cfg):
    first = run(cfg)
    key = cells_of(first, "pred")[0]["key"]
    stray = first.run_dir / "cells" / key / "stray.txt"
    stray.write_text("not the cell's")
    forced = run(cfg, force=True)
    assert forced.computed == 4 and not stray.exists()
    assert (first.run_dir / "cells" / key / HITS).is_file()


def test_a_prediction_file_name_that_is_not_a_plain_name_fails_the_cell(tmp_path):
    cfg = make_config(tmp_path, tasks={"pred": {"options": {"file_name": "../escape.json"}}, "toy": {}})
    result = run(cfg)
    assert len(result.failures) == 1 and "not a plain file name" in result.failures[0]
    assert not (tmp_path / "run" / "escape.json").exists() and not (tmp_path / "run" / "cells" / "escape.json").exists()


@pytest.fixture
def as_cli_registry():
    from simla_bench.registry import set_registry

    set_registry(registry())
    yield
    set_registry(None)


def test_report_rescore_passes_then_names_the_edited_cell(cfg, as_cli_registry):
    result = run(cfg)
    ok = CliRunner().invoke(main, ["report", str(result.run_dir), "--rescore"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "2 cells re-scored, all equal"
    victim = cells_of(result, "pred")[0]
    path = result.run_dir / "cells" / victim["key"] / HITS
    hits = json.loads(path.read_text())
    hits[hits.index(1.0)] = 0.0
    path.write_text(json.dumps(hits))
    bad = CliRunner().invoke(main, ["report", str(result.run_dir), "--rescore"])
    assert bad.exit_code == 1
    lines = bad.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cell pred [itc,itm] seed {victim['seed']} ({victim['key']}): ")
    assert "test/acc" in lines[0] and f"(recorded {victim['metrics']['test/acc']!r})" in lines[0]
    assert "test_hits.json was altered since the run" in lines[0]
    path.unlink()
    gone = CliRunner().invoke(main, ["report", str(result.run_dir), "--rescore"])
    assert gone.exit_code == 1 and gone.stdout.strip() == \
        f"cell pred [itc,itm] seed {victim['seed']} ({victim['key']}): prediction file {HITS} is missing, not re-scored"


def test_report_examples_writes_one_line_per_example(cfg, as_cli_registry, tmp_path):
    result = run(cfg)
    out = tmp_path / "examples.jsonl"
    res = CliRunner().invoke(main, ["report", str(result.run_dir), "--examples", str(out)])
    assert res.exit_code == 0, res.output
    expected = sum(len(r["per_example"]["test/acc"]) for r in cells_of(result, "pred"))
    assert "wrote 400 examples of 2 cells" in res.stderr and expected == 400
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == expected
    assert set(lines[0]) == {"row", "seed", "task", "id", "prediction", "value", "measure"}
    assert {(d["seed"], d["task"]) for d in lines} == {(0, "pred"), (1, "pred")}
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_json(out, lines=True)
    assert len(frame) == expected and frame["value"].mean() * 100 == pytest.approx(
        sum(r["metrics"]["test/acc"] for r in cells_of(result, "pred")) / 2)


def test_cell_examples_refuses_a_cell_without_predictions(cfg):
    from simla_bench.report.examples import cell_examples

    result = run(cfg)
    toy = cells_of(result, "toy")[0]
    with pytest.raises(UserError, match="has no per-example view"):
        cell_examples(result.run_dir, toy, registry())
    pred = dict(cells_of(result, "pred")[0])
    pred.pop("predictions")
    with pytest.raises(UserError, match="has no saved predictions"):
        cell_examples(result.run_dir, pred, registry())
    assert len(cell_examples(result.run_dir, cells_of(result, "pred")[0], registry())) == 200

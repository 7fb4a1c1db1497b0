"""``simla-bench score snli_ve``: the third-party task scores SNLI-VE files through
its own ``score_files``; the core's score command names no task."""

import json

import pytest
from click.testing import CliRunner

from simla_bench.cli import main

GOLD = [("p1", "entailment"), ("p2", "neutral"), ("p3", "contradiction"), ("p4", "entailment")]


@pytest.fixture
def extras(simla_registry):
    """The registry with this distribution (registered in-process when it is not installed)."""
    if ("task", "snli_ve") not in simla_registry:
        import simla_bench_extras

        simla_registry.add_plugin(simla_bench_extras)
    return simla_registry


@pytest.fixture
def annotations(tmp_path):
    path = tmp_path / "snli_ve_test.jsonl"
    path.write_text("".join(json.dumps({"pairID": p, "gold_label": g, "Flikr30kID": "1.jpg", "sentence2": "x"}) + "\n"
                            for p, g in GOLD))
    return path


def score(*args):
    return CliRunner().invoke(main, ["score", "snli_ve", *map(str, args)])


def test_scores_a_predictions_file(tmp_path, extras, annotations):
    pred, out = tmp_path / "pred.json", tmp_path / "out.json"
    pred.write_text(json.dumps([{"pairID": "p1", "label": "entailment"}, {"pairID": "p2", "label": "entailment"},
                                {"pairID": "p3", "label": "contradiction"}, {"pairID": "p4", "label": "neutral"}]))
    result = score("-p", pred, "-a", annotations, "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metrics"] == {"acc": 50.0, "acc_entailment": 50.0, "acc_neutral": 0.0,
                                                      "acc_contradiction": 100.0}


def test_bad_files_are_one_line(tmp_path, extras, annotations):
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"pairID": "p1", "label": "entailment"}]))
    result = score("-p", pred, "-a", annotations)
    assert result.exit_code == 2 and "no prediction for pairID p2 (3 missing in all)" in result.stderr
    out = tmp_path / "out.json"
    assert score("-p", pred, "-a", annotations, "--allow-missing", "--json", out).exit_code == 0
    assert json.loads(out.read_text())["missing"] == 3 and json.loads(out.read_text())["metrics"]["acc"] == 25.0
    pred.write_text(json.dumps([{"pairID": "p1", "label": "yes"}]))
    result = score("-p", pred, "-a", annotations)
    assert result.exit_code == 2 and "label 'yes' is not one of entailment, neutral, contradiction" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""The two official vqaEval versions (``version="albef" | "current"``): hand-made
cases with known answers, equality with the outputs of the official tools on
the fixture ``tests/fixtures/metrics/official_versions.json``, the score
command's ``--vqa-eval`` and the VQA task's ``vqa_eval`` option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.tasks.metrics.vqa import VQA_EVAL_VERSIONS, question_accuracy, vqa_accuracy

FIXTURE = Path(__file__).parent / "fixtures" / "metrics" / "official_versions.json"

# (prediction, ten answers, accuracy under albef, accuracy under current)
HAND_CASES = [
    # all ten identical: albef normalises the prediction only, current normalises nothing
    ("Two", ["Two"] * 10, 0.0, 1.0),
    ("Yes", ["Yes"] * 10, 0.0, 1.0),
    ("Two", ["2"] * 10, 1.0, 0.0),
    ("2", ["Two"] * 10, 0.0, 0.0),
    ("yes.", ["yes"] * 10, 1.0, 0.0),
    ("the dog", ["dog"] * 10, 1.0, 0.0),
    ("yes ", ["yes"] * 10, 1.0, 1.0),        # the prediction is stripped in both
    ("yes", ["yes "] * 10, 0.0, 1.0),        # answers are stripped only in current
    ("red\n", ["red"] * 10, 1.0, 1.0),
    # the answers disagree: albef gives them punctuation only, current the full normalisation
    ("yes", ["Yes"] * 9 + ["yes"], 0.3, 1.0),
    ("Two", ["Two"] * 9 + ["2"], 0.3, 1.0),
    ("dog", ["The dog"] * 8 + ["cat"] * 2, 0.0, 1.0),
    ("dont", ["dont"] * 4 + ["no"] * 6, 0.0, 1.0),        # "dont" -> "don't" on both sides only in current
    ("t-shirt", ["t-shirt"] * 5 + ["shirt"] * 5, 1.0, 1.0),
    ("red", ["red"] * 2 + ["blue"] * 8, 0.6, 0.6),
    # different raw strings that are equal once stripped: current sees ten identical answers
    ("yes", ["yes "] * 9 + ["yes\t"], 0.0, 1.0),
    ("Yes", ["Yes "] * 9 + ["Yes\t"], 0.0, 1.0),
]


@pytest.mark.parametrize("pred, answers, albef, current", HAND_CASES)
def test_hand_cases_per_version(pred, answers, albef, current):
    assert question_accuracy(pred, answers, "albef") == pytest.approx(albef, abs=1e-12)
    assert question_accuracy(pred, answers, "current") == pytest.approx(current, abs=1e-12)


def test_default_is_albef_and_two_against_ten_two():
    assert VQA_EVAL_VERSIONS == ("albef", "current")
    assert question_accuracy("Two", ["Two"] * 10) == 0.0
    assert question_accuracy("Two", ["Two"] * 10, version="current") == 1.0
    anns = [{"question_id": 1, "answers": ["Two"] * 10, "answer_type": "number", "question_type": "how many"}]
    assert vqa_accuracy({1: "Two"}, anns).overall == 0.0
    res = vqa_accuracy({1: "Two"}, anns, version="current")
    assert res.overall == 100.0 and res.version == "current" and res.as_dict()["version"] == "current"
    assert vqa_accuracy({1: "Two"}, anns).version == "albef"


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="albef, current"):
        question_accuracy("yes", ["yes"] * 10, "v2")
    with pytest.raises(ValueError, match="albef, current"):
        vqa_accuracy({}, [], version="latest")


# ------------------------------------------------------------------ official tools' outputs
@pytest.fixture(scope="module")
def official():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("version", VQA_EVAL_VERSIONS)
def test_equals_official_per_question(official, version):
    qs = official["vqa"]["questions"]
    assert len(qs) >= 200
    for q in qs:
        acc = question_accuracy(q["prediction"], q["answers"], version)
        assert acc == q[version]["acc"], (version, q)  # bit-identical
        assert round(100 * acc, 2) == q[version]["evalQA"], (version, q)


@pytest.mark.parametrize("version", VQA_EVAL_VERSIONS)
def test_equals_official_aggregates(official, version):
    qs = official["vqa"]["questions"]
    res = vqa_accuracy({q["question_id"]: q["prediction"] for q in qs}, qs, version=version)
    want = official["vqa"]["accuracy"][version]
    assert res.overall == want["overall"]
    assert res.per_answer_type == want["perAnswerType"]
    assert res.per_question_type == want["perQuestionType"]
    assert res.per_question == {q["question_id"]: q[version]["evalQA"] for q in qs}


def test_fixture_exercises_both_versions(official):
    qs = official["vqa"]["questions"]
    differ = [q for q in qs if q["albef"]["acc"] != q["current"]["acc"]]
    assert len(differ) >= 50
    two = next(q for q in qs if q["prediction"] == "Two" and q["answers"] == ["Two"] * 10)
    assert two["albef"]["evalQA"] == 0.0 and two["current"]["evalQA"] == 100.0


# ------------------------------------------------------------------ score command and task option
def _vqa_files(tmp_path):
    anns = {"annotations": [
        {"question_id": 1, "image_id": 9, "question_type": "how many", "answer_type": "number",
         "answers": [{"answer": "Two", "answer_confidence": "yes", "answer_id": i + 1} for i in range(10)]},
        {"question_id": 2, "image_id": 9, "question_type": "is the", "answer_type": "yes/no",
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                     for i, a in enumerate(["Yes"] * 9 + ["yes"])]},
    ]}
    ann, pred = tmp_path / "ann.json", tmp_path / "pred.json"
    ann.write_text(json.dumps(anns))
    pred.write_text(json.dumps([{"question_id": 1, "answer": "Two"}, {"question_id": 2, "answer": "yes"}]))
    return pred, ann


def test_score_cli_vqa_eval(tmp_path):
    pred, ann = _vqa_files(tmp_path)
    out = tmp_path / "out.json"
    results = {}
    for flag in ([], ["--vqa-eval", "albef"], ["--vqa-eval", "current"]):
        r = CliRunner().invoke(main, ["score", "vqa", "-p", str(pred), "-a", str(ann), "--json", str(out), *flag])
        assert r.exit_code == 0, r.output
        data = json.loads(out.read_text())
        results[tuple(flag)] = (data["metrics"]["overall"], data["vqa_eval"])
    # albef: q1 0, q2 0.3 -> 15.0 ; current: q1 1.0, q2 1.0 -> 100.0
    assert results[()] == results[("--vqa-eval", "albef")] == (15.0, "albef")
    assert results[("--vqa-eval", "current")] == (100.0, "current")


def test_score_cli_bad_vqa_eval(tmp_path):
    pred, ann = _vqa_files(tmp_path)
    r = CliRunner().invoke(main, ["score", "vqa", "-p", str(pred), "-a", str(ann), "--vqa-eval", "latest"])
    assert r.exit_code == 2
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--vqa-eval" in errors[0] and "'albef', 'current'" in errors[0], r.output
    assert "Traceback" not in r.output


def test_task_option_vqa_eval():
    from simla_bench.errors import ConfigError
    from simla_bench.tasks.vqa import VQATask

    assert VQATask("vqa").options["vqa_eval"] == "albef"
    assert VQATask("vqa", {"vqa_eval": "current"}).options["vqa_eval"] == "current"
    with pytest.raises(ConfigError, match="vqa_eval must be albef or current"):
        VQATask("vqa", {"vqa_eval": "gt"})

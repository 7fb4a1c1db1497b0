"""``simla-bench score``: each task on tiny official-format files, JSON output,
and one clear error line for every kind of bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from simla_bench.cli import main


def run(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in err, err


# ----------------------------------------------------------------------------- VQA
@pytest.fixture
def vqa_files(tmp_path):
    anns = {"annotations": [
        {"question_id": 1, "image_id": 9, "question_type": "is the", "answer_type": "yes/no",
         "multiple_choice_answer": "yes", "answers": [{"answer": "yes", "answer_confidence": "yes", "answer_id": i + 1}
                                                      for i in range(10)]},
        {"question_id": 2, "image_id": 9, "question_type": "how many", "answer_type": "number",
         "multiple_choice_answer": "2", "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                                    for i, a in enumerate(["2"] * 2 + ["3"] * 8)]},
    ]}
    questions = {"questions": [{"question_id": 1, "image_id": 9, "question": "Is the sky blue?"},
                               {"question_id": 2, "image_id": 9, "question": "How many dogs?"}]}
    ann_path, q_path = tmp_path / "ann.json", tmp_path / "q.json"
    ann_path.write_text(json.dumps(anns))
    q_path.write_text(json.dumps(questions))
    return ann_path, q_path


def test_vqa_scores_and_writes_json(tmp_path, vqa_files):
    ann, q = vqa_files
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"question_id": 1, "answer": "Yes."}, {"question_id": 2, "answer": "two"}]))
    out = tmp_path / "out.json"
    result = run("vqa", "-p", pred, "-a", ann, "--questions", q, "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    # q1: 1.0 ; q2: "2" matches 2 of 10 -> 0.6 ; overall 80
    assert data["metrics"]["overall"] == 80.0
    assert data["metrics"]["answer_type/number"] == 60.0
    assert "overall" in result.stdout and "80.0" in result.stdout


def test_vqa_unknown_missing_malformed(tmp_path, vqa_files):
    ann, _ = vqa_files
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"question_id": 1, "answer": "yes"}, {"question_id": 2, "answer": "2"},
                                {"question_id": 77, "answer": "no"}]))
    assert_one_line_error(run("vqa", "-p", pred, "-a", ann), "question_id 77")
    pred.write_text(json.dumps([{"question_id": 1, "answer": "yes"}]))
    assert_one_line_error(run("vqa", "-p", pred, "-a", ann), "question_id 2", "--allow-missing")
    out = tmp_path / "o.json"
    result = run("vqa", "-p", pred, "-a", ann, "--allow-missing", "--json", out)
    assert result.exit_code == 0
    data = json.loads(out.read_text())
    assert data["missing"] == 1 and data["metrics"]["overall"] == 50.0
    assert "1 id(s) had no prediction" in result.stderr
    pred.write_text(json.dumps([{"question_id": 1}]))
    assert_one_line_error(run("vqa", "-p", pred, "-a", ann), "prediction #0")
    pred.write_text("[{not json")
    assert_one_line_error(run("vqa", "-p", pred, "-a", ann), "not valid JSON")
    assert_one_line_error(run("vqa", "-p", tmp_path / "nope.json", "-a", ann), "not found")


# ----------------------------------------------------------------------------- NLVR2
@pytest.fixture
def nlvr2_labels(tmp_path):
    path = tmp_path / "dev.json"
    rows = [{"identifier": "dev-1-0-0", "label": "True", "sentence": "s"},
            {"identifier": "dev-1-1-0", "label": "False", "sentence": "s"},
            {"identifier": "dev-2-0-1", "label": "True", "sentence": "t"},
            {"identifier": "dev-2-1-1", "label": "True", "sentence": "t"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_nlvr2_scores(tmp_path, nlvr2_labels):
    pred = tmp_path / "pred.csv"
    pred.write_text("dev-1-0-0,True\ndev-1-1-0,false\ndev-2-0-1,True\ndev-2-1-1,False\n")
    out = tmp_path / "o.json"
    result = run("nlvr2", "-p", pred, "-a", nlvr2_labels, "--json", out)
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())["metrics"]
    assert m["accuracy"] == 75.0 and m["consistency"] == 50.0
    assert m["precision (official fraction)"] == 0.75


def test_nlvr2_bad_inputs(tmp_path, nlvr2_labels):
    pred = tmp_path / "pred.csv"
    pred.write_text("dev-1-0-0,True\ndev-1-1-0,maybe\n")
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "line 2")
    pred.write_text("dev-1-0-0,True,extra\n")
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "line 1")
    pred.write_text("identifier,prediction\ndev-1-0-0,True\n")  # a header line
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "line 1")
    pred.write_text("dev-1-0-0,True\ndev-1-1-0, False\n")  # the official script would count it wrong
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "line 2")
    pred.write_text("dev-1-0-0,True\ndev-1-1-0,False\ndev-2-0-1,True\ndev-2-1-1,True\ndev-9-0-0,True\n")
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "identifier dev-9-0-0")
    pred.write_text("dev-1-0-0,True\n")
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "identifier dev-1-1-0", "3 missing")
    out = tmp_path / "o.json"
    assert run("nlvr2", "-p", pred, "-a", nlvr2_labels, "--allow-missing", "--json", out).exit_code == 0
    data = json.loads(out.read_text())
    assert data["missing"] == 3 and data["metrics"]["accuracy"] == 25.0
    pred.write_text("dev-1-0-0,True\ndev-1-0-0,False\n")
    assert_one_line_error(run("nlvr2", "-p", pred, "-a", nlvr2_labels), "line 2", "twice")


# ----------------------------------------------------------------------------- retrieval
@pytest.fixture
def retrieval_ann(tmp_path):
    path = tmp_path / "test.json"
    path.write_text(json.dumps([{"image": "a.jpg", "caption": ["a0", "a1"]},
                                {"image": "b.jpg", "caption": ["b0", "b1"]}]))
    return path


def test_retrieval_matrix_and_ranked_lists(tmp_path, retrieval_ann):
    i2t = np.array([[0.1, 0.9, 0.5, 0.2], [0.9, 0.8, 0.1, 0.7]], dtype=np.float32)
    np.save(tmp_path / "s.npy", i2t)
    out = tmp_path / "o.json"
    result = run("retrieval", "-p", tmp_path / "s.npy", "-a", retrieval_ann, "--json", out)
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())["metrics"]
    # images: ranks 0 and 2 ; texts (transpose columns): t0 [0.1, 0.9] -> rank 1, t1 [0.9, 0.8] -> 0,
    # t2 [0.5, 0.1] (image 1) -> 1, t3 [0.2, 0.7] -> 0
    assert m["TR@1"] == 50.0 and m["TR@5"] == 100.0 and m["IR@1"] == 50.0 and m["IR@5"] == 100.0
    # a separate text->image matrix
    np.save(tmp_path / "t.npy", np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32))
    result = run("retrieval", "-p", tmp_path / "s.npy", "--predictions-t2i", tmp_path / "t.npy",
                 "-a", retrieval_ann, "--json", out)
    assert json.loads(out.read_text())["metrics"]["IR@1"] == 100.0
    lists = {"i2t": [[1, 2, 3, 0], [0, 1, 3, 2]], "t2i": [[0, 1], [1, 0], [1, 0], [1]]}
    (tmp_path / "r.json").write_text(json.dumps(lists))
    result = run("retrieval", "-p", tmp_path / "r.json", "-a", retrieval_ann, "--json", out)
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())["metrics"]
    assert m["TR@1"] == 50.0 and m["TR@5"] == 100.0 and m["IR@1"] == 75.0


def test_retrieval_bad_inputs(tmp_path, retrieval_ann):
    np.save(tmp_path / "s.npy", np.zeros((3, 4)))
    assert_one_line_error(run("retrieval", "-p", tmp_path / "s.npy", "-a", retrieval_ann), "shape (3, 4)")
    (tmp_path / "r.json").write_text(json.dumps({"i2t": [[0], [9]], "t2i": [[0]] * 4}))
    assert_one_line_error(run("retrieval", "-p", tmp_path / "r.json", "-a", retrieval_ann), "query 1")
    (tmp_path / "x.txt").write_text("hi")
    assert_one_line_error(run("retrieval", "-p", tmp_path / "x.txt", "-a", retrieval_ann), ".npy")


# ----------------------------------------------------------------------------- grounding
@pytest.fixture
def refer_files(tmp_path):
    refs = [
        {"ref_id": 10, "ann_id": 100, "image_id": 1, "split": "val", "category_id": 1,
         "sentences": [{"sent_id": 1, "sent": "left dog"}, {"sent_id": 2, "sent": "dog on the left"}]},
        {"ref_id": 11, "ann_id": 101, "image_id": 1, "split": "testA", "category_id": 1,
         "sentences": [{"sent_id": 3, "sent": "right man"}]},
        {"ref_id": 12, "ann_id": 102, "image_id": 2, "split": "train", "category_id": 1,
         "sentences": [{"sent_id": 4, "sent": "cat"}]},
    ]
    inst = {"annotations": [{"id": 100, "bbox": [0, 0, 10, 10], "image_id": 1},
                            {"id": 101, "bbox": [20, 20, 10, 10], "image_id": 1},
                            {"id": 102, "bbox": [0, 0, 5, 5], "image_id": 2}]}
    rp, ip = tmp_path / "refs(unc).p", tmp_path / "instances.json"
    rp.write_bytes(pickle.dumps(refs, protocol=2))
    ip.write_text(json.dumps(inst))
    return rp, ip


def test_grounding_scores(tmp_path, refer_files):
    refs, inst = refer_files
    pred = tmp_path / "p.json"
    # ref 10: one box for both sentences, IoU exactly 0.5 -> correct ; ref 11: wrong box
    pred.write_text(json.dumps([{"ref_id": 10, "box": [0, 0, 5, 10]}, {"ref_id": 11, "box": [0, 0, 10, 10]}]))
    out = tmp_path / "o.json"
    result = run("grounding", "-p", pred, "-a", refs, "--instances", inst, "--json", out)
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())["metrics"]
    assert m["val/acc"] == 100.0 and m["testA/acc"] == 0.0 and "testB/acc" not in m
    # per-sentence boxes
    pred.write_text(json.dumps([{"ref_id": 10, "sent_id": 1, "box": [0, 0, 10, 10]},
                                {"ref_id": 10, "sent_id": 2, "box": [50, 50, 1, 1]}]))
    result = run("grounding", "-p", pred, "-a", refs, "--instances", inst, "--split", "val", "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["metrics"]["val/acc"] == 50.0


def test_grounding_bad_inputs(tmp_path, refer_files):
    refs, inst = refer_files
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps([{"ref_id": 10, "box": [0, 0, 5, 10]}, {"ref_id": 11, "box": [0, 0, 10, 10]},
                                {"ref_id": 999, "box": [0, 0, 1, 1]}]))
    assert_one_line_error(run("grounding", "-p", pred, "-a", refs, "--instances", inst), "ref_id 999")
    pred.write_text(json.dumps([{"ref_id": 10, "box": [0, 0, 5, 10]}]))
    assert_one_line_error(run("grounding", "-p", pred, "-a", refs, "--instances", inst), "ref_id 11")
    out = tmp_path / "o.json"
    result = run("grounding", "-p", pred, "-a", refs, "--instances", inst, "--allow-missing", "--json", out)
    assert result.exit_code == 0
    data = json.loads(out.read_text())
    assert data["missing"] == 1 and data["metrics"]["testA/acc"] == 0.0 and data["metrics"]["val/acc"] == 100.0
    pred.write_text(json.dumps([{"ref_id": 10, "box": [0, 0, 5]}]))
    assert_one_line_error(run("grounding", "-p", pred, "-a", refs, "--instances", inst), "prediction #0")
    pred.write_text(json.dumps([{"ref_id": 10, "box": [0, 0, 5, 10]}, {"ref_id": 10, "box": [0, 0, 5, 10]}]))
    assert_one_line_error(run("grounding", "-p", pred, "-a", refs, "--instances", inst), "twice")
    assert_one_line_error(run("grounding", "-p", pred, "-a", refs), "--instances")


def test_refs_pickle_with_objects_is_refused(tmp_path, refer_files):
    _, inst = refer_files
    bad = tmp_path / "bad.p"
    bad.write_bytes(pickle.dumps([{"ref_id": 1, "x": np.float64(1.0)}]))
    pred = tmp_path / "p.json"
    pred.write_text("[]")
    assert_one_line_error(run("grounding", "-p", pred, "-a", bad, "--instances", inst), "plain pickle")


def test_help_shows_examples():
    result = CliRunner().invoke(main, ["score", "--help"])
    assert result.exit_code == 0 and "simla-bench score vqa" in result.output


# ----------------------------------------------------------------------------- dispatch through the registry
def _third_party_tasks():
    from simla_bench.interfaces import FileScores, ScoreOption, Task, TaskResult

    class LineTask(Task):
        """A third-party task whose files are lines of text."""

        primary_metric = "test/acc"
        score_options = (ScoreOption("case", "compare case-sensitively or not", choices=("exact", "fold"),
                                     default="exact", record=True),)

        def run(self, ctx):
            return TaskResult({"test/acc": 0.0})

        def score_files(self, predictions, annotations, *, allow_missing=False, case="exact"):
            """Lines of predictions against lines of answers."""
            norm = (lambda s: s) if case == "exact" else str.lower
            pred = [norm(s) for s in predictions.read_text().split()]
            gold = [norm(s) for s in annotations.read_text().split()]
            return FileScores({"acc": 100.0 * sum(p == g for p, g in zip(pred, gold)) / len(gold)},
                              missing=max(0, len(gold) - len(pred)))

    class NoScoring(Task):
        primary_metric = "test/acc"

        def run(self, ctx):
            return TaskResult({"test/acc": 0.0})

    return LineTask, NoScoring


@pytest.fixture
def third_party_registry(simla_registry):
    import types

    from simla_bench.hookspecs import hookimpl

    line_task, no_scoring = _third_party_tasks()
    module = types.ModuleType("lines_plugin")
    module.SIMLA_BENCH_DIST = "simla-bench-lines"

    def register_tasks(register):
        register("lines", line_task, "line-per-example task")
        register("noscore", no_scoring, "a task that scores no files")

    module.register_tasks = hookimpl(register_tasks)
    simla_registry.add_plugin(module)
    return simla_registry


def test_a_third_party_task_is_scored_through_its_own_method(tmp_path, third_party_registry):
    pred, gold, out = tmp_path / "p.txt", tmp_path / "g.txt", tmp_path / "o.json"
    pred.write_text("A b c d\n")
    gold.write_text("a b c x\n")
    result = run("lines", "-p", pred, "-a", gold, "--json", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"task": "lines", "predictions": str(pred), "annotations": str(gold),
                                           "metrics": {"acc": 50.0}, "missing": 0, "case": "exact"}
    assert run("lines", "-p", pred, "-a", gold, "--case", "fold", "--json", out).exit_code == 0
    assert json.loads(out.read_text())["metrics"]["acc"] == 75.0
    assert "--case [exact|fold]" in run("lines", "--help").output
    listing = run("--help").output
    assert "lines" in listing and "noscore" in listing and "retrieval" in listing


def test_a_task_without_scoring_and_an_unknown_task_are_one_line_errors(tmp_path, third_party_registry):
    pred = tmp_path / "p.txt"
    pred.write_text("a\n")
    assert_one_line_error(run("noscore", "-p", pred, "-a", pred), "task 'noscore'", "simla-bench-lines",
                          "does not score prediction files")
    result = run("lnies", "-p", pred, "-a", pred)
    assert result.exit_code == 2 and "No such command 'lnies'" in result.output


def test_declared_choices_match_the_metric_modules():
    from simla_bench.tasks.metrics import grounding, score_files, vqa

    assert score_files.VQA_EVAL_VERSIONS == tuple(vqa.VQA_EVAL_VERSIONS)
    assert score_files.IOU_RULES == tuple(grounding.IOU_RULES)

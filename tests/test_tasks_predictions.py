"""The four built-in tasks' prediction files on the tiny world (issue 22): each task
returns its predictions in the official formats; fed back to the task's scorer
(``score_files`` against the split's annotations) they give the task's metrics
exactly, and ``simla-bench score`` on the world's own annotation files gives them
too; the per-example view (``Task.examples``) reproduces ``per_example``; a sparse
and a dense retrieval matrix score the same.

The tasks run on the shared tiny model with one or two fine-tuning steps (their
numbers are near chance; what is checked is that files and metrics agree).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from simla_bench.interfaces import TaskContext
from simla_bench.registry import get_registry
from simla_bench.tasks import predictions as P
from simla_bench.training.seeding import seed_everything

FAST = {"epochs": 1.0, "max_steps": 1, "batch_size": 4}
OPTIONS = {"retrieval": {**FAST, "k": 10}, "grounding": dict(FAST), "vqa": dict(FAST), "nlvr2": dict(FAST)}


@pytest.fixture(scope="module")
def cells(tiny_world, tiny_models, tmp_path_factory):
    """task name -> (task, result, predictions folder) of one run of each task."""
    out = {}
    for name, options in OPTIONS.items():
        task = get_registry().load("task", name)(name, options)
        folder = tmp_path_factory.mktemp(name)
        ctx = TaskContext(model=tiny_models["single_stream"], tokenizer=None, data=tiny_world, options=task.options,
                          seed=0, device="cpu", workdir=folder)
        seed_everything(0)
        result = task.run(ctx)
        for fname, content in result.predictions.items():
            (folder / fname).write_bytes(content.encode() if isinstance(content, str) else content)
        out[name] = (task, result, folder)
    return out


@pytest.mark.parametrize("name", list(OPTIONS))
def test_saved_predictions_rescore_to_the_metrics_exactly(cells, tiny_world, name):
    task, result, folder = cells[name]
    assert result.predictions, name
    rescored = task.score_predictions(folder, tiny_world)
    assert rescored  # every split the task scored has its files
    for metric, value in rescored.items():
        assert result.metrics[metric] == value, (metric, value, result.metrics[metric])
    scored_splits = {m.split("/")[0] for m in result.metrics if not m.startswith(("test_zs/", "mean/"))}
    assert {m.split("/")[0] for m in rescored if not m.startswith("mean/")} == scored_splits


@pytest.mark.parametrize("name", list(OPTIONS))
def test_examples_reproduce_per_example(cells, tiny_world, name):
    task, result, folder = cells[name]
    examples = task.examples(folder, tiny_world)
    values = [ex.value for ex in examples if ex.value is not None]
    assert values == pytest.approx(result.per_example[task.primary_metric], abs=1e-12)
    assert len({ex.id for ex in examples}) == len(examples)
    for ex in examples:
        assert ex.images and all(p.endswith(".png") or p.endswith(".jpg") for p in ex.images)
        json.dumps([ex.prediction, ex.truth, ex.measure])  # JSON-able
    if name == "retrieval":  # one per image query, one per text query; ranks count from 1
        split = tiny_world.load("retrieval", "test")
        assert len(examples) == len(split.images) + len(split.texts)
        assert all(ex.measure >= 1 and ex.lower_is_better for ex in examples)
        hits = [ex for ex in examples if ex.id.startswith("t2i:") and ex.measure == 1]
        assert len(hits) == round(result.metrics["test/IR@1"] * len(split.texts) / 100)
    if name == "grounding":
        assert all(ex.value == float(ex.measure >= 0.5) for ex in examples)


def test_the_world_s_own_annotation_files_score_the_files_alike(cells, tiny_world):
    """``simla-bench score`` on a saved file and the world's official annotation file."""
    from simla_bench.cli import main

    root = tiny_world.root
    cases = {
        "retrieval": (["test_scores_i2t.npz", "--predictions-t2i", "{dir}/test_scores_t2i.npz"],
                      root / "retrieval" / "world_karpathy_test.json", {"r_mean": "test/r_mean"}),
        "vqa": (["test_answers.json"], tiny_world.load("vqa", "test").annotations_file, {"overall": "test/overall"}),
        "grounding": (["val_boxes.json", "--instances", str(root / "refcoco+" / "instances.json"), "--split", "val"],
                      root / "refcoco+" / "refs(unc).p", {"val/acc": "val/acc"}),
        "nlvr2": (["test_predictions.csv"], root / "nlvr2" / "test1.json",
                  {"accuracy": "test/acc", "consistency": "test/consistency"}),
    }
    for name, (args, ann, wanted) in cases.items():
        task, result, folder = cells[name]
        args = [a.format(dir=folder) for a in args]
        out = folder / "score.json"
        res = CliRunner().invoke(main, ["score", name, "-p", str(folder / args[0]), "-a", str(ann), *args[1:],
                                        "--json", str(out)])
        assert res.exit_code == 0, (name, res.output)
        metrics = json.loads(out.read_text())["metrics"]
        for key, metric in wanted.items():
            assert metrics[key] == result.metrics[metric], (name, key)


def test_sparse_and_dense_retrieval_matrices_score_the_same(cells, tiny_world, tmp_path):
    from simla_bench.tasks.metrics.official_files import read_score_matrix, read_sparse_arrays

    task, result, folder = cells["retrieval"]
    arrays = read_sparse_arrays(folder / "test_scores_i2t.npz", "i2t")
    assert arrays["indices"].dtype == np.uint16 and float(arrays["fill"]) == -100.0
    assert arrays["itc"].shape == arrays["scores"].shape  # the candidates' ITC similarities
    n_img, n_txt = (int(v) for v in arrays["shape"])
    for direction, shape in (("i2t", (n_img, n_txt)), ("t2i", (n_txt, n_img))):
        dense = read_score_matrix(folder / f"test_scores_{direction}.npz", shape, direction)
        assert (dense != -100.0).sum(axis=1).max() <= 10   # k = 10 candidates per query
        np.save(tmp_path / f"test_scores_{direction}.npy", dense)
    ann = P.write_retrieval_annotations(tiny_world.load("retrieval", "test"), tmp_path / "ann.json")
    for where, suffix in ((folder, "npz"), (tmp_path, "npy")):  # the same scores from either form
        scores = task.score_files(where / f"test_scores_i2t.{suffix}", ann,
                                  predictions_t2i=where / f"test_scores_t2i.{suffix}").metrics
        assert scores["r_mean"] == result.metrics["test/r_mean"]


def test_sparse_writer_refuses_a_matrix_that_is_not_sparse_and_round_trips_one_that_is(tmp_path):
    from simla_bench.tasks.metrics.official_files import read_score_matrix, sparse_matrix_bytes

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(7, 30)).astype(np.float32)
    assert sparse_matrix_bytes(dense, -100.0, 5) is None
    sparse = np.full_like(dense, -100.0)
    for i in range(7):
        cols = rng.choice(30, size=3 + i % 3, replace=False)  # rows with fewer than k entries are padded
        sparse[i, cols] = dense[i, cols]
    path = tmp_path / "m.npz"
    path.write_bytes(sparse_matrix_bytes(sparse, -100.0, 5))
    back = read_score_matrix(path, (7, 30), "m")
    assert back.dtype == np.float32 and np.array_equal(back, sparse)

"""The ``snli_ve`` task end to end on the tiny world with the tiny model."""

import pytest

from simla_bench.errors import DataError
from simla_bench_extras.snli_ve import VisualEntailment

#: a quick check of the whole protocol (2 steps, 8 val / 8 test examples)
QUICK = {"steps": 2, "batch_size": 8, "max_train": 16, "max_eval": 8}
#: enough to fit 16 training examples: a fresh model's fused CLS is nearly the same for
#: every input, so the encoder itself must learn (model lr 1e-3), not only the head
FIT = {"steps": 30, "batch_size": 16, "max_train": 16, "max_eval": 8, "lr": 1e-3, "head_lr": 1e-2}


def test_registered_by_the_entry_point(simla_registry):
    entry = simla_registry.get("task", "snli_ve")
    assert entry.plugin.dist_name == "simla-bench-extras"
    assert entry.load() is VisualEntailment


def test_protocol_scores_val_and_test_consistently(simla_task_context):
    result = VisualEntailment("snli_ve", QUICK).run(simla_task_context)
    assert result.extra["steps"] == QUICK["steps"]
    assert sum(result.extra["counts"]["train"].values()) == 16
    for split in ("val", "test"):
        scores = result.per_example[f"{split}/acc"]
        assert set(scores) <= {0.0, 1.0} and len(scores) == sum(result.extra["counts"][split].values())
        assert result.metrics[f"{split}/acc"] == pytest.approx(100 * sum(scores) / len(scores))
    assert result.metrics["test/acc"] == result.metrics[VisualEntailment.primary_metric]


@pytest.mark.slow
def test_fine_tuning_fits_the_training_examples(simla_task_context):
    result = VisualEntailment("snli_ve", FIT).run(simla_task_context)
    assert result.extra["loss_last"] < 0.5 * result.extra["loss_first"]   # measured: 1.12 -> 0.29


@pytest.mark.slow
def test_same_seed_same_numbers(simla_tiny_model, simla_tiny_world, tmp_path):
    import copy

    from simla_bench.testing import task_context

    a = VisualEntailment("snli_ve", QUICK).run(task_context(copy.deepcopy(simla_tiny_model), simla_tiny_world, tmp_path))
    b = VisualEntailment("snli_ve", QUICK).run(task_context(copy.deepcopy(simla_tiny_model), simla_tiny_world, tmp_path))
    assert a.metrics == b.metrics


def test_refuses_a_dataset_without_world_records(simla_task_context, tmp_path):
    class NotAWorld:
        name = "elsewhere"
        root = tmp_path

        def prepare(self):
            return {}

    simla_task_context.data = NotAWorld()
    with pytest.raises(DataError, match="needs the built-in world"):
        VisualEntailment("snli_ve").run(simla_task_context)

"""The ``snli_ve`` task end to end on the tiny world with the tiny model."""

import pytest

from simla_bench.errors import DataError
from simla_bench_extras.snli_ve import VisualEntailment

FAST = {"steps": 25, "batch_size": 16, "max_train": 32, "lr": 3e-4, "head_lr": 3e-3}


def test_registered_by_the_entry_point(simla_registry):
    entry = simla_registry.get("task", "snli_ve")
    assert entry.plugin.dist_name == "simla-bench-extras"
    assert entry.load() is VisualEntailment


def test_fine_tuning_fits_the_training_examples_and_scores_val_and_test(simla_task_context):
    result = VisualEntailment("snli_ve", FAST).run(simla_task_context)
    assert result.extra["steps"] == FAST["steps"]
    assert result.extra["loss_last"] < 0.8 * result.extra["loss_first"]   # it learns (fits 32 examples)
    for split in ("val", "test"):
        scores = result.per_example[f"{split}/acc"]
        assert set(scores) <= {0.0, 1.0} and len(scores) == sum(result.extra["counts"][split].values())
        assert result.metrics[f"{split}/acc"] == pytest.approx(100 * sum(scores) / len(scores))
    assert result.metrics["test/acc"] == result.metrics[VisualEntailment.primary_metric]


@pytest.mark.slow
def test_same_seed_same_numbers(simla_tiny_model, simla_tiny_world, tmp_path):
    import copy

    from simla_bench.testing import task_context

    a = VisualEntailment("snli_ve", FAST).run(task_context(copy.deepcopy(simla_tiny_model), simla_tiny_world, tmp_path))
    b = VisualEntailment("snli_ve", FAST).run(task_context(copy.deepcopy(simla_tiny_model), simla_tiny_world, tmp_path))
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

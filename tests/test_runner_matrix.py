"""The matrix runner with fake plugins: records, cache hits, --force, corrupt
records, resume after interruptions, fault isolation, observers, bad input."""

from __future__ import annotations

import json
import threading

import pytest

from simla_bench.errors import ConfigError, UnknownNameError
from simla_bench.runner.cells import CapabilityError
from simla_bench.runner.matrix import MatrixRunner
from simla_bench.runner.store import IncompatibleRunDirError, RECORD_FIELDS, RunStore, SCHEMA_VERSION
from helpers.runner_fakes import FakePipeline, FakeTask, Observer, make_config, make_registry


def run(cfg, pipe=None, reg=None, force=False, out=None):
    pipe = pipe or FakePipeline()
    result = MatrixRunner(cfg, reg or make_registry(), pipe, out or cfg.output_dir, force=force).run()
    return result, pipe


def metrics_by_cell(result):
    return {(r["row"], r["seed"], r["task"]): r["metrics"] for r in result.records}


def test_run_writes_one_complete_record_per_cell(tmp_path):
    cfg = make_config(tmp_path, seeds=[0, 1])
    result, pipe = run(cfg)
    assert result.failures == [] and result.computed == 4 and result.cached == 0
    files = sorted((tmp_path / "run" / "cells").glob("*.json"))
    assert len(files) == 4
    rec = json.loads(files[0].read_text())
    assert set(RECORD_FIELDS) <= set(rec)
    assert rec["schema"] == SCHEMA_VERSION and rec["primary_metric"] == "test/acc"
    assert set(rec["metrics"]) == {"test/acc", "test/loss", "val/acc"}
    assert len(rec["per_example"]["test/acc"]) == 200
    assert rec["pretrain"]["loss"]["losses"]["itc"]["last"] < rec["pretrain"]["loss"]["losses"]["itc"]["first"]
    assert rec["versions"]["simla-bench"] and "torch" in rec["versions"]
    assert rec["data_manifest"]["world"]["checksum"] == "fake-v1"
    # one pretraining per (row, seed), shared by its tasks
    assert len(pipe.pretrain_calls) == 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["schema"] == SCHEMA_VERSION and len(manifest["cells"]) == 4


def test_rerun_recomputes_nothing_and_force_recomputes(tmp_path):
    cfg = make_config(tmp_path)
    first, _ = run(cfg)
    FakeTask.calls.clear()
    again, pipe = run(cfg)
    assert again.computed == 0 and again.cached == 2
    assert pipe.pretrain_calls == [] and FakeTask.calls == []
    assert metrics_by_cell(again) == metrics_by_cell(first)
    forced, pipe = run(cfg, force=True)
    assert forced.computed == 2 and len(pipe.pretrain_calls) == 1 and pipe.pretrain_calls[0][2] == 1
    assert metrics_by_cell(forced) == metrics_by_cell(first)


def test_same_config_and_seed_give_the_same_numbers_in_another_directory(tmp_path):
    a, _ = run(make_config(tmp_path, output_dir=str(tmp_path / "a")))
    b, _ = run(make_config(tmp_path, output_dir=str(tmp_path / "b")))
    assert metrics_by_cell(a) == metrics_by_cell(b)
    assert sorted(r["key"] for r in a.records) == sorted(r["key"] for r in b.records)


def test_corrupt_record_is_reported_moved_aside_and_recomputed(tmp_path, capsys):
    cfg = make_config(tmp_path)
    first, _ = run(cfg)
    victim = first.records[0]["key"]
    path = tmp_path / "run" / "cells" / f"{victim}.json"
    path.write_text(path.read_text()[:50])  # torn file
    second, pipe = run(cfg)
    assert second.computed == 1 and second.cached == 1
    assert (tmp_path / "run" / "cells" / f"{victim}.json.corrupt").exists()
    assert "corrupt" in capsys.readouterr().err
    assert len(pipe.pretrain_calls) == 0  # the finished pretraining was reused
    assert metrics_by_cell(second) == metrics_by_cell(first)


def test_record_with_wrong_content_counts_as_corrupt(tmp_path):
    cfg = make_config(tmp_path)
    first, _ = run(cfg)
    key = first.records[0]["key"]
    path = tmp_path / "run" / "cells" / f"{key}.json"
    rec = json.loads(path.read_text())
    del rec["metrics"]["test/acc"]
    path.write_text(json.dumps(rec))
    assert "primary metric" in RunStore(tmp_path / "run").read_record(key).problem
    second, _ = run(cfg)
    assert second.computed == 1


def test_resume_after_interruption_mid_pretraining(tmp_path):
    reference, _ = run(make_config(tmp_path, output_dir=str(tmp_path / "ref")))
    cfg = make_config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, FakePipeline(interrupt_at=5))
    assert not list((tmp_path / "run" / "cells").glob("*.json"))
    resumed, pipe = run(cfg)
    assert pipe.pretrain_calls[0][2] == 5  # continued after the step-4 checkpoint
    assert resumed.records[0]["pretrain"]["resumed_from_checkpoint"] is True
    assert metrics_by_cell(resumed) == metrics_by_cell(reference)
    ref_loss = reference.records[0]["pretrain"]["loss"]
    assert resumed.records[0]["pretrain"]["loss"] == ref_loss


class InterruptingPipeline(FakePipeline):
    def __init__(self, task):
        super().__init__()
        self.task = task

    def run_task(self, task, ctx):
        if task.name == self.task:
            raise KeyboardInterrupt
        return super().run_task(task, ctx)


def test_resume_after_interruption_mid_task_list(tmp_path):
    cfg = make_config(tmp_path)
    FakeTask.calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run(cfg, InterruptingPipeline("toy2"))
    assert len(list((tmp_path / "run" / "cells").glob("*.json"))) == 1  # toy finished and kept
    FakeTask.calls.clear()
    resumed, pipe = run(cfg)
    assert resumed.cached == 1 and resumed.computed == 1
    assert pipe.pretrain_calls == [] and pipe.restored == [0]  # finished pretraining restored, not redone
    assert FakeTask.calls == [("toy2", 0)]


def test_nan_loss_stops_that_row_only(tmp_path):
    cfg = make_config(tmp_path, objectives={"itc": {"options": {"nan_at": 3}}},
                      matrix=[{"objectives": ["itc"]}, {"objectives": ["itm"]}])
    result, _ = run(cfg)
    assert len(result.failures) == 1
    msg = result.failures[0]
    assert "row 'itc'" in msg and "objective 'itc'" in msg and "step 3" in msg
    assert {r["row"] for r in result.records} == {"itm"} and len(result.records) == 2
    assert len(list((tmp_path / "run" / "pretrain").glob("*/error.log"))) == 1


def test_failing_task_fails_its_cell_only(tmp_path):
    cfg = make_config(tmp_path, tasks={"toy": {"options": {"fail": True}}, "toy2": {}})
    result, _ = run(cfg)
    assert len(result.failures) == 1 and "task 'toy'" in result.failures[0]
    assert "told to fail" in result.failures[0]
    assert [r["task"] for r in result.records] == ["toy2"]


def test_observers_see_start_every_cell_and_finish(tmp_path):
    obs = Observer()
    cfg = make_config(tmp_path)
    run(cfg, reg=make_registry(obs))
    kinds = [e[0] for e in obs.events]
    assert kinds == ["start", "cell", "cell", "finished"]
    assert len(obs.events[-1][2]) == 2


def test_unknown_names_say_did_you_mean(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'itc'"):
        run(make_config(tmp_path, objectives={"itcc": {}}))
    with pytest.raises(UnknownNameError, match="did you mean 'toy'"):
        run(make_config(tmp_path, tasks={"tyo": {}}))


def test_bad_task_option_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="task 'toy': unknown option"):
        run(make_config(tmp_path, tasks={"toy": {"options": {"nn": 3}}}))


def test_task_needing_fusion_on_a_model_without_one_is_na(tmp_path):
    """A task whose needs the model lacks is no error: its cell is an n/a record naming what is missing."""
    cfg = make_config(tmp_path, objectives={"itc": {}}, tasks={"grounding": {}, "toy": {}},
                      model={"layout": "split", "fusion_layers": 0})
    result, pipe = run(cfg)
    assert result.failures == [] and result.computed == 2
    by_task = {r["task"]: r for r in result.records}
    na = by_task["grounding"]["not_applicable"]
    assert na["model"] == "vlp" and na["missing"] == ["fusion"] and "fusion_layers > 0" in na["hint"]
    assert by_task["grounding"]["metrics"] == {} and "not_applicable" not in by_task["toy"]
    assert len(pipe.pretrain_calls) == 1  # the row still pretrains for its applicable task
    again, _ = run(cfg)
    assert again.computed == 0 and again.cached == 2  # the n/a record is a finished cell


def test_objective_needing_fusion_on_a_model_without_one(tmp_path):
    cfg = make_config(tmp_path, objectives={"itm": {}}, tasks={"toy": {}},
                      model={"layout": "split", "fusion_layers": 0})
    with pytest.raises(CapabilityError) as err:
        run(cfg)
    text = err.value.one_line()
    assert "objective 'itm'" in text and "'fusion'" in text and "fusion_layers > 0" in text
    assert not list((tmp_path / "run" / "pretrain").iterdir())  # refused before any pretraining


def test_incompatible_results_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"schema": 99, "versions": {"simla-bench": "9.0"}}))
    with pytest.raises(IncompatibleRunDirError, match="schema 99"):
        run(make_config(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(IncompatibleRunDirError, match="not a simla-bench run directory"):
        run(make_config(tmp_path), out=other)


def test_duplicate_objective_sets_run_once(tmp_path):
    cfg = make_config(tmp_path, matrix=[{"name": "A", "objectives": ["itc", "itm"]},
                                        {"name": "B", "objectives": ["itm", "itc"]}])
    result, pipe = run(cfg)
    assert len(pipe.pretrain_calls) == 1
    assert {r["row"] for r in result.records} == {"A = B"}


def test_rows_with_their_own_model_are_separate_pretrainings(tmp_path):
    """ALBEF's split layout next to SIMLA's single stream in one matrix."""
    cfg = make_config(tmp_path, tasks={"toy": {}},
                      matrix=[{"name": "single", "objectives": ["itc", "itm"]},
                              {"name": "split", "objectives": ["itc", "itm"],
                               "model": {"layout": "split", "fusion_layers": 1}},
                              {"name": "split again", "objectives": ["itm", "itc"],
                               "model": {"fusion_layers": 1, "layout": "split"}}])
    result, pipe = run(cfg)
    assert len(pipe.pretrain_calls) == 2
    layouts = {r["row"]: r["config"]["model"]["options"].get("layout", "single_stream") for r in result.records}
    assert layouts == {"single": "single_stream", "split = split again": "split"}
    assert len({r["pretrain_key"] for r in result.records}) == 2
    assert len({r["row_key"] for r in result.records}) == 2
    assert run(cfg)[0].computed == 0  # each row finds its own cells again


def test_row_model_overrides_are_checked(tmp_path):
    # the model recipe validates a row's options, before anything runs
    with pytest.raises(ConfigError, match="model 'vlp': option 'layout'"):
        run(make_config(tmp_path, matrix=[{"name": "bad", "objectives": ["itc"], "model": {"layout": "twin"}}]))
    with pytest.raises(ConfigError, match="cannot override model.options.vocab_size"):
        run(make_config(tmp_path, matrix=[{"objectives": ["itc"], "model": {"options": {"vocab_size": 500}}}]))
    with pytest.raises(UnknownNameError, match="model 'other'"):  # another family must be a registered model
        run(make_config(tmp_path, matrix=[{"objectives": ["itc"], "model": {"name": "other"}}]))
    # a row whose own model lacks what a task needs: that row's cell is n/a, the other row's is scored
    cfg = make_config(tmp_path, objectives={"itc": {}}, tasks={"grounding": {}},
                      matrix=[{"name": "ok", "objectives": ["itc"]},
                              {"name": "no fusion", "objectives": ["itc"],
                               "model": {"layout": "split", "fusion_layers": 0}}])
    result, pipe = run(cfg)
    by_row = {r["row"]: r for r in result.records}
    assert "not_applicable" not in by_row["ok"] and by_row["no fusion"]["not_applicable"]["missing"] == ["fusion"]
    assert len(pipe.pretrain_calls) == 1  # the n/a row needs no pretraining


def test_data_fraction_sweep_makes_rows(tmp_path):
    cfg = make_config(tmp_path, data_fractions=[0.25, 1.0], tasks={"toy": {}})
    result, pipe = run(cfg)
    assert sorted(r["row"] for r in result.records) == ["itc,itm @100%", "itc,itm @25%"]
    assert {r["pretrain"]["pairs"] for r in result.records} == {10, 40}
    assert len({r["key"] for r in result.records}) == 2


def test_two_runs_on_one_directory_do_not_collide(tmp_path):
    cfg = make_config(tmp_path, seeds=[0, 1])
    pipes = [FakePipeline(step_sleep=0.01), FakePipeline(step_sleep=0.01)]
    results = [None, None]

    def go(i):
        results[i] = MatrixRunner(cfg, make_registry(), pipes[i], cfg.output_dir).run()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and not r.failures for r in results)
    assert sum(len(p.pretrain_calls) for p in pipes) == 2  # each (row, seed) pretrained once
    assert sum(r.computed for r in results) == 4
    store = RunStore(cfg.output_dir)
    assert all(read.record for _, read in store.iter_records())
    assert metrics_by_cell(results[0]) == metrics_by_cell(results[1])


class BrokenRestorePipeline(FakePipeline):
    def restore(self, cfg, objectives, model, records, workdir, seed):
        raise RuntimeError("size mismatch for mlm_head.bias")


def test_unrestorable_finished_pretraining_stops_the_row_and_keeps_its_files(tmp_path):
    cfg = make_config(tmp_path)
    first, _ = run(cfg)
    (tmp_path / "run" / "cells" / f"{first.records[0]['key']}.json").unlink()
    workdir = tmp_path / "run" / "pretrain" / first.records[0]["pretrain_key"]
    before = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file()}
    again, pipe = run(cfg, BrokenRestorePipeline())
    assert pipe.pretrain_calls == [] and again.computed == 0  # no silent retrain
    (failure,) = again.failures
    assert "cannot restore the finished pretraining" in failure and "size mismatch" in failure
    assert "--force" in failure and "\n" not in failure
    after = {p.name: p.read_bytes() for p in workdir.iterdir() if p.is_file() and p.name != "error.log"}
    assert after == before  # error.log (the traceback) is the only new file


class StaleCheckpointPipeline(FakePipeline):
    """Refuses checkpoints it did not write in this process (like a trainer whose
    checkpoint format changed)."""

    def pretrain(self, cfg, objectives, model, records, workdir, seed, progress):
        ckpt = tmp = None
        from pathlib import Path

        ckpt = Path(workdir) / "checkpoint.pt"
        if ckpt.exists() and not getattr(self, "_wrote", False):
            raise RuntimeError("checkpoint format 0 is not supported")
        self._wrote = True
        return super().pretrain(cfg, objectives, model, records, workdir, seed, progress)


def test_unresumable_checkpoint_stops_the_row_and_keeps_the_checkpoint(tmp_path):
    cfg = make_config(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, FakePipeline(interrupt_at=5))
    (ckpt,) = (tmp_path / "run" / "pretrain").glob("*/checkpoint.pt")
    saved = ckpt.read_bytes()
    result, pipe = run(cfg, StaleCheckpointPipeline())
    (failure,) = result.failures
    assert f"cannot resume from {ckpt}" in failure and "checkpoint format 0" in failure and "--force" in failure
    assert result.computed == 0 and ckpt.read_bytes() == saved
    forced, pipe = run(cfg, StaleCheckpointPipeline(), force=True)  # --force starts the row over
    assert pipe.pretrain_calls[0][2] == 1 and forced.computed == 2 and not forced.failures


def test_under_torchrun_only_rank_zero_writes(tmp_path, monkeypatch):
    cfg = make_config(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    other, _ = run(cfg)
    assert len(other.records) == 2 and other.computed == 2  # rank 1 computes (collectives) ...
    assert not list((tmp_path / "run" / "cells").glob("*.json"))  # ... but writes no record
    assert not (tmp_path / "run" / "manifest.json").exists()
    monkeypatch.setenv("RANK", "0")
    main, _ = run(cfg)
    assert len(list((tmp_path / "run" / "cells").glob("*.json"))) == 2
    assert metrics_by_cell(main) == metrics_by_cell(other)


def test_packaged_ablation_expresses_simla_table1_and_albef():
    from simla_bench.config import CONFIG_DIR, load_config
    from simla_bench.registry import Registry
    from simla_bench.runner.cells import check_names, expand

    table1 = expand(load_config(CONFIG_DIR / "ablation.yaml"))
    assert [r.objectives for r in table1.rows] == [
        ("itm",), ("itm", "itc"), ("itm", "itc", "mlm"), ("itm", "itc", "mlm", "mim"),
        ("itm", "itc", "mlm", "mim", "psl"), (), ("itm", "itc")]  # Table 1, then the none and shuffled controls
    assert [r.control for r in table1.rows][-2:] == ["none", "shuffled"]
    cfg = load_config(CONFIG_DIR / "ablation_all.yaml")
    matrix = expand(cfg)
    sets = [r.objectives for r in matrix.rows]
    assert sets[:5] == [("itm",), ("itm", "itc"), ("itm", "itc", "mlm"), ("itm", "itc", "mlm", "mim"),
                        ("itm", "itc", "mlm", "mim", "psl")]  # Table 1, cumulative
    assert ("itc",) in sets and ("itc", "itm", "xmm", "psl") in sets
    albef = next(r for r in matrix.rows if "ALBEF" in r.label)
    assert albef.objective_set == {"itc", "itm", "mlm"} and albef.model_overrides == {"options": {"layout": "split"}}
    assert cfg.with_model(albef.model_overrides).model.options["fusion_layers"] == 2
    assert len(matrix.rows) == 10  # 8 rows (ALBEF's set is row 3's, on its own layout: a row of its own) + 2 controls
    registry = Registry()
    registry.load_entry_points()
    check_names(cfg, matrix, registry)  # every name resolves in the built-in plugins


def test_packaged_detectable_effects_config_plans_what_its_docs_measured():
    """configs/detectable_effects.yaml: ITM, ITM+ITC and `none`, 3 seeds, all four tasks (36 cells)."""
    from simla_bench.config import CONFIG_DIR, apply_overrides, load_config
    from simla_bench.runner.cells import expand

    cfg = apply_overrides(load_config(CONFIG_DIR / "detectable_effects.yaml"), world="tiny")
    matrix = expand(cfg)
    assert [r.objectives for r in matrix.rows] == [("itm",), ("itm", "itc"), ()]
    assert [r.control for r in matrix.rows][-1] == "none"
    assert cfg.seeds == [0, 1, 2]
    assert cfg.active_tasks() == ["retrieval", "grounding", "vqa", "nlvr2"]
    assert cfg.datasets["world"].options["preset"] == "tiny"
    assert len(matrix.rows) * len(cfg.seeds) * len(cfg.active_tasks()) == 36

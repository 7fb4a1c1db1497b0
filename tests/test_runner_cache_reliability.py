"""Nothing lost, nothing stale, nothing run (issue 16, items 1-3 and the tmp
files of 7): a failed restore or resume keeps the checkpoint, a checkpoint that
is not plain tensors is refused without running, cell keys cover data, resolved
defaults, component versions and code, the report says when one row mixes
data or code, and temporary files of killed writers are not checkpoints."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

from simla_bench import tmpfiles
from simla_bench.config import parse_config
from simla_bench.hookspecs import hookimpl
from simla_bench.registry import Registry
from simla_bench.report.provenance import mixed_provenance
from simla_bench.report.records import load_run_dirs
from simla_bench.runner import keys
from simla_bench.runner.matrix import MatrixRunner
from simla_bench.runner.store import RunStore, atomic_write_json
from helpers.runner_fakes import FakeObjective, FakePipeline, FakeSource, FakeTask, FusionObjective, config_data

ROWS = [{"objectives": ["itc"]}, {"objectives": ["itm"]}]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def run(cfg, pipe=None, reg=None, force=False):
    pipe = pipe or FakePipeline()
    return MatrixRunner(cfg, reg or Plugin().registry(), pipe, cfg.output_dir, force=force).run(), pipe


def planned(cfg, reg=None):
    runner = MatrixRunner(cfg, reg or Plugin().registry(), FakePipeline(), cfg.output_dir)
    matrix = runner.matrix()
    names = list(dict.fromkeys([cfg.pretrain.dataset] + [cfg.tasks[t].dataset for t in matrix.tasks]))
    return runner.plan(matrix, runner.pipeline.prepare(cfg, runner.registry, names, lambda **k: None))


# ------------------------------------------------------------ 1: a failed resume keeps the checkpoint


class RefusingResumePipeline(FakePipeline):
    """Cannot resume any checkpoint (a transient I/O error, an unreadable file ...)."""

    def pretrain(self, cfg, objectives, model, records, workdir, seed, progress):
        if (workdir / "checkpoint.pt").exists():
            raise OSError(5, "Input/output error", str(workdir / "checkpoint.pt"))
        return super().pretrain(cfg, objectives, model, records, workdir, seed, progress)


def test_killed_run_then_failing_resume_keeps_the_checkpoint_and_other_rows_go_on(tmp_path):
    cfg = parse_config(config_data(tmp_path, matrix=ROWS), "t")
    with pytest.raises(KeyboardInterrupt):  # killed mid-pretraining of the first row, after its step-4 checkpoint
        run(cfg, FakePipeline(interrupt_at=5))
    (ckpt,) = (tmp_path / "run" / "pretrain").glob("*/checkpoint.pt")
    (ckpt.parent / f".checkpoint.pt.{dead_pid()}@{tmpfiles.host()}.tmp").write_bytes(b"torn")  # a kill -9 mid-write
    saved = ckpt.read_bytes()
    result, pipe = run(cfg, RefusingResumePipeline())
    (failure,) = result.failures
    assert failure.startswith("row 'itc' seed 0 stopped: cannot resume") and str(ckpt) in failure
    assert "Input/output error" in failure and "--force" in failure and "\n" not in failure
    assert ckpt.read_bytes() == saved  # kept, byte-identical: no wipe, no silent retrain
    assert {r["row"] for r in result.records} == {"itm"} and result.computed == 2  # the other row went on
    assert [c[0] for c in pipe.pretrain_calls] == [("itm",)]


# ------------------------------------------------------------ 2: weights_only


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling it creates the marker file


def craft(path, marker):
    import torch

    torch.save({"format": 1, "step": 1, "x": Evil(marker)}, path)


def test_a_crafted_checkpoint_is_refused_in_one_line_never_run_never_deleted(tmp_path):
    from simla_bench.training.checkpoint import UnsafeCheckpointError, load_checkpoint

    path, marker = tmp_path / "checkpoint.pt", tmp_path / "ran"
    craft(path, marker)
    saved = path.read_bytes()
    with pytest.raises(UnsafeCheckpointError) as err:
        load_checkpoint(path)
    line = err.value.one_line()
    assert f"{path} is not a plain-tensor checkpoint" in line and "\n" not in line
    assert not marker.exists() and path.read_bytes() == saved


class RealCheckpointPipeline(FakePipeline):
    """Reads an existing checkpoint the way the trainer does."""

    def pretrain(self, cfg, objectives, model, records, workdir, seed, progress):
        from simla_bench.training.checkpoint import load_checkpoint

        load_checkpoint(workdir / "checkpoint.pt")
        return super().pretrain(cfg, objectives, model, records, workdir, seed, progress)


def test_a_crafted_checkpoint_in_a_run_directory_stops_its_row_only(tmp_path):
    cfg = parse_config(config_data(tmp_path, matrix=ROWS), "t")
    pkey = next(pc.pretrain_key for pc in planned(cfg) if pc.cell.row.label == "itc")
    ckpt, marker = tmp_path / "run" / "pretrain" / pkey / "checkpoint.pt", tmp_path / "ran"
    ckpt.parent.mkdir(parents=True)
    craft(ckpt, marker)
    saved = ckpt.read_bytes()
    result, _ = run(cfg, RealCheckpointPipeline())
    (failure,) = result.failures
    assert "not a plain-tensor checkpoint" in failure and str(ckpt) in failure
    assert not marker.exists() and ckpt.read_bytes() == saved
    assert {r["row"] for r in result.records} == {"itm"}


def test_the_trainer_refuses_to_save_a_state_that_is_not_plain(tmp_path):
    from simla_bench.training.checkpoint import NotPlainStateError, load_checkpoint, save_checkpoint

    import torch

    plain = {"model": {"w": torch.ones(2)}, "rng": [(3, (1, 2), None)], "curve": [{"step": 1, "itc": 0.5}]}
    save_checkpoint(tmp_path / "ok.pt", plain)
    assert load_checkpoint(tmp_path / "ok.pt")["curve"] == plain["curve"]
    with pytest.raises(NotPlainStateError, match=r"state\.objectives\.mim\.tok: .*Evil"):
        save_checkpoint(tmp_path / "bad.pt", {"objectives": {"mim": {"tok": Evil(tmp_path / "x")}}})
    assert not (tmp_path / "bad.pt").exists()


# ------------------------------------------------------------ 3: keys cover content


DATA_SUMS = {"world": "w1", "other": "o1"}


class Plugin:
    """Fake components whose version, defaults and data checksum a test changes."""

    SIMLA_BENCH_DIST = "cache-test-dist"

    def __init__(self, task_version="1", toy_n=200, itc_rate=0.1, itc_cls=None):
        self.toy = type("ToyTask", (FakeTask,), {"version": task_version, "defaults": {**FakeTask.defaults, "n": toy_n}})
        self.toy2 = type("Toy2Task", (FakeTask,), {})
        self.itc = itc_cls or type("ItcObjective", (FakeObjective,), {"defaults": {**FakeObjective.defaults,
                                                                                    "rate": itc_rate}})
        self.itm = type("ItmObjective", (FusionObjective,), {})

    def registry(self) -> Registry:
        reg = Registry()
        reg.add_plugin(self)
        return reg

    @hookimpl
    def register_models(self, register):
        register("vlp", "simla_bench.plugins.models.vlp_plugin:VLPRecipe", "the vlp model's options")

    @hookimpl
    def register_objectives(self, register):
        register("itc", self.itc, "fake itc")
        register("itm", self.itm, "fake itm")

    @hookimpl
    def register_tasks(self, register):
        register("toy", self.toy, "fake toy")
        register("toy2", self.toy2, "fake toy2")

    @hookimpl
    def register_datasets(self, register):
        register("fakeworld", ChecksumSource, "fake data")


class ChecksumSource(FakeSource):
    def prepare(self, progress=None):
        return {"checksum": DATA_SUMS[self.name], "pairs": self.options["pairs"]}


@pytest.fixture
def two_by_two(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "DATA_SUMS", dict(DATA_SUMS))
    data = config_data(tmp_path, matrix=ROWS)
    data["datasets"] = {"world": {"source": "fakeworld"}, "other": {"source": "fakeworld"}}
    data["tasks"] = {"toy": {}, "toy2": {"dataset": "other"}}
    first, _ = run(parse_config(data, "t"), reg=Plugin().registry())
    assert first.computed == 4 and not first.failures

    def rerun(plugin=None, **over):
        result, pipe = run(parse_config({**data, **over}, "t"), reg=(plugin or Plugin()).registry())
        assert not result.failures
        old = {r["key"] for r in first.records}
        return {(r["row"], r["task"]) for r in result.records if r["key"] not in old}, pipe

    return rerun


def test_nothing_changed_nothing_recomputed_and_an_explicit_default_is_the_default(two_by_two):
    assert two_by_two()[0] == set()
    assert two_by_two(tasks={"toy": {"options": {"n": 200}}, "toy2": {"dataset": "other"}},
                      objectives={"itc": {"options": {"rate": 0.1}}, "itm": {}})[0] == set()


def test_a_task_version_or_default_recomputes_exactly_that_tasks_cells(two_by_two):
    changed, pipe = two_by_two(Plugin(task_version="2"))
    assert changed == {("itc", "toy"), ("itm", "toy")}
    assert pipe.pretrain_calls == []  # the pretraining is shared and reused
    assert two_by_two(Plugin(toy_n=100))[0] == {("itc", "toy"), ("itm", "toy")}


def test_an_objective_default_recomputes_exactly_the_rows_using_it(two_by_two):
    changed, pipe = two_by_two(Plugin(itc_rate=0.2))
    assert changed == {("itc", "toy"), ("itc", "toy2")}
    assert [c[0] for c in pipe.pretrain_calls] == [("itc",)]


def test_data_checksums_recompute_what_reads_the_data(two_by_two, monkeypatch):
    monkeypatch.setitem(DATA_SUMS, "other", "o2")  # a task dataset's file changed
    assert two_by_two()[0] == {("itc", "toy2"), ("itm", "toy2")}
    monkeypatch.setitem(DATA_SUMS, "world", "w2")  # the pretraining data changed: everything
    assert two_by_two()[0] == {("itc", "toy"), ("itc", "toy2"), ("itm", "toy"), ("itm", "toy2")}


def test_editing_a_components_source_recomputes_only_the_rows_using_it(two_by_two, tmp_path, monkeypatch):
    src = tmp_path / "edited_objective.py"
    src.write_text(textwrap.dedent("""
        from helpers.runner_fakes import FakeObjective

        class EditedItc(FakeObjective):
            pass
    """))
    spec = importlib.util.spec_from_file_location("edited_objective", src)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "edited_objective", module)
    spec.loader.exec_module(module)
    plugin = Plugin(itc_cls=module.EditedItc)
    assert two_by_two(plugin)[0] == {("itc", "toy"), ("itc", "toy2")}  # another class, another file
    assert two_by_two(plugin)[0] == {("itc", "toy"), ("itc", "toy2")}  # (the same new keys: cached now)
    digest = keys.code_digest(module.EditedItc)
    src.write_text(src.read_text() + "\n# a comment is an edit too\n")
    assert keys.code_digest(module.EditedItc) != digest
    changed, pipe = two_by_two(plugin)
    assert changed == {("itc", "toy"), ("itc", "toy2")} and [c[0] for c in pipe.pretrain_calls] == [("itc",)]


def test_records_carry_components_and_data_checksums(tmp_path):
    cfg = parse_config(config_data(tmp_path, matrix=ROWS[:1], tasks={"toy": {}}), "t")
    result, _ = run(cfg, reg=Plugin().registry())
    rec = result.records[0]
    assert rec["data_checksums"] == {"world": "w1"}
    comps = rec["components"]
    assert comps["task"]["name"] == "toy" and comps["task"]["version"] == "1"
    assert comps["task"]["dist"] == "cache-test-dist 0" and len(comps["task"]["code"]) == 12
    assert set(comps["objectives"]) == {"itc"} and comps["model"]["name"] == "vlp"
    assert comps["datasets"]["world"]["source"] == "fakeworld"
    parts = rec["key_parts"]
    assert parts["pretrain"]["key_version"] == keys.KEY_VERSION == 2
    assert parts["pretrain"]["objectives"]["itc"]["options"] == {"rate": 0.1, "nan_at": -1}  # resolved defaults
    assert parts["cell"]["task_config"]["n"] == 200 and "layout" in parts["pretrain"]["model"]["options"]


# ------------------------------------------------------------ report: one row, mixed data or code


def fixed_record(row, seed, task, world="w1", itc_code="c1", task_version="1"):
    return {
        "row": row, "seed": seed, "task": task, "data_checksums": {"world": world},
        "components": {"model": {"name": "vlp", "version": "1", "dist": "d 1", "code": "m"},
                       "objectives": {"itc": {"version": "1", "dist": "d 1", "code": itc_code}},
                       "datasets": {"world": {"source": "world", "version": "1", "dist": "d 1", "code": "w"}},
                       "task": {"name": task, "version": task_version, "dist": "d 1", "code": "t"}},
    }


def test_report_note_names_what_differs_within_a_row_only():
    records = [fixed_record("itc", 0, "toy"), fixed_record("itc", 1, "toy", world="w2"),
               fixed_record("itm", 0, "toy"), fixed_record("itm", 1, "toy2", task_version="9"),
               fixed_record("both", 0, "toy", itc_code="c2"), fixed_record("both", 0, "toy2")]
    notes = mixed_provenance(records)
    assert len(notes) == 2  # 'itm' only has different tasks, which may differ
    (itc,) = [n for n in notes if n.startswith("row 'itc'")]
    assert "data 'world' (checksum) differ" in itc and "objective" not in itc
    (both,) = [n for n in notes if n.startswith("row 'both'")]
    assert "objective 'itc' (code) differ" in both and "data '" not in both


def test_report_of_a_directory_with_records_from_before_and_after_a_data_change(two_by_two, monkeypatch, tmp_path):
    monkeypatch.setitem(DATA_SUMS, "other", "o2")
    two_by_two()
    loaded = load_run_dirs([tmp_path / "run"])
    # the newer record of each recomputed cell is shown, so no row mixes data (the older ones are counted)
    assert not [w for w in loaded.warnings if "mixes records" in w]
    assert any("2 older record(s)" in w for w in loaded.warnings)
    # records of one row whose pretraining data differs ARE mixed when the report is given both run folders
    older = [r for r in loaded.records if r["task"] == "toy"]
    notes = mixed_provenance([*older, {**older[0], "key": "x", "seed": 7,
                                       "data_checksums": {**older[0]["data_checksums"], "world": "w9"}}])
    assert len(notes) == 1 and "data 'world' (checksum) differ" in notes[0]
    assert "combine results from before and after" in notes[0]  # one row_key: one row in the table


# ------------------------------------------------------------ stale temporary files


def test_a_killed_checkpoint_write_is_not_a_checkpoint_and_is_removed(tmp_path):
    cfg = parse_config(config_data(tmp_path, tasks={"toy": {}}), "t")
    (pc,) = planned(cfg)
    workdir = tmp_path / "run" / "pretrain" / pc.pretrain_key
    workdir.mkdir(parents=True)
    stale = [workdir / f".checkpoint.pt.{dead_pid()}.tmp",  # the old naming
             workdir / f".checkpoint.pt.{dead_pid()}@{tmpfiles.host()}.tmp"]
    live = workdir / f".checkpoint.pt.{tmpfiles.writer_tag()}.tmp"  # a writer still running
    remote = workdir / f".checkpoint.pt.{dead_pid()}@another-host.tmp"  # shared file system
    for p in stale + [live, remote]:
        p.write_bytes(b"half a checkpoint")
    result, pipe = run(cfg)
    assert result.records[0]["pretrain"]["resumed_from_checkpoint"] is False
    assert pipe.pretrain_calls[0][2] == 1
    assert not any(p.exists() for p in stale) and live.exists() and remote.exists()


def test_stale_record_and_manifest_tmp_files_are_removed_when_a_run_opens_the_store(tmp_path):
    store = RunStore(tmp_path / "run")
    store.ensure()
    atomic_write_json(store.record_path("k"), {"a": 1})
    assert [p.name for p in store.cells_dir.iterdir()] == ["k.json"]  # the writer names itself and cleans up
    pid = dead_pid()
    stale = [store.cells_dir / f".abc.json.x1y2z3.{pid}@{tmpfiles.host()}.tmp",
             store.root / f".manifest.json.q9w8e7.{pid}@{tmpfiles.host()}.tmp"]
    for p in stale:
        p.write_text("{")
    RunStore(tmp_path / "run").ensure()
    assert not any(p.exists() for p in stale)
    assert (store.cells_dir / "k.json").exists()


def test_the_code_digest_follows_the_modules_a_component_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "digestpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("SCALE = 2\n")
    (pkg / "sub" / "deep.py").write_text("OFFSET = 1\n")
    (pkg / "unrelated.py").write_text("X = 0\n")
    (pkg / "component.py").write_text(textwrap.dedent("""
        from .sub import deep

        class Component:
            def compute(self, x):
                from digestpkg import helper  # imported inside a function: still its code
                return x * helper.SCALE + deep.OFFSET
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("digestpkg")]:
        monkeypatch.delitem(sys.modules, name)
    from digestpkg.component import Component

    files = {p.split("digestpkg/")[-1] for p in keys.code_files(Component)}
    assert files == {"component.py", "helper.py", "sub/__init__.py", "sub/deep.py", "__init__.py"}
    before = keys.code_digest(Component)
    (pkg / "unrelated.py").write_text("X = 1\n")  # not imported: the digest stays
    assert keys.code_digest(Component) == before
    (pkg / "helper.py").write_text("SCALE = 3\n")  # a helper the class imports in a function body
    after = keys.code_digest(Component)
    assert after != before
    (pkg / "sub" / "deep.py").write_text("OFFSET = 5\n")  # a module imported relatively
    assert keys.code_digest(Component) != after


def test_a_model_key_holds_its_backbones_and_the_content_of_the_files_it_reads(tmp_path):
    from simla_bench.assemble import model_recipe
    from simla_bench.config import ModelConfig
    from simla_bench.registry import get_registry

    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    reg = get_registry()
    recipe = model_recipe(ModelConfig(name="vlp", options={"tokenizer": str(tok)}), reg)
    part = keys.model_part(reg, "vlp", recipe)
    assert set(part["components"]) == {f"backbone:{recipe.options['image']['name']}",
                                       f"backbone:{recipe.options['text']['name']}"}
    assert all(c["code"] for c in part["components"].values())
    (tok / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n")  # same path, other content
    changed = keys.model_part(reg, "vlp", recipe)
    assert changed["inputs"]["tokenizer"] != part["inputs"]["tokenizer"]
    assert {k: v for k, v in changed.items() if k != "inputs"} == {k: v for k, v in part.items() if k != "inputs"}


def test_the_report_shows_the_newest_record_of_a_cell_whose_task_side_changed(two_by_two, monkeypatch, tmp_path):
    monkeypatch.setitem(DATA_SUMS, "other", "o2")  # 'toy2' reads 'other': its cells recompute under new keys
    two_by_two()
    loaded = load_run_dirs([tmp_path / "run"])
    cells = [(r["row"], r["seed"], r["task"]) for r in loaded.records]
    assert len(cells) == len(set(cells)) == 4  # not two 'toy2' records of one seed (they would pass as two seeds)
    assert all(r["data_checksums"].get("other") in (None, "o2") for r in loaded.records)
    assert any("2 older record(s)" in w for w in loaded.warnings)

"""Control rows (``run --controls``): the runner adds ``none (control)`` and
``shuffled (control)``, keys and caches them like any row, the shuffled row's
pretraining sees the captions deranged among the images (deterministic from
the seed), and bad uses are refused in one line.  Fake pipeline
(tests/helpers/runner_fakes.py) throughout."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from simla_bench.cli import main
from simla_bench.config import MatrixRow, apply_overrides
from simla_bench.errors import ConfigError, DataError
from simla_bench.runner.cells import expand
from simla_bench.runner.matrix import MatrixRunner
from simla_bench.training.data import caption_derangement, shuffle_pairs
from helpers.runner_fakes import FakePipeline, config_data, fakes, make_config, make_registry  # noqa: F401 (fixture)


class RecordingPipeline(FakePipeline):
    """Remembers the pairs (image id, caption) each pretraining was given, by pretrain key."""

    def __init__(self):
        super().__init__()
        self.pairs: dict[str, list[tuple[str, str]]] = {}

    def pretrain(self, cfg, objectives, model, records, workdir, seed, progress):
        self.pairs[Path(workdir).name] = [(r.image_id, r.caption) for r in records]
        return super().pretrain(cfg, objectives, model, records, workdir, seed, progress)


def pretrain_key(result, row: str, seed: int) -> str:
    return next(r["pretrain_key"] for r in result.records if r["row"] == row and r["seed"] == seed)


def run(cfg, pipe=None):
    pipe = pipe or RecordingPipeline()
    return MatrixRunner(cfg, make_registry(), pipe, cfg.output_dir).run(), pipe


def test_controls_add_both_rows_which_are_recorded_and_cached(tmp_path):
    cfg = make_config(tmp_path, controls=True, seeds=[0, 1])
    result, pipe = run(cfg)
    assert result.failures == [] and result.computed == 12  # 3 rows x 2 seeds x 2 tasks
    rows = list(dict.fromkeys((r["row"], r.get("control")) for r in result.records))
    assert rows == [("itc,itm", None), ("none (control)", "none"), ("shuffled (control)", "shuffled")]
    files = [json.loads(p.read_text()) for p in (tmp_path / "run" / "cells").glob("*.json")]
    assert sorted(f.get("control", "") for f in files) == [""] * 4 + ["none"] * 4 + ["shuffled"] * 4
    none = next(f for f in files if f.get("control") == "none")
    assert none["objectives"] == [] and none["pretrain"]["steps"] == 0 and none["config"]["pretrain"]["steps"] == 0
    shuffled = next(f for f in files if f.get("control") == "shuffled")
    plain = next(f for f in files if "control" not in f and f["seed"] == shuffled["seed"] and f["task"] == shuffled["task"])
    assert shuffled["objective_config"] == plain["objective_config"]
    assert shuffled["key_parts"]["pretrain"]["shuffle_pairs"] is True and "shuffle_pairs" not in plain["key_parts"]["pretrain"]
    assert shuffled["row_key"] != plain["row_key"]
    # the none row pretrains nothing: the model as built (0 steps, no pairs)
    assert all(pipe.pairs[pretrain_key(result, "none (control)", seed)] == [] for seed in (0, 1))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [r.get("control") for r in manifest["rows"]] == [None, "none", "shuffled"]

    again, pipe = run(cfg)
    assert again.computed == 0 and again.cached == 12 and pipe.pairs == {}
    assert [r.get("control") for r in again.records] == [r.get("control") for r in result.records]
    # the none row's key does not depend on the pretraining schedule
    longer, pipe = run(make_config(tmp_path, controls=True, seeds=[0, 1], pretrain={"steps": 8, "checkpoint_every": 2}))
    assert longer.computed == 8 and longer.cached == 4 and {c[0] for c in pipe.pretrain_calls} == {("itc", "itm")}


def test_controls_none_adds_the_none_row_only_and_needs_no_objectives(tmp_path):
    cfg = make_config(tmp_path, controls="none")
    result, pipe = run(cfg)
    assert result.failures == [] and result.computed == 4  # 2 rows x 2 tasks
    assert list(dict.fromkeys((r["row"], r.get("control")) for r in result.records)) == [
        ("itc,itm", None), ("none (control)", "none")]
    assert [c[0] for c in pipe.pretrain_calls] == [("itc", "itm"), ()]  # the none row: the model as built
    # the same cells as the none row of controls: true (nothing recomputed)
    both, _ = run(make_config(tmp_path, controls=True))
    assert both.cached == 4 and both.computed == 2
    assert make_config(tmp_path, objectives={}, matrix=[{"objectives": ["itc"]}], controls="none").rows()[-1].control == "none"
    with pytest.raises(ConfigError, match="controls must be true .* or false, got 'both'"):
        make_config(tmp_path, controls="both")
    # without pretraining every row is the model as built: controls: none adds nothing (no error),
    # so --no-pretrain and --model NAME:PATH work on the default config
    evaluated = apply_overrides(make_config(tmp_path, controls="none"), no_pretrain=True)
    assert [r.control for r in evaluated.rows()] == [None]


def test_the_shuffled_row_pretrains_on_deranged_pairs(tmp_path):
    result, pipe = run(make_config(tmp_path, controls=True, seeds=[0, 1]))
    true = [(str(i), f"caption {i}") for i in range(40)]  # the fake source: one caption per image
    seen = {}
    for seed in (0, 1):
        assert pipe.pairs[pretrain_key(result, "itc,itm", seed)] == true
        shuffled = pipe.pairs[pretrain_key(result, "shuffled (control)", seed)]
        assert [i for i, _ in shuffled] == [i for i, _ in true]  # the same images, in the same order
        assert sorted(c for _, c in shuffled) == sorted(c for _, c in true)  # the same captions, each once
        assert all(c != f"caption {i}" for i, c in shuffled)  # no caption stays with its image
        seen[seed] = shuffled
    assert seen[0] != seen[1]  # the row seed decides the permutation ...
    again, pipe = run(make_config(tmp_path, controls=True, seeds=[0, 1], output_dir=str(tmp_path / "again")))
    assert pipe.pairs[pretrain_key(again, "shuffled (control)", 0)] == seen[0]  # ... and only it


def test_hand_written_control_rows_and_shuffle_pairs(tmp_path):
    cfg = make_config(tmp_path, matrix=[
        {"objectives": ["itc"]},
        {"objectives": ["itc"], "shuffle_pairs": True},
        {"name": "bare", "objectives": [], "control": "none"},
    ], controls=True, data_fractions=[0.5, 1.0])
    matrix = expand(cfg)
    labels = [(r.label, r.shuffle_pairs, r.control, r.data_fraction) for r in matrix.rows]
    assert labels == [
        ("itc @50%", False, "", 0.5), ("itc @100%", False, "", 1.0),
        ("itc [shuffle_pairs=true] @50%", True, "", 0.5), ("itc [shuffle_pairs=true] @100%", True, "", 1.0),
        ("bare", False, "none", 1.0),  # no pretraining: one row whatever the sweep; --controls adds no second none
        ("shuffled (control) @50%", True, "shuffled", 0.5), ("shuffled (control) @100%", True, "shuffled", 1.0),
    ]
    assert MatrixRow(objectives=["itc"], control="shuffled").shuffle_pairs
    for bad, match in (({"objectives": ["itc"], "control": "none"}, "the none control pretrains nothing"),
                       ({"objectives": ["itc"], "control": "shuffled", "shuffle_pairs": False}, "drop shuffle_pairs"),
                       ({"objectives": [], "shuffle_pairs": True}, "has no objectives")):
        with pytest.raises(ValueError, match=match):
            MatrixRow(**bad)
    with pytest.raises(ConfigError, match="has no objectives") as err:
        expand(make_config(tmp_path, matrix=[{"objectives": []}]))
    assert "control: none" in err.value.hint


def test_controls_refused_without_pretraining_or_objectives(tmp_path):
    with pytest.raises(ConfigError, match="pretrain.steps is 0") as err:
        apply_overrides(make_config(tmp_path), controls=True, no_pretrain=True)
    # a whole-config check reads as its own sentence: no pydantic prefix, no made-up key
    assert str(err.value).startswith("command line: controls: true compares"), str(err.value)
    with pytest.raises(ConfigError, match="needs the experiment's objectives"):
        make_config(tmp_path, objectives={}, matrix=[{"objectives": ["itc"]}], controls=True)
    assert not apply_overrides(make_config(tmp_path, controls=True), controls=False).controls


def test_cli_controls_flag_and_its_off_switch(tmp_path, fakes):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config_data(tmp_path, tasks={"toy": {}})))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(out), "--controls", "-q"])
    assert res.exit_code == 0, res.output
    assert "none (control)" in res.output and "shuffled (control)" in res.output
    data = json.loads(CliRunner().invoke(main, ["report", str(out), "--format", "json"]).output)
    assert [d["control"] for d in data] == [None, "none", "shuffled"]
    assert data[0]["tasks"]["toy"]["sensitivity"]["none"] is not None
    cfg.write_text(yaml.safe_dump(config_data(tmp_path, tasks={"toy": {}}, controls=True)))
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--out", str(tmp_path / "off"), "--no-controls", "-q"])
    words = " ".join(res.output.split())
    assert res.exit_code == 0 and "(control)" not in words and "no controls: run with --controls" in words
    res = CliRunner().invoke(main, ["run", "--config", str(cfg), "--no-pretrain", "-q"])
    assert res.exit_code == 2 and "pretrain.steps is 0" in res.output and "Traceback" not in res.output


def test_torchrun_argv_passes_an_explicit_no_controls():
    from simla_bench.cli.run_cmd import run_command, torchrun_argv

    for flag, expected in (("--controls", "--controls"), ("--no-controls", "--no-controls")):
        ctx = run_command.make_context("run", [flag])
        assert expected in torchrun_argv(2, ctx)
    assert not {"--controls", "--no-controls"} & set(torchrun_argv(2, run_command.make_context("run", [])))


def test_the_none_row_is_evaluated_at_the_pretraining_image_size(tmp_path):
    """No trainer runs for a row without pretraining; the model still gets the image size the
    pretrained rows are trained (and then fine-tuned) at."""
    from simla_bench.runner.pipeline import DefaultPipeline

    class Model:
        image_size = 64

        def set_image_size(self, px):
            self.image_size = px

    cfg = make_config(tmp_path, pretrain={"steps": 0, "image_size": 32})
    out = DefaultPipeline().pretrain(cfg, {}, Model(), [], tmp_path, 0, None)
    assert out.model.image_size == 32 and out.steps == 0 and out.loss_curve == []
    kept = DefaultPipeline().pretrain(make_config(tmp_path, pretrain={"steps": 0}), {}, Model(), [], tmp_path, 0, None)
    assert kept.model.image_size == 64


# ------------------------------------------------------------------ the permutation


def pairs(images: int, per_image: int):
    return [SimpleNamespace(image_id=f"img{i}", caption=f"caption {j} of img{i}")
            for i in range(images) for j in range(per_image)]


@pytest.mark.parametrize("images, per_image", [(40, 1), (30, 5), (2, 3)])
def test_no_caption_stays_with_its_image_and_the_seed_decides(images, per_image):
    recs = pairs(images, per_image)
    out = shuffle_pairs(recs, seed=0)
    assert [r.image_id for r in out] == [r.image_id for r in recs]  # images and order kept
    assert sorted(r.caption for r in out) == sorted(r.caption for r in recs)  # the same captions, each once
    assert all(not r.caption.endswith(f"of {r.image_id}") for r in out)  # none with its own image
    assert [r.caption for r in shuffle_pairs(recs, seed=0)] == [r.caption for r in out]  # deterministic
    if images > 2:
        assert [r.caption for r in shuffle_pairs(recs, seed=1)] != [r.caption for r in out]
    assert recs[0].caption == "caption 0 of img0"  # the input is not changed


def test_shuffle_pairs_keeps_frozen_dataclass_records_and_refuses_the_impossible(tmp_path):
    from simla_bench.plugins.datasets.records import PairRecord

    recs = [PairRecord(tmp_path / f"{i}.png", f"c{i}", str(i)) for i in range(6)]
    out = shuffle_pairs(recs, seed=3)
    assert all(isinstance(r, PairRecord) and r.caption != f"c{r.image_id}" for r in out)
    assert sorted(caption_derangement(["a"] * 4 + ["b"] * 4, seed=0)) == list(range(8))  # half: still possible
    with pytest.raises(ValueError, match="one image has 4 of the 7 records"):
        caption_derangement(["a"] * 4 + ["b"] * 3, seed=0)
    with pytest.raises(DataError, match="cannot shuffle the pairs"):
        FakePipeline().shuffle_pairs(pairs(1, 3), seed=0)


def test_a_submitted_job_runs_the_shuffled_row_not_the_plain_one(tmp_path):
    """The executor's job body rebuilds the row from what it is sent: shuffle_pairs and control included."""
    from simla_bench.config import parse_config
    from simla_bench.registry import set_registry
    from simla_bench.runner.executors import run_group_job
    from helpers.runner_fakes import install_fake_registry

    data = config_data(tmp_path, controls=True, tasks={"toy": {}})
    local, _ = run(parse_config(data, "test"))
    want = {r["control"]: r["key"] for r in local.records if r.get("control")}
    for control, shuffle in (("shuffled", True), ("none", False)):
        objectives = [] if control == "none" else ["itc", "itm"]
        matrix = expand(parse_config(data, "test"))
        row = next(r for r in matrix.rows if r.control == control)
        try:  # the job's set-up makes the fake registry the process's: undo it after
            out = run_group_job(data, str(tmp_path / "jobs"), objectives, 1.0, 0, RecordingPipeline(),
                                install_fake_registry, row.model_json, row.objective_json, shuffle, control)
        finally:
            set_registry(None)
        assert out["failures"] == [] and out["keys"] == [want[control]]


# ------------------------------------------------------------------ the real pipeline


def _true_pair_scores(model, records):
    """On true pairs (each image with every caption of its own image as positives): the
    image-to-text ITC loss at temperature 0.07 and the mean rank of the best positive caption."""
    import torch

    from simla_bench.tasks.data import ImageBank, encode_images, encode_texts, tokenize

    model.eval()
    with torch.no_grad():
        bank = ImageBank([r.image for r in records], model)
        embeds = encode_images(model, bank.tensor[torch.as_tensor(bank.index([r.image for r in records]))], 64, "cpu")
        ids, mask = tokenize(model.tokenizer, [r.caption for r in records], model.max_text_len)
        sims = model.image_feat(embeds) @ model.text_feat(encode_texts(model, ids, mask, 64), mask).T
    same = torch.tensor([[a.image_id == b.image_id for b in records] for a in records]).float()
    nll = -(torch.log_softmax(sims / 0.07, dim=1) * same / same.sum(1, keepdim=True)).sum(1).mean().item()
    rank = (sims > (sims * same).max(1, keepdim=True).values).sum(1).float().mean().item()
    chance = ((1 - same).sum(1) / (same.sum(1) + 1)).mean().item()  # expected rank of the best of k positives
    return nll, rank, chance


@pytest.mark.slow
def test_shuffled_pairs_keep_itc_from_learning_the_pairing(tiny_world, tiny_models, tmp_path):
    """ITC on the tiny world, the same model, seed and 150 steps, on the true pairs and on the
    pairs the shuffled control trains on (DefaultPipeline.shuffle_pairs).  Measured (2 shared
    cores shared with other jobs: 6.5 min): training loss 3.69 -> 2.83 (true) vs 3.66 -> 3.09 (shuffled); on the
    true pairs, ITC loss 4.59 vs 7.79 and mean rank of the right caption 16.0 vs 45.6 (chance 49.3)."""
    from simla_bench.config import parse_config
    from simla_bench.registry import get_registry
    from simla_bench.runner.pipeline import DefaultPipeline
    from simla_bench.training import pretrain

    records = list(tiny_world.load("pretrain", "train"))
    cfg = parse_config({"device": "cpu", "objectives": ["itc"], "pretrain": {
        "steps": 150, "batch_size": 32, "lr": 1e-3, "warmup_steps": 5, "checkpoint_every": 1000, "image_size": 32,
        "augment": False, "alpha": 0.0}})
    shuffled = DefaultPipeline().shuffle_pairs(records, seed=0)
    assert all(s.caption != r.caption or s.image_id != r.image_id for s, r in zip(shuffled, records))
    out = {}
    for name, pairs in (("true", records), ("shuffled", shuffled)):
        itc = get_registry().load("objective", "itc")("itc")
        res = pretrain(cfg, {"itc": (itc, 1.0)}, tiny_models.fresh(), pairs, tmp_path / name, seed=0)
        tail = sum(p["itc"] for p in res.loss_curve[-30:]) / 30
        out[name] = (tail, *_true_pair_scores(res.model, records[:150]))
    print(out)
    (t_loss, t_nll, t_rank, chance), (s_loss, s_nll, s_rank, _) = out["true"], out["shuffled"]
    assert s_loss > t_loss + 0.1  # the shuffled pairs are not learnt as the true ones are
    assert s_nll > t_nll + 1.0 and t_rank < 0.6 * s_rank  # and teach nothing about the true pairing
    assert s_rank > 0.8 * chance  # the shuffled model ranks the true captions about as chance does

"""The runner's fakes (helpers.runner_fakes) follow the plugin contract and train honestly."""

from __future__ import annotations

from helpers.runner_fakes import FakeObjective, FakePipeline, FakeSource, FakeTask, make_config, make_registry
from simla_bench.interfaces import check_component


def test_fakes_follow_the_contract():
    assert check_component("objective", FakeObjective) is None
    assert check_component("task", FakeTask) is None
    assert check_component("dataset", FakeSource) is None
    reg = make_registry()
    assert reg.names("objective") == ["itc", "itm", "mlm", "psl"]
    assert "grounding" in reg.names("task")


def test_fake_pretraining_lowers_its_loss_and_raises_quality(tmp_path):
    cfg = make_config(tmp_path)
    pipe = FakePipeline()
    model = pipe.build_model(cfg, None)
    objs = {"itc": (FakeObjective("itc"), 1.0)}
    out = pipe.pretrain(cfg, objs, model, list(range(40)), tmp_path, 0, lambda **k: None)
    assert out.loss_curve[-1]["itc"] < out.loss_curve[0]["itc"]
    assert out.model.quality > 0.3

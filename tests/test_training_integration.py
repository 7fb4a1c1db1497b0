"""The loop with the real VLPModel (plugins/backbones/vlp.py) and the built-in
objectives (plugins/objectives/): SIMLA's set trains, shared encodings are
computed once per step, momentum gets no gradient, resume is exact."""

import pytest
import torch

from simla_bench.config import parse_config
from simla_bench.interfaces import Objective
from simla_bench.registry import get_registry
from simla_bench.training import pretrain
from helpers.training_toys import toy_records

TINY_MODEL = {
    "image": {"name": "vit_world_tiny", "options": {"img_size": 32, "embed_dim": 32, "depth": 2, "num_heads": 2}},
    "text": {"name": "bert_world_tiny", "options": {"config": {"hidden_size": 32, "num_hidden_layers": 2,
                                                               "num_attention_heads": 2, "intermediate_size": 64}}},
    "embed_dim": 16, "queue_size": 32, "max_text_len": 8, "layout": "single_stream",
}
OBJ_OPTIONS = {"xmm": {"codebook_size": 16, "fit_images": 16}, "psl": {"top_k_keywords": 0}}


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return toy_records(tmp_path_factory.mktemp("toy"), size=32)


def _cfg(objectives, **pretrain_opts):
    base = dict(steps=4, batch_size=8, lr=1e-3, min_lr=1e-5, warmup_steps=1, checkpoint_every=2, image_size=32)
    base.update(pretrain_opts)
    return parse_config({"device": "cpu", "model": TINY_MODEL, "objectives": list(objectives), "pretrain": base})


_TOKENIZERS = {}


def _build(cfg, records):
    from simla_bench.plugins.backbones.tokenizer import train_wordpiece
    from simla_bench.plugins.backbones.vlp import build_model

    # one tokenizer per record list (training it is deterministic; this saves time)
    key = id(records)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = train_wordpiece([r.caption for r in records], vocab_size=60)
    tok = _TOKENIZERS[key]
    torch.manual_seed(0)
    from simla_bench.assemble import assemble

    return assemble(cfg.model, tokenizer=tok).model


def _objectives(names, extra=None):
    reg = get_registry()
    out = {}
    for name in names:
        cls = reg.get("objective", name).load()
        opts = {k: v for k, v in OBJ_OPTIONS.get(name, {}).items() if k in cls.defaults}
        out[name] = (cls(name, opts), 1.0)
    out.update(extra or {})
    return out


class Spy(Objective):
    """Runs last: records how often each shared encoding was computed this step."""

    def __init__(self, name="spy", options=None):
        super().__init__(name, options)
        self.counts = []

    def loss(self, step):
        self.counts.append(dict(step.computed))
        return step.image_feat.sum() * 0.0


SIMLA = ["itc", "itm", "xmm", "psl"]


def test_simla_set_shares_encodings_and_keeps_momentum_gradient_free(records, tmp_path):
    cfg = _cfg(SIMLA, steps=2)
    model = _build(cfg, records)
    spy = Spy()
    res = pretrain(cfg, _objectives(SIMLA, {"spy": (spy, 1.0)}), model, records, tmp_path, seed=0)
    assert res.steps == 2
    for entry in res.loss_curve:
        assert set(SIMLA) <= set(entry) and all(torch.isfinite(torch.tensor(entry[n])) for n in SIMLA)
    for counts in spy.counts:
        assert counts and all(v == 1 for v in counts.values()), counts
        assert {"image_embeds", "text_embeds", "image_feat", "text_feat", "m_image_feat", "m_text_feat"} <= set(counts)
    mom = model.momentum_model()
    assert all(p.grad is None and not p.requires_grad for p in mom.parameters())


@pytest.mark.parametrize("names", [["itc", "psl"], pytest.param(SIMLA, marks=pytest.mark.slow)])
def test_real_model_resume_is_bit_for_bit(records, tmp_path, names):
    cfg = _cfg(names, steps=3, checkpoint_every=2)
    full = pretrain(cfg, _objectives(names), _build(cfg, records), records, tmp_path / "full", seed=0)
    pretrain(cfg, _objectives(names), _build(cfg, records), records, tmp_path / "part", seed=0,
             should_stop=lambda s: s == 1)
    resumed = pretrain(cfg, _objectives(names), _build(cfg, records), records, tmp_path / "part", seed=0)
    assert resumed.resumed_from == 1 and resumed.loss_curve == full.loss_curve
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    for a, b in zip(full.model.momentum_model().parameters(), resumed.model.momentum_model().parameters()):
        assert torch.equal(a, b)


def test_unmet_needs_with_real_model(records, tmp_path):
    from simla_bench.training.errors import UnmetNeedsError

    cfg = _cfg(["itm"])
    cfg = cfg.with_model({"options": {"layout": "split", "fusion_layers": 0}})
    model = _build(cfg, records)
    with pytest.raises(UnmetNeedsError, match="objective 'itm' needs fusion, itm_head"):
        pretrain(cfg, _objectives(["itm"]), model, records, tmp_path, seed=0)


@pytest.mark.slow
def test_simla_objectives_each_go_down(records, tmp_path):
    cfg = _cfg(SIMLA, steps=60, batch_size=16, lr=2e-3, warmup_steps=5, checkpoint_every=100)
    res = pretrain(cfg, _objectives(SIMLA), _build(cfg, records), records, tmp_path, seed=0)
    for name in ("itc", "itm", "xmm"):
        first = sum(e[name] for e in res.loss_curve[:8]) / 8
        last = sum(e[name] for e in res.loss_curve[-8:]) / 8
        assert last < first, (name, first, last)


def test_pretrain_image_size_resizes_the_model(records, tmp_path):
    cfg = _cfg(["itc"], steps=1, image_size=48)
    model = _build(cfg, records)
    assert model.image_size == 32
    res = pretrain(cfg, _objectives(["itc"]), model, records, tmp_path, seed=0)
    assert res.steps == 1 and model.image_size == 48 and model.patch_grid == (6, 6)
    assert model.momentum_model().image_size == 48

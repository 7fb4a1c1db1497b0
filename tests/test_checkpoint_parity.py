"""Parity with the official code: tiny ALBEF / SIMLA checkpoints written by salesforce/ALBEF and
codezakh/SIMLA, with the inputs and the official outputs (tests/fixtures/official/), loaded through
``load_checkpoint`` into the simla-bench model of the same shape; every output agrees to 1e-4."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from simla_bench.plugins.backbones.vlp import build_model
from simla_bench.plugins.models.checkpoint_load import load_checkpoint

HERE = Path(__file__).parent / "fixtures" / "official"
TOL = 1e-4
pytestmark = pytest.mark.skipif(not (HERE / "albef_pretrain_tiny.pth").is_file(), reason="official fixtures missing")


def model_for(layout: str, fusion: int):
    """The fixtures' shape: ViT 32px / patch 8 / width 32 / 2 blocks / 2 heads; BERT width 32, 4 layers,
    2 heads, FFN 64, 40 positions; ITC space 16; the fixtures' 120-token vocabulary."""
    from transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(str(HERE / "tokenizer"))
    spec = lambda name, **o: types.SimpleNamespace(name=name, options=o)  # noqa: E731
    cfg = types.SimpleNamespace(
        image=spec("vit_world_tiny", img_size=32, embed_dim=32, depth=2, num_heads=2),
        text=spec("bert_world_tiny", zero_shared_embeddings=False,
                  config=dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                              max_position_embeddings=40)),
        layout=layout, fusion_layers=fusion, embed_dim=16, temp=0.07, momentum=0.995, text_pool="cls",
        max_text_len=9, queue_size=8)
    torch.manual_seed(0)
    return build_model(cfg, tok).eval()


def check(name, got, want, diffs):
    diff = (got.float() - want.float()).abs().max().item()
    diffs[name] = diff
    assert diff <= TOL, f"{name}: max abs diff {diff:.2e}"


def itc_outputs(m, mom, i, o, queue, diffs):
    ie = m.encode_image(i["images"])
    te = m.encode_text(i["input_ids"], i["attention_mask"])
    check("image_embeds", ie, o["image_embeds"], diffs)
    check("text_embeds", te, o["text_embeds"], diffs)
    fi, ft = m.image_feat(ie), m.text_feat(te)
    check("image_feat", fi, o["image_feat"], diffs)
    check("text_feat", ft, o["text_feat"], diffs)
    check("sim_i2t", fi @ ft.T / m.temp, o["sim_i2t"], diffs)
    check("sim_t2i", ft @ fi.T / m.temp, o["sim_t2i"], diffs)
    fim = mom.image_feat(mom.encode_image(i["images"]))
    ftm = mom.text_feat(mom.encode_text(i["input_ids"], i["attention_mask"]))
    check("image_feat_m", fim, o["image_feat_m"], diffs)
    check("text_feat_m", ftm, o["text_feat_m"], diffs)
    text_all = torch.cat([ftm, queue["text"]])
    image_all = torch.cat([fim, queue["image"]])
    check("sim_i2t_queue", fi @ text_all.T / m.temp, o["sim_i2t_queue"], diffs)
    check("sim_t2i_queue", ft @ image_all.T / m.temp, o["sim_t2i_queue"], diffs)
    if "sim_i2t_m_queue" in o:
        check("sim_i2t_m_queue", fim @ text_all.T / m.temp, o["sim_i2t_m_queue"], diffs)
        check("sim_t2i_m_queue", ftm @ image_all.T / m.temp, o["sim_t2i_m_queue"], diffs)
    fused = m.fuse(i["input_ids"], i["attention_mask"], ie)
    check("fused_hidden", fused.hidden, o["fused_hidden"], diffs)
    check("itm_logits", m.itm_logits(fused), o["itm_logits"], diffs)
    rolled = m.fuse(i["input_ids"], i["attention_mask"], ie.roll(1, 0))
    check("itm_logits_rolled", m.itm_logits(rolled), o["itm_logits_rolled"], diffs)
    if "mlm_logits" in o:
        fm = m.fuse(o["mlm_input_ids"], i["attention_mask"], ie)
        check("mlm_logits", m.mlm_logits(fm.hidden), o["mlm_logits"], diffs)
        mm = mom.fuse(o["mlm_input_ids"], i["attention_mask"], mom.encode_image(i["images"]))
        check("mlm_logits_m", mom.mlm_logits(mm.hidden), o["mlm_logits_m"], diffs)
    return ie, fi, fim


@pytest.mark.parametrize("name,fmt", [("albef_pretrain_tiny", "albef_pretrain"),
                                      ("albef_retrieval_tiny", "albef_retrieval")])
def test_albef_parity(name, fmt):
    m = model_for("split", 2)
    report = load_checkpoint(m, HERE / f"{name}.pth")
    assert report.format == fmt and not report.unused and not report.unfilled
    io = torch.load(HERE / f"{name}_io.pt", weights_only=True)
    diffs: dict[str, float] = {}
    with torch.no_grad():
        itc_outputs(m, m.momentum_model(), io["inputs"], io["outputs"], report.extras["itc"]["queue"], diffs)
    print(name, {k: f"{v:.1e}" for k, v in diffs.items()})


def test_albef_nlvr_parity():
    m = model_for("split", 2)
    report = load_checkpoint(m, HERE / "albef_nlvr_tiny.pth")
    assert report.format == "albef_nlvr" and not report.unused and not report.unfilled
    io = torch.load(HERE / "albef_nlvr_tiny_io.pt", weights_only=True)
    i, o = io["inputs"], io["outputs"]
    heads = {}
    for key in ("nlvr_head", "nlvr_head_m"):  # ALBEF's cls_head: Linear, ReLU, Linear
        heads[key] = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        heads[key].load_state_dict(report.extras[key])
    diffs: dict[str, float] = {}
    with torch.no_grad():
        e0, e1 = m.encode_image(i["images0"]), m.encode_image(i["images1"])
        check("image0_embeds", e0, o["image0_embeds"], diffs)
        check("image1_embeds", e1, o["image1_embeds"], diffs)
        check("text_embeds", m.encode_text(i["input_ids"], i["attention_mask"]), o["text_embeds"], diffs)
        fused = m.fuse(i["input_ids"], i["attention_mask"], [e0, e1])
        check("fused_hidden", fused.hidden, o["fused_hidden"], diffs)
        check("logits", heads["nlvr_head"](fused.pooled), o["logits"], diffs)
        mom = m.momentum_model()
        fm = mom.fuse(i["input_ids"], i["attention_mask"], [mom.encode_image(i["images0"]), mom.encode_image(i["images1"])])
        check("logits_m", heads["nlvr_head_m"](fm.pooled), o["logits_m"], diffs)
    print("albef_nlvr_tiny", {k: f"{v:.1e}" for k, v in diffs.items()})


def test_simla_parity():
    m = model_for("single_stream", 0)
    report = load_checkpoint(m, HERE / "simla_pretrain_tiny.pth")
    assert report.format == "simla" and not report.unused and not report.unfilled
    assert m.mim_vocab_size == 32
    io = torch.load(HERE / "simla_pretrain_tiny_io.pt", weights_only=True)
    i, o = io["inputs"], io["outputs"]
    mom = m.momentum_model()
    diffs: dict[str, float] = {}
    with torch.no_grad():
        _, fi, fim = itc_outputs(m, mom, i, o, report.extras["itc"]["queue"], diffs)
        masked = m.encode_image(i["images"], patch_mask=i["patch_mask"])
        check("masked_image_embeds", masked, o["masked_image_embeds"], diffs)
        context = m.text_encoder.embeddings(i["input_ids"])
        check("text_embedding_output", context, o["text_embedding_output"], diffs)
        hidden = m.fuse_image(masked, i["input_ids"], i["attention_mask"])
        check("mim_hidden", hidden, o["mim_hidden"], diffs)
        check("mim_logits", m.mim_logits(hidden)[:, 1:], o["mim_logits"], diffs)
        # SIMLA's momentum MIM pass attends to the ONLINE caption embeddings
        m_hidden = mom.fuse_image(mom.encode_image(i["images"], patch_mask=i["patch_mask"]), i["input_ids"],
                                  i["attention_mask"], context=context)
        check("mim_logits_m", mom.mim_logits(m_hidden)[:, 1:], o["mim_logits_m"], diffs)
        check("concept_logits", m.concept_logits(fi), o["concept_logits"], diffs)
        check("concept_logits_m", mom.concept_logits(fim), o["concept_logits_m"], diffs)
        # PSL's attention: the momentum BERT in fused mode over the ONLINE image embeddings
        out = mom.fuse(i["input_ids"], i["attention_mask"], m.encode_image(i["images"]), output_attentions=-1)
        check("psl_last_self_attention", out.self_attentions[-1], o["psl_last_self_attention"], diffs)
    print("simla_pretrain_tiny", {k: f"{v:.1e}" for k, v in diffs.items()})

"""The official-code oracle fixtures (tests/fixtures/official) load safely and have the documented layout."""

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parent / "fixtures" / "official"
CKPTS = ["albef_pretrain_tiny", "albef_retrieval_tiny", "albef_nlvr_tiny", "simla_pretrain_tiny"]


def _load(name):
    return torch.load(ROOT / name, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", CKPTS)
def test_checkpoint_and_io_load(name):
    sd = _load(f"{name}.pth")["model"]
    assert sd["visual_encoder.pos_embed"].shape == (1, 17, 32)
    assert sd["visual_encoder.patch_embed.proj.weight"].shape == (32, 3, 8, 8)
    io = _load(f"{name}_io.pt")
    assert set(io) == {"inputs", "outputs"}
    assert io["inputs"]["input_ids"].shape == io["inputs"]["attention_mask"].shape
    for value in io["outputs"].values():
        assert torch.isfinite(value.float()).all()


def test_checkpoint_layouts():
    pre = _load("albef_pretrain_tiny.pth")["model"]
    assert pre["image_queue"].shape == (16, 8) and pre["text_queue"].shape == (16, 8)
    assert "text_encoder.cls.predictions.bias" in pre and "text_encoder_m.bert.encoder.layer.3.output.dense.weight" in pre
    assert "text_encoder.bert.encoder.layer.2.crossattention.self.key.weight" in pre
    assert not any(".layer.1.crossattention" in k for k in pre)
    ret = _load("albef_retrieval_tiny.pth")["model"]
    assert ret["idx_queue"].shape == (1, 8) and not any("bert." in k or ".cls." in k for k in ret)
    nlvr = _load("albef_nlvr_tiny.pth")["model"]
    assert "text_encoder.encoder.layer.5.crossattention.self.key.weight" in nlvr
    assert torch.equal(nlvr["text_encoder.encoder.layer.2.crossattention.self.value.weight"],
                       nlvr["text_encoder.encoder.layer.3.crossattention.self.value.weight"])
    simla = _load("simla_pretrain_tiny.pth")["model"]
    assert simla["mim_head.weight"].shape == (32, 32) and simla["concept_head.weight"].shape == (120, 16)
    assert not any("token_type" in k for k in simla)
    assert "text_encoder.bert.encoder.layer.0.crossattention.self.key.weight" in simla


def test_io_shapes():
    out = _load("albef_pretrain_tiny_io.pt")["outputs"]
    assert out["image_embeds"].shape == (4, 17, 32) and out["itm_logits"].shape == (4, 2)
    assert out["mlm_logits"].shape[-1] == 120 and out["sim_i2t_queue"].shape == (4, 12)
    assert _load("albef_nlvr_tiny_io.pt")["outputs"]["logits"].shape == (4, 2)
    simla = _load("simla_pretrain_tiny_io.pt")
    assert simla["inputs"]["patch_mask"].shape == (4, 16) and simla["inputs"]["patch_mask"].dtype == torch.bool
    assert simla["outputs"]["mim_logits"].shape == (4, 16, 32)
    assert simla["outputs"]["concept_logits"].shape == (4, 120)


def test_retrieval_oracle():
    oracle = _load("retrieval_oracle.pt")
    assert oracle["score_matrix_i2t"].shape == (6, 12) and oracle["score_matrix_t2i"].shape == (12, 6)
    assert oracle["images"].shape == (6, 3, 32, 32) and oracle["input_ids"].shape == (12, 30)
    meta = json.loads((ROOT / "retrieval_oracle.json").read_text())
    assert meta["metrics"] == pytest.approx(oracle["metrics"])
    ann = json.loads((ROOT / "retrieval" / "test.json").read_text())
    assert len(ann) == 6 and all((ROOT / "retrieval" / a["image"]).is_file() for a in ann)


def test_tokenizer_loads():
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(str(ROOT / "tokenizer"))
    assert len(tok) == 120 and tok.pad_token_id == 0 and tok.cls_token_id == 2 and tok.mask_token_id == 4

"""Full-checkpoint loading (plugins/models/checkpoint_load.py): round trips through ALBEF's and
SIMLA's key layouts, format detection, unreadable/unsafe files, strictness, and the two model
fixes that came with it (the BERT loader's MLM head prefix, SIMLA's image embedding step)."""

from __future__ import annotations

import pickle
import re
import types

import pytest
import torch

from simla_bench.errors import UserError
from simla_bench.plugins.backbones.tokenizer import train_wordpiece
from simla_bench.plugins.backbones.vlp import build_model
from simla_bench.plugins.models.checkpoint_load import detect_format, load_checkpoint, read_checkpoint

CAPTIONS = ["a red cube left of a blue sphere", "two green cones", "the yellow sphere on a purple cube",
            "a big blue cylinder"] * 4


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(CAPTIONS, vocab_size=120)


def make(tok, layout="split", seed=0, layers=3, fusion=1, width=32, img=32, mim=None):
    """A tiny VLPModel built from a plain options object (independent of the config schema)."""
    spec = lambda name, **o: types.SimpleNamespace(name=name, options=o)  # noqa: E731
    cfg = types.SimpleNamespace(
        image=spec("vit_world_tiny", img_size=img, embed_dim=width, depth=2, num_heads=2),
        text=spec("bert_world_tiny", zero_shared_embeddings=False,
                  config=dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=2,
                              intermediate_size=2 * width, max_position_embeddings=40)),
        layout=layout, fusion_layers=fusion, embed_dim=16, temp=0.07, momentum=0.995, text_pool="cls",
        max_text_len=12, queue_size=8)
    torch.manual_seed(seed)
    model = build_model(cfg, tok, mim_vocab_size=mim).eval()
    return model


def batch(tok, n=4, seed=0, img=32):
    g = torch.Generator().manual_seed(seed)
    enc = tok(CAPTIONS[:n], padding="max_length", max_length=10, truncation=True, return_tensors="pt")
    return torch.randn(n, 3, img, img, generator=g), enc["input_ids"], enc["attention_mask"]


def perturb_momentum(model, seed=1):
    """Give the momentum copy weights of its own, so a loader that skips it is caught."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.momentum_model().parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


# ------------------------------------------------------------------ reverse maps
def to_official(model, fmt: str) -> dict[str, torch.Tensor]:
    """The model's weights in ALBEF's / SIMLA's key layout (the inverse of the loader)."""

    def one(state, suffix):
        out = {}
        for key, value in state.items():
            if key.startswith("visual_encoder.vit."):
                out[f"visual_encoder{suffix}." + key[len("visual_encoder.vit."):]] = value
            elif key == "visual_encoder.mask_token":
                if fmt == "simla":
                    out[f"visual_encoder{suffix}.mask_token"] = value
            elif key.startswith("text_encoder."):
                rest = key[len("text_encoder."):]
                if fmt == "simla" and "token_type_embeddings" in rest:
                    continue
                m = re.match(r"^encoder\.layer\.(\d+)\.(twin\.)?(.*)$", rest)
                if fmt == "albef_nlvr" and m and int(m.group(1)) >= model.fusion_range[0]:
                    first = model.fusion_range[0]
                    i = first + 2 * (int(m.group(1)) - first) + (1 if m.group(2) else 0)
                    rest = f"encoder.layer.{i}.{m.group(3)}"
                bert = "bert." if fmt in ("albef_pretrain", "simla") else ""
                out[f"text_encoder{suffix}.{bert}{rest}"] = value
            elif key.startswith("mlm_head."):
                if fmt in ("albef_pretrain", "simla"):
                    sub = key[len("mlm_head."):]
                    if sub == "decoder.weight":
                        out[f"text_encoder{suffix}.cls.predictions.decoder.weight"] = value
                    else:
                        out[f"text_encoder{suffix}.cls.predictions.{sub}"] = value
                        if sub == "bias":
                            out[f"text_encoder{suffix}.cls.predictions.decoder.bias"] = value
            elif key.startswith(("concept_head.", "mim_head.")):
                if fmt == "simla":
                    head, sub = key.split(".", 1)
                    out[f"{head}{suffix}.{sub}"] = value
            elif key.startswith(("vision_proj.", "text_proj.")):
                if fmt not in ("albef_nlvr", "albef_vqa"):
                    head, sub = key.split(".", 1)
                    out[f"{head}{suffix}.{sub}"] = value
            elif key.startswith("itm_head.") or key == "temp":
                if not suffix and fmt not in ("albef_nlvr", "albef_vqa"):
                    out[key] = value
            else:
                raise AssertionError(f"no official name for {key}")
        return out

    state = one(model.state_dict(), "")
    state.update(one(model.momentum_model().state_dict(), "_m"))
    state = {k: v.clone() for k, v in state.items()}
    if fmt in ("albef_pretrain", "albef_retrieval", "simla"):
        g = torch.Generator().manual_seed(5)
        state["image_queue"] = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=0)
        state["text_queue"] = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=0)
        state["queue_ptr"] = torch.tensor([3])
        if fmt == "albef_retrieval":
            state["idx_queue"] = torch.arange(8).view(1, 8)
    if fmt == "albef_nlvr":
        for s in ("", "_m"):
            state[f"cls_head{s}.0.weight"], state[f"cls_head{s}.0.bias"] = torch.randn(32, 32), torch.randn(32)
            state[f"cls_head{s}.2.weight"], state[f"cls_head{s}.2.bias"] = torch.randn(2, 32), torch.randn(2)
    return state


def outputs(model, tok, two_images=False):
    images, ids, att = batch(tok)
    mask = torch.rand(4, 16, generator=torch.Generator().manual_seed(2)) < 0.3
    out = {}
    with torch.no_grad():
        for tag, m in (("", model), ("m_", model.momentum_model())):
            ie = m.encode_image(images)
            te = m.encode_text(ids, att)
            out[tag + "image_feat"] = m.image_feat(ie)
            out[tag + "text_feat"] = m.text_feat(te)
            if two_images:
                fused = m.fuse(ids, att, [ie, m.encode_image(images.flip(0))])
            else:
                fused = m.fuse(ids, att, ie)
                out[tag + "mlm"] = m.mlm_logits(fused.hidden)
                if m.mim_head is not None:
                    out[tag + "mim"] = m.mim_logits(m.fuse_image(m.encode_image(images, mask),
                                                                 ids, att))
            out[tag + "fused"] = fused.hidden
            out[tag + "itm"] = m.itm_logits(fused)
        out["temp"] = model.temp.detach().clone()
    return out


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)


@pytest.mark.parametrize("fmt,layout", [("albef_pretrain", "split"), ("albef_retrieval", "split"),
                                        ("simla", "single_stream"), ("simla_bench", "split"),
                                        ("simla_bench", "single_stream")])
def test_round_trip_through_official_layouts(tok, tmp_path, fmt, layout):
    src = make(tok, layout, seed=0, fusion=1 if layout == "split" else 0, mim=24 if fmt in ("simla", "simla_bench") else None)
    with torch.no_grad():
        src.temp.fill_(0.05)
        if fmt == "simla":
            src.text_encoder.embeddings.token_type_embeddings.weight.zero_()
    perturb_momentum(src)
    if fmt == "simla":  # SIMLA's BERT has no token types, its momentum copy neither
        with torch.no_grad():
            src.momentum_model().text_encoder.embeddings.token_type_embeddings.weight.zero_()
    if fmt == "simla_bench":
        state = {"format": 1, "model": src.state_dict(), "momentum": src.momentum_model().state_dict(),
                 "objectives": {"itc": {"queue": {"image": torch.randn(8, 16), "text": torch.randn(8, 16),
                                                  "ids": torch.arange(8), "ptr": 2}}}}
    else:
        state = {"model": to_official(src, fmt)}
    path = tmp_path / "ck.pth"
    torch.save(state, path)
    dst = make(tok, layout, seed=1, fusion=1 if layout == "split" else 0)
    report = load_checkpoint(dst, path)
    assert report.format == fmt and not report.unused and not report.unfilled
    expected = outputs(src, tok)
    got = outputs(dst, tok)
    # a retrieval checkpoint has no MLM head; ALBEF/SIMLA have no momentum ITM head (copied from online)
    drop = ({"mlm", "m_mlm"} if fmt == "albef_retrieval" else set()) | ({"m_itm"} if fmt != "simla_bench" else set())
    expected = {k: v for k, v in expected.items() if k not in drop}
    got = {k: v for k, v in got.items() if k not in drop}
    assert_same(expected, got)
    queue = report.extras["itc"]["queue"]
    assert queue["image"].shape == (8, 16) and queue["text"].shape == (8, 16)
    if fmt != "simla_bench":
        torch.testing.assert_close(queue["image"], state["model"]["image_queue"].t())
        assert queue["ptr"] == 3
    # the ITC objective takes the extras as they are
    from simla_bench.plugins.objectives.itc import ITC

    itc = ITC()
    itc.load_state_dict(report.extras["itc"])
    assert "summary" and report.format in report.summary()


def test_nlvr_twin_layers_round_trip(tok, tmp_path):
    src = make(tok, "split", seed=0, layers=3, fusion=1).enable_two_image_fusion()
    with torch.no_grad():  # a twin that differs from its layer (all but the shared key/value)
        for p in src.text_encoder.encoder.layer[2].twin.intermediate.parameters():
            p.add_(0.1)
    perturb_momentum(src)
    state = to_official(src, "albef_nlvr")
    # ALBEF's NLVR BERT: 2 text layers + 2 fusion layers, the pair sharing cross-attention key/value
    assert torch.equal(state["text_encoder.encoder.layer.2.crossattention.self.key.weight"],
                       state["text_encoder.encoder.layer.3.crossattention.self.key.weight"])
    torch.save({"model": state}, tmp_path / "nlvr.pth")
    dst = make(tok, "split", seed=1, layers=3, fusion=1)
    report = load_checkpoint(dst, tmp_path / "nlvr.pth")
    assert report.format == "albef_nlvr" and dst.text_encoder.encoder.layer[2].twin is not None
    assert set(report.extras) >= {"nlvr_head", "nlvr_head_m"}
    assert any(k.startswith("itm_head") for k in report.absent)  # the NLVR model has no ITM head
    # the NLVR model has no projections, ITM head or temperature: compare the encoders and the fusion
    skip = lambda d: {k: v for k, v in d.items() if k.endswith("fused")}  # noqa: E731
    assert_same(skip(outputs(src, tok, two_images=True)), skip(outputs(dst, tok, two_images=True)))


def test_detects_every_format(tok):
    model = make(tok, "split", fusion=1)
    pre = to_official(model, "albef_pretrain")
    assert detect_format(pre) == "albef_pretrain"
    assert detect_format(to_official(model, "albef_retrieval")) == "albef_retrieval"
    assert detect_format(model.state_dict()) == "simla_bench"
    vqa = {k: v for k, v in to_official(model, "albef_vqa").items()}
    vqa["text_decoder.bert.embeddings.word_embeddings.weight"] = torch.zeros(3, 3)
    assert detect_format(vqa) == "albef_vqa"
    twin = make(tok, "split", fusion=1).enable_two_image_fusion()
    nlvr = {k: v for k, v in to_official(twin, "albef_nlvr").items() if not k.startswith("cls_head")}
    assert detect_format(nlvr) == "albef_nlvr"  # by the layer count and the shared key/value alone
    assert detect_format(to_official(make(tok, "single_stream", mim=8), "simla")) == "simla"
    with pytest.raises(UserError, match="unknown checkpoint layout: top-level keys encoder, head"):
        detect_format({"encoder.weight": torch.zeros(1), "head.bias": torch.zeros(1)})


def test_vqa_decoder_goes_to_extras(tok):
    model = make(tok, "split", fusion=1)
    state = to_official(model, "albef_vqa")
    state["text_decoder.bert.encoder.layer.0.attention.self.query.weight"] = torch.ones(2, 2)
    state["text_decoder.cls.predictions.bias"] = torch.ones(5)
    state["text_decoder_m.cls.predictions.bias"] = torch.ones(5)
    report = load_checkpoint(make(tok, "split", seed=3, fusion=1), state)
    assert report.format == "albef_vqa" and not report.unused and not report.unfilled
    assert set(report.extras["answer_decoder"]) == {"bert.encoder.layer.0.attention.self.query.weight",
                                                     "cls.predictions.bias"}
    assert "answer_decoder_m" in report.extras


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def _one_line(exc: UserError) -> str:
    line = exc.one_line()
    assert "\n" not in line and "Traceback" not in line
    return line


def test_bad_files_are_one_line_errors(tok, tmp_path):
    model = make(tok, "split", fusion=1)
    (tmp_path / "random.pth").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    good = tmp_path / "good.pth"
    torch.save({"model": to_official(model, "albef_pretrain")}, good)
    data = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"model": {"x": _Boom()}}))
    torch.save({"model": {"x": _Boom()}}, tmp_path / "evil_zip.pth")
    cases = {"missing.pth": "does not exist", "random.pth": "not a PyTorch or safetensors checkpoint",
             "cut.pth": "truncated or corrupt", "evil.pth": "pickled code", "evil_zip.pth": "pickled code"}
    for name, text in cases.items():
        with pytest.raises(UserError) as info:
            read_checkpoint(tmp_path / name)
        assert text in _one_line(info.value), (name, info.value.one_line())
    assert "posix.system" in _one_line(info.value) or "os.system" in _one_line(info.value)


def test_checkpoint_of_another_size_names_the_setting(tok, tmp_path):
    big = make(tok, "split", layers=4, fusion=2, width=32)
    with pytest.raises(UserError) as info:
        load_checkpoint(make(tok, "split", layers=3, fusion=1), to_official(big, "albef_pretrain"))
    assert "num_hidden_layers: 4" in _one_line(info.value)
    with pytest.raises(UserError) as info:
        load_checkpoint(make(tok, "split", layers=4, fusion=1), to_official(big, "albef_pretrain"))
    assert "model.options.fusion_layers: 2" in _one_line(info.value)
    wide = make(tok, "split", layers=3, fusion=1, width=48)
    with pytest.raises(UserError) as info:
        load_checkpoint(make(tok, "split", layers=3, fusion=1), to_official(wide, "albef_pretrain"))
    line = _one_line(info.value)
    assert "has shape (1, 1, 48)" in line and "model.options.image options" in line
    with pytest.raises(UserError, match="model.options.layout: split"):
        load_checkpoint(make(tok, "single_stream"), to_official(big, "albef_pretrain"))


def test_strict_refuses_unused_and_unfilled_keys(tok):
    src = make(tok, "split", fusion=1)
    state = to_official(src, "albef_pretrain")
    extra = dict(state, **{"mystery_head.weight": torch.zeros(2)})
    with pytest.raises(UserError) as info:
        load_checkpoint(make(tok, "split", fusion=1), extra)
    assert "mystery_head.weight" in _one_line(info.value) and "strict: false" in _one_line(info.value)
    lacking = {k: v for k, v in state.items() if k != "itm_head.weight"}
    with pytest.raises(UserError) as info:
        load_checkpoint(make(tok, "split", fusion=1), lacking)
    assert "itm_head.weight" in _one_line(info.value)
    report = load_checkpoint(make(tok, "split", fusion=1), dict(lacking, **{"mystery_head.weight": torch.zeros(2)}),
                             strict=False)
    assert report.unused == ["mystery_head.weight"] and report.unfilled == ["itm_head.weight"]
    text = report.summary(max_names=3)
    assert "1 checkpoint keys unused" in text and "itm_head.weight" in text
    # the SIMLA-only modules an ALBEF checkpoint lacks are allowed, and listed
    report = load_checkpoint(make(tok, "split", fusion=1), state)
    assert "visual_encoder.mask_token" in report.absent and "momentum.itm_head.weight" in report.absent


def test_position_embeddings_of_another_resolution_are_resized(tok):
    src = make(tok, "split", fusion=1, img=32)  # 4x4 grid
    state = to_official(src, "albef_pretrain")
    dst = make(tok, "split", fusion=1, img=48)  # 6x6 grid
    report = load_checkpoint(dst, state)
    assert any("resized" in n for n in report.notes)
    pos = state["visual_encoder.pos_embed"]
    grid = pos[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)
    want = torch.cat([pos[:, :1], want.permute(0, 2, 3, 1).reshape(1, 36, -1)], 1)
    torch.testing.assert_close(dst.visual_encoder.vit.pos_embed.detach(), want)


def test_bert_loader_takes_the_mlm_head_from_the_online_prefix_only(tok):
    src = make(tok, "split", fusion=1)
    perturb_momentum(src)
    state = to_official(src, "albef_pretrain")
    # momentum keys come after the online ones in ALBEF's state dict: the bug let them win
    bert = make(tok, "split", seed=4, fusion=1).text_encoder
    bert.load_hf_state_dict(state)
    head = bert.make_lm_head()
    torch.testing.assert_close(head.transform.dense.weight, src.mlm_head.transform.dense.weight)
    torch.testing.assert_close(head.bias, src.mlm_head.bias)


def test_single_stream_mim_pass_takes_the_bert_embedding_step(tok):
    model = make(tok, "single_stream", mim=8)
    images, ids, att = batch(tok)
    emb = model.text_encoder.embeddings
    with torch.no_grad():
        ie = model.encode_image(images)
        x = ie + emb.position_embeddings.weight[: ie.shape[1]] + emb.token_type_embeddings.weight[0]
        x = emb.LayerNorm(x)
        want = model.text_encoder(hidden=x, context=emb(ids), context_mask=att).hidden
        torch.testing.assert_close(model.fuse_image(ie, ids, att), want)
        # the momentum pass can attend to another model's caption embeddings (SIMLA: the online one's)
        ctx = torch.randn(4, 10, 32)
        assert not torch.allclose(model.fuse_image(ie, ids, att, context=ctx), want)


def test_position_table_grows_to_cover_the_image_tokens(tok):
    model = make(tok, "single_stream", img=64)  # 8x8 patches + CLS = 65 > 40 positions
    assert model.text_encoder.embeddings.position_embeddings.num_embeddings == 65
    images = torch.randn(2, 3, 64, 64)
    _, ids, att = batch(tok, n=2)
    assert model.fuse_image(model.encode_image(images), ids, att).shape == (2, 65, 32)
    old = {k: v for k, v in model.state_dict().items()}
    old["text_encoder.embeddings.position_embeddings.weight"] = old["text_encoder.embeddings.position_embeddings.weight"][:40]
    model.load_state_dict(old)  # a state saved before the table grew still loads

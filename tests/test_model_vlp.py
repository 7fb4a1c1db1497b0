"""The VLP model: API shapes, single-stream vs split layouts, masks, heads, momentum copy, determinism."""

from __future__ import annotations

import copy

import pytest
import torch

from simla_bench.plugins.models.vlp_options import VLPOptions as ModelConfig
from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.tokenizer import train_wordpiece
from simla_bench.plugins.backbones.vlp import FusionOutput, build_model

CAPTIONS = ["a red cube left of a blue sphere", "two green cones", "the yellow sphere on a purple cube",
            "a big blue cylinder"] * 4
IMG = {"name": "vit_world_tiny", "options": {"img_size": 32, "embed_dim": 48, "num_heads": 4, "depth": 2}}
TXT = {"name": "bert_world_tiny",
       "options": {"config": {"hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
                              "intermediate_size": 96}}}


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(CAPTIONS, vocab_size=120)


def make(tok, seed=0, **cfg):
    torch.manual_seed(seed)
    data = {"image": IMG, "text": TXT, "embed_dim": 16, **cfg}
    return build_model(ModelConfig(**data), tok).eval()


def batch(tok, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    enc = tok(CAPTIONS[:n], padding="max_length", max_length=10, truncation=True, return_tensors="pt")
    return torch.randn(n, 3, 32, 32, generator=g), enc["input_ids"], enc["attention_mask"]


def test_api_shapes_single_stream(tok):
    model = make(tok)
    images, ids, att = batch(tok)
    assert model.image_size == 32 and model.patch_grid == (4, 4)
    assert model.capabilities >= {"text", "fusion", "itm_head", "mlm_head", "mim_head", "concept_head", "momentum"}
    ie = model.encode_image(images)
    te = model.encode_text(ids, att)
    assert ie.shape == (4, 17, 48) and te.shape == (4, 10, 48)
    fi, ft = model.image_feat(ie), model.text_feat(te)
    assert fi.shape == ft.shape == (4, 16)
    torch.testing.assert_close(fi.norm(dim=-1), torch.ones(4))
    out = model.fuse(ids, att, ie)
    assert isinstance(out, FusionOutput) and out.hidden.shape == (4, 10, 48) and out.cross_attentions is None
    assert model.itm_logits(out.hidden).shape == (4, 2)
    assert model.mlm_logits(out.hidden).shape == (4, 10, len(tok))
    assert model.concept_logits(fi).shape == (4, len(tok))
    with pytest.raises(ConfigError, match="set_mim_vocab"):
        model.mim_logits(ie)
    model.set_mim_vocab(37)
    img_fused = model.fuse_image(ie, ids, att)
    assert img_fused.shape == (4, 17, 48)
    assert model.mim_logits(img_fused).shape == (4, 17, 37) and model.mim_vocab_size == 37
    assert model.tokenizer is tok


def test_single_stream_shares_one_bert_for_text_and_fusion(tok):
    model = make(tok)
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith(("text_encoder_", "fusion_encoder")) for n in names)
    assert all(layer.has_cross_attention for layer in model.text_encoder.encoder.layer)
    assert model.text_range == model.fusion_range == (0, 3)
    images, ids, att = batch(tok)
    ie = model.encode_image(images)
    # the text pass and the fusion pass train the same self-attention weights
    q = model.text_encoder.encoder.layer[0].attention.self.query.weight
    (g_text,) = torch.autograd.grad(model.encode_text(ids, att).sum(), q)
    (g_fuse,) = torch.autograd.grad(model.fuse(ids, att, ie).hidden.sum(), q)
    assert g_text.abs().sum() > 0 and g_fuse.abs().sum() > 0
    # text mode ignores the image; fusion does not
    other = model.encode_image(torch.randn(4, 3, 32, 32))
    assert not torch.allclose(model.fuse(ids, att, ie).hidden, model.fuse(ids, att, other).hidden)
    # single-stream fusion starts from the word embeddings, so text_embeds is not used
    torch.testing.assert_close(model.fuse(ids, att, ie, text_embeds=torch.zeros(4, 10, 48)).hidden,
                               model.fuse(ids, att, ie).hidden)


def test_split_layout_has_text_only_lower_layers(tok):
    single = make(tok)
    split = make(tok, layout="split", fusion_layers=1)
    assert [layer.has_cross_attention for layer in split.text_encoder.encoder.layer] == [False, False, True]
    assert split.text_range == (0, 2) and split.fusion_range == (2, 3)
    n_single = sum(p.numel() for p in single.parameters())
    n_split = sum(p.numel() for p in split.parameters())
    cross = sum(p.numel() for p in single.text_encoder.encoder.layer[0].crossattention.parameters())
    assert n_single - n_split == 2 * cross  # the only difference: two layers without cross-attention
    images, ids, att = batch(tok)
    ie = split.encode_image(images)
    te = split.encode_text(ids, att)
    torch.testing.assert_close(te, split.text_encoder(ids, att, end_layer=2).hidden)
    torch.testing.assert_close(split.fuse(ids, att, ie, text_embeds=te).hidden, split.fuse(ids, att, ie).hidden)
    assert split.fuse_image(ie, ids, att).shape == (4, 17, 48)
    out = split.fuse(ids, att, ie, output_attentions=True)
    assert out.cross_attentions[:2] == [None, None] and out.cross_attentions[2].shape == (4, 4, 10, 17)


def test_split_without_fusion_layers_lacks_fusion(tok):
    model = make(tok, layout="split", fusion_layers=0)
    assert "fusion" not in model.capabilities and "itm_head" not in model.capabilities
    images, ids, att = batch(tok)
    with pytest.raises(ConfigError, match="no fusion layers"):
        model.fuse(ids, att, model.encode_image(images))
    with pytest.raises(ConfigError, match="fusion_layers"):
        make(tok, layout="split", fusion_layers=4)
    assert "momentum" not in make(tok, momentum=0.0).capabilities


def test_padding_does_not_change_outputs(tok):
    model = make(tok)
    model.set_mim_vocab(8)
    images, ids, att = batch(tok)
    pad = torch.zeros(4, 5, dtype=torch.long)
    ids2, att2 = torch.cat([ids, pad], 1), torch.cat([att, pad], 1)
    ie = model.encode_image(images)
    keep = att.bool()
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(ids, att)[keep], model.encode_text(ids2, att2)[:, :10][keep],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(model.fuse(ids, att, ie).hidden[keep], model.fuse(ids2, att2, ie).hidden[:, :10][keep],
                                   atol=1e-5, rtol=0)
        # image->text direction: padded caption tokens are masked keys
        torch.testing.assert_close(model.fuse_image(ie, ids, att), model.fuse_image(ie, ids2, att2), atol=1e-5, rtol=0)


def test_attention_maps_for_psl_and_gradcam(tok):
    model = make(tok)
    images, ids, att = batch(tok)
    ie = model.encode_image(images)
    out = model.fuse(ids, att, ie, output_attentions=True)
    cls_rows = out.self_attentions[-1][:, :, 0, :]
    assert cls_rows.shape == (4, 4, 10)
    torch.testing.assert_close(cls_rows.sum(-1), torch.ones(4, 4))
    assert cls_rows[~att.bool()[:, None, :].expand(-1, 4, -1)].abs().max() < 1e-6
    one = model.fuse(ids, att, ie, output_attentions=1)
    assert one.cross_attentions[0] is None and one.cross_attentions[1].shape == (4, 4, 10, 17)
    logit = model.itm_logits(one.hidden)[:, 1].sum()
    (grad,) = torch.autograd.grad(logit, one.cross_attentions[1])
    assert grad.abs().sum() > 0


def test_two_image_fusion_duplicates_fusion_layers_with_shared_key_value(tok):
    """ALBEF's NLVR2 fusion: each fusion layer gets a twin that attends to image 2;
    the twin starts from the layer's weights and shares its cross-attention K/V."""
    model = make(tok)
    images, ids, att = batch(tok)
    e1 = model.encode_image(images)
    e2 = model.encode_image(images.flip(0))
    with pytest.raises(RuntimeError, match="enable_two_image_fusion"):
        model.fuse(ids, att, [e1, e2])
    before = {n: p.clone() for n, p in model.named_parameters()}
    n_params = sum(p.numel() for p in model.parameters())
    assert model.enable_two_image_fusion() is model
    layers = model.text_encoder.encoder.layer
    kv = sum(p.numel() for m in (layers[0].crossattention.self.key, layers[0].crossattention.self.value)
             for p in m.parameters())
    added = sum(p.numel() for p in model.parameters()) - n_params
    assert added == len(layers) * (sum(p.numel() for p in layers[0].twin.parameters()) - kv)
    for layer in layers:
        twin = layer.twin
        assert twin.crossattention.self.key is layer.crossattention.self.key
        assert twin.crossattention.self.value is layer.crossattention.self.value
        assert twin.crossattention.self.query is not layer.crossattention.self.query
        assert twin.twin is None and torch.equal(twin.intermediate.dense.weight, layer.intermediate.dense.weight)
    # the original parameters are untouched, enabling again adds nothing
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    model.enable_two_image_fusion()
    assert sum(p.numel() for p in model.parameters()) == n_params + added

    both = model.fuse(ids, att, [e1, e2])
    assert both.hidden.shape == (4, 10, 48)
    assert not torch.allclose(both.hidden, model.fuse(ids, att, [e2, e1]).hidden)
    assert not torch.allclose(both.hidden, model.fuse(ids, att, e1).hidden)
    # single-image fusion ignores the twins
    fresh = make(tok)
    torch.testing.assert_close(model.fuse(ids, att, e1).hidden, fresh.fuse(ids, att, e1).hidden)
    # both the layer and its twin learn; the shared key gets gradient from both images
    model.itm_logits(both)[:, 1].sum().backward()
    assert layers[0].twin.intermediate.dense.weight.grad.abs().sum() > 0
    assert layers[0].intermediate.dense.weight.grad.abs().sum() > 0
    # a copy keeps the sharing; a state dict loads into another enabled model
    twin_copy = copy.deepcopy(model).text_encoder.encoder.layer[0]
    assert twin_copy.twin.crossattention.self.key is twin_copy.crossattention.self.key
    other = make(tok, seed=1).enable_two_image_fusion()
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.fuse(ids, att, [e1, e2]).hidden, both.hidden)


def test_width_mismatch_projects_between_image_and_text(tok):
    torch.manual_seed(0)
    cfg = ModelConfig(image={"name": "vit_world_tiny", "options": {"img_size": 32, "depth": 1}}, text=TXT, embed_dim=16)
    model = build_model(cfg, tok).eval()
    images, ids, att = batch(tok)
    ie = model.encode_image(images)
    assert ie.shape == (4, 17, 192)
    assert model.fuse(ids, att, ie).hidden.shape == (4, 10, 48)
    assert model.fuse_image(ie, ids, att).shape == (4, 17, 48)
    layer = model.text_encoder.encoder.layer[0]
    assert layer.crossattention.self.key.in_features == 192


def test_momentum_copy_no_gradient_and_ema_math(tok):
    model = make(tok).train()
    assert not model.has_momentum()
    mom = model.momentum_model()
    assert model.momentum_model() is mom and not mom.training
    ids_online = {id(p) for p in model.parameters()}
    assert not any(id(p) in ids_online for p in mom.parameters())
    assert not any(k.startswith("_momentum") for k in model.state_dict())
    for (n, p), (nm, pm) in zip(model.named_parameters(), mom.named_parameters()):
        assert n == nm and torch.equal(p, pm) and not pm.requires_grad
    images, ids, att = batch(tok)
    ie = model.encode_image(images)
    loss = model.itm_logits(model.fuse(ids, att, ie).hidden).sum() + model.image_feat(ie).sum()
    with torch.no_grad():
        m_feat = mom.image_feat(mom.encode_image(images))
    (loss + (m_feat * model.image_feat(ie)).sum()).backward()
    assert all(p.grad is None for p in mom.parameters())
    # EMA: p_m <- m p_m + (1 - m) p
    before = {n: p.detach().clone() for n, p in mom.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    online = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.update_momentum(0.9)
    for n, p in mom.named_parameters():
        torch.testing.assert_close(p, 0.9 * before[n] + 0.1 * online[n])
    # the MLM decoder stays tied to the word embeddings in both copies
    assert mom.mlm_head.decoder.weight is mom.text_encoder.embeddings.word_embeddings.weight
    # a later MIM head reaches the momentum copy too, and the copy follows .to()
    model.set_mim_vocab(9)
    assert mom.mim_head.out_features == 9 and not mom.mim_head.weight.requires_grad
    torch.testing.assert_close(mom.mim_head.weight, model.mim_head.weight)
    model.update_momentum(0.5)
    model.to(torch.float64)
    assert mom.temp.dtype == torch.float64
    model.update_momentum(0.5)


def test_deepcopy_keeps_tokenizer_and_momentum(tok):
    model = make(tok)
    model.momentum_model()
    twin = copy.deepcopy(model)
    assert twin.tokenizer is tok and twin.has_momentum() and twin.momentum_model() is not model.momentum_model()
    with torch.no_grad():
        twin.temp.fill_(0.3)
    assert model.temp.item() != pytest.approx(0.3)
    twin.update_momentum(0.0)
    assert twin.momentum_model().temp.item() == pytest.approx(0.3)
    assert model.momentum_model().temp.item() != pytest.approx(0.3)


def test_temperature_clamped_and_excluded_from_decay(tok):
    model = make(tok)
    with torch.no_grad():
        model.temp.fill_(3.0)
    assert model.temperature().item() == pytest.approx(0.5)
    with torch.no_grad():
        model.temp.fill_(-1.0)
    assert model.temperature().item() == pytest.approx(0.001)
    assert {"temp", "visual_encoder.mask_token", "visual_encoder.vit.pos_embed"} <= model.no_weight_decay()


def test_patch_mask_through_the_model(tok):
    model = make(tok)
    images, _, _ = batch(tok)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[:, 3] = True
    assert not torch.allclose(model.encode_image(images, mask), model.encode_image(images))
    model.set_image_size(48)
    assert model.patch_grid == (6, 6) and model.encode_image(torch.randn(1, 3, 48, 48)).shape == (1, 37, 48)


def test_determinism(tok):
    a, b = make(tok, seed=3), make(tok, seed=3)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    images, ids, att = batch(tok)
    a.train()
    b.train()
    torch.manual_seed(7)
    oa = a.fuse(ids, att, a.encode_image(images)).hidden
    torch.manual_seed(7)
    ob = b.fuse(ids, att, b.encode_image(images)).hidden
    assert torch.equal(oa, ob)  # dropout included
    assert not torch.equal(make(tok, seed=4).text_proj.weight, a.text_proj.weight)


def test_backbone_modality_is_checked(tok):
    with pytest.raises(ConfigError, match="not an image"):
        build_model(ModelConfig(image={"name": "bert_world_tiny"}), tok)
    with pytest.raises(UserError, match="unknown backbone"):
        build_model(ModelConfig(text={"name": "bert_wolrd_tiny"}), tok)
    with pytest.raises(ConfigError, match="max_text_len"):
        make(tok, max_text_len=600)


def test_training_steps_lower_a_contrastive_loss(tok):
    # the world default (token-mean text feature); a from-scratch [CLS] moves
    # far slower (docs/objectives.md, "ITC from scratch")
    model = make(tok, text_pool="mean").train()
    images, ids, att = batch(tok)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        ie = model.encode_image(images)
        te = model.encode_text(ids, att)
        sim = model.image_feat(ie) @ model.text_feat(te, att).T / model.temperature()
        loss = torch.nn.functional.cross_entropy(sim, torch.arange(4))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_momentum()
        losses.append(loss.item())
    assert max(losses[-3:]) < losses[0] - 0.3, losses


def test_text_pool_picks_cls_or_the_masked_token_mean(tok):
    images, ids, att = batch(tok)
    cls_model, mean_model = make(tok, text_pool="cls"), make(tok, text_pool="mean")
    mean_model.load_state_dict(cls_model.state_dict())
    te = cls_model.encode_text(ids, att)
    expected_cls = torch.nn.functional.normalize(cls_model.text_proj(te[:, 0]), dim=-1)
    assert torch.allclose(cls_model.text_feat(te, att), expected_cls)
    keep = att[..., None].float()
    expected_mean = torch.nn.functional.normalize(mean_model.text_proj((te * keep).sum(1) / keep.sum(1)), dim=-1)
    assert torch.allclose(mean_model.text_feat(te, att), expected_mean, atol=1e-6)
    # padding tokens do not count: the same captions padded longer give the same mean feature
    enc = tok(CAPTIONS[:4], padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    longer = mean_model.text_feat(mean_model.encode_text(enc["input_ids"], enc["attention_mask"]), enc["attention_mask"])
    assert torch.allclose(longer, mean_model.text_feat(te, att), atol=1e-5)
    with pytest.raises(ValueError, match="attention mask"):
        mean_model.text_feat(te)


def test_fused_heads_read_the_pooled_fused_states(tok):
    images, ids, att = batch(tok)
    for pool in ("cls", "mean"):
        model = make(tok, text_pool=pool)
        out = model.fuse(ids, att, model.encode_image(images))
        keep = att[..., None].float()
        expected = out.hidden[:, 0] if pool == "cls" else (out.hidden * keep).sum(1) / keep.sum(1)
        assert torch.allclose(out.pooled, expected, atol=1e-6)
        assert torch.allclose(model.itm_logits(out), model.itm_head(expected), atol=1e-6)
        assert torch.allclose(model.itm_logits(out.pooled), model.itm_logits(out))
    # fused states without a mask can only be read as [CLS]
    cls_model = make(tok, text_pool="cls")
    assert torch.allclose(cls_model.itm_logits(out.hidden), cls_model.itm_head(out.hidden[:, 0]))
    with pytest.raises(ValueError, match="FusionOutput"):
        model.itm_logits(out.hidden)  # the last model of the loop: text_pool='mean'


def test_world_bert_starts_its_shared_embeddings_at_zero(tok):
    from simla_bench.plugins.backbones.bert import bert_world_tiny

    emb = make(tok).text_encoder.embeddings
    assert emb.token_type_embeddings.weight.abs().sum() == 0 and emb.position_embeddings.weight.abs().sum() == 0
    assert emb.word_embeddings.weight.std() > 0.01
    bert = bert_world_tiny(vocab_size=50, zero_shared_embeddings=False)
    assert bert.embeddings.position_embeddings.weight.std() > 0.01
    # zero at the start only: they are trained like any other parameter
    assert emb.position_embeddings.weight.requires_grad and emb.token_type_embeddings.weight.requires_grad


def test_state_dict_round_trip_recreates_the_mim_head(tok):
    model = make(tok)
    model.set_mim_vocab(11)
    mom = model.momentum_model()
    fresh = make(tok, seed=5)
    fresh.load_state_dict(model.state_dict())
    assert fresh.mim_vocab_size == 11
    torch.testing.assert_close(fresh.mim_head.weight, model.mim_head.weight)
    fresh_mom = fresh.momentum_model()
    fresh_mom.load_state_dict(mom.state_dict())
    assert not any(p.requires_grad for p in fresh_mom.parameters())
    images, ids, att = batch(tok)
    torch.testing.assert_close(fresh.fuse(ids, att, fresh.encode_image(images)).hidden,
                               model.fuse(ids, att, model.encode_image(images)).hidden)


class _PaperVocab:
    pad_token_id = 0

    def __len__(self) -> int:
        return 30522


@pytest.mark.parametrize("name,fusion", [("paper.yaml", (0, 12)), ("albef_paper.yaml", (6, 12))])
def test_paper_configs_build_at_paper_size(name, fusion):
    from simla_bench.config import CONFIG_DIR, load_config

    cfg = load_config(CONFIG_DIR / name)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = build_model(ModelConfig(**cfg.model.options), _PaperVocab())
    assert model.vision_width == model.text_width == 768 and model.embed_dim == 256
    assert model.patch_grid == (16, 16) and model.text_encoder.num_layers == 12
    assert model.fusion_range == fusion
    crossed = [i for i, layer in enumerate(model.text_encoder.encoder.layer) if layer.has_cross_attention]
    assert crossed == list(range(*fusion))
    vit = sum(p.numel() for p in model.visual_encoder.parameters())
    assert 85e6 < vit < 87e6  # ViT-B/16 (86M)

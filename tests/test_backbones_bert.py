"""BERT text/fusion backbone: Hugging Face parity, padding, attention maps, configs, weights."""

from __future__ import annotations

import pytest
import torch

from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.bert import bert_base, bert_world_tiny, build, load_bert_config

TINY = dict(vocab_size=120, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
            max_position_embeddings=32)


def _ids(batch=3, length=12, pad_from=(12, 7, 4), vocab=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, length), generator=g)
    att = torch.zeros(batch, length, dtype=torch.long)
    for b, n in enumerate(pad_from):
        att[b, :n] = 1
        ids[b, n:] = 0
    return ids, att


def test_hf_bert_weights_reproduce_hf_last_hidden_state(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    hf = BertModel(BertConfig(**TINY)).eval()
    hf.save_pretrained(str(tmp_path / "bert"))
    # cross-attention in every layer (single-stream) must not disturb text mode
    ours = bert_world_tiny(weights=str(tmp_path / "bert"), cross_attention_layers="all", encoder_width=64).eval()
    assert ours.width == 48 and ours.num_layers == 3
    ids, att = _ids()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=att).last_hidden_state
        got = ours(ids, att).hidden
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_masked_lm_checkpoint_prefix_and_tied_head(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(1)
    hf = BertForMaskedLM(BertConfig(**TINY)).eval()
    torch.save(hf.state_dict(), tmp_path / "mlm.bin")
    ours = build(config=TINY, weights=str(tmp_path / "mlm.bin")).eval()
    ids, att = _ids()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, att).hidden, hf.bert(input_ids=ids, attention_mask=att).last_hidden_state,
                                   rtol=0, atol=1e-5)
    head = ours.make_lm_head().eval()
    assert head.decoder.weight is ours.embeddings.word_embeddings.weight
    with torch.no_grad():  # the MLM head starts from BertForMaskedLM's
        torch.testing.assert_close(head(ours(ids, att).hidden), hf(input_ids=ids, attention_mask=att).logits,
                                   rtol=0, atol=1e-4)


def test_padding_does_not_change_outputs():
    torch.manual_seed(0)
    model = build(config=TINY, cross_attention_layers=[1, 2], encoder_width=40).eval()
    ids, att = _ids(length=8, pad_from=(8, 5, 3))
    ids_long = torch.cat([ids, torch.zeros(3, 6, dtype=torch.long)], 1)
    att_long = torch.cat([att, torch.zeros(3, 6, dtype=torch.long)], 1)
    image = torch.randn(3, 9, 40)
    with torch.no_grad():
        short = model(ids, att).hidden
        long = model(ids_long, att_long).hidden
        fshort = model(ids, att, context=image, start_layer=1).hidden
        flong = model(ids_long, att_long, context=image, start_layer=1).hidden
    keep = att.bool()
    torch.testing.assert_close(short[keep], long[:, :8][keep], rtol=0, atol=1e-5)
    torch.testing.assert_close(fshort[keep], flong[:, :8][keep], rtol=0, atol=1e-5)
    # the image mask is honoured too: padding image tokens with masked junk changes nothing
    junk = torch.cat([image, 100 * torch.randn(3, 4, 40)], 1)
    junk_mask = torch.cat([torch.ones(3, 9), torch.zeros(3, 4)], 1)
    with torch.no_grad():
        fjunk = model(ids, att, context=junk, context_mask=junk_mask, start_layer=1).hidden
    torch.testing.assert_close(fjunk, fshort, rtol=0, atol=1e-5)


def test_attention_probabilities_match_sdpa_and_stay_in_graph():
    torch.manual_seed(0)
    model = build(config=TINY, cross_attention_layers="all", encoder_width=40).eval()
    ids, att = _ids()
    image = torch.randn(3, 9, 40)
    plain = model(ids, att, context=image)
    out = model(ids, att, context=image, output_attentions=-1)
    torch.testing.assert_close(out.hidden, plain.hidden, rtol=0, atol=1e-5)
    assert out.self_attentions[0] is None and out.cross_attentions[1] is None
    self_p, cross_p = out.self_attentions[-1], out.cross_attentions[-1]
    assert self_p.shape == (3, 4, 12, 12) and cross_p.shape == (3, 4, 12, 9)
    torch.testing.assert_close(self_p.sum(-1), torch.ones(3, 4, 12))
    assert self_p[2, :, :, 4:].abs().max() < 1e-6  # padded keys get no attention
    (grad,) = torch.autograd.grad(out.hidden[:, 0].sum(), cross_p)
    assert grad.abs().sum() > 0
    assert plain.self_attentions is None and plain.cross_attentions is None


def test_two_contexts_run_the_layer_then_its_twin():
    """Two-image fusion (ALBEF): the layer attends to image 1, then its twin (a copy
    sharing the cross-attention key/value) to image 2; checked by hand."""
    from simla_bench.plugins.backbones.bert import _additive_mask

    torch.manual_seed(0)
    model = build(config=TINY, cross_attention_layers=[2], encoder_width=40).eval()
    ids, att = _ids()
    e1, e2 = torch.randn(3, 9, 40), torch.randn(3, 9, 40)
    layer = model.encoder.layer[2]
    with torch.no_grad():
        text = model(ids, att, end_layer=2).hidden
        with pytest.raises(RuntimeError, match="twin"):
            model(hidden=text, attention_mask=att, context=[e1, e2], start_layer=2)
        with pytest.raises(RuntimeError, match="cross-attention layer"):
            model.encoder.layer[0].add_twin()
        twin = layer.add_twin()
        assert layer.add_twin() is twin
        assert twin.crossattention.self.key is layer.crossattention.self.key
        assert twin.crossattention.self.value is layer.crossattention.self.value
        torch.nn.init.normal_(twin.crossattention.self.query.weight)  # the twin's own weights count
        torch.nn.init.normal_(twin.intermediate.dense.weight)
        both = model(hidden=text, attention_mask=att, context=[e1, e2], start_layer=2).hidden
        swapped = model(hidden=text, attention_mask=att, context=[e2, e1], start_layer=2).hidden
        one = model(hidden=text, attention_mask=att, context=e1, start_layer=2).hidden

        def by_hand(block, h, ctx):
            h, _ = block.attention(h, mask=_additive_mask(att, h.dtype))
            h, _ = block.crossattention(h, ctx)
            return block.output(block.intermediate(h), h)

        expected = by_hand(twin, by_hand(layer, text, e1), e2)
    torch.testing.assert_close(both, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(one, by_hand(layer, text, e1), rtol=0, atol=1e-5)  # one image: no twin
    assert not torch.allclose(both, swapped)
    with pytest.raises(ValueError, match="2 image tensors"):
        model(hidden=text, attention_mask=att, context=[e1, e2, e1], start_layer=2)


def test_cross_attention_layer_selection_and_configs(tmp_path):
    model = build(config=TINY, cross_attention_layers=[-1], encoder_width=40)
    assert [layer.has_cross_attention for layer in model.encoder.layer] == [False, False, True]
    assert model.encoder.layer[2].crossattention.self.key.in_features == 40
    with pytest.raises(RuntimeError):
        model(torch.ones(1, 4, dtype=torch.long), context=torch.randn(1, 3, 40))  # layer 0 has no cross-attention
    with pytest.raises(ConfigError):
        build(config=TINY, cross_attention_layers=[3])
    with pytest.raises(ConfigError, match="divisible"):
        load_bert_config({**TINY, "num_attention_heads": 5})
    from transformers import BertConfig

    BertConfig(**TINY).save_pretrained(str(tmp_path / "cfg"))
    assert load_bert_config(str(tmp_path / "cfg")).hidden_size == 48
    assert load_bert_config(str(tmp_path / "cfg"), vocab_size=77).vocab_size == 77
    with pytest.raises(ConfigError, match="does not exist"):
        load_bert_config(str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="longer than"):
        build(config=TINY)(torch.ones(1, 40, dtype=torch.long))


def test_factories_have_the_documented_shapes():
    tiny = bert_world_tiny(vocab_size=100)
    cfg = tiny.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (192, 4, 3, 768)
    with torch.device("meta"):
        base = bert_base(vocab_size=30522)
    cfg = base.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (768, 12, 12, 3072)


def test_weights_of_the_wrong_shape_are_refused(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(**TINY)).save_pretrained(str(tmp_path / "bert"))
    with pytest.raises(UserError, match="shape"):
        bert_world_tiny(weights=str(tmp_path / "bert"), vocab_size=999)
    with pytest.raises(UserError, match="holds no"):
        bert_world_tiny(weights=str(tmp_path))

"""The VQA answer decoder (tasks/answer_decoder.py): parity with ALBEF's
official decoder and ``rank_answer``, learning on synthetic data, and the VQA
task end to end with ``answer_head: decoder``.

Fixture ``tests/fixtures/official/vqa_decoder`` (see its README): a tiny
random ALBEF VQA model's ``text_decoder`` weights (ALBEF key names) and the
official code's outputs on fixed question states.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from simla_bench.errors import ConfigError, UserError
from simla_bench.plugins.backbones.bert import load_bert_config
from simla_bench.tasks.answer_decoder import (AnswerDecoder, albef_decoder_state, answer_weights,
                                              decoder_from_model, decoder_from_state, decoder_layer_count,
                                              tokenize_answers)

FIXTURE = Path(__file__).parent / "fixtures" / "official" / "vqa_decoder"


@pytest.fixture(scope="module")
def oracle():
    return torch.load(FIXTURE / "oracle.pt", weights_only=True)


@pytest.fixture(scope="module")
def official_decoder(oracle):
    state = torch.load(FIXTURE / "decoder_state.pt", weights_only=True)
    cfg = load_bert_config(oracle["config"])
    dec = decoder_from_state(state, cfg, context_width=oracle["config"]["hidden_size"])
    return dec.eval()


# ------------------------------------------------------------------ parity
def test_albef_keys_map_onto_the_decoder(oracle):
    state = torch.load(FIXTURE / "decoder_state.pt", weights_only=True)
    mapped = albef_decoder_state(state)
    assert decoder_layer_count(mapped) == oracle["decoder_layers"] == 2
    dec = AnswerDecoder(load_bert_config(oracle["config"]), 2)
    own = set(dec.state_dict())
    assert set(mapped) == own                            # every ALBEF key has a home, and vice versa
    assert "bert.embeddings.position_ids" not in mapped and "cls.predictions.decoder.bias" not in mapped


def test_decoder_logits_and_sequence_nll_match_albef(official_decoder, oracle):
    qs, qm = oracle["question_states"], oracle["question_mask"]
    ids, am = oracle["answer_ids"], oracle["answer_mask"]
    q, a = qs.shape[0], ids.shape[0]
    rep_q, rep_m = qs.repeat_interleave(a, 0), qm.repeat_interleave(a, 0)
    with torch.no_grad():
        logits = official_decoder(ids.repeat(q, 1), am.repeat(q, 1), rep_q, rep_m)
        nll = official_decoder.sequence_nll(ids.repeat(q, 1), am.repeat(q, 1), rep_q, rep_m).view(q, a)
        start = official_decoder(ids[:1, :1].repeat(q, 1), None, qs, qm)[:, 0]
    n = oracle["pair_logits"].shape[0]
    assert torch.allclose(logits[:n], oracle["pair_logits"], atol=1e-4)
    assert torch.allclose(nll, oracle["pair_nll"], atol=1e-4)
    assert torch.allclose(start, oracle["start_logits"], atol=1e-4)


def test_rank_answers_matches_albef(official_decoder, oracle):
    out = official_decoder.rank_answers(oracle["question_states"], oracle["question_mask"], oracle["answer_ids"],
                                        oracle["answer_mask"], k=oracle["k"])
    assert torch.equal(out.ids, oracle["topk_ids"])
    assert torch.allclose(out.probs, oracle["topk_probs"], atol=1e-4)
    assert torch.equal(out.best, oracle["topk_ids"][:, 0])
    # the scores are ALBEF's log_probs_sum: the first-token log-prob counted twice
    qs, qm, ids, am = (oracle[k] for k in ("question_states", "question_mask", "answer_ids", "answer_mask"))
    first = official_decoder(ids[:1, :1].repeat(len(qs), 1), None, qs, qm)[:, 0].log_softmax(-1)
    j = int(out.ids[0, 0])
    expect = first[0, ids[j, 1]] - oracle["pair_nll"][0, j]
    assert out.scores[0, 0].item() == pytest.approx(expect.item(), abs=1e-4)


def test_weighted_answer_loss_matches_albef_training_loss(official_decoder, oracle):
    loss = official_decoder.answer_loss(oracle["question_states"], oracle["question_mask"],
                                        oracle["train_answer_ids"], oracle["train_answer_mask"],
                                        oracle["train_counts"], oracle["train_weights"])
    assert loss.item() == pytest.approx(oracle["train_loss"].item(), abs=1e-4)


def test_answer_weights_follow_albef():
    flat, weights, counts = answer_weights([["red", "red", "blue", "red"], ["two"]])
    assert flat == ["red", "blue", "two"] and counts == [2, 1]
    assert weights == pytest.approx([0.75, 0.25, 1.0])


def test_bad_decoder_states_are_refused(oracle):
    state = torch.load(FIXTURE / "decoder_state.pt", weights_only=True)
    cfg = load_bert_config(oracle["config"])
    with pytest.raises(ConfigError, match="2 layers"):
        decoder_from_state(state, cfg, num_layers=3)
    partial = {k: v for k, v in state.items() if "layer.1.output" not in k}
    with pytest.raises(UserError, match="missing"):
        decoder_from_state(partial, cfg)
    with pytest.raises(UserError):
        decoder_from_state({}, cfg)

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
from simla_bench.plugins.backbones.bert import BertTransformer, load_bert_config
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
    bert = BertTransformer(load_bert_config(oracle["config"]))
    dec = decoder_from_state(state, bert, context_width=oracle["config"]["hidden_size"])
    return dec.eval()


# ------------------------------------------------------------------ parity
def test_albef_keys_map_onto_the_decoder(oracle):
    state = torch.load(FIXTURE / "decoder_state.pt", weights_only=True)
    mapped = albef_decoder_state(state)
    assert decoder_layer_count(mapped) == oracle["decoder_layers"] == 2
    dec = AnswerDecoder(BertTransformer(load_bert_config(oracle["config"])), 2)
    own = set(dec.state_dict())
    assert set(mapped) == own                            # every ALBEF key has a home, and vice versa
    assert "bert.embeddings.position_ids" not in mapped and "cls.predictions.decoder.bias" not in mapped
    # the checkpoint loader's extras["answer_decoder"] holds the keys with the prefix already stripped
    stripped = {k[len("text_decoder."):]: v for k, v in state.items()}
    assert albef_decoder_state(stripped).keys() == mapped.keys()


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
    bert = BertTransformer(load_bert_config(oracle["config"]))
    with pytest.raises(ConfigError, match="2 layers"):
        decoder_from_state(state, bert, num_layers=3)
    partial = {k: v for k, v in state.items() if "layer.1.output" not in k}
    with pytest.raises(UserError, match="missing"):
        decoder_from_state(partial, bert)
    with pytest.raises(UserError):
        decoder_from_state({}, bert)
    with pytest.raises(UserError, match="make_decoder"):               # a text backbone that cannot build one
        decoder_from_state(state, torch.nn.Identity())


# ------------------------------------------------------------------ learning
def _tiny_config(vocab=24):
    return load_bert_config({"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                             "num_hidden_layers": 2, "max_position_embeddings": 16, "vocab_size": vocab,
                             "pad_token_id": 0, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})


def test_decoder_learns_to_rank_synthetic_answers():
    """8 question "types" (fixed random states), 8 answers of 2-3 tokens that
    share first tokens in pairs (so the first token alone cannot decide); the
    weighted answer loss must fall and ranking accuracy rise well above chance."""
    g = torch.Generator().manual_seed(0)
    cls, sep = 1, 2
    answers = [[3, 5], [3, 6], [4, 5], [4, 6, 7], [8, 9], [8, 10], [11, 12, 13], [11, 12, 14]]
    t = max(len(a) for a in answers) + 3
    ids = torch.zeros(len(answers), t, dtype=torch.long)
    for j, a in enumerate(answers):
        row = [cls, *a, sep, sep]
        ids[j, :len(row)] = torch.tensor(row)
    mask = (ids != 0).long()
    n_q = 8
    states = torch.randn(n_q, 4, 32, generator=g)
    qmask = torch.ones(n_q, 4, dtype=torch.long)
    gold = torch.arange(n_q)                                 # question type q answers answer q

    text_encoder = BertTransformer(_tiny_config())
    torch.manual_seed(0)
    dec = AnswerDecoder(text_encoder, 2)

    def evaluate():
        dec.eval()
        with torch.no_grad():
            loss = dec.answer_loss(states, qmask, ids[gold], mask[gold], [1] * n_q, torch.ones(n_q)).item()
        acc = (dec.rank_answers(states, qmask, ids, mask, k=4).best == gold).float().mean().item()
        return loss, acc

    loss0, acc0 = evaluate()
    opt = torch.optim.AdamW(dec.parameters(), lr=3e-3)
    dec.train()
    for step in range(80):
        pick = torch.randint(0, n_q, (8,), generator=g)
        # each question: its gold answer (weight 0.7) and a wrong one (weight 0.3), ALBEF's layout
        wrong = (pick + 1 + torch.randint(0, n_q - 1, (8,), generator=g)) % n_q
        rows = torch.stack([gold[pick], wrong], 1).reshape(-1)
        w = torch.tensor([0.7, 0.3]).repeat(8)
        loss = dec.answer_loss(states[pick], qmask[pick], ids[rows], mask[rows], [2] * 8, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss1, acc1 = evaluate()
    assert loss1 < 0.5 * loss0, (loss0, loss1)
    assert acc0 <= 0.5 and acc1 >= 0.75, (acc0, acc1)   # chance 1/8; measured 0.125 -> 0.875


# ------------------------------------------------------------------ with a simla-bench model
@pytest.fixture
def world(simla_tiny_world):
    return simla_tiny_world


@pytest.fixture
def model(simla_tiny_model):
    return simla_tiny_model


@pytest.mark.parametrize("tiny_model", ["single_stream", "split"], indirect=True)
def test_decoder_from_model_copies_the_top_layers_and_mlm_head(tiny_model):
    model = tiny_model
    bert = model.text_encoder
    dec, report = decoder_from_model(model, 1)
    top = bert.encoder.layer[bert.num_layers - 1]
    assert torch.equal(dec.bert.encoder.layer[0].attention.self.query.weight, top.attention.self.query.weight)
    assert torch.equal(dec.bert.encoder.layer[0].output.dense.weight, top.output.dense.weight)
    assert torch.equal(dec.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
    assert torch.equal(dec.cls.predictions.bias, model.mlm_head.bias)
    assert torch.equal(dec.cls.predictions.transform.dense.weight, model.mlm_head.transform.dense.weight)
    # the decoder owns its weights (ALBEF's text_decoder is a separate module), tied only within itself
    assert dec.bert.embeddings.word_embeddings.weight is not bert.embeddings.word_embeddings.weight
    assert dec.cls.predictions.decoder.weight is dec.bert.embeddings.word_embeddings.weight
    same_width = model.vision_width == model.text_width
    assert bool(report["fresh"]) != same_width or not report["fresh"]
    with pytest.raises(ConfigError, match="decoder_layers"):
        decoder_from_model(model, bert.num_layers + 1)
    # every layer of the model: a split model's text-only layer 0 has no cross-attention to copy
    _, report = decoder_from_model(model, bert.num_layers)
    fresh_cross = {k.split(".")[3] for k in report["fresh"] if ".crossattention." in k}
    assert fresh_cross == ({"0"} if model.layout == "split" else set()), report["fresh"]


def test_answers_are_tokenised_as_albef(model):
    tok = model.tokenizer
    ids, mask = tokenize_answers(tok, ["yes", "two"])
    assert ids[0, 0].item() == tok.cls_token_id
    row = ids[0][mask[0].bool()].tolist()
    assert row[-2:] == [tok.sep_token_id, tok.sep_token_id]   # answer + "[SEP]", then the tokenizer's own


def _run_vqa(model, world, tmp_path, **options):
    from simla_bench.interfaces import TaskContext
    from simla_bench.tasks.vqa import VQATask

    task = VQATask("vqa", {"eval_splits": [], **options})
    ctx = TaskContext(model=model, tokenizer=model.tokenizer, data=world, options=task.options, seed=0,
                      device="cpu", workdir=tmp_path)
    return task, task.run(ctx)


def test_vqa_task_with_the_decoder_end_to_end(model, world, tmp_path):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task, result = _run_vqa(model, world, tmp_path, answer_head="decoder", max_steps=4, batch_size=8,
                            rank_k=4, lr=5e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert "test/overall" in result.metrics and 0.0 <= result.metrics["test/overall"] <= 100.0
    assert any(k.startswith("test/") and k != "test/overall" for k in result.metrics)   # per answer type
    scores = result.per_example[task.primary_metric]
    assert result.metrics["test/overall"] == pytest.approx(100 * sum(scores) / len(scores), abs=0.006)
    assert result.extra["answer_head"] == "decoder" and result.extra["finetune"]["steps"] == 4
    assert result.extra["decoder"]["init"].startswith("model top")


def test_vqa_zero_shot_uses_the_checkpoint_decoder(model, world, tmp_path):
    from simla_bench.tasks.vqa import VQATask

    # zero-shot classification reads the model's own answer classifier: a model without one is n/a
    assert "vqa_head" in VQATask("vqa", {"mode": "zero_shot"}).needs - model.capabilities
    assert "mlm_head" in VQATask("vqa", {"answer_head": "decoder"}).needs   # the decoder starts from it
    with pytest.raises(UserError, match="answer_decoder_state"):
        _run_vqa(model, world, tmp_path, answer_head="decoder", mode="zero_shot")
    dec, _ = decoder_from_model(model, 1)
    ckpt = {f"text_decoder.{k}": v for k, v in dec.state_dict().items()}   # as a loader hands it over
    loaded = type(model).__new__(type(model))
    loaded.__dict__.update(model.__dict__)
    object.__setattr__(loaded, "answer_decoder_state", ckpt)
    _, result = _run_vqa(loaded, world, tmp_path, answer_head="decoder", mode="zero_shot", rank_k=4)
    assert result.extra["finetune"]["steps"] == 0 and result.extra["decoder"]["init"] == "checkpoint"
    assert "test/overall" in result.metrics
    with pytest.raises(ConfigError, match="checkpoint's decoder has 1 layers"):
        _run_vqa(loaded, world, tmp_path, answer_head="decoder", mode="zero_shot", decoder_layers=2)

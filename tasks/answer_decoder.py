"""The VQA answer decoder of ALBEF/SIMLA: a causal BERT that cross-attends to
the question's fused states and ranks the candidate answers.

What it is
----------
:class:`AnswerDecoder` is ALBEF's ``text_decoder`` (``BertLMHeadModel`` with
every layer cross-attending): BERT embeddings, ``num_layers`` BERT layers
(causal self-attention over the answer tokens, cross-attention to the
question's fused states ``[Q, Lq, D]`` under the question's padding mask,
feed-forward) and BERT's MLM prediction head.  The modules come from the
model it decodes for: its text backbone builds them
(``model.text_encoder.make_decoder(num_layers, context_width)``: a BERT whose
every layer cross-attends, and its MLM head), so this task module imports no
plugin (docs/architecture.md "Layering rules"); the causal mask is applied
here, by running the BERT layers with a ``[N, 1, T, T]`` additive mask.

Answers are tokenised as ALBEF does (:func:`tokenize_answers`): the answer
text plus the eos string ``[SEP]``, through the tokenizer, which adds its own
``[CLS] ... [SEP]``, so ``"yes"`` is ``[CLS] yes [SEP] [SEP]``.  The leading
``[CLS]`` is the decoder's start (bos) token; ALBEF does not replace it, it
takes the start id from the answer list (``answer_ids[0, 0]``).

State-dict names
----------------
The module's own names are ALBEF's ``text_decoder.*`` names without the
prefix: ``bert.embeddings.*``, ``bert.encoder.layer.N.{attention,
crossattention,intermediate,output}.*`` and ``cls.predictions.{transform.*,
bias, decoder.weight}``.  :func:`albef_decoder_state` maps an ALBEF/SIMLA
checkpoint onto them: it strips ``module.`` and ``text_decoder.``, renames
old ``LayerNorm.gamma/beta``, and drops ``bert.embeddings.position_ids`` (a
buffer) and ``cls.predictions.decoder.bias`` (HF ties it to
``cls.predictions.bias``); ``cls.predictions.decoder.weight`` is tied to the
word embeddings here as in ALBEF.

Ranking (ALBEF's ``rank_answer``)
---------------------------------
:meth:`AnswerDecoder.rank_answers`: (1) one decoder step from the bos token
gives the first-token distribution; each candidate is scored by the
probability of its first answer token (``answer_ids[:, 1]``) and the top ``k``
candidates are kept; (2) each kept candidate's full sequence is scored by the
summed token log-likelihood (positions 1.. predicted from the previous ones,
answer padding ignored, i.e. ALBEF's ``reduction='none'`` loss summed per
sequence), and ALBEF adds the first-token log-probability once more on top
(the full-sequence sum already contains it; kept for checkpoint parity);
(3) the best-scoring candidate wins.  The returned ``probs`` are the softmax of
those scores over the ``k`` candidates, as ALBEF returns them.

Training (ALBEF's VQA loss)
---------------------------
:meth:`AnswerDecoder.answer_loss`: each question's distinct annotator answers
are decoded against that question's states (``counts[q]`` answers for
question ``q``), each weighted by its share of the annotators
(:func:`answer_weights`: count / number of answers); loss = sum over answers
of weight x summed token NLL, divided by the number of questions.

Initialisation
--------------
* :func:`decoder_from_model` (fine-tuning from a simla-bench model, as ALBEF's
  ``VQA.py`` does): the decoder's embeddings are a copy of the model's word,
  position and token-type embeddings; its layer ``i`` is a copy of the model's
  BERT layer ``L - n + i`` (the top ``n`` layers: ALBEF's 6 fusion layers
  6..11, SIMLA's upper 6 of its 12 shared layers), cross-attention included,
  so the decoder's cross-attention to the question starts from the fusion
  layers' cross-attention to the image (weights whose shape differs, the
  key/value projections when the image width is not the text width, and the
  cross-attention of a split model's text-only layers, stay freshly
  initialised); its head is a copy of the model's MLM head (``mlm_head``).
* A released checkpoint (zero-shot evaluation, or fine-tuning further): the
  checkpoint loader returns the checkpoint's ``text_decoder.*`` tensors as a
  state dict and sets it as the model attribute ``model.answer_decoder_state``
  (a dict, or ``None`` when the checkpoint has no decoder).  The VQA task
  builds the decoder from it with :func:`decoder_from_state` (layer count read
  off the keys, the other shapes from the model's text backbone) and uses it as
  is (``mode: zero_shot``) or fine-tunes it (``mode: finetune``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.errors import ConfigError, UserError

#: ALBEF's answer end string, appended to every answer before tokenisation
ALBEF_EOS = "[SEP]"


@dataclass
class RankedAnswers:
    """Result of :meth:`AnswerDecoder.rank_answers` for ``Q`` questions.

    ``ids [Q, k]``: candidate indices (rows of the answer list), best first;
    ``scores [Q, k]``: their log-likelihood scores (ALBEF's ``log_probs_sum``);
    ``probs [Q, k]``: softmax of the scores over the ``k`` candidates;
    ``best [Q]``: ``ids[:, 0]``."""

    ids: torch.Tensor
    scores: torch.Tensor
    probs: torch.Tensor

    @property
    def best(self) -> torch.Tensor:
        return self.ids[:, 0]


def _key_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    keep = mask.to(torch.bool)[:, None, None, :]
    return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


def _causal_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[N, T]`` key mask -> additive ``[N, 1, T, T]``: token ``t`` sees the
    non-padding tokens ``<= t`` (ALBEF's decoder mask)."""
    n, t = mask.shape
    causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    keep = causal[None, None] & mask.to(torch.bool)[:, None, None, :]
    return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


class AnswerDecoder(nn.Module):
    """ALBEF's answer decoder (see the module docstring).

    ``text_encoder``: the model's text backbone (``model.text_encoder``); its
    ``make_decoder(num_layers, context_width)`` builds the modules in its own
    shape (width, heads, FFN, vocabulary, positions, dropout) with
    ``num_layers`` layers.  ``context_width``: the width of the question states
    (the fused text width)."""

    def __init__(self, text_encoder, num_layers: int, context_width: int | None = None):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"the answer decoder needs at least 1 layer, got {num_layers}")
        make = getattr(text_encoder, "make_decoder", None)
        if make is None:
            raise UserError(f"answer_head decoder needs a text backbone that builds a decoder, but "
                            f"{type(text_encoder).__name__} has no make_decoder(num_layers, context_width)",
                            hint="use answer_head: classifier, or a BERT text backbone")
        self.bert, head = make(int(num_layers), context_width)
        self.config = self.bert.config
        self.cls = nn.Module()
        self.cls.predictions = head

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    # ----------------------------------------------------------------- forward
    def forward(self, answer_ids: torch.Tensor, answer_mask: torch.Tensor | None,
                question_states: torch.Tensor, question_mask: torch.Tensor | None) -> torch.Tensor:
        """Logits ``[N, T, V]`` of the next token at every answer position
        (row ``n`` of the answers reads row ``n`` of the question states)."""
        if answer_mask is None:
            answer_mask = torch.ones_like(answer_ids)
        hidden = self.bert.embeddings(answer_ids)
        self_mask = _causal_mask(answer_mask, hidden.dtype)
        ctx_mask = None if question_mask is None else _key_mask(question_mask, hidden.dtype)
        for layer in self.bert.encoder.layer:
            hidden, _, _ = layer(hidden, self_mask, question_states, ctx_mask)
        return self.cls.predictions(hidden)

    def sequence_nll(self, answer_ids, answer_mask, question_states, question_mask) -> torch.Tensor:
        """``[N]``: each answer's summed token negative log-likelihood
        (tokens 1.. given the previous ones; padding, ``answer_mask == 0``,
        ignored): ALBEF's ``reduction='none'`` LM loss."""
        logits = self(answer_ids, answer_mask, question_states, question_mask)[:, :-1]
        targets = answer_ids[:, 1:].masked_fill(answer_mask[:, 1:] == 0, -100)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                              ignore_index=-100, reduction="none")
        return nll.view(answer_ids.shape[0], -1).sum(1)

    def answer_loss(self, question_states, question_mask, answer_ids, answer_mask,
                    counts: Sequence[int], weights: torch.Tensor) -> torch.Tensor:
        """ALBEF's VQA training loss: question ``q`` is paired with the next
        ``counts[q]`` rows of ``answer_ids`` (its distinct answers), each
        answer's sequence NLL is multiplied by its weight, and the sum is
        divided by the number of questions."""
        counts_t = torch.as_tensor(list(counts), device=question_states.device)
        if int(counts_t.sum()) != answer_ids.shape[0] or len(counts_t) != question_states.shape[0]:
            raise ValueError("counts must give one entry per question and sum to the number of answers")
        states = question_states.repeat_interleave(counts_t, 0)
        mask = question_mask.repeat_interleave(counts_t, 0)
        nll = self.sequence_nll(answer_ids, answer_mask, states, mask)
        return (weights.to(nll) * nll).sum() / question_states.shape[0]

    @torch.no_grad()
    def rank_answers(self, question_states: torch.Tensor, question_mask: torch.Tensor, answer_ids: torch.Tensor,
                     answer_mask: torch.Tensor, k: int, bos_id: int | None = None) -> RankedAnswers:
        """Rank the answer list for each question as ALBEF's ``rank_answer``
        (module docstring): top ``k`` by first-token probability, re-scored by
        first-token log-prob + full-sequence log-likelihood.  ``k`` is capped
        at the number of answers; ``bos_id`` defaults to ``answer_ids[0, 0]``."""
        q = question_states.shape[0]
        n_answers = answer_ids.shape[0]
        k = max(1, min(int(k), n_answers))
        bos = int(answer_ids[0, 0]) if bos_id is None else int(bos_id)
        start = torch.full((q, 1), bos, dtype=answer_ids.dtype, device=answer_ids.device)
        first_logits = self(start, None, question_states, question_mask)[:, 0].float()
        first_logp = first_logits.log_softmax(-1).index_select(1, answer_ids[:, 1])      # [Q, A]
        top_logp, top_ids = first_logp.topk(k, dim=1)                                     # [Q, k]
        ids = answer_ids[top_ids.reshape(-1)]
        mask = answer_mask[top_ids.reshape(-1)]
        states = question_states.repeat_interleave(k, 0)
        qmask = question_mask.repeat_interleave(k, 0)
        nll = self.sequence_nll(ids, mask, states, qmask).view(q, k)
        scores = top_logp - nll
        order = scores.argsort(dim=1, descending=True)
        scores = scores.gather(1, order)
        return RankedAnswers(ids=top_ids.gather(1, order), scores=scores, probs=scores.softmax(-1))


# ------------------------------------------------------------------ answers
def tokenize_answers(tokenizer, answers: Sequence[str], device: torch.device | str = "cpu",
                     max_len: int | None = None):
    """ALBEF's answer tokens: each answer + ``[SEP]``, tokenised with the
    tokenizer's own ``[CLS] ... [SEP]``, padded to the longest (truncated to
    ``max_len`` when given).  Returns ``(input_ids, attention_mask)``."""
    eos = getattr(tokenizer, "sep_token", None) or ALBEF_EOS
    kwargs = {"truncation": True, "max_length": max_len} if max_len else {}
    enc = tokenizer([a + eos for a in answers], padding="longest", return_tensors="pt", **kwargs)
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def answer_weights(answer_lists: Sequence[Sequence[str]]) -> tuple[list[str], list[float], list[int]]:
    """ALBEF's training answers: per question its distinct answers (first seen
    first), each weighted by count / number of answers.  Returns the flat
    answers, their weights and the number of answers per question."""
    flat: list[str] = []
    weights: list[float] = []
    counts: list[int] = []
    for answers in answer_lists:
        share: dict[str, float] = {}
        for a in answers:
            share[a] = share.get(a, 0.0) + 1.0 / len(answers)
        flat += list(share)
        weights += list(share.values())
        counts.append(len(share))
    return flat, weights, counts


# ------------------------------------------------------------------ weights
_LAYER = re.compile(r"^bert\.encoder\.layer\.(\d+)\.")


def albef_decoder_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An ALBEF/SIMLA ``text_decoder`` state dict (full-model keys
    ``text_decoder.*`` or already stripped) in :class:`AnswerDecoder` names
    (mapping in the module docstring).  Momentum copies
    (``text_decoder_m.*``) and other modules' keys are left out."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith("text_decoder_m."):
            continue
        if k.startswith("text_decoder."):
            k = k[len("text_decoder."):]
        elif not (k.startswith("bert.") or k.startswith("cls.")):
            continue
        if k in ("bert.embeddings.position_ids", "cls.predictions.decoder.bias") or k.startswith("bert.pooler."):
            continue
        k = k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[k] = value
    return out


def decoder_layer_count(state: Mapping[str, torch.Tensor]) -> int:
    """Number of decoder layers in a (mapped) decoder state dict."""
    layers = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    return max(layers) + 1 if layers else 0


def decoder_from_state(state: Mapping[str, torch.Tensor], text_encoder, context_width: int | None = None,
                       num_layers: int | None = None) -> AnswerDecoder:
    """An :class:`AnswerDecoder` holding a checkpoint's decoder weights.

    ``state``: ALBEF ``text_decoder.*`` keys (or already mapped ones);
    ``text_encoder``: the model's text backbone, whose config gives the shapes
    the keys cannot tell (heads, activation, norms); the layer count is read off the keys and must equal
    ``num_layers`` when that is given.  Every decoder weight must be present
    and of the expected shape (a ``UserError`` otherwise)."""
    mapped = albef_decoder_state(state)
    n = decoder_layer_count(mapped)
    if n == 0:
        raise UserError("the answer decoder state holds no 'bert.encoder.layer.N' weights",
                        hint="pass the checkpoint's text_decoder.* tensors")
    if num_layers and num_layers != n:
        raise ConfigError(f"decoder_layers={num_layers}, but the checkpoint's decoder has {n} layers",
                          hint="leave decoder_layers at 0 to take the checkpoint's")
    decoder = AnswerDecoder(text_encoder, n, context_width)
    own = decoder.state_dict()
    tied = mapped.pop("cls.predictions.decoder.weight", None)
    for key, value in mapped.items():
        if key in own and own[key].shape != value.shape:
            raise UserError(f"answer decoder weight '{key}' has shape {tuple(value.shape)}, the decoder expects "
                            f"{tuple(own[key].shape)}", hint="use the BERT config that belongs to the checkpoint")
    result = decoder.load_state_dict(mapped, strict=False)
    missing = [k for k in result.missing_keys if k != "cls.predictions.decoder.weight"]
    if missing or result.unexpected_keys:
        bad = missing[:1] + result.unexpected_keys[:1]
        raise UserError(f"the answer decoder state does not fit: {len(missing)} missing, "
                        f"{len(result.unexpected_keys)} unexpected weight(s), e.g. {bad}")
    if tied is not None and not torch.equal(tied.to(own["bert.embeddings.word_embeddings.weight"]),
                                            decoder.bert.embeddings.word_embeddings.weight.detach()):
        raise UserError("the checkpoint's decoder output weights differ from its word embeddings",
                        hint="ALBEF ties them; an untied decoder head is not supported")
    return decoder


def default_decoder_layers(model) -> int:
    """ALBEF's rule: as many decoder layers as fusion layers (6); for SIMLA's
    single stream, where every layer fuses, the upper half (6 of 12)."""
    start, end = getattr(model, "fusion_range", (0, model.text_encoder.num_layers))
    n = end - start
    if getattr(model, "layout", "split") == "single_stream":
        n = max(1, model.text_encoder.num_layers // 2)
    return max(1, n)


def decoder_from_model(model, num_layers: int) -> tuple[AnswerDecoder, dict[str, list[str]]]:
    """A decoder initialised from a simla-bench model's upper BERT layers and
    MLM head (module docstring, "Initialisation").  Returns the decoder and
    ``{"fresh": [...]}``, the decoder weights left at their fresh init."""
    bert = model.text_encoder
    total = bert.num_layers
    if not 1 <= num_layers <= total:
        raise ConfigError(f"decoder_layers={num_layers} is outside 1..{total} (the model's BERT layers)",
                          hint="the decoder copies the model's top layers")
    width = int(getattr(model, "text_width", bert.width))
    decoder = AnswerDecoder(bert, num_layers, context_width=width)
    own = decoder.state_dict()
    source: dict[str, torch.Tensor] = {}
    for key, value in bert.embeddings.state_dict().items():
        source[f"bert.embeddings.{key}"] = value
    for i in range(num_layers):
        for key, value in bert.encoder.layer[total - num_layers + i].state_dict().items():
            source[f"bert.encoder.layer.{i}.{key}"] = value
    head = getattr(model, "mlm_head", None)
    if head is not None:
        for key, value in head.state_dict().items():
            if key != "decoder.weight":
                source[f"cls.predictions.{key}"] = value
    usable = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    decoder.load_state_dict(usable, strict=False)
    fresh = [k for k in own if k not in usable and k != "cls.predictions.decoder.weight"]
    return decoder, {"fresh": fresh}


# ------------------------------------------------------------------ the VQA task's use
def task_decoder(model, options: Mapping) -> tuple[AnswerDecoder, dict]:
    """The decoder the VQA task starts from (``answer_head: decoder``), and a
    description for the task's ``extra``.

    * ``model.answer_decoder_state`` is a non-empty dict (a released ALBEF/SIMLA
      checkpoint's ``text_decoder.*`` tensors): the decoder holds those weights
      (its layer count is the checkpoint's; a different non-zero
      ``decoder_layers`` is an error);
    * otherwise, ``mode: zero_shot`` is an error (nothing to evaluate), and
      ``mode: finetune`` starts from the model's top ``decoder_layers`` layers
      (0 = :func:`default_decoder_layers`) and MLM head."""
    state = getattr(model, "answer_decoder_state", None)
    wanted = int(options.get("decoder_layers", 0) or 0)
    width = int(getattr(model, "text_width", model.text_encoder.width))
    if state:
        decoder = decoder_from_state(state, model.text_encoder, width, num_layers=wanted or None)
        return decoder, {"init": "checkpoint", "layers": decoder.num_layers, "fresh": 0}
    if options.get("mode") == "zero_shot":
        raise UserError("mode zero_shot with answer_head decoder needs the checkpoint's decoder weights, "
                        "but the model has none (model.answer_decoder_state is empty)",
                        hint="load an ALBEF/SIMLA VQA checkpoint that holds text_decoder.* weights, "
                             "or use mode: finetune")
    n = wanted or default_decoder_layers(model)
    decoder, report = decoder_from_model(model, n)
    return decoder, {"init": f"model top {n} layers + MLM head", "layers": n, "fresh": len(report["fresh"])}


@torch.no_grad()
def rank_in_chunks(decoder: AnswerDecoder, states: torch.Tensor, mask: torch.Tensor, answer_ids: torch.Tensor,
                   answer_mask: torch.Tensor, k: int, max_sequences: int = 4096) -> torch.Tensor:
    """``[Q]`` best answer rows, ranking at most ``max_sequences`` (question,
    candidate) sequences per decoder pass."""
    k = max(1, min(int(k), answer_ids.shape[0]))
    step = max(1, max_sequences // k)
    best = [decoder.rank_answers(states[i:i + step], mask[i:i + step], answer_ids, answer_mask, k).best
            for i in range(0, states.shape[0], step)]
    return torch.cat(best) if best else torch.zeros(0, dtype=torch.long)

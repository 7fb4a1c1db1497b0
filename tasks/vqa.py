"""VQA v2: answer classification over the answer vocabulary on the pooled fused states.

* Vocabulary: the training split's answers (:mod:`simla_bench.tasks.answers`).
* Fine-tuning: a copy of the model plus an MLP head (``2 x width``, LayerNorm)
  on the pooled fused states of (image, question); loss = binary cross-entropy against
  soft targets (each answer's official accuracy for the question), summed over
  answers and averaged over questions.
* Prediction: the arg-max answer; scored with the official VQA accuracy
  (:func:`simla_bench.tasks.metrics.vqa.vqa_accuracy`; option ``vqa_eval`` picks the
  official version, ``albef`` by default, or ``current``), overall and per answer type.
* Metrics ``<split>/overall`` and ``<split>/<answer type>`` (a ``/`` in an
  answer type such as ``yes/no`` becomes ``_``: ``test/yes_no``) for val,
  test and test_comp.  Primary: ``test/overall``; ``per_example`` holds each
  test question's unrounded accuracy.

Answer heads (option ``answer_head``):

* ``classifier`` (default): the MLP head above.
* ``decoder``: ALBEF/SIMLA's answer decoder
  (:mod:`simla_bench.tasks.answer_decoder`): a causal BERT of
  ``decoder_layers`` layers that cross-attends to the question's fused states;
  trained with ALBEF's answer-weighted LM loss on each question's distinct
  annotator answers; predicts by ranking the answer vocabulary (top
  ``rank_k`` by first-token probability, re-scored by sequence likelihood).
  ``mode: finetune`` starts it from the model's top layers and MLM head, or
  from a loaded checkpoint's decoder (``model.answer_decoder_state``);
  ``mode: zero_shot`` evaluates the checkpoint's decoder without training.
* ``classifier`` with ``mode: zero_shot``: the model's own answer classifier
  (capability ``vqa_head``, e.g. ViLT's VQA checkpoint: ``model.vqa_logits``
  over ``model.vqa_answers``), no training.  A model without one makes the
  cell ``n/a``, as a model without an MLM head does for ``decoder``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from simla_bench.errors import ConfigError, DataError
from simla_bench.interfaces import Example, TaskContext, TaskResult
from simla_bench.tasks import finetune as ft
from simla_bench.tasks import predictions as P
from simla_bench.tasks.metrics import score_files as files
from simla_bench.training import finetune as tune
from simla_bench.tasks import answer_decoder as ad
from simla_bench.tasks.answers import AnswerVocab
from simla_bench.tasks.data import ImageBank, load_split, text_max_len, tokenize
from simla_bench.tasks.heads import ModelHead, fusion_width, mlp_head


def type_key(answer_type: str) -> str:
    return answer_type.replace("/", "_").replace(" ", "_")


def annotations_of(records) -> list[dict]:
    """The records as the official evaluator's annotation dicts."""
    return [{"question_id": r.question_id, "answers": list(r.answers), "answer_type": r.answer_type,
             "question_type": r.question_type} for r in records]


ANSWER_HEADS = ("classifier", "decoder")
#: a split's answers in the cell's predictions folder: ``<split>_answers.json``, ``[{question_id, answer}]``
ANSWERS_FILE = "answers.json"


class VQATask(ft.CheckedTask):
    """VQA v2: classifier over the answer vocabulary or ALBEF's answer decoder; official VQA accuracy."""

    version = "3"  # 3: answer_head decoder (ALBEF's answer decoder), mode; 2: vqa_eval option (official vqaEval version)
    primary_metric = "test/overall"
    needs = frozenset({"text", "fusion"})
    data_kind = "vqa"
    defaults = ft.load_defaults("vqa")
    choices = {"answer_head": ANSWER_HEADS, "mode": ft.MODES, "vqa_eval": files.VQA_EVAL_VERSIONS}
    score_files, score_options = files.task_scoring(files.score_vqa, files.VQA_OPTIONS)

    def check_options(self, name: str, o) -> None:
        if o["max_answers"] < 0:
            raise ConfigError(f"task '{name}': max_answers must be >= 0 (0 = every training answer)")
        # what the options add to the needs (a model without it makes the cell n/a): zero-shot
        # classification reads the model's own answer classifier; the decoder starts from its MLM head
        own = {"vqa_head"} if o["mode"] == "zero_shot" and o["answer_head"] == "classifier" else set()
        self.needs = type(self).needs | own | ({"mlm_head"} if o["answer_head"] == "decoder" else set())
        if isinstance(o["decoder_layers"], bool) or not isinstance(o["decoder_layers"], int) or o["decoder_layers"] < 0:
            raise ConfigError(f"task '{name}': decoder_layers must be an integer >= 0 (0 = the model's fusion "
                              f"layer count), got {o['decoder_layers']!r}")
        if isinstance(o["rank_k"], bool) or not isinstance(o["rank_k"], int) or o["rank_k"] < 1:
            raise ConfigError(f"task '{name}': rank_k must be an integer >= 1, got {o['rank_k']!r}")

    def logits(self, model, head, images, ids, mask) -> torch.Tensor:
        out = model.fuse(ids, mask, model.encode_image(images))
        return head(out.pooled)

    @torch.no_grad()
    def predict(self, model, head, vocab: AnswerVocab, records, tok, device) -> dict:
        o = self.options
        model.eval()
        head.eval()
        bank = ImageBank([r.image for r in records], model)
        rows = bank.index([r.image for r in records])
        max_len = text_max_len(model, o)
        preds: dict = {}
        bs = o["eval_batch_size"]
        if isinstance(head, ad.AnswerDecoder):
            a_ids, a_mask = ad.tokenize_answers(tok, vocab.answers, device,
                                                max_len=head.config.max_position_embeddings)
        for start in range(0, len(records), bs):
            chunk = records[start:start + bs]
            ids, mask = tokenize(tok, [r.question for r in chunk], max_len, device, kind="question")
            images = bank.tensor[rows[start:start + bs]].to(device)
            if isinstance(head, ad.AnswerDecoder):
                states = model.fuse(ids, mask, model.encode_image(images)).hidden
                best = ad.rank_in_chunks(head, states, mask, a_ids, a_mask, o["rank_k"])
            else:
                best = self.logits(model, head, images, ids, mask).argmax(1)
            for r, j in zip(chunk, best.tolist()):
                preds[r.question_id] = vocab.answers[j]
        return preds

    def data_splits(self) -> list[tuple[str, str, bool]]:
        """train (always: the answer list is built from it), test (required), other ``eval_splits`` (optional)."""
        splits = dict.fromkeys(["test", *self.options["eval_splits"]])
        return [("vqa", "train", True)] + [("vqa", s, s == "test") for s in splits]

    def run(self, ctx: TaskContext) -> TaskResult:
        from simla_bench.tasks.metrics.vqa import vqa_accuracy

        o = self.options
        device, gen, model = tune.begin_task(ctx)
        tok = ctx.tokenizer or model.tokenizer
        max_len = text_max_len(model, o)

        train = ctx.data.load("vqa", "train").records
        if not train:
            raise DataError("vqa: the train split is empty", hint="the answer vocabulary is built from it")
        vocab = AnswerVocab.build([r.answers for r in train], o["max_answers"])
        targets = vocab.targets([r.answers for r in train])
        bank = ImageBank([r.image for r in train], model)
        rows = bank.index([r.image for r in train])
        questions = [r.question for r in train]
        steps = tune.steps_for(len(train), o["batch_size"], o["epochs"], o["max_steps"])
        batches = tune.ShuffledBatches(len(train), gen)
        head_info: dict[str, Any] = {"answer_head": o["answer_head"], "mode": o["mode"]}
        if o["answer_head"] == "decoder":
            head, decoder_info = ad.task_decoder(model, o)
            head = head.to(device)
            head_info.update(decoder=decoder_info, rank_k=min(o["rank_k"], len(vocab)))
            head_lr_mult = 1.0  # ALBEF: one learning rate for encoder and decoder
            if o["mode"] == "zero_shot":
                steps = 0
            answer_max_len = head.config.max_position_embeddings

            def step_loss(i: int) -> torch.Tensor:
                pick = batches.draw(o["batch_size"])
                ids, mask = tokenize(tok, [questions[j] for j in pick], max_len, device, kind="question")
                states = model.fuse(ids, mask, model.encode_image(bank.tensor[rows[pick]].to(device))).hidden
                flat, weights, counts = ad.answer_weights([train[j].answers for j in pick])
                a_ids, a_mask = ad.tokenize_answers(tok, flat, device, max_len=answer_max_len)
                return head.answer_loss(states, mask, a_ids, a_mask, counts,
                                        torch.tensor(weights, device=device))
        elif o["mode"] == "zero_shot":  # the model's own answer classifier over its own answers (vqa_head)
            head, vocab = ModelHead(model, "vqa_logits"), AnswerVocab(list(model.vqa_answers))
            steps, head_lr_mult = 0, 1.0
            head_info["head"] = "the model's own"

            def step_loss(i: int) -> torch.Tensor:
                raise AssertionError("zero-shot VQA trains nothing")
        else:
            probe_ids, probe_mask = tokenize(tok, questions[:1], max_len, device, kind="question")
            width = fusion_width(model, bank.tensor[rows[:1]].to(device), probe_ids, probe_mask)
            head = mlp_head(width, len(vocab), hidden=2 * width, norm=True).to(device)
            head_lr_mult = o["head_lr_mult"]

            def step_loss(i: int) -> torch.Tensor:
                pick = batches.draw(o["batch_size"])
                ids, mask = tokenize(tok, [questions[j] for j in pick], max_len, device, kind="question")
                logits = self.logits(model, head, bank.tensor[rows[pick]].to(device), ids, mask)
                tgt = targets[pick].to(device)
                return F.binary_cross_entropy_with_logits(logits, tgt, reduction="sum") / len(pick)

        log = tune.train_steps([model, head], step_loss, steps=steps, lr=o["lr"], min_lr=o["min_lr"],
                             warmup_steps=o["warmup_steps"], weight_decay=o["weight_decay"],
                             grad_clip=o["grad_clip"], lr_mults=[1.0, head_lr_mult],
                             progress=ctx.progress, log=ctx.log, label="vqa fine-tune")

        metrics: dict[str, float] = {}
        per_example: dict[str, list[float]] = {}
        predictions: dict[str, bytes] = {}
        extra: dict[str, Any] = {"vocab_size": len(vocab), "finetune": log.summary(), "skipped_splits": [],
                                 **head_info,
                                 "train_ceiling": round(100 * vocab.coverage([r.answers for r in train]), 2),
                                 "vqa_eval": o["vqa_eval"]}
        seconds = {"finetune": round(log.seconds, 2)}
        for split_name in dict.fromkeys(["test", *o["eval_splits"]]):
            t0 = time.perf_counter()
            split = load_split(ctx.data, "vqa", split_name, split_name == "test", extra["skipped_splits"])
            if split is None:
                continue
            preds = self.predict(model, head, vocab, split.records, tok, device)
            result = vqa_accuracy(preds, annotations_of(split.records), version=o["vqa_eval"])
            predictions[f"{split_name}_{ANSWERS_FILE}"] = P.json_bytes(
                [{"question_id": r.question_id, "answer": preds[r.question_id]} for r in split.records])
            metrics[f"{split_name}/overall"] = result.overall
            for atype, acc in result.per_answer_type.items():
                metrics[f"{split_name}/{type_key(atype)}"] = acc
            if split_name == "test":
                per_example[self.primary_metric] = [result.raw_per_question[r.question_id] for r in split.records]
            seconds[f"eval_{split_name}"] = round(time.perf_counter() - t0, 2)
        extra["seconds"] = seconds
        return TaskResult(metrics=metrics, per_example=per_example, extra=extra, predictions=predictions)

    # ------------------------------------------------------------------ saved predictions
    def score_predictions(self, predictions: Path, data, **options: Any) -> dict[str, float]:
        """Each ``<split>_answers.json`` scored by :meth:`score_files` against the split's
        annotations file (``vqa_eval``: the cell's own unless given)."""
        options.setdefault("vqa_eval", self.options["vqa_eval"])
        metrics: dict[str, float] = {}
        for split_name, path in P.split_files(predictions, ANSWERS_FILE).items():
            split = data.load("vqa", split_name)
            scores = self.score_files(path, Path(split.annotations_file), **options).metrics
            metrics[f"{split_name}/overall"] = scores["overall"]
            metrics.update({f"{split_name}/{type_key(k.split('/', 1)[1])}": v for k, v in scores.items()
                            if k.startswith("answer_type/")})
        return metrics

    def examples(self, predictions: Path, data) -> list[Example]:
        """One per test question: its VQA accuracy (the cell's ``vqa_eval``), the answer,
        the ten annotator answers, the question and its image."""
        from simla_bench.tasks.metrics.official_files import read_vqa_predictions
        from simla_bench.tasks.metrics.vqa import vqa_accuracy

        split = data.load("vqa", "test")
        answers = read_vqa_predictions(P.one_split_file(predictions, ANSWERS_FILE, "test"))
        result = vqa_accuracy(answers, annotations_of(split.records), version=self.options["vqa_eval"],
                              allow_missing=True)
        return [Example(id=str(r.question_id), value=result.raw_per_question.get(r.question_id, 0.0),
                        prediction=answers.get(r.question_id), truth=list(r.answers), text=r.question,
                        images=(str(r.image),), detail={"answer_type": r.answer_type})
                for r in split.records]

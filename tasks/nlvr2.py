"""NLVR2: is a statement true of a pair of images?

* The model fuses the statement with both images as ALBEF does: the task calls
  ``model.enable_two_image_fusion()`` on its copy, which duplicates every
  fusion layer (the twin starts from the same weights and shares the
  cross-attention key/value projections), then
  ``model.fuse(ids, mask, [left_embeds, right_embeds])`` runs each layer on the
  left image and its twin right after it on the right one.
* A copy of the model first runs ALBEF's "text assignment" stage
  (:mod:`simla_bench.tasks.nlvr2_assignment`: caption -> image 1, image 2 or
  neither, ``ta_steps`` steps on the source's pretraining pairs; skipped with
  a note when the source has none), then it and an MLP head (``Linear, GELU,
  Linear``) on the pooled fused states (``FusionOutput.pooled``) are fine-tuned with cross-entropy.
* ``mode: zero_shot`` fine-tunes nothing: it scores the model as given with
  the model's own NLVR2 head when it has one (capability ``nlvr2_head``, e.g.
  ViLT's NLVR2 checkpoint), else the head a loaded checkpoint carried
  (``model.task_head_states["nlvr2"]``, ALBEF's ``cls_head``: ``Linear, ReLU,
  Linear``), e.g. ALBEF's ``nlvr.pth``.
* A model that fuses the text with each image in turn (BLIP, ViLT: the
  adapter's ``fuse`` with two images) gives the two pooled states side by
  side; the head reads their concatenation.
* Metrics ``<split>/acc`` and ``<split>/consistency`` (lil-lab's rules, via
  :mod:`simla_bench.tasks.metrics.nlvr2`) for dev, test and test_comp.  Primary:
  ``test/acc``; ``per_example`` holds one 0/1 per test example.
"""

from __future__ import annotations

import time
import tempfile
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
from simla_bench.tasks.data import ImageBank, load_split, text_max_len, tokenize
from simla_bench.tasks.heads import ModelHead, mlp_head
from simla_bench.tasks.nlvr2_assignment import text_assignment


#: a split's predictions in the cell's folder: ``<split>_predictions.csv``, lines ``identifier,True|False``
PREDICTIONS_FILE = "predictions.csv"


def checkpoint_head(model, device) -> torch.nn.Module:
    """ALBEF's NLVR2 head (``Linear, ReLU, Linear``) with the weights a loaded
    checkpoint carried; a one-line error when the model has none."""
    from simla_bench.errors import UserError

    state = (getattr(model, "task_head_states", None) or {}).get("nlvr2")
    if not state:
        raise UserError("task 'nlvr2': mode zero_shot needs the NLVR2 head of a loaded checkpoint, and the model has none",
                        hint="load ALBEF's nlvr.pth (model.options.checkpoint), or use mode: finetune")
    width, hidden = int(state["0.weight"].shape[1]), int(state["0.weight"].shape[0])
    head = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, int(state["2.weight"].shape[0])))
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head.to(device).eval()


class NLVR2Task(ft.CheckedTask):
    """NLVR2: two-image fusion + MLP head; accuracy and consistency."""

    version = "4"  # 4: mode (zero_shot with a checkpoint's head)
    primary_metric = "test/acc"
    needs = frozenset({"text", "fusion", "two_image_fusion"})
    data_kind = "nlvr2"
    defaults = ft.load_defaults("nlvr2")
    score_files, score_options = files.task_scoring(files.score_nlvr2, files.NLVR2_OPTIONS)

    def check_options(self, name: str, o) -> None:
        if int(o["ta_steps"]) < 0:
            raise ConfigError(f"{name}: ta_steps must be >= 0, got {o['ta_steps']}",
                              hint="0 skips the text-assignment stage")

    @staticmethod
    def fused_pooled(model, left, right, ids, mask) -> torch.Tensor:
        images = model.encode_image(torch.cat([left, right]))
        e1, e2 = images[: len(left)], images[len(left):]
        return model.fuse(ids, mask, [e1, e2]).pooled

    @classmethod
    @torch.no_grad()
    def pair_width(cls, model, left, right, ids, mask) -> int:
        """The width of the pair's pooled states, by one probe pair in eval mode (no dropout
        draws): the text width, or twice it for a model that fuses the images one by one."""
        was_training = model.training
        model.eval()
        try:
            return int(cls.fused_pooled(model, left, right, ids, mask).shape[-1])
        finally:
            model.train(was_training)

    @torch.no_grad()
    def predict(self, model, head, records, tok, device) -> dict[str, bool]:
        o = self.options
        model.eval()
        head.eval()
        bank = ImageBank([p for r in records for p in (r.left, r.right)], model)
        left, right = bank.index([r.left for r in records]), bank.index([r.right for r in records])
        max_len = text_max_len(model, o)
        preds: dict[str, bool] = {}
        bs = o["eval_batch_size"]
        for start in range(0, len(records), bs):
            chunk = records[start:start + bs]
            ids, mask = tokenize(tok, [r.sentence for r in chunk], max_len, device)
            pooled = self.fused_pooled(model, bank.tensor[left[start:start + bs]].to(device),
                                 bank.tensor[right[start:start + bs]].to(device), ids, mask)
            for r, y in zip(chunk, head(pooled).argmax(1).tolist()):
                preds[r.identifier] = bool(y)
        return preds

    def data_splits(self) -> list[tuple[str, str, bool]]:
        """train (fine-tuning only), test (required) and the other ``eval_splits`` (optional)."""
        o = self.options
        train = [("nlvr2", "train", True)] if o["mode"] != "zero_shot" else []
        if train and o["ta_steps"] > 0:  # text assignment reads the source's pretraining pairs when it has them
            train.append(("pretrain", "train", False))
        return train + [("nlvr2", s, s == "test") for s in dict.fromkeys(["test", *o["eval_splits"]])]

    def run(self, ctx: TaskContext) -> TaskResult:
        o = self.options
        device, gen, model = tune.begin_task(ctx)
        # ALBEF's two-image fusion: each fusion layer gets an image-2 twin (same
        # starting weights, shared key/value); a model without the hook fuses as it likes
        enable = getattr(model, "enable_two_image_fusion", None)
        if enable is not None:
            enable()
        tok = ctx.tokenizer or model.tokenizer
        if o["mode"] == "zero_shot":
            head = ModelHead(model, "nlvr2_logits") if "nlvr2_head" in getattr(model, "capabilities", ()) \
                else checkpoint_head(model, device)
            return self.evaluate(ctx, model, head, tok, device, {"mode": "zero_shot", "finetune": tune.TrainLog().summary()},
                                 {})
        max_len = text_max_len(model, o)

        train = ctx.data.load("nlvr2", "train")
        if not train:
            raise DataError("nlvr2: the train split is empty", hint="the classifier is fine-tuned on it")
        bank = ImageBank([p for r in train for p in (r.left, r.right)], model)
        left, right = bank.index([r.left for r in train]), bank.index([r.right for r in train])
        labels = torch.tensor([int(r.label) for r in train])
        sentences = [r.sentence for r in train]
        width = self.pair_width(model, bank.tensor[left[:1]].to(device), bank.tensor[right[:1]].to(device),
                                *tokenize(tok, sentences[:1], max_len, device))
        ta_log, ta_skipped = text_assignment(model, self.fused_pooled, width, ctx.data, tok, o, gen, device, max_len,
                                             progress=ctx.progress, log=ctx.log)
        head = mlp_head(width, 2).to(device)
        steps = tune.steps_for(len(train), o["batch_size"], o["epochs"], o["max_steps"])
        batches = tune.ShuffledBatches(len(train), gen)

        def step_loss(i: int) -> torch.Tensor:
            pick = batches.draw(o["batch_size"])
            ids, mask = tokenize(tok, [sentences[j] for j in pick], max_len, device)
            pooled = self.fused_pooled(model, bank.tensor[left[pick]].to(device), bank.tensor[right[pick]].to(device),
                                 ids, mask)
            return F.cross_entropy(head(pooled), labels[pick].to(device))

        log = tune.train_steps([model, head], step_loss, steps=steps, lr=o["lr"], min_lr=o["min_lr"],
                             warmup_steps=o["warmup_steps"], weight_decay=o["weight_decay"],
                             grad_clip=o["grad_clip"], lr_mults=[1.0, o["head_lr_mult"]],
                             progress=ctx.progress, log=ctx.log, label="nlvr2 fine-tune")

        extra: dict[str, Any] = {"mode": "finetune", "finetune": log.summary(),
                                 "text_assignment": ta_log.summary() if ta_log else {"skipped": ta_skipped},
                                 "train_true_share": round(100 * float(labels.float().mean()), 2)}
        seconds = {"text_assignment": round(ta_log.seconds, 2) if ta_log else 0.0, "finetune": round(log.seconds, 2)}
        return self.evaluate(ctx, model, head, tok, device, extra, seconds)

    def evaluate(self, ctx: TaskContext, model, head, tok, device, extra: dict[str, Any],
                 seconds: dict[str, float]) -> TaskResult:
        """Score ``model`` + ``head`` on test and the other ``eval_splits``."""
        from simla_bench.tasks.metrics.nlvr2 import nlvr2_scores

        o = self.options
        metrics: dict[str, float] = {}
        per_example: dict[str, list[float]] = {}
        predictions: dict[str, bytes] = {}
        extra["skipped_splits"] = []
        for split_name in dict.fromkeys(["test", *o["eval_splits"]]):
            t0 = time.perf_counter()
            records = load_split(ctx.data, "nlvr2", split_name, split_name == "test", extra["skipped_splits"])
            if records is None:
                continue
            preds = self.predict(model, head, records, tok, device)
            result = nlvr2_scores(preds, {r.identifier: r.label for r in records})
            predictions[f"{split_name}_{PREDICTIONS_FILE}"] = "".join(
                f"{r.identifier},{preds[r.identifier]}\n" for r in records)
            metrics[f"{split_name}/acc"] = result.accuracy
            metrics[f"{split_name}/consistency"] = result.consistency
            if split_name == "test":
                per_example[self.primary_metric] = [float(result.per_example[r.identifier]) for r in records]
            seconds[f"eval_{split_name}"] = round(time.perf_counter() - t0, 2)
        extra["seconds"] = seconds
        return TaskResult(metrics=metrics, per_example=per_example, extra=extra, predictions=predictions)

    # ------------------------------------------------------------------ saved predictions
    def score_predictions(self, predictions: Path, data, **options: Any) -> dict[str, float]:
        """Each ``<split>_predictions.csv`` scored by :meth:`score_files` against the split's
        labels (JSON lines written from its records)."""
        metrics: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="simla-nlvr2-") as tmp:
            for split_name, path in P.split_files(predictions, PREDICTIONS_FILE).items():
                labels = P.write_nlvr2_labels(data.load("nlvr2", split_name), Path(tmp) / f"{split_name}.json")
                scores = self.score_files(path, labels, **options).metrics
                metrics[f"{split_name}/acc"] = scores["accuracy"]
                metrics[f"{split_name}/consistency"] = scores["consistency"]
        return metrics

    def examples(self, predictions: Path, data) -> list[Example]:
        """One per test statement: 1 when predicted right, the prediction, the label, the
        statement and both images."""
        from simla_bench.tasks.metrics.official_files import read_nlvr2_predictions

        preds = read_nlvr2_predictions(P.one_split_file(predictions, PREDICTIONS_FILE, "test"))
        return [Example(id=r.identifier, value=float(preds.get(r.identifier) == bool(r.label)),
                        prediction=preds.get(r.identifier), truth=bool(r.label), text=r.sentence,
                        images=(str(r.left), str(r.right)))
                for r in data.load("nlvr2", "test")]

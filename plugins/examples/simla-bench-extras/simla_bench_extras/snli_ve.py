"""The ``snli_ve`` task: visual entailment in the style of SNLI-VE, on the built-in world.

Protocol (as ALBEF and SIMLA evaluate SNLI-VE): the premise image and the
hypothesis go through the multimodal (fusion) encoder; a 3-way MLP on the
pooled fused states (``Linear(D, D) -> ReLU -> Linear(D, 3)``) predicts entailment /
neutral / contradiction; the whole model is fine-tuned with cross-entropy;
accuracy is reported on val and test.  How the examples are derived from the
world, label-consistently, is in :mod:`simla_bench_extras.entailment_data`.

Images are not augmented: a random crop would rescale the centre offsets the
labels are defined by.  The same config and seed give the same numbers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simla_bench.errors import DataError
from simla_bench.interfaces import Task, TaskContext, TaskResult

from .entailment_data import LABELS, META_FILE, EntailmentExample, load_split


class EntailmentHead(nn.Module):
    """ALBEF's SNLI-VE head: a 2-layer MLP on the pooled fused states."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, len(LABELS)))

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.net(cls)


class VisualEntailment(Task):
    """SNLI-VE-style visual entailment on the world: 3-way MLP on the pooled fused states, val/test accuracy."""

    version = "1"
    primary_metric = "test/acc"
    directions = {"val/acc": "higher", "test/acc": "higher"}
    needs = frozenset({"fusion"})
    #: none: the task reads the world's scene records (world_meta.jsonl) from the world's
    #: folder, no data kind through ``load`` (a dataset without that file is refused in run)
    data_kind = ""
    defaults = {
        "steps": 300,           # fine-tuning steps
        "batch_size": 32,
        "lr": 1e-4,             # the pretrained model
        "head_lr": 1e-3,        # the new MLP head
        "weight_decay": 0.02,
        "max_text_len": 0,      # 0 = the model's own text length
        "per_label": 1,         # hypotheses per label per premise image
        "max_train": 0,         # cap on training examples (0: all)
        "max_eval": 0,          # cap on val and test examples each (0: all; for quick checks only)
        "eval_batch_size": 64,
    }

    def score_files(self, predictions, annotations, *, allow_missing=False):
        """SNLI-VE: a JSON list of {pairID, label} against the .jsonl annotations (``simla-bench score snli_ve``)."""
        from .snli_ve_files import score

        return score(Path(predictions), Path(annotations), allow_missing=allow_missing)

    def run(self, ctx: TaskContext) -> TaskResult:
        root = self._world_root(ctx)
        opts = self.options
        splits = {s: load_split(root, s, seed=ctx.seed, per_label=opts["per_label"],
                                limit=opts["max_train"] if s == "train" else opts["max_eval"]) for s in ("train", "val", "test")}
        for split, examples in splits.items():
            if not examples:
                raise DataError(f"task '{self.name}': the world under {root} yields no {split} examples",
                                hint="use a larger world preset")
        device = torch.device(ctx.device)
        torch.manual_seed(ctx.seed)
        model = copy.deepcopy(ctx.model).to(device)
        head = EntailmentHead(int(model.text_width)).to(device)
        images = {s: self._images(model, ex) for s, ex in splits.items()}

        losses = self._fine_tune(ctx, model, head, splits["train"], images["train"], device)
        metrics: dict[str, float] = {}
        per_example: dict[str, list[float]] = {}
        for split in ("val", "test"):
            predicted = self._predict(ctx, model, head, splits[split], images[split], device)
            gold = torch.tensor([e.label for e in splits[split]])
            correct = (predicted == gold).float()
            metrics[f"{split}/acc"] = 100.0 * correct.mean().item()
            per_example[f"{split}/acc"] = correct.tolist()
            for i, label in enumerate(LABELS):
                mask = gold == i
                if mask.any():
                    metrics[f"{split}/acc_{label}"] = 100.0 * correct[mask].mean().item()
        counts = {s: {label: sum(e.label == i for e in ex) for i, label in enumerate(LABELS)} for s, ex in splits.items()}
        ctx.log(f"{self.name}: val {metrics['val/acc']:.1f} test {metrics['test/acc']:.1f} "
                f"({len(splits['train'])} train examples)")
        return TaskResult(metrics=metrics, per_example=per_example,
                          extra={"counts": counts, "steps": len(losses),
                                 "loss_first": losses[0] if losses else None,
                                 "loss_last": losses[-1] if losses else None})

    # ------------------------------------------------------------------ data
    def _world_root(self, ctx: TaskContext) -> Path:
        ctx.data.prepare()
        root = getattr(ctx.data, "root", None)
        if root is None or not (Path(root) / META_FILE).is_file():
            raise DataError(f"task '{self.name}' needs the built-in world (a dataset whose folder holds {META_FILE}); "
                            f"dataset '{ctx.data.name}' has none",
                            hint="point tasks.snli_ve.dataset at a 'world' dataset")
        return Path(root)

    @staticmethod
    def _images(model: Any, examples: list[EntailmentExample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Distinct premise images decoded once: (tensor [N,3,S,S], row of each example)."""
        from simla_bench.imagefiles import load_image

        rows: dict[Path, int] = {}
        for e in examples:
            rows.setdefault(e.image, len(rows))
        transform = model.image_transform(train=False)  # the model's own pre-processing
        tensor = torch.stack([transform(load_image(p)) for p in rows])
        return tensor, torch.tensor([rows[e.image] for e in examples])

    def _tokens(self, ctx: TaskContext, texts: list[str], device: torch.device):
        max_len = self.options["max_text_len"] or ctx.model.max_text_len
        enc = ctx.tokenizer(texts, padding="longest", truncation=True, max_length=max_len,
                            return_tensors="pt")
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    def _logits(self, ctx, model, head, examples, images, index, device) -> torch.Tensor:
        ids, mask = self._tokens(ctx, [e.hypothesis for e in examples], device)
        image_embeds = model.encode_image(images[index].to(device))
        out = model.fuse(ids, mask, image_embeds)
        pooled = getattr(out, "pooled", None)  # the model's own pooling; older models: the fused [CLS]
        return head(out.hidden[:, 0] if pooled is None else pooled)

    # -------------------------------------------------------------- training
    def _fine_tune(self, ctx, model, head, examples, images, device) -> list[float]:
        tensor, rows = images
        opts = self.options
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
        optimizer = torch.optim.AdamW([
            {"params": decay, "lr": opts["lr"], "weight_decay": opts["weight_decay"]},
            {"params": no_decay, "lr": opts["lr"], "weight_decay": 0.0},
            {"params": list(head.parameters()), "lr": opts["head_lr"], "weight_decay": opts["weight_decay"]},
        ])
        gen = torch.Generator().manual_seed(ctx.seed)
        labels = torch.tensor([e.label for e in examples])
        bs = min(opts["batch_size"], len(examples))
        model.train()
        head.train()
        losses, order, pos = [], torch.randperm(len(examples), generator=gen), 0
        for step in range(opts["steps"]):
            if pos + bs > len(order):
                order, pos = torch.randperm(len(examples), generator=gen), 0
            idx = order[pos:pos + bs]
            pos += bs
            batch = [examples[i] for i in idx.tolist()]
            logits = self._logits(ctx, model, head, batch, tensor, rows[idx], device)
            loss = F.cross_entropy(logits, labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(model.parameters()) + list(head.parameters()), 5.0)
            optimizer.step()
            losses.append(float(loss.item()))
            ctx.progress(step=step + 1, total=opts["steps"], loss=losses[-1])
        return losses

    @torch.no_grad()
    def _predict(self, ctx, model, head, examples, images, device) -> torch.Tensor:
        tensor, rows = images
        model.eval()
        head.eval()
        out = []
        bs = self.options["eval_batch_size"]
        for i in range(0, len(examples), bs):
            logits = self._logits(ctx, model, head, examples[i:i + bs], tensor, rows[i:i + bs], device)
            out.append(logits.argmax(-1).cpu())
        return torch.cat(out)

"""RefCOCO+-style weakly supervised grounding, the ALBEF/SIMLA protocol.

* Fine-tuning: a copy of the model trained with ITC + ITM on
  (expression, image) pairs of the train split, all expressions of an image
  positives; boxes are never seen (:mod:`simla_bench.tasks.itc_itm`).
* Prediction: batched Grad-CAM of the ITM positive logit on one fusion
  layer's cross-attention (:mod:`simla_bench.tasks.gradcam`), upsampled to the
  image's pixel size; every proposal scored by ``sum(heat) / sqrt(area)`` and
  the best one chosen (:mod:`simla_bench.tasks.metrics.grounding`).
* Metrics ``<split>/acc``: share of expressions whose chosen box has IoU >= 0.5
  with the ground truth (option ``iou``: ALBEF's ``computeIoU`` rule by default,
  or ``coco`` for pycocotools), for val, testA, testB (and test_comp),
  plus ``mean/acc`` over val/testA/testB.  Primary: ``val/acc`` (the split
  ALBEF selects its checkpoint on and the first one papers report);
  ``per_example`` holds one 0/1 hit per val expression.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simla_bench.errors import ConfigError, DataError
from simla_bench.interfaces import Example, TaskContext, TaskResult
from simla_bench.tasks import finetune as ft
from simla_bench.tasks import predictions as P
from simla_bench.tasks.metrics import score_files as files
from simla_bench.training import finetune as tune
from simla_bench.heads import is_trained
from simla_bench.tasks.data import ImageBank, load_split, text_max_len, tokenize
from simla_bench.tasks.gradcam import batched_gradcam, resolve_layer, upsample
from simla_bench.tasks.itc_itm_finetune import finetune_itc_itm

REQUIRED = ("val", "testA", "testB")
#: a split's boxes in the cell's folder: ``<split>_boxes.json``, ``[{ref_id, box}]``
BOXES_FILE = "boxes.json"


class GroundingTask(ft.CheckedTask):
    """Weakly supervised grounding: Grad-CAM proposal ranking; acc@IoU0.5."""

    version = "3"  # 2: iou option, default ALBEF's computeIoU rule (was pycocotools); 3: mode (zero_shot)
    primary_metric = "val/acc"
    #: Grad-CAM of the ITM logit on the fusion's text-to-image attention (fine-tuned with ITC + ITM, or
    #: with ITM alone when the model has no ITC: :mod:`simla_bench.tasks.itc_itm`)
    needs = frozenset({"text", "fusion", "itm_head"})
    data_kind = "grounding"
    defaults = ft.load_defaults("grounding")
    choices = {"mode": ft.MODES, "iou": files.IOU_RULES}
    score_files, score_options = files.task_scoring(files.score_grounding, files.GROUNDING_OPTIONS)

    def check_options(self, name: str, o) -> None:
        if o["batch_size"] < 2:
            raise ConfigError(f"task '{name}': batch_size must be at least 2 (ITM needs in-batch negatives)")
        layer = o["gradcam_layer"]
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
            raise ConfigError(f"task '{name}': gradcam_layer must be an integer layer index or null, got {layer!r}")

    def finetune(self, model, ctx: TaskContext, device, gen) -> tune.TrainLog:
        records = ctx.data.load("grounding", "train")
        return finetune_itc_itm(model, ctx, self.options, [r.image for r in records], [r.sentence for r in records],
                                [r.image_id for r in records], device, gen, "grounding")

    def predict_boxes(self, model, records, tok, device) -> np.ndarray:
        """The chosen proposal box ``[N, 4]`` of every expression."""
        from simla_bench.tasks.metrics.grounding import select_proposals

        o = self.options
        model.eval()
        bank = ImageBank([r.image for r in records], model)
        rows = bank.index([r.image for r in records])
        max_len = text_max_len(model, o)
        grid = tuple(model.patch_grid)
        boxes = np.zeros((len(records), 4), dtype=np.float64)
        bs = o["eval_batch_size"]
        for start in range(0, len(records), bs):
            chunk = records[start:start + bs]
            ids, mask = tokenize(tok, [r.sentence for r in chunk], max_len, device)
            with torch.no_grad():
                image_embeds = model.encode_image(bank.tensor[rows[start:start + bs]].to(device))
            cams = batched_gradcam(model, image_embeds, ids, mask, o["gradcam_layer"]).float().cpu()
            sizes = [tuple(r.image_size) for r in chunk]
            heat = [None] * len(chunk)
            for size in dict.fromkeys(sizes):          # one upsampling per distinct image size
                sel = [j for j, s in enumerate(sizes) if s == size]
                maps = upsample(cams[sel], grid, size).numpy()
                for j, m in zip(sel, maps):
                    heat[j] = m
            picks = select_proposals(heat, [r.proposals for r in chunk])
            for j, (r, p) in enumerate(zip(chunk, picks)):
                boxes[start + j] = r.proposals[p] if p >= 0 else (0.0, 0.0, 0.0, 0.0)
        return boxes

    def data_splits(self) -> list[tuple[str, str, bool]]:
        """train (fine-tuning only), val/testA/testB (required) and the other ``eval_splits`` (optional)."""
        train = [("grounding", "train", True)] if self.options["mode"] == "finetune" else []
        return train + [("grounding", s, s in REQUIRED)
                        for s in dict.fromkeys([*REQUIRED, *self.options["eval_splits"]])]

    def run(self, ctx: TaskContext) -> TaskResult:
        from simla_bench.tasks.metrics.grounding import grounding_accuracy

        device, gen, model = tune.begin_task(ctx)
        tok = ctx.tokenizer or model.tokenizer
        # zero_shot: Grad-CAM on the model as given (e.g. ALBEF's refcoco.pth, already fine-tuned)
        log = self.finetune(model, ctx, device, gen) if self.options["mode"] == "finetune" else tune.TrainLog()
        metrics: dict[str, float] = {}
        per_example: dict[str, list[float]] = {}
        predictions: dict[str, bytes] = {}
        layer = resolve_layer(model, self.options["gradcam_layer"])
        extra: dict[str, Any] = {"mode": self.options["mode"], "finetune": log.summary(), "gradcam_layer": layer,
                                 "skipped_splits": [], "iou": self.options["iou"],
                                 "itm_head": "trained" if is_trained(model, "itm_head") else "untrained"}
        if extra["itm_head"] == "untrained":  # zero-shot on a row without ITM: the Grad-CAM maps are of a random head
            ctx.log(f"{self.name}: the model's ITM head was never trained (no ITM objective, fine-tuning or "
                    "checkpoint filled it): its Grad-CAM boxes are a control, not the method")
        seconds = {"finetune": round(log.seconds, 2)}
        for split_name in dict.fromkeys([*REQUIRED, *self.options["eval_splits"]]):
            t0 = time.perf_counter()
            records = load_split(ctx.data, "grounding", split_name, split_name in REQUIRED, extra["skipped_splits"])
            if records is None:
                continue
            if not records:
                raise DataError(f"grounding: split '{split_name}' is empty")
            boxes = self.predict_boxes(model, records, tok, device)
            predictions[f"{split_name}_{BOXES_FILE}"] = boxes_json(records, boxes)
            result = grounding_accuracy(boxes, [r.box for r in records], iou=self.options["iou"])
            metrics[f"{split_name}/acc"] = result["acc"]
            if split_name == "val":
                per_example[self.primary_metric] = [float(h) for h in result["hits"]]
            seconds[f"eval_{split_name}"] = round(time.perf_counter() - t0, 2)
        metrics["mean/acc"] = float(np.mean([metrics[f"{s}/acc"] for s in REQUIRED]))
        extra["seconds"] = seconds
        return TaskResult(metrics=metrics, per_example=per_example, extra=extra, predictions=predictions)

    # ------------------------------------------------------------------ saved predictions
    def score_predictions(self, predictions: Path, data, **options: Any) -> dict[str, float]:
        """Each ``<split>_boxes.json`` scored by :meth:`score_files` against the split's refs
        and instances (written from its records); ``iou``: the cell's rule unless given."""
        options.setdefault("iou", self.options["iou"])
        metrics: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="simla-grounding-") as tmp:
            for split_name, path in P.split_files(predictions, BOXES_FILE).items():
                folder = Path(tmp) / split_name
                folder.mkdir()
                refs, instances = P.write_refer_annotations(data.load("grounding", split_name), split_name, folder)
                scores = self.score_files(path, refs, instances=instances, split=(split_name,), **options).metrics
                metrics[f"{split_name}/acc"] = scores[f"{split_name}/acc"]
        if all(f"{s}/acc" in metrics for s in REQUIRED):
            metrics["mean/acc"] = float(np.mean([metrics[f"{s}/acc"] for s in REQUIRED]))
        return metrics

    def examples(self, predictions: Path, data) -> list[Example]:
        """One per val expression: its hit (IoU >= 0.5 under the cell's rule), the IoU, the
        chosen box, the ground-truth box, the expression and its image."""
        from simla_bench.tasks.metrics.grounding import grounding_accuracy
        from simla_bench.tasks.metrics.official_files import read_grounding_predictions

        records = data.load("grounding", "val")
        path = P.one_split_file(predictions, BOXES_FILE, "val")
        sids = P.sentence_ids(records)
        boxes = {(p["ref_id"], p["sent_id"]): p["box"] for p in read_grounding_predictions(path)}
        chosen = [boxes.get((r.ref_id, sid), boxes.get((r.ref_id, None))) for r, sid in zip(records, sids)]
        missing = [r.ref_id for r, box in zip(records, chosen) if box is None]
        if missing:
            raise DataError(f"{path} has no box for ref_id {missing[0]}", hint="the file was not written by this cell")
        result = grounding_accuracy(np.array(chosen), [r.box for r in records], iou=self.options["iou"])
        multi = P.has_several_sentences(records)
        return [Example(id=f"{r.ref_id}:{sid}" if multi else str(r.ref_id), value=float(hit), prediction=box,
                        truth=[float(v) for v in r.box], text=r.sentence, images=(str(r.image),),
                        measure=float(iou), measure_name=f"IoU ({self.options['iou']})")
                for r, sid, box, hit, iou in zip(records, sids, chosen, result["hits"], result["iou"])]


def boxes_json(records, boxes: np.ndarray) -> bytes:
    """``[{ref_id, box: [x, y, w, h]}]`` in image pixels, one per expression; ``sent_id``
    (the sentence's number within its ref) only when a ref has several expressions."""
    sids = P.sentence_ids(records)
    multi = P.has_several_sentences(records)
    return P.json_bytes([{"ref_id": r.ref_id, **({"sent_id": sid} if multi else {}),
                          "box": [float(v) for v in box]} for r, sid, box in zip(records, sids, boxes)])

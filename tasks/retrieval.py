"""Image-text retrieval (COCO/Flickr30K style), the ALBEF/SIMLA protocol.

* ``mode: zero_shot`` scores the pretrained model as it is; ``finetune``
  (default) first fine-tunes a copy with ITC + ITM, every caption of an image
  a positive (:mod:`simla_bench.tasks.itc_itm`).
* Evaluation: ITC similarities of all images x texts, the top-``k``
  candidates of every query (both directions) re-scored by the ITM positive
  logit, all other pairs -100 (:mod:`simla_bench.tasks.rerank`, vectorised,
  batched per image by text length, fused from per-text and per-image parts
  computed once when the model offers them), then the official ``itm_eval`` recall
  (:mod:`simla_bench.tasks.metrics.retrieval`).  A model whose ITM head no
  objective, checkpoint or fine-tuning trained (:mod:`simla_bench.heads`) is
  ranked by the ITC similarities alone, said in the log and in
  ``extra["ranking"]`` (``extra["ranking_zero_shot"]`` for ``test_zs``).
* By capability (:mod:`simla_bench.tasks.itc_itm`): a dual encoder (ITC, no
  ITM: CLIP, SigLIP) is fine-tuned with ITC alone and ranked by its
  similarities; a model without ITC (ViLT) is fine-tuned with ITM alone and
  has every image-text pair scored by its ITM head (O(images x texts) fused
  pairs: fine on the world, slow on COCO's 5k x 25k).
* Metrics ``<split>/TR@1 ... /r_mean`` for ``test`` and ``test_comp`` (and
  ``test_zs/...`` for the pretrained model in finetune mode).  Primary:
  ``test/r_mean``; ``per_example`` holds one value per test image, the
  image's TR hits and the IR hits of its captions, weighted so that
  ``r_mean == 100 * mean``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simla_bench.errors import ConfigError, DataError
from simla_bench.heads import is_trained
from simla_bench.interfaces import Example, TaskContext, TaskResult
from simla_bench.tasks import finetune as ft
from simla_bench.tasks import predictions as P
from simla_bench.tasks.metrics import score_files as files
from simla_bench.training import finetune as tune
from simla_bench.tasks.data import ImageBank, load_split, encode_images, encode_texts, text_max_len, tokenize
from simla_bench.tasks.itc_itm import ITC_CAPABILITIES, ITM_CAPABILITIES, loss_parts
from simla_bench.tasks.itc_itm_finetune import finetune_itc_itm
from simla_bench.tasks.rerank import FILL, cached_itm_scorer, rerank

METRICS = ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "tr_mean", "ir_mean", "r_mean")
RECALL_KS = (1, 5, 10)
#: ``extra["ranking"]``: how the scores were made
RANKING_ITM = "itm (itc top-k re-scored by the ITM head)"
RANKING_ITC = "itc (no trained ITM head)"
RANKING_ITM_ALL = "itm over every pair (no ITC)"


def per_image_scores(result: dict, img2txt: list[list[int]], n_txt: int) -> list[float]:
    """One score per image with ``100 * mean == r_mean``: half the image's
    mean TR hit over K in (1, 5, 10), half its captions' IR hits scaled by
    ``N_img / N_txt`` (exact for any number of captions per image)."""
    n_img = len(img2txt)
    tr = np.mean([result["i2t_hits"][k] for k in (1, 5, 10)], axis=0)      # [N_img]
    ir = np.mean([result["t2i_hits"][k] for k in (1, 5, 10)], axis=0)      # [N_txt]
    ir_sum = np.array([ir[t].sum() if len(t) else 0.0 for t in img2txt])
    return [float(v) for v in 0.5 * tr + 0.5 * ir_sum * n_img / n_txt]


@torch.inference_mode()
def retrieval_scores(model, split, tokenizer, *, k: int, image_size: int, max_len: int, batch_size: int,
                     device, itm: bool = True, itc_out: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores_i2t, scores_t2i)`` of one :class:`RetrievalSplit`; with
    ``itm=False`` the ITC similarities themselves (no ITM re-ranking).  A model
    without ITC (:func:`~simla_bench.tasks.itc_itm.loss_parts`) has every pair
    scored by ITM (the top-k of every query is then all of them).  ``itc_out``:
    a list that gets the ITC similarities [N_img, N_txt] appended (ITM re-ranking only)."""
    model.eval()
    bank = ImageBank(split.images, model)
    image_embeds = encode_images(model, bank.tensor[bank.index(split.images)], batch_size, device)
    ids, mask = tokenize(tokenizer, split.texts, max_len, device)
    if loss_parts(model)[0]:
        text_embeds = encode_texts(model, ids, mask, batch_size)
        sims = model.image_feat(image_embeds) @ model.text_feat(text_embeds, mask).t()
    else:  # no ITC to pick candidates: every pair is one
        text_embeds, sims = None, torch.zeros(len(image_embeds), len(ids))
        k = max(sims.shape)
    if not itm:
        sims = sims.float().cpu()
        return sims.numpy(), sims.t().contiguous().numpy()
    if itc_out is not None and text_embeds is not None:
        itc_out.append(sims.float().cpu().numpy())
    scorer = cached_itm_scorer(model, image_embeds, ids, mask, text_embeds, batch_size)
    del text_embeds   # the scorer keeps what fusion needs of it
    s_i2t, s_t2i = rerank(sims.float().cpu(), k, scorer, batch_size=batch_size, text_lengths=mask.sum(1))
    return s_i2t.numpy(), s_t2i.numpy()


class RetrievalTask(ft.CheckedTask):
    """Image-text retrieval: ITC top-k re-ranked by ITM; TR/IR@1/5/10."""

    version = "1"
    primary_metric = "test/r_mean"
    needs = frozenset({"text"})
    #: ranked by ITC (top-k re-scored by ITM when the model has it), or by ITM alone
    needs_one_of = (ITC_CAPABILITIES, ITM_CAPABILITIES)
    data_kind = "retrieval"
    defaults = ft.load_defaults("retrieval")
    positive = ("k", "batch_size", "eval_batch_size")
    score_files, score_options = files.task_scoring(files.score_retrieval, files.RETRIEVAL_OPTIONS)

    def check_options(self, name: str, o) -> None:
        if o["k"] < max(RECALL_KS) and not o["allow_k_below_10"]:
            raise ConfigError(f"task '{name}': k={o['k']} is below {max(RECALL_KS)}, so R@{max(RECALL_KS)} would rank "
                              "pairs that all share the score -100",
                              hint=f"use k >= {max(RECALL_KS)} (paper: 128 or 256), or allow_k_below_10: true to "
                                   "reproduce an official run with a small k_test")
        if o["batch_size"] < 2:
            raise ConfigError(f"task '{name}': batch_size must be at least 2 (ITM needs in-batch negatives)")

    # ------------------------------------------------------------------ train
    def finetune(self, model, ctx: TaskContext, device, gen: torch.Generator) -> tune.TrainLog:
        records = ctx.data.load("retrieval", "train")
        return finetune_itc_itm(model, ctx, self.options, [r.image for r in records], [r.caption for r in records],
                                [r.image_id for r in records], device, gen, "retrieval")

    # ------------------------------------------------------------------ eval
    def ranking(self, model, ctx: TaskContext, what: str) -> str:
        """:data:`RANKING_ITM` when ``model``'s ITM head was trained, else
        :data:`RANKING_ITC` (logged: its re-ranking would be noise); a dual encoder
        (no ITM) :data:`RANKING_ITC`, a model without ITC :data:`RANKING_ITM_ALL`."""
        itc, itm = loss_parts(model)
        if itc and itm and is_trained(model, "itm_head"):
            return RANKING_ITM
        if not itc:
            if not is_trained(model, "itm_head"):
                ctx.log(f"{self.name}: {what} has no ITC and an untrained ITM head: its scores are a control")
            return RANKING_ITM_ALL
        if itm:
            ctx.log(f"{self.name}: {what} has no trained ITM head (no ITM objective, fine-tuning or checkpoint "
                    "filled it): ranking by ITC similarities alone, without ITM re-ranking")
        return RANKING_ITC

    def evaluate(self, model, ctx: TaskContext, split_name: str, device,
                 skipped: list[str], itm: bool = True) -> tuple[dict, list[float], dict[str, bytes]] | None:
        """``(metrics, per-image scores, prediction files)`` of one split, or None when skipped."""
        from simla_bench.tasks.metrics.retrieval import itm_eval

        o = self.options
        split = load_split(ctx.data, "retrieval", split_name, split_name == "test", skipped)
        if split is None:
            return None
        itc: list = []
        s_i2t, s_t2i = retrieval_scores(model, split, ctx.tokenizer or model.tokenizer, k=o["k"],
                                        image_size=model.image_size, max_len=text_max_len(model, o),
                                        batch_size=o["eval_batch_size"], device=device, itm=itm, itc_out=itc)
        result = itm_eval(s_i2t, s_t2i, split.txt2img, split.img2txt)
        metrics = {f"{split_name}/{m}": float(result[m]) for m in METRICS}
        return metrics, per_image_scores(result, split.img2txt, len(split.texts)), \
            score_files_of(split_name, s_i2t, s_t2i, o["k"], itc[0] if itc else None)

    def data_splits(self) -> list[tuple[str, str, bool]]:
        """train (fine-tuning only), test (required) and the other ``eval_splits`` (optional)."""
        o = self.options
        train = [("retrieval", "train", True)] if o["mode"] == "finetune" else []
        return train + [("retrieval", s, s == "test") for s in dict.fromkeys(["test", *o["eval_splits"]])]

    def run(self, ctx: TaskContext) -> TaskResult:
        o = self.options
        device, gen, model = tune.begin_task(ctx)
        metrics: dict[str, float] = {}
        extra: dict[str, Any] = {"mode": o["mode"], "k": o["k"], "skipped_splits": []}
        timings: dict[str, float] = {}
        if o["mode"] == "finetune":
            if o["zero_shot_eval"]:
                t0 = time.perf_counter()
                extra["ranking_zero_shot"] = self.ranking(model, ctx, "the pretrained model")
                zs = self.evaluate(model, ctx, "test", device, [], itm=extra["ranking_zero_shot"] != RANKING_ITC)[0]
                metrics.update({k.replace("test/", "test_zs/", 1): v for k, v in zs.items()})
                timings["zero_shot_eval"] = time.perf_counter() - t0
            log = self.finetune(model, ctx, device, gen)
            extra["finetune"] = log.summary()  # finetune_itc_itm marked the ITM head trained
            timings["finetune"] = log.seconds
        extra["ranking"] = self.ranking(model, ctx, "the model" if o["mode"] == "zero_shot" else "the fine-tuned model")
        per_example: dict[str, list[float]] = {}
        predictions: dict[str, bytes] = {}
        for split_name in dict.fromkeys(["test", *o["eval_splits"]]):
            t0 = time.perf_counter()
            out = self.evaluate(model, ctx, split_name, device, extra["skipped_splits"],
                                itm=extra["ranking"] != RANKING_ITC)
            if out is None:
                continue
            metrics.update(out[0])
            predictions.update(out[2])
            if split_name == "test":
                per_example[self.primary_metric] = out[1]
            timings[f"eval_{split_name}"] = time.perf_counter() - t0
        extra["seconds"] = {k: round(v, 2) for k, v in timings.items()}
        return TaskResult(metrics=metrics, per_example=per_example, extra=extra, predictions=predictions)

    # ------------------------------------------------------------------ saved predictions
    def _matrices(self, predictions: Path, split_name: str) -> tuple[Path, Path]:
        i2t = P.split_files(predictions, "scores_i2t.*", [split_name])
        t2i = P.split_files(predictions, "scores_t2i.*", [split_name])
        if split_name not in i2t or split_name not in t2i:
            raise DataError(f"{predictions} lacks the {split_name} score matrices ({split_name}_scores_i2t / _t2i)",
                            hint="the cell did not evaluate that split")
        return i2t[split_name], t2i[split_name]

    def score_predictions(self, predictions: Path, data, **options: Any) -> dict[str, float]:
        """Each split's ``<split>_scores_i2t`` / ``_t2i`` matrices scored by :meth:`score_files`
        against the split's ALBEF annotation JSON (written from its records)."""
        metrics: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="simla-retrieval-") as tmp:
            for split_name in P.split_files(predictions, "scores_i2t.*"):
                i2t, t2i = self._matrices(predictions, split_name)
                ann = P.write_retrieval_annotations(data.load("retrieval", split_name), Path(tmp) / f"{split_name}.json")
                scores = self.score_files(i2t, ann, predictions_t2i=t2i, **options).metrics
                metrics.update({f"{split_name}/{m}": scores[m] for m in METRICS})
        return metrics

    def examples(self, predictions: Path, data) -> list[Example]:
        """One per test image (``i2t:<image index>``: its ``per_example`` value, the rank of its
        best true caption) and one per test caption (``t2i:<text index>``: value None, the rank
        of its image); ranks count from 1, predictions are the top 5 candidates (indices)."""
        from simla_bench.tasks.metrics.official_files import read_score_matrix
        from simla_bench.tasks.metrics.retrieval import itm_eval

        split = data.load("retrieval", "test")
        n_img, n_txt = len(split.images), len(split.texts)
        i2t_path, t2i_path = self._matrices(predictions, "test")
        s_i2t = read_score_matrix(i2t_path, (n_img, n_txt), "image-to-text score matrix")
        s_t2i = read_score_matrix(t2i_path, (n_txt, n_img), "text-to-image score matrix")
        result = itm_eval(s_i2t, s_t2i, split.txt2img, split.img2txt, exact_ranks=True)
        values = per_image_scores(result, split.img2txt, n_txt)
        top_i2t, top_t2i = (np.argsort(m, axis=1)[:, ::-1][:, :5] for m in (s_i2t, s_t2i))  # the official order
        out = [Example(id=f"i2t:{i}", value=values[i], prediction=top_i2t[i].tolist(), truth=list(texts),
                       text=split.texts[texts[0]] if texts else "", images=(str(split.images[i]),),
                       measure=float(result["i2t_ranks"][i] + 1), measure_name="rank of the first true caption",
                       lower_is_better=True, detail={"top_captions": [split.texts[j] for j in top_i2t[i]]})
               for i, texts in enumerate(split.img2txt)]
        out += [Example(id=f"t2i:{t}", value=None, prediction=top_t2i[t].tolist(), truth=[img], text=split.texts[t],
                        images=(str(split.images[img]),), measure=float(result["t2i_ranks"][t] + 1),
                        measure_name="rank of the true image", lower_is_better=True)
                for t, img in enumerate(split.txt2img)]
        return out


def score_files_of(split_name: str, s_i2t: np.ndarray, s_t2i: np.ndarray, k: int,
                   itc: np.ndarray | None) -> dict[str, bytes]:
    """A split's two score matrices as evaluation ranked them: with ITM re-ranking
    (``itc`` given) sparse ``.npz`` (the top-k candidates' ITM scores, -100 elsewhere,
    and their ITC similarities); otherwise dense ``.npy``."""
    fill = FILL if itc is not None else None
    files = {}
    for direction, matrix, sims in (("i2t", s_i2t, itc), ("t2i", s_t2i, None if itc is None else itc.T)):
        suffix, data = P.matrix_file(matrix, fill=fill, k=k, itc=sims)
        files[f"{split_name}_scores_{direction}{suffix}"] = data
    return files

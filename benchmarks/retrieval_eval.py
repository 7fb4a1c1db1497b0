"""Retrieval evaluation time against N images and the re-rank depth k, and against
a per-query reference loop.

Inputs: ``N`` distinct world images (from the default world's pretraining
images), 5 captions each (the image's own captions, then captions of other
images: only lengths matter for timing), the default model (freshly
initialised: timing does not depend on the weights), evaluation mode.

For each (N, k) cell the evaluation is timed stage by stage exactly as
``tasks/retrieval.py`` runs it: encode images and texts, ITC similarities,
then ``tasks.rerank.rerank`` (top-k both ways, de-duplicated candidate pairs,
each image's candidate texts in batches by length, scored by
``CachedITMScorer``: each text's first fusion self-attention and each image's
cross-attention keys/values computed once).  Cells whose candidate pairs
exceed ``--max-pairs`` are *extrapolated*: every non-fusion stage is still run
in full (``rerank`` with a free scorer), the fusion cost is measured on the
batches of whole randomly drawn images (as ``rerank`` forms them) and scaled
by the number of unique pairs; each row says which.  The same run also times
the previous batched path (a full ``model.fuse`` per pair, batches in key
order: ``itm_scorer``) on a sample of the same pairs.  The samples of the three paths (task, previous
batched path, reference) are timed interleaved, batch by batch, so that a load
change on a shared machine hits all three alike.

The reference is ``tasks.rerank.rerank_reference``: a loop over every query
and every candidate, one ITM fusion per pair (the straightforward port of the
official per-query loop).  Its time is the shared encodings plus the
measured per-pair cost of a batch-1 fusion times the number of candidate
pairs (both directions); a sample of its pair scores is checked against the
vectorised output, and on a small cell the full reference runs and both
score matrices are compared (the same -100 cells, scores within 1e-5).

Targets: >= 10x faster than the reference at N=1000, k=128; time ~linear in
N*k (the fitted exponent of time vs N at fixed k is reported).

    .venv/bin/python benchmarks/retrieval_eval.py
    .venv/bin/python benchmarks/retrieval_eval.py --quick
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_SPEEDUP = 10.0
TARGET_CELL = (1000, 128)
CAPTIONS_PER_IMAGE = 5


def build_inputs(records: list, n: int):
    """``n`` distinct images and 5 captions each (own captions first)."""
    by_image: dict[str, list[str]] = {}
    paths: dict[str, Path] = {}
    for r in records:
        by_image.setdefault(str(r.image_id), []).append(r.caption)
        paths.setdefault(str(r.image_id), r.image)
    ids = list(by_image)[:n]
    if len(ids) < n:
        raise SystemExit(f"retrieval_eval.py: the world has only {len(ids)} pretraining images, fewer than N={n}")
    pool = [c for i in ids for c in by_image[i]]
    texts = []
    for j, i in enumerate(ids):
        own = by_image[i][:CAPTIONS_PER_IMAGE]
        other = [pool[(7 * j + 13 * m + 1) % len(pool)] for m in range(CAPTIONS_PER_IMAGE - len(own))]
        texts += own + other
    return [paths[i] for i in ids], texts


class Encoded:
    def __init__(self, model, images, texts, tokenizer, max_len: int, batch: int):
        import torch

        from simla_bench.tasks.data import ImageBank, encode_images, encode_texts, tokenize

        self.bank = ImageBank(images, model)
        t0 = time.perf_counter()
        with torch.no_grad():
            self.image_embeds = encode_images(model, self.bank.tensor, batch, "cpu")
            t1 = time.perf_counter()
            self.ids, self.mask = tokenize(tokenizer, texts, max_len)
            self.text_embeds = encode_texts(model, self.ids, self.mask, batch)
            t2 = time.perf_counter()
            self.sims = (model.image_feat(self.image_embeds) @ model.text_feat(self.text_embeds, self.mask).t()).float()
            t3 = time.perf_counter()
        self.seconds = {"encode_images": t1 - t0, "encode_texts": t2 - t1, "itc_sims": t3 - t2}


def unique_pairs(sims, k: int):
    import torch

    from simla_bench.tasks.rerank import candidates

    n_img, n_txt = sims.shape
    ci, ct = candidates(sims, k), candidates(sims.t(), k)
    key_i2t = (torch.arange(n_img)[:, None] * n_txt + ci).reshape(-1)
    key_t2i = (ct * n_txt + torch.arange(n_txt)[:, None]).reshape(-1)
    keys = torch.unique(torch.cat([key_i2t, key_t2i]))
    return keys // n_txt, keys % n_txt, key_i2t.numel() + key_t2i.numel()


def sample_images(img_u, max_pairs: int, gen) -> list[int]:
    """Random images whose unique pairs add up to at least ``max_pairs``."""
    import torch

    counts = torch.bincount(img_u)
    picked, total = [], 0
    for i in torch.randperm(len(counts), generator=gen).tolist():
        if total >= max_pairs:
            break
        if counts[i]:
            picked.append(i)
            total += int(counts[i])
    return picked


def time_interleaved(jobs: dict[str, tuple]) -> dict[str, tuple[float, int, dict]]:
    """``jobs``: ``{kind: (scorer, img_u, txt_u, [positions, ...])}``.  Runs the
    batches of all kinds interleaved (next: the kind least far through its list),
    so a load change on a shared machine hits every kind alike; returns ``{kind:
    (seconds, pairs scored, {pair position: score})}``."""
    done = {kind: [0.0, 0, {}] for kind in jobs}
    left = {kind: list(job[3]) for kind, job in jobs.items()}
    total = {kind: max(1, len(job[3])) for kind, job in jobs.items()}
    while any(left.values()):
        kind = min((k for k in left if left[k]), key=lambda k: 1 - len(left[k]) / total[k])
        scorer, img_u, txt_u, _ = jobs[kind]
        b = left[kind].pop(0)
        t0 = time.perf_counter()
        scores = scorer(img_u[b], txt_u[b])
        done[kind][0] += time.perf_counter() - t0
        done[kind][1] += len(b)
        done[kind][2].update(zip(b.tolist(), scores.float().tolist()))
    return {kind: tuple(v) for kind, v in done.items()}


def run_cell(model, enc: Encoded, k: int, batch: int, max_pairs: int, ref_pairs: int, gen) -> dict:
    """One (N, k) cell: the task's evaluation (cached scorer, per-image batches by
    length), the previous batched path (full fusion per pair in key-order batches)
    and the per-query reference (full fusion per pair at batch 1); the samples of
    the three are timed interleaved."""
    import torch

    from simla_bench.tasks.rerank import CachedITMScorer, itm_scorer, pair_batches, rerank

    lengths = enc.mask.sum(1)
    with torch.inference_mode():
        t0 = time.perf_counter()
        scorer = CachedITMScorer(model, enc.image_embeds, enc.ids, enc.mask, enc.text_embeds, batch)
        text_cache_s = time.perf_counter() - t0
    plain = itm_scorer(model, enc.image_embeds, enc.ids, enc.mask, enc.text_embeds)
    img_u, txt_u, n_cand = unique_pairs(enc.sims, k)
    n_unique = len(img_u)
    shared = sum(enc.seconds.values())
    out: dict = {"candidate_pairs": n_cand, "unique_pairs": n_unique, "shared_s": shared,
                 "text_cache_s": text_cache_s}
    jobs: dict[str, tuple] = {}
    with torch.inference_mode():
        if n_unique <= max_pairs:
            t0 = time.perf_counter()
            s_i2t, s_t2i = rerank(enc.sims, k, scorer, batch_size=batch, text_lengths=lengths)
            out["rerank_s"] = text_cache_s + time.perf_counter() - t0
            out["measured"] = "full"
            fast = {j: _pair_score((s_i2t, s_t2i), int(img_u[j]), int(txt_u[j])) for j in range(n_unique)}
            sample = torch.arange(n_unique)
        else:
            t0 = time.perf_counter()
            rerank(enc.sims, k, lambda i, t: torch.zeros(len(i)), batch_size=batch, text_lengths=lengths)
            overhead = time.perf_counter() - t0
            # whole images, as rerank batches them (each image's keys/values computed once)
            images = set(sample_images(img_u, max_pairs, gen))
            batches = [b for b in pair_batches(img_u, txt_u, batch, lengths) if int(img_u[b[0]]) in images]
            jobs["cached"] = (scorer, img_u, txt_u, batches)
            sample = torch.cat(batches).sort().values
        # the previous path: full fusion per pair, consecutive key-order batches
        pick = sample[torch.randperm(len(sample), generator=gen)[: max(batch, (min(max_pairs, len(sample)) // batch) * batch)]]
        pick = pick.sort().values
        jobs["plain"] = (plain, img_u, txt_u, [pick[s:s + batch] for s in range(0, len(pick), batch)])
        # reference: batch-1 full fusion per (query, candidate) pair, as rerank_reference does
        ref_pick = sample[torch.randperm(len(sample), generator=gen)[:ref_pairs]]
        jobs["reference"] = (plain, img_u, txt_u, [ref_pick[j:j + 1] for j in range(len(ref_pick))])
        timed = time_interleaved(jobs)
        if "cached" in timed:
            seconds, n, fast = timed["cached"]
            out["rerank_s"] = text_cache_s + overhead + seconds / n * n_unique
            out["measured"] = f"extrapolated: {n:,} of {n_unique:,} pairs, {len(images)} images"
        seconds, n, _ = timed["plain"]
        out["plain_batched_s"] = seconds / n * n_unique
        out["speedup_vs_plain_batched"] = out["plain_batched_s"] / out["rerank_s"]
        out["eval_s"] = shared + out["rerank_s"]
        t_ref, n_ref, ref_scores = timed["reference"]
        out["ref_per_pair_ms"] = 1e3 * t_ref / n_ref
        out["reference_s"] = shared + t_ref / n_ref * n_cand
        out["speedup"] = out["reference_s"] / out["eval_s"]
        out["max_abs_diff_sampled"] = max(abs(fast[j] - v) for j, v in ref_scores.items())
    return out


def _pair_score(full, i: int, t: int) -> float:
    from simla_bench.tasks.rerank import FILL

    v = float(full[0][i, t])
    return v if v != FILL else float(full[1][t, i])


def exact_check(model, enc: Encoded, k: int, batch: int) -> dict:
    """Both full score matrices from the task's ``rerank`` (cached scorer) and
    ``rerank_reference`` (full fusion per pair) on the same inputs."""
    import torch

    from simla_bench.tasks.rerank import FILL, CachedITMScorer, itm_scorer, rerank, rerank_reference

    with torch.inference_mode():
        t0 = time.perf_counter()
        scorer = CachedITMScorer(model, enc.image_embeds, enc.ids, enc.mask, enc.text_embeds, batch)
        a = rerank(enc.sims, k, scorer, batch_size=batch, text_lengths=enc.mask.sum(1))
        t1 = time.perf_counter()
        b = rerank_reference(enc.sims, k, itm_scorer(model, enc.image_embeds, enc.ids, enc.mask, enc.text_embeds))
        t2 = time.perf_counter()
    diff = max(float((a[0] - b[0]).abs().max()), float((a[1] - b[1]).abs().max()))
    same_fill = bool(torch.equal(a[0] == FILL, b[0] == FILL) and torch.equal(a[1] == FILL, b[1] == FILL))
    same_top1 = bool(torch.equal(a[0].argmax(1), b[0].argmax(1)) and torch.equal(a[1].argmax(1), b[1].argmax(1)))
    return {"images": enc.sims.shape[0], "texts": enc.sims.shape[1], "k": k, "rerank_s": t1 - t0,
            "reference_loop_s": t2 - t1, "speedup_measured": (t2 - t1) / (t1 - t0), "max_abs_diff": diff,
            "same_fill": same_fill, "same_top1": same_top1, "equal": diff <= 1e-5 and same_fill}


def loglog_slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den else None


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(p)
    p.add_argument("--sizes", default=None, help="N images, comma-separated (default 250,500,1000,2000)")
    p.add_argument("--ks", default=None, help="re-rank depths, comma-separated (default 16,128)")
    p.add_argument("--max-pairs", type=int, default=None,
                   help="fuse every unique pair up to this many, else extrapolate from a sample (default 30000)")
    p.add_argument("--ref-pairs", type=int, default=None, help="pairs timed at batch 1 for the reference (default 200)")
    p.add_argument("--batch", type=int, default=256, help="encode/fuse batch (the task's eval_batch_size)")
    p.add_argument("--exact-images", type=int, default=16,
                   help="images of the full rerank vs rerank_reference comparison (default 16, 5 captions each)")
    p.add_argument("--world", default=None)
    p.add_argument("--world-root", default=None)
    args = p.parse_args(argv)
    C.apply_threads(args)
    import torch

    quick = args.quick
    sizes = [int(x) for x in (args.sizes or ("12,24" if quick else "250,500,1000,2000")).split(",")]
    ks = [int(x) for x in (args.ks or ("4" if quick else "16,128")).split(",")]
    max_pairs = args.max_pairs or (300 if quick else 30000)
    ref_pairs = args.ref_pairs or (4 if quick else 200)
    tmp = Path(tempfile.mkdtemp(prefix="simla-bench-retrieval-"))
    cfg = C.load_default_config(world=args.world or ("tiny" if quick else None),
                                world_root=args.world_root or (str(tmp / "world") if quick else None))
    machine = C.machine("cpu")
    source = C.prepare_world(cfg)
    torch.manual_seed(0)
    records, tokenizer, model, _ = C.build_parts(cfg, source, tmp, objectives=[])
    model.eval()
    max_len = model.max_text_len
    gen = torch.Generator().manual_seed(0)

    print("exact check vs rerank_reference ...", file=sys.stderr)
    small_n = min(sizes[0], 4 if quick else args.exact_images)
    imgs, txts = build_inputs(records, small_n)
    check = exact_check(model, Encoded(model, imgs, txts, tokenizer, max_len, args.batch), min(ks[0], 10), args.batch)

    rows = []
    for n in sizes:
        imgs, txts = build_inputs(records, n)
        enc = Encoded(model, imgs, txts, tokenizer, max_len, args.batch)
        for k in ks:
            print(f"N={n} k={k} ...", file=sys.stderr)
            r = run_cell(model, enc, k, args.batch, max_pairs, ref_pairs, gen)
            rows.append({"images": n, "texts": len(txts), "k": k, **{f"{s}_s": v for s, v in enc.seconds.items()}, **r})

    slopes = {}
    for k in ks:
        cells = [r for r in rows if r["k"] == k]
        slopes[str(k)] = loglog_slope([r["images"] for r in cells], [r["eval_s"] for r in cells])
        slopes[f"{k}_rerank"] = loglog_slope([r["images"] for r in cells], [r["rerank_s"] for r in cells])
    cell = next((r for r in rows if (r["images"], r["k"]) == TARGET_CELL), None)
    target = C.verdict(cell["speedup"] if cell else None, TARGET_SPEEDUP)
    C.print_table(f"retrieval evaluation ({CAPTIONS_PER_IMAGE} captions/image, fuse batch {args.batch})",
                  ["N images", "k", "unique pairs", "encode+sims s", "rerank s", "eval s", "reference s", "speedup",
                   "plain batched s", "vs plain", "max |diff|", "measured"],
                  [[r["images"], r["k"], r["unique_pairs"], r["shared_s"], r["rerank_s"], r["eval_s"], r["reference_s"],
                    r["speedup"], r["plain_batched_s"], r["speedup_vs_plain_batched"], r["max_abs_diff_sampled"],
                    r["measured"]] for r in rows],
                  caption=f"target >= {TARGET_SPEEDUP:.0f}x at N={TARGET_CELL[0]}, k={TARGET_CELL[1]}: "
                          + ("not in this grid" if cell is None else ("met" if target["met"] else "NOT met"))
                          + "; log-log slope of eval time vs N: "
                          + ", ".join(f"k={k}: {slopes[str(k)]:.2f}" for k in ks if slopes[str(k)] is not None))
    print(f"exact check (N={check['images']}, k={check['k']}): rerank {check['rerank_s']:.2f}s, rerank_reference "
          f"{check['reference_loop_s']:.2f}s ({check['speedup_measured']:.1f}x), max |diff| {check['max_abs_diff']:.2e}, "
          f"{'same -100 cells' if check['same_fill'] else 'DIFFERENT -100 cells'}, "
          f"{'equal' if check['equal'] else 'DIFFERENT'}")
    payload = {"machine": machine, "quick": quick, "batch": args.batch, "captions_per_image": CAPTIONS_PER_IMAGE,
               "max_pairs": max_pairs, "ref_pairs": ref_pairs, "cells": rows, "exact_check": check,
               "loglog_slope_vs_N": slopes,
               "targets": {"speedup_at_N1000_k128": target,
                           "linear_in_N": {"slopes": slopes, "note": "1.0 = linear in N at fixed k; 2.0 = quadratic"}}}
    path = C.write_result("retrieval_eval", payload, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()

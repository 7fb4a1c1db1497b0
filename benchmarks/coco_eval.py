"""COCO-size retrieval evaluation at the papers' model size: time per 1,000
pairs, peak memory, and the projected time of a full 5,000-image /
25,000-caption test split with k=256 on a GPU.

The model is ViT-B/16 (DeiT-base shape) at 384 px + BERT-base (SIMLA's single
stream, or ALBEF's split layout with ``--layout split``), built from config
with random weights (nothing is downloaded); timing does not depend on the
weights.  The split is synthetic: random images, captions of random tokens
with COCO-like lengths (``_paper.CAPTION_TOKENS``).

Stages, each the task's own code (``tasks/retrieval.py``'s ``retrieval_scores``
path):

1. **Candidates at full size, really run**: ITC similarities of all N images
   x 5N texts (random unit features in place of the encoders' output), top-k
   both ways, de-duplication, the per-image batches by length and the two -100
   score matrices (``tasks.rerank.rerank`` with a scorer that records the
   batches and returns zeros).  Gives the exact number of unique pairs.
2. **Encoders on a sample**: images (ViT) and texts (text mode, padded to the
   split's 30 tokens as ``tokenize`` pads them), plus the parts fused once per
   text (first fusion self-attention) and per image (cross-attention K/V).
3. **Pair fusion on a sample**: for each sampled image, one of its real
   batches from stage 1 (spread from its shortest to its longest texts)
   scored by ``CachedITMScorer``; ``--plain-pairs`` of them also by a full
   ``model.fuse`` per pair (the path without caches) for comparison.

Time per stage item is measured on this device; FLOPs per item are counted
(``_common.flop_counter``).  The full split is projected from them: on this
device from the measured times, on a GPU from the FLOPs and the device's
dense bf16 peak (``_device.GPU_PEAKS``; at 100% of the peak, the bound, and at
``--utilisation``, an assumption).  Memory: this process's peak RSS (and GPU
peak), and the tensors a full-split evaluation holds, computed from their
shapes: every one grows with N or with 5N, none with N x 5N x hidden.

    .venv/bin/python benchmarks/coco_eval.py                 # CPU, ~2-3 min on 2 cores
    .venv/bin/python benchmarks/coco_eval.py --device cuda   # a GPU: measured there
    .venv/bin/python benchmarks/coco_eval.py --quick         # tiny model, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _device as D  # noqa: E402
import _paper as P  # noqa: E402

FLOAT_BYTES = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(p)
    D.add_args(p)
    p.add_argument("--layout", default="single_stream", choices=["single_stream", "split"])
    p.add_argument("--images", type=int, default=None, help="images of the split (default 5000; quick 60)")
    p.add_argument("--captions-per-image", type=int, default=5)
    p.add_argument("--k", type=int, default=None, help="re-rank depth (default 256, COCO; quick 16)")
    p.add_argument("--image-size", type=int, default=384)
    p.add_argument("--sample-images", type=int, default=None, help="images encoded and fused here (default 2)")
    p.add_argument("--sample-texts", type=int, default=None, help="texts encoded here (default 32)")
    p.add_argument("--plain-pairs", type=int, default=None, help="pairs also fused without caches (default 8; 0 = skip)")
    p.add_argument("--batch", type=int, default=None, help="pairs per fusion call (default 128; quick 16)")
    args = p.parse_args(argv)
    q = args.quick
    defaults = {"images": 60 if q else 5000, "k": 16 if q else 256, "sample_images": 1 if q else 2,
                "sample_texts": 8 if q else 32, "plain_pairs": 4 if q else 8, "batch": 16 if q else 128}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("images", "captions_per_image", "k", "sample_images", "sample_texts", "batch"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')} must be at least 1")
    if not 0 < args.utilisation <= 1:
        p.error("--utilisation must be in (0, 1]")
    return args


# --------------------------------------------------------------- stage 1
def candidate_stage(n_img: int, n_txt: int, k: int, batch: int, lengths, embed_dim: int, record: set[int]) -> dict:
    """``rerank`` at full size on random ITC features: times, unique pairs, batches of ``record`` images."""
    import torch

    from simla_bench.tasks.rerank import rerank

    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    img_feat = torch.nn.functional.normalize(torch.randn(n_img, embed_dim, generator=g), dim=-1)
    txt_feat = torch.nn.functional.normalize(torch.randn(n_txt, embed_dim, generator=g), dim=-1)
    sims = img_feat @ txt_feat.t()
    sims_s = time.perf_counter() - t0
    calls = {"batches": 0, "pairs": 0, "per_image": torch.zeros(n_img, dtype=torch.long)}
    kept: dict[int, list] = {i: [] for i in record}

    def scorer(img_idx, txt_idx):
        calls["batches"] += 1
        calls["pairs"] += len(img_idx)
        image = int(img_idx[0])
        calls["per_image"][image] += len(img_idx)
        if image in kept:
            kept[image].append(txt_idx.clone())
        return torch.zeros(len(img_idx))

    t0 = time.perf_counter()
    s_i2t, s_t2i = rerank(sims, k, scorer, batch_size=batch, text_lengths=lengths)
    rerank_s = time.perf_counter() - t0
    filled = int((s_i2t != -100).sum() + (s_t2i != -100).sum())
    del sims, s_i2t, s_t2i
    return {"sims_s": sims_s, "rerank_overhead_s": rerank_s, "unique_pairs": calls["pairs"],
            "candidate_pairs": n_img * min(k, n_txt) + n_txt * min(k, n_img), "scored_cells": filled,
            "batches": calls["batches"], "pairs_per_image_mean": calls["pairs"] / n_img,
            "pairs_per_image_max": int(calls["per_image"].max()), "kept": kept,
            "peak_rss_gib": P.peak_rss_gib()}


# ------------------------------------------------------------- stages 2-3
def timed(dev, fn):
    D.sync(dev)
    t0 = time.perf_counter()
    out = fn()
    D.sync(dev)
    return out, time.perf_counter() - t0


def sample_stage(model, dev, args, lengths, kept: dict[int, list]) -> dict:
    """Encoders, cached parts and pair fusion on the sampled images and their batches."""
    import torch

    from simla_bench.tasks.rerank import CachedITMScorer, itm_scorer

    images = sorted(kept)
    width = int(lengths.max())             # tokenize pads the whole split to its longest text
    amp = lambda: D.autocast(dev, True)    # noqa: E731
    out: dict = {}
    with torch.inference_mode(), D.fused_attention(dev):
        pixels = D.to_device_images(P.images(model, len(images), seed=1), dev)
        with amp():
            model.encode_image(pixels)                            # warm-up at the timed shape
            image_embeds, secs = timed(dev, lambda: model.encode_image(pixels))
        out["encode_image_s"] = secs / len(images)
        with amp():
            out["encode_image_flops"] = P.count_flops(lambda: model.encode_image(pixels[:1]))

        n_txt = args.sample_texts
        ids, mask = P.token_ids(model, torch.full((n_txt,), width), seed=2)
        ids, mask = ids.to(dev), mask.to(dev)
        with amp():
            model.encode_text(ids, mask)                          # warm-up at the timed shape
            text_embeds, secs = timed(dev, lambda: model.encode_text(ids, mask))
            out["encode_text_s"] = secs / n_txt
            out["encode_text_flops"] = P.count_flops(lambda: model.encode_text(ids[:1], mask[:1]))
            _, secs = timed(dev, lambda: model.fusion_text_cache(ids, mask, text_embeds))
            out["text_cache_s"] = secs / n_txt
            out["text_cache_flops"] = P.count_flops(lambda: model.fusion_text_cache(ids[:1], mask[:1], text_embeds[:1]))
            _, secs = timed(dev, lambda: model.fusion_image_cache(image_embeds))
            out["image_cache_s"] = secs / len(images)
            out["image_cache_flops"] = P.count_flops(lambda: model.fusion_image_cache(image_embeds[:1]))

        # one real batch per sampled image, spread from the shortest to the longest texts
        rows = []
        for s, image in enumerate(images):
            batches = kept[image]
            rows.append((s, batches[min(len(batches) - 1, int((s + 0.5) / len(images) * len(batches)))]))
        texts = torch.cat([t for _, t in rows])
        t_lengths = lengths[texts]
        t_ids, t_mask = P.token_ids(model, t_lengths, seed=3)
        pad = width - t_ids.shape[1]                      # padded as the split is
        t_ids = torch.nn.functional.pad(t_ids, (0, pad), value=model.tokenizer.pad_token_id).to(dev)
        t_mask = torch.nn.functional.pad(t_mask, (0, pad)).to(dev)
        with amp():
            t_embeds = model.encode_text(t_ids, t_mask) if model.layout == "split" else None
            scorer = CachedITMScorer(model, image_embeds, t_ids, t_mask, t_embeds, args.batch)
            plain = itm_scorer(model, image_embeds, t_ids, t_mask, t_embeds)
            start, pair_s, pairs, flops, lens = 0, 0.0, 0, 0.0, []
            for s, batch in rows:
                local_img = torch.full((len(batch),), s)
                local_txt = torch.arange(start, start + len(batch))
                scorer(local_img[:2], local_txt[:2])                  # warm-up (and the image's K/V)
                _, secs = timed(dev, lambda: scorer(local_img, local_txt))
                pair_s += secs
                pairs += len(batch)
                tail = slice(max(0, len(batch) - 8), len(batch))      # the batch's longest texts: its padded length
                flops += P.count_flops(lambda: scorer(local_img[tail], local_txt[tail])) / (tail.stop - tail.start) * len(batch)
                lens.append(int(t_lengths[start:start + len(batch)].max()))
                start += len(batch)
            out.update({"fused_pairs": pairs, "fuse_pair_s": pair_s / pairs, "fuse_pair_flops": flops / pairs,
                        "fused_batch_lengths": lens})
            if args.plain_pairs:
                n = min(args.plain_pairs, len(rows[0][1]))
                local_img, local_txt = torch.zeros(n, dtype=torch.long), torch.arange(n)
                plain(local_img[:1], local_txt[:1])
                _, secs = timed(dev, lambda: plain(local_img, local_txt))
                out["plain_pair_s"] = secs / n
                out["plain_pair_flops"] = P.count_flops(lambda: plain(local_img[:1], local_txt[:1]))
                cached_same = scorer(local_img, local_txt)
                out["plain_vs_cached_max_abs_diff"] = float((plain(local_img, local_txt).float()
                                                             - cached_same.float()).abs().max())
    out["peak_rss_gib"] = P.peak_rss_gib()
    out["gpu_peak_gib"] = D.peak_memory_gib(dev)
    return out


# -------------------------------------------------------------- projection
def held_memory(model, n_img: int, n_txt: int, k: int, width: int, batch: int) -> dict[str, float]:
    """GiB of what a full-split evaluation holds (fp32), from the tensors' shapes."""
    dv, dt = model.vision_width, model.text_width
    tokens = 1 + model.num_patches
    ffn = int(model.text_encoder.config.intermediate_size)
    cand = n_img * min(k, n_txt) + n_txt * min(k, n_img)
    gib = 2 ** 30
    return {
        "model parameters": sum(p.numel() for p in model.parameters()) * FLOAT_BYTES / gib,
        f"image embeddings [N, {tokens}, {dv}]": n_img * tokens * dv * FLOAT_BYTES / gib,
        f"text embeddings + fusion text cache [5N, {width}, {dt}] x2": 2 * n_txt * width * dt * FLOAT_BYTES / gib,
        "ITC similarities [N, 5N]": n_img * n_txt * FLOAT_BYTES / gib,
        "score matrices i2t + t2i [N, 5N] x2": 2 * n_img * n_txt * FLOAT_BYTES / gib,
        "candidate pair keys and indices (int64, ~5 copies)": 5 * cand * 8 / gib,
        "one image's K/V + one batch's activations": (2 * len(range(*model.fusion_range)) * tokens * dt
                                                      + batch * width * (ffn + 4 * dt)) * FLOAT_BYTES / gib,
    }


def project(stage1: dict, sample: dict, n_img: int, n_txt: int, embed_dim: int) -> dict:
    """Full-split seconds (this device, from measured times) and FLOPs."""
    pairs = stage1["unique_pairs"]
    items = {"encode images + K/V": n_img, "encode texts + text cache": n_txt,
             "ITC sims + candidates + batching (run in full)": 1, "pair fusion": pairs}
    per_item = {"encode images + K/V": sample["encode_image_s"] + sample["image_cache_s"],
                "encode texts + text cache": sample["encode_text_s"] + sample["text_cache_s"],
                "ITC sims + candidates + batching (run in full)": stage1["sims_s"] + stage1["rerank_overhead_s"],
                "pair fusion": sample["fuse_pair_s"]}
    flops_per = {"encode images + K/V": sample["encode_image_flops"] + sample["image_cache_flops"],
                 "encode texts + text cache": sample["encode_text_flops"] + sample["text_cache_flops"],
                 "ITC sims + candidates + batching (run in full)": 2.0 * n_img * n_txt * embed_dim,
                 "pair fusion": sample["fuse_pair_flops"]}
    seconds = {k: items[k] * per_item[k] for k in items}
    flops = {k: items[k] * flops_per[k] for k in items}
    out = {"items": items, "seconds_per_item": per_item, "seconds": seconds, "flops": flops,
           "total_s": sum(seconds.values()), "total_flops": sum(flops.values())}
    if "plain_pair_s" in sample:
        out["plain_total_s"] = out["total_s"] - seconds["pair fusion"] + pairs * sample["plain_pair_s"]
        out["plain_total_flops"] = out["total_flops"] - flops["pair fusion"] + pairs * sample["plain_pair_flops"]
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    C.apply_threads(args)
    import torch

    dev = D.resolve(args.device, "coco_eval.py")
    machine = C.machine(str(dev))
    n_img, n_txt = args.images, args.images * args.captions_per_image
    t_start = time.perf_counter()
    print(f"building the {'tiny' if args.quick else 'paper-size'} model ({args.layout}) ...", file=sys.stderr)
    model = P.build_model(args.layout, args.image_size, args.quick, dev)
    D.channels_last(model, dev)
    n_params = sum(p.numel() for p in model.parameters())
    lengths = P.token_lengths(n_txt, P.CAPTION_TOKENS, seed=0)
    record = set(torch.randperm(n_img, generator=torch.Generator().manual_seed(0))[: args.sample_images].tolist())

    print(f"stage 1: candidates at full size ({n_img} x {n_txt}, k={args.k}) ...", file=sys.stderr)
    stage1 = candidate_stage(n_img, n_txt, args.k, args.batch, lengths, model.embed_dim, record)
    print(f"stages 2-3: encoders and pair fusion on {len(record)} images ...", file=sys.stderr)
    sample = sample_stage(model, dev, args, lengths, stage1.pop("kept"))
    proj = project(stage1, sample, n_img, n_txt, model.embed_dim)
    gpu = D.projection(proj["total_flops"], args.gpu, args.utilisation)
    memory = held_memory(model, n_img, n_txt, args.k, int(lengths.max()), args.batch)
    per_1000 = {"measured_s": 1000 * sample["fuse_pair_s"], "flops": 1000 * sample["fuse_pair_flops"]}
    if "plain_pair_s" in sample:
        per_1000["plain_measured_s"] = 1000 * sample["plain_pair_s"]
    fuse_rate = sample["fuse_pair_flops"] / sample["fuse_pair_s"]
    device_line = (D.utilisation_line(fuse_rate, D.device_name(dev), "bf16") if dev.type == "cuda"
                   else f"model {fuse_rate / 1e9:.1f} GFLOP/s in pair fusion on the CPU")

    C.print_table(f"COCO-size retrieval evaluation: {n_img:,} images x {n_txt:,} captions, k={args.k}, "
                  f"{'tiny' if args.quick else 'ViT-B/16 ' + str(args.image_size) + 'px + BERT-base'} "
                  f"({args.layout}, {n_params / 1e6:.0f}M params), {machine['device']}",
                  ["stage", "items", f"s per item ({dev.type})", f"projected s ({dev.type})", "GFLOP",
                   f"{gpu['device']} s at 100%"],
                  [[name, proj["items"][name], proj["seconds_per_item"][name], proj["seconds"][name],
                    proj["flops"][name] / 1e9,
                    None if gpu["bound_s"] is None else proj["flops"][name] / (gpu["peak_tflops"] * 1e12)]
                   for name in proj["seconds"]]
                  + [["total", None, None, proj["total_s"], proj["total_flops"] / 1e9, gpu["bound_s"]]],
                  caption=f"unique pairs {stage1['unique_pairs']:,} of {stage1['candidate_pairs']:,} candidates; "
                          f"{device_line}")
    C.print_table("per item (measured on this device)", ["item", "seconds", "GFLOP"],
                  [["image: ViT encode", sample["encode_image_s"], sample["encode_image_flops"] / 1e9],
                   ["image: cross-attention K/V (once)", sample["image_cache_s"], sample["image_cache_flops"] / 1e9],
                   ["text: encode (padded to the split's longest)", sample["encode_text_s"],
                    sample["encode_text_flops"] / 1e9],
                   ["text: first fusion self-attention (once)", sample["text_cache_s"], sample["text_cache_flops"] / 1e9],
                   ["pair: cached fusion + ITM", sample["fuse_pair_s"], sample["fuse_pair_flops"] / 1e9],
                   ["pair: full model.fuse + ITM (no caches)", sample.get("plain_pair_s"),
                    None if "plain_pair_flops" not in sample else sample["plain_pair_flops"] / 1e9],
                   ["1,000 pairs: cached", per_1000["measured_s"], per_1000["flops"] / 1e9]])
    C.print_table("memory a full-split evaluation holds (fp32, from shapes)", ["what", "GiB"],
                  [[k, v] for k, v in memory.items()] + [["total", sum(memory.values())]],
                  caption=f"this run's peak RSS {max(stage1['peak_rss_gib'], sample['peak_rss_gib']):.2f} GiB"
                          + ("" if sample["gpu_peak_gib"] is None else f", GPU peak {sample['gpu_peak_gib']:.2f} GiB")
                          + f"; an N x 5N x hidden tensor would be "
                          f"{n_img * n_txt * model.text_width * FLOAT_BYTES / 2**30:,.0f} GiB")
    print(D.projection_line("full split", gpu))
    payload = {"machine": machine, "quick": args.quick, "layout": args.layout, "image_size": model.image_size,
               "params": n_params, "images": n_img, "texts": n_txt, "k": args.k, "batch": args.batch,
               "caption_tokens": P.CAPTION_TOKENS, "stage1": stage1, "sample": sample, "projection": proj,
               "per_1000_pairs": per_1000, "gpu_projection": gpu, "held_memory_gib": memory,
               "peak_rss_gib": max(stage1["peak_rss_gib"], sample["peak_rss_gib"]), "wall_s": time.perf_counter() - t_start,
               "gpu_measured": dev.type == "cuda"}
    path = C.write_result("coco_eval" + ("_cuda" if dev.type == "cuda" else ""), payload, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()

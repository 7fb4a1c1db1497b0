"""RefCOCO+-size weakly supervised grounding at the papers' model size: time
per expression of the Grad-CAM prediction, peak memory, and the projected
time of a 1,500-expression test split on a GPU.

Same model as ``coco_eval.py`` (ViT-B/16 at 384 px + BERT-base, random
weights, built from config).  Each expression runs the grounding task's own
path (``GroundingTask.predict_boxes``): its image through the ViT (the task
encodes the image of every expression), the batched Grad-CAM of the ITM
positive logit at ALBEF's layer (``tasks.gradcam.batched_gradcam``: fusion
with that layer's attention map kept, one backward), the upsampling of the
map to the image's pixel size and the scoring of its detector proposals
(``select_proposals``).  Inputs are synthetic: random images, expressions of
random tokens with RefCOCO+-like lengths (``_paper.EXPRESSION_TOKENS``), a
640x480 original image size and ``--proposals`` random boxes.

Measured on a sample of ``--sample`` expressions (one batch); FLOPs counted
(``_common.flop_counter``, forward and backward); the split projected on this
device from the measured time and on a GPU from the FLOPs and its dense bf16
peak (``_device.GPU_PEAKS``; 100% = the bound, ``--utilisation`` = an assumption).

    .venv/bin/python benchmarks/refcoco_gradcam.py                 # CPU, ~1-2 min on 2 cores
    .venv/bin/python benchmarks/refcoco_gradcam.py --device cuda
    .venv/bin/python benchmarks/refcoco_gradcam.py --quick
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

#: RefCOCO+ original images are COCO's (typically 640x480)
IMAGE_WH = (640, 480)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(p)
    D.add_args(p)
    p.add_argument("--layout", default="single_stream", choices=["single_stream", "split"])
    p.add_argument("--expressions", type=int, default=1500, help="expressions of the projected split (default 1500)")
    p.add_argument("--sample", type=int, default=None, help="expressions measured here, one batch (default 4; quick 2)")
    p.add_argument("--proposals", type=int, default=20, help="detector proposals per expression (default 20)")
    p.add_argument("--image-size", type=int, default=384)
    args = p.parse_args(argv)
    if args.sample is None:
        args.sample = 2 if args.quick else 4
    if args.sample < 1 or args.expressions < 1 or args.proposals < 1:
        p.error("--sample, --expressions and --proposals must be at least 1")
    if not 0 < args.utilisation <= 1:
        p.error("--utilisation must be in (0, 1]")
    return args


def random_proposals(n: int, per: int, seed: int) -> list:
    """``n`` lists of ``per`` boxes ``(x, y, w, h)`` inside the original image."""
    import torch

    g = torch.Generator().manual_seed(seed)
    w, h = IMAGE_WH
    xy = torch.rand(n, per, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = (torch.rand(n, per, 2, generator=g) * 0.5 + 0.1) * torch.tensor([w, h])
    wh = torch.minimum(wh, torch.tensor([w, h]) - xy)
    return [[tuple(map(float, (*a, *b))) for a, b in zip(xy[i], wh[i])] for i in range(n)]


def predict(model, dev, pixels, ids, mask, proposals) -> tuple[list[int], dict[str, float]]:
    """The task's prediction of one batch, timed per stage."""
    import torch

    from simla_bench.tasks.gradcam import batched_gradcam, upsample
    from simla_bench.tasks.metrics.grounding import select_proposals

    secs = {}
    D.sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad(), D.autocast(dev, True):
        image_embeds = model.encode_image(pixels)
    D.sync(dev)
    t1 = time.perf_counter()
    with D.autocast(dev, True):
        cams = batched_gradcam(model, image_embeds, ids, mask, None)
    cams = cams.float().cpu()
    t2 = time.perf_counter()
    heat = list(upsample(cams, tuple(model.patch_grid), IMAGE_WH).numpy())
    picks = select_proposals(heat, proposals)
    t3 = time.perf_counter()
    secs.update({"encode_image": t1 - t0, "gradcam": t2 - t1, "upsample_and_proposals": t3 - t2})
    return picks, secs


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    C.apply_threads(args)
    import torch

    dev = D.resolve(args.device, "refcoco_gradcam.py")
    machine = C.machine(str(dev))
    t_start = time.perf_counter()
    print(f"building the {'tiny' if args.quick else 'paper-size'} model ({args.layout}) ...", file=sys.stderr)
    model = P.build_model(args.layout, args.image_size, args.quick, dev)
    D.channels_last(model, dev)
    n_params = sum(p.numel() for p in model.parameters())
    n = args.sample
    lengths = P.token_lengths(n, P.EXPRESSION_TOKENS, seed=0)
    ids, mask = P.token_ids(model, lengths, seed=1)
    ids, mask = ids.to(dev), mask.to(dev)
    proposals = random_proposals(n, args.proposals, seed=2)
    with D.fused_attention(dev):
        pixels = D.to_device_images(P.images(model, n, seed=3), dev)
        print("warm-up ...", file=sys.stderr)
        predict(model, dev, pixels[:1], ids[:1], mask[:1], proposals[:1])
        print(f"measuring {n} expressions ...", file=sys.stderr)
        picks, secs = predict(model, dev, pixels, ids, mask, proposals)
        from simla_bench.tasks.gradcam import batched_gradcam

        with torch.no_grad(), D.autocast(dev, True):
            f_image = P.count_flops(lambda: model.encode_image(pixels[:1]))
            image_embeds = model.encode_image(pixels[:1])
        with D.autocast(dev, True):
            f_cam = P.count_flops(lambda: batched_gradcam(model, image_embeds, ids[:1], mask[:1], None))
    assert len(picks) == n and all(0 <= p < args.proposals for p in picks)
    per_expr = {k: v / n for k, v in secs.items()}
    per_expr_s = sum(per_expr.values())
    flops = f_image + f_cam
    gpu = D.projection(args.expressions * flops, args.gpu, args.utilisation)
    rate = flops / (per_expr["encode_image"] + per_expr["gradcam"])
    device_line = (D.utilisation_line(rate, D.device_name(dev), "bf16") if dev.type == "cuda"
                   else f"model {rate / 1e9:.1f} GFLOP/s on the CPU")
    peak_rss = P.peak_rss_gib()
    gpu_peak = D.peak_memory_gib(dev)
    from simla_bench.tasks.gradcam import resolve_layer

    C.print_table(f"RefCOCO+-size grounding (Grad-CAM, BERT layer {resolve_layer(model, None)}): "
                  f"{'tiny' if args.quick else 'ViT-B/16 ' + str(args.image_size) + 'px + BERT-base'} "
                  f"({args.layout}, {n_params / 1e6:.0f}M params), {machine['device']}, batch {n}",
                  ["stage", "s per expression", f"s for {args.expressions:,}", "GFLOP per expression"],
                  [["image: ViT encode", per_expr["encode_image"], args.expressions * per_expr["encode_image"], f_image / 1e9],
                   ["Grad-CAM: fusion with the layer's map + backward", per_expr["gradcam"],
                    args.expressions * per_expr["gradcam"], f_cam / 1e9],
                   ["upsample to 640x480 + score proposals", per_expr["upsample_and_proposals"],
                    args.expressions * per_expr["upsample_and_proposals"], None],
                   ["total", per_expr_s, args.expressions * per_expr_s, flops / 1e9]],
                  caption=f"{device_line}; peak RSS {peak_rss:.2f} GiB"
                          + ("" if gpu_peak is None else f", GPU peak {gpu_peak:.2f} GiB"))
    print(D.projection_line(f"{args.expressions:,} expressions", gpu))
    payload = {"machine": machine, "quick": args.quick, "layout": args.layout, "image_size": model.image_size,
               "params": n_params, "sample": n, "proposals": args.proposals, "expressions": args.expressions,
               "expression_tokens": P.EXPRESSION_TOKENS, "seconds_per_expression": per_expr,
               "seconds_per_expression_total": per_expr_s, "projected_s": args.expressions * per_expr_s,
               "flops_per_expression": {"encode_image": f_image, "gradcam": f_cam, "total": flops},
               "gpu_projection": gpu, "peak_rss_gib": peak_rss, "gpu_peak_gib": gpu_peak,
               "gpu_measured": dev.type == "cuda", "wall_s": time.perf_counter() - t_start}
    path = C.write_result("refcoco_gradcam" + ("_cuda" if dev.type == "cuda" else ""), payload, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()

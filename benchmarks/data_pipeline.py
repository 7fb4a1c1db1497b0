"""Pretraining data pipeline throughput against the pretraining step rate.

Measures, on the default experiment's world (``configs/default.yaml``):

* samples/s of the trainer's loader (``simla_bench.training.data.build_loader``:
  PNG decode, RandomResizedCrop augmentation, normalisation, tokenising
  collate) with the default ``pretrain.num_workers`` and with 1 and 2 workers;
* the per-sample cost of each stage (decode, augment, collate) in-process;
* in the same run, the SIMLA pretraining step rate (pairs/s) with the same
  step code as ``benchmarks/pretrain_step.py``.

Target: loader >= 3x the step rate with the default number of workers.  With
``num_workers: 0`` the loader runs in the training process between steps, so
the trainer's rate is ``1 / (1/step + 1/loader)``; that figure is reported too.

    .venv/bin/python benchmarks/data_pipeline.py
    .venv/bin/python benchmarks/data_pipeline.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

TARGET_RATIO = 3.0


def loader_rate(cfg, records, tokenizer, image_size: int, workers: int, batches: int) -> dict:
    """samples/s of the real loader over ``batches`` batches after the first
    (worker start-up is reported separately)."""
    from simla_bench.plugins.datasets.images import image_transform
    from simla_bench.training.data import build_loader

    loader, _ = build_loader(records, tokenizer=tokenizer, max_text_len=C.model_options(cfg)["max_text_len"],
                             global_batch=cfg.pretrain.batch_size, seed=0, num_workers=workers,
                             transform=image_transform(image_size, train=cfg.pretrain.augment))
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += len(next(it)["captions"])
    seconds = time.perf_counter() - t1
    del it
    return {"workers": workers, "samples": n, "seconds": seconds, "samples_per_s": n / seconds, "first_batch_s": first}


def stage_costs(cfg, records, tokenizer, image_size: int, n: int) -> dict:
    """Mean ms per sample of decode, augment and collate, in this process."""
    from simla_bench.plugins.datasets.images import image_transform, load_image
    from simla_bench.training.data import Collate, sample_seed, seeded_rng

    transform = image_transform(image_size, train=cfg.pretrain.augment)
    recs = records[:n]
    t0 = time.perf_counter()
    images = [load_image(r.image) for r in recs]
    t1 = time.perf_counter()
    tensors = []
    for i, img in enumerate(images):
        with seeded_rng(sample_seed(0, 0, i)):
            tensors.append(transform(img))
    t2 = time.perf_counter()
    collate = Collate(tokenizer, C.model_options(cfg)["max_text_len"])
    items = [(t, r.caption, str(r.image_id), i) for i, (t, r) in enumerate(zip(tensors, recs))]
    b = cfg.pretrain.batch_size
    for s in range(0, len(items) - b + 1, b):
        collate(items[s:s + b])
    t3 = time.perf_counter()
    collated = max(b, (len(items) // b) * b)
    return {"samples": len(recs), "decode_ms": 1e3 * (t1 - t0) / len(recs), "augment_ms": 1e3 * (t2 - t1) / len(recs),
            "collate_ms": 1e3 * (t3 - t2) / collated}


def step_rate(cfg, source, records, tokenizer, tmp: Path, steps: int, warmup: int) -> dict:
    import torch

    import pretrain_step as PS

    torch.manual_seed(0)
    _, _, model, objectives = C.build_parts(cfg, source, tmp / "step", objectives=PS.SIMLA.split(","))
    runner = PS.StepRunner(cfg, model, objectives, records, torch.device("cpu"))
    batches = PS.load_batches(cfg, records, tokenizer, model.image_size, min(4, steps + warmup), torch.device("cpu"))
    t = PS.time_steps(runner, batches, steps, warmup, lambda: None)
    return {"objectives": PS.SIMLA, "step_s": t["median_s"], "pairs_per_s": cfg.pretrain.batch_size / t["median_s"]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(p)
    p.add_argument("--batches", type=int, default=None, help="batches timed per loader (default 30, quick 2)")
    p.add_argument("--workers", default=None, help="extra worker counts to time, comma-separated (default 1,2)")
    p.add_argument("--step-steps", type=int, default=None, help="SIMLA steps timed before and after (default 6)")
    p.add_argument("--world", default=None)
    p.add_argument("--world-root", default=None)
    args = p.parse_args(argv)
    C.apply_threads(args)
    quick = args.quick
    tmp = Path(tempfile.mkdtemp(prefix="simla-bench-data-"))
    overrides = {"pretrain.batch_size": 4} if quick else {}
    cfg = C.load_default_config(world=args.world or ("tiny" if quick else None),
                                world_root=args.world_root or (str(tmp / "world") if quick else None),
                                overrides=overrides)
    machine = C.machine("cpu")
    source = C.prepare_world(cfg)
    records, tokenizer, model, _ = C.build_parts(cfg, source, tmp, objectives=[])
    image_size = model.image_size
    del model
    batches = args.batches or (2 if quick else 30)
    default_workers = cfg.pretrain.num_workers
    extra = [int(w) for w in (args.workers or ("" if quick else "1,2")).split(",") if w.strip()]
    counts = list(dict.fromkeys([default_workers, *extra]))

    print("stage costs ...", file=sys.stderr)
    stages = stage_costs(cfg, records, tokenizer, image_size, 8 if quick else 256)
    print("SIMLA step rate ...", file=sys.stderr)
    n_steps = args.step_steps or (1 if quick else 6)
    step = step_rate(cfg, source, records, tokenizer, tmp, n_steps, 0 if quick else 1)
    loaders = []
    for w in counts:
        print(f"loader with {w} workers ...", file=sys.stderr)
        loaders.append(loader_rate(cfg, records, tokenizer, image_size, w, batches))
    # the step again, after the loaders: the machine is shared, take the mean (quick: once is enough)
    step2 = step if quick else step_rate(cfg, source, records, tokenizer, tmp, n_steps, 1)
    step_pps = statistics.mean([step["pairs_per_s"], step2["pairs_per_s"]])
    for r in loaders:
        r["ratio_to_step"] = r["samples_per_s"] / step_pps
    default = next(r for r in loaders if r["workers"] == default_workers)
    serial = 1.0 / (1.0 / step_pps + 1.0 / default["samples_per_s"]) if default_workers == 0 else None
    target = C.verdict(default["ratio_to_step"], TARGET_RATIO)

    C.print_table(f"world loader, batch {cfg.pretrain.batch_size}, {image_size}px "
                  f"(default num_workers={default_workers})",
                  ["loader", "samples/s", "x SIMLA step rate", "first batch s"],
                  [[f"{r['workers']} workers" + (" (default)" if r["workers"] == default_workers else ""),
                    r["samples_per_s"], r["ratio_to_step"], r["first_batch_s"]] for r in loaders],
                  caption=f"SIMLA step: {step_pps:.1f} pairs/s (mean of before/after); target loader >= "
                          f"{TARGET_RATIO:.0f}x step with default workers: {'met' if target['met'] else 'NOT met'}")
    C.print_table("per-sample stage cost (in-process)", ["stage", "ms/sample"],
                  [["decode (PNG -> RGB)", stages["decode_ms"]], ["augment (crop, resize, normalise)", stages["augment_ms"]],
                   ["collate (stack + tokenise)", stages["collate_ms"]]])
    if serial is not None:
        print(f"num_workers=0: the trainer alternates loading and stepping: "
              f"{serial:.1f} pairs/s expected ({100 * (1 - serial / step_pps):.0f}% below the pure step)")
    payload = {"machine": machine, "quick": quick, "batch_size": cfg.pretrain.batch_size, "image_size": image_size,
               "world": cfg.datasets["world"].options.get("preset"), "default_workers": default_workers,
               "step": {"before": step, "after": step2, "pairs_per_s": step_pps}, "loaders": loaders,
               "stages": stages, "serial_trainer_pairs_per_s": serial,
               "targets": {"loader_vs_step_default_workers": target}}
    path = C.write_result("data_pipeline", payload, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()

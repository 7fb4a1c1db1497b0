"""Pretraining step throughput against the machine's dense-matmul rate.

For each objective set (itc; itc,itm; itc,itm,mlm; itc,itm,xmm; itc,itm,psl;
itc,itm,xmm,psl = SIMLA, the default) this builds the default experiment's
model (``configs/default.yaml``: world preset, tiny ViT/BERT, batch 32) and
times one full optimizer step exactly as ``simla_bench.training.loop`` does it
(StepContext, every objective's loss, backward, clip, fused AdamW, momentum
EMA) on pre-loaded batches of the real world loader, so data loading is not in
the step time (``benchmarks/data_pipeline.py`` measures it).  Model FLOPs per
step (forward + backward) are counted with ``torch.utils.flop_counter``.

In the same run it measures ``torch.matmul`` at the model's typical shapes and
at a large square shape (before and after the step timings, median taken), and
reports utilisation = model FLOP/s / matmul FLOP/s.  The trainer itself
(``simla_bench.training.pretrain``, with its real loader and checkpointing)
is timed for the SIMLA set as a cross-check.  ``--profile`` adds a
torch.profiler operator table of the SIMLA step.

``--device cuda --reference`` runs the step at the papers' size (ViT-B/16 at
256px, BERT-base, batch 64) on synthetic batches; it needs a GPU and is never
part of CI.  On a GPU the step runs under bf16 autocast (``--reference``),
with the fused SDPA kernels first (flash, cuDNN, memory-efficient), the image
encoder and its inputs in channels-last, batches copied from pinned host
memory, and the model's FLOP/s is printed against the device's dense peak
(``_device.GPU_PEAKS``; a device not in the table is named as such).

Target: the SIMLA set at >= 50% of the large-square matmul rate (CPU).

    .venv/bin/python benchmarks/pretrain_step.py            # full (~2-4 min on 2 cores)
    .venv/bin/python benchmarks/pretrain_step.py --quick    # smoke: tiny world, seconds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _device as D  # noqa: E402

OBJECTIVE_SETS = ["itc", "itc,itm", "itc,itm,mlm", "itc,itm,xmm", "itc,itm,psl", "itc,itm,xmm,psl"]
SIMLA = "itc,itm,xmm,psl"
TARGET_UTILISATION = 0.50


# ------------------------------------------------------------------- the step
class StepRunner:
    """One objective set's model, objectives and optimizer; ``step(batch)`` is
    one optimizer step of the trainer's loop (grad_accum 1, fp32 or autocast)."""

    def __init__(self, cfg: Any, model: Any, objectives: dict, records: list, device: Any,
                 autocast_dtype: Any = None):
        import torch

        from simla_bench.training.optim import build_optimizer

        self.cfg, self.model, self.device = cfg, model, device
        torch.manual_seed(0)
        model.to(device)
        D.channels_last(model, device)
        caps = frozenset(getattr(model, "capabilities", frozenset()))
        self.momentum = model.momentum_model() if "momentum" in caps else None
        for obj, _ in objectives.values():
            obj.setup(model, records)
        self.objectives = objectives
        exclude = {id(p) for p in self.momentum.parameters()} if self.momentum is not None else set()
        self.optimizer = build_optimizer(model, cfg.pretrain.lr, cfg.pretrain.weight_decay, device, exclude)
        self.trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.autocast_dtype = autocast_dtype
        self.alpha = float(cfg.pretrain.alpha)  # the post-warm-up value: distillation paths run
        self.steps = 0
        model.train()

    def forward_backward(self, batch: dict) -> float:
        import contextlib

        import torch

        from simla_bench.training.step_context import StepContext

        ctx = StepContext(batch=batch, model=self.model, momentum=self.momentum, alpha=self.alpha, step=self.steps)
        amp = (torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
               if self.autocast_dtype is not None else contextlib.nullcontext())
        with amp, D.fused_attention(self.device):
            losses = [(w, obj.loss(ctx)) for obj, w in self.objectives.values()]
            total = sum(w * loss.float() for w, loss in losses)
        total.backward()
        return float(total.detach())

    def step(self, batch: dict) -> float:
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward_backward(batch)
        torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.pretrain.grad_clip, foreach=True)
        self.optimizer.step()
        if self.momentum is not None:
            self.model.update_momentum()
        self.steps += 1
        return loss


def count_flops(runner: StepRunner, batches: list[dict]) -> float:
    """Mean forward+backward FLOPs of one step over ``batches`` (torch's FLOP counter:
    matmuls, convolutions, attention, the CPU's fused attention included)."""
    totals = []
    for batch in batches:
        runner.optimizer.zero_grad(set_to_none=True)
        with C.flop_counter() as counter:
            runner.forward_backward(batch)
        totals.append(counter.get_total_flops())
    runner.optimizer.zero_grad(set_to_none=True)
    return sum(totals) / len(totals)


def time_steps(runner: StepRunner, batches: list[dict], steps: int, warmup: int, sync) -> dict[str, float]:
    import statistics

    for i in range(warmup):
        runner.step(batches[i % len(batches)])
    sync()
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        runner.step(batches[i % len(batches)])
        sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "mean_s": sum(times) / len(times), "min_s": min(times),
            "steps": steps}


def load_batches(cfg: Any, records: list, tokenizer: Any, image_size: int, n: int, device: Any) -> list[dict]:
    from simla_bench.plugins.datasets.images import image_transform
    from simla_bench.training.data import build_loader, move_batch

    loader, _ = build_loader(records, tokenizer=tokenizer, max_text_len=C.model_options(cfg)["max_text_len"],
                             transform=image_transform(image_size, train=cfg.pretrain.augment),
                             global_batch=cfg.pretrain.batch_size, seed=0, num_workers=0,
                             pin_memory=device.type == "cuda")
    it = iter(loader)
    out = [move_batch(next(it), device) for _ in range(n)]
    for batch in out:
        batch["images"] = D.to_device_images(batch["images"], device)
    return out


def synthetic_batches(cfg: Any, tokenizer: Any, image_size: int, n: int, device: Any, text_len: int = 30) -> list:
    """Random images and token ids at the reference size (compute-only benchmark)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    b = cfg.pretrain.batch_size
    out = []
    for i in range(n):
        ids = torch.randint(1000, len(tokenizer), (b, text_len), generator=gen)
        ids[:, 0] = tokenizer.cls_token_id
        ids[:, -1] = tokenizer.sep_token_id
        out.append({"images": D.to_device_images(torch.randn(b, 3, image_size, image_size, generator=gen), device),
                    "input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
                    "captions": [f"c{i}-{j}" for j in range(b)], "image_ids": [f"{i}-{j}" for j in range(b)],
                    "indices": torch.arange(b).to(device)})
    return out


# ---------------------------------------------------------------- matmul rate
def model_shapes(model: Any, batch: int, text_len: int) -> list[tuple[int, int, int]]:
    """The dominant ``[m,k]@[k,n]`` products of this model's layers at this batch."""
    vit = model.visual_encoder
    n_img = batch * (1 + vit.num_patches)
    n_txt = batch * text_len
    dv, dt = model.vision_width, model.text_width
    mlp_v = int(vit.vit.blocks[0].mlp.fc1.out_features)
    shapes = [(n_img, dv, 3 * dv), (n_img, dv, mlp_v), (n_img, mlp_v, dv), (n_txt, dt, 4 * dt), (n_txt, 4 * dt, dt),
              (n_txt, dt, dt)]
    return shapes


def matmul_probe(shapes: list[tuple[int, int, int]], square: int, device: str, dtype: Any, quick: bool) -> dict:
    rs = [C.matmul_rate(m, k, n, device=device, dtype=dtype, repeats=1 if quick else 5,
                        min_seconds=0.0 if quick else 0.2) for (m, k, n) in shapes]
    sq = C.matmul_rate(square, square, square, device=device, dtype=dtype, repeats=1 if quick else 5,
                       min_seconds=0.0 if quick else 0.3)
    total_flops = sum(r["flops"] for r in rs)
    total_time = sum(r["seconds"] for r in rs)
    return {"shapes": rs, "typical_gflops_per_s": total_flops / total_time / 1e9, "square": sq}


# ------------------------------------------------------------------- trainer
def trainer_rate(cfg: Any, objectives: dict, model: Any, records: list, steps: int, workdir: Path) -> dict:
    """pairs/s of ``simla_bench.training.pretrain`` itself (real loader, default workers)."""
    import statistics

    from simla_bench.training import pretrain

    per_step: list[float] = []
    pcfg = cfg.pretrain.model_copy(update={"steps": steps, "checkpoint_every": 10_000})
    run_cfg = cfg.model_copy(update={"pretrain": pcfg})
    t0 = time.perf_counter()
    result = pretrain(run_cfg, objectives, model, records, workdir, seed=0,
                      progress=lambda **kw: per_step.append(kw["pairs_per_s"]))
    wall = time.perf_counter() - t0
    steady = per_step[2:] or per_step
    return {"steps": result.steps, "seconds": result.seconds, "wall_s": wall,
            "pairs_per_s_median_step": statistics.median(steady),
            "pairs_per_s_overall": steps * cfg.pretrain.batch_size / result.seconds,
            "num_workers": cfg.pretrain.num_workers}


# ------------------------------------------------------------------- profile
def profile_step(runner: StepRunner, batches: list[dict], steps: int, top: int = 25) -> dict:
    from torch.profiler import ProfilerActivity, profile

    for b in batches[:2]:
        runner.step(b)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        for i in range(steps):
            runner.step(batches[i % len(batches)])
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    ops = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
            "self_share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps} for e in rows]
    groups: dict[str, float] = {}
    for e in events:
        groups[_op_group(e.key)] = groups.get(_op_group(e.key), 0.0) + e.self_cpu_time_total
    return {"steps": steps, "self_ms_per_step": total / 1e3 / steps, "top_ops": ops,
            "groups": {k: v / total for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}}


def _op_group(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("mm", "matmul", "linear", "addmm", "bmm", "baddbmm")):
        return "matmul (mm/addmm/bmm)"
    if "attention" in n or "sdpa" in n or "softmax" in n:
        return "attention/softmax"
    if "adam" in n or "foreach" in n or "optimizer" in n:
        return "optimizer/EMA (foreach)"
    if "norm" in n:
        return "layer norm"
    if "gelu" in n:
        return "gelu"
    if any(k in n for k in ("copy", "cat", "index", "clone", "contiguous", "to", "empty", "fill", "zero", "stack",
                            "masked", "gather", "scatter", "where")):
        return "copies/indexing"
    return "other elementwise/overhead"


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(p)
    p.add_argument("--sets", default=None, help="objective sets, ';'-separated (default: all six; quick: itc and SIMLA)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per set (default 12, quick 2)")
    p.add_argument("--square", type=int, default=None, help="large square matmul size (default 2048)")
    p.add_argument("--world", default=None, help="world preset (default: the config's; quick: tiny)")
    p.add_argument("--world-root", default=None, help="where the world lives (default: the config's data/world)")
    p.add_argument("--trainer-steps", type=int, default=None, help="steps of the real trainer (0 = skip)")
    p.add_argument("--profile", action="store_true", help="add a torch.profiler table of the SIMLA step")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--reference", action="store_true",
                   help="papers' size (ViT-B/16 256px, BERT-base, batch 64, bf16): GPU only, synthetic batches")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    C.apply_threads(args)
    import torch

    quick = args.quick
    if args.reference and not args.device.startswith("cuda"):
        raise SystemExit("pretrain_step.py: --reference needs --device cuda (ViT-B/16 + BERT-base does not fit "
                         "a useful CPU benchmark); not measured on this machine")
    device = D.resolve(args.device, "pretrain_step.py")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sets = [s.strip() for s in (args.sets or (f"itc;{SIMLA}" if quick else ";".join(OBJECTIVE_SETS))).split(";")
            if s.strip()]
    steps = args.steps or (1 if quick else 8)
    warmup = 0 if quick else 2
    square = args.square or (128 if quick else 2048)
    trainer_steps = args.trainer_steps if args.trainer_steps is not None else (1 if quick else 10)
    tmp = Path(tempfile.mkdtemp(prefix="simla-bench-step-"))
    world_root = args.world_root or (str(tmp / "world") if quick else None)
    world = args.world or ("tiny" if quick else None)
    overrides: dict = {}
    if quick:
        overrides["pretrain.batch_size"] = 4
    if args.reference:
        overrides["pretrain.batch_size"] = 64
        overrides["pretrain.precision"] = "bf16"
    cfg = C.load_default_config(world=world, world_root=world_root, overrides=overrides)
    if args.reference:
        data = cfg.model_dump()
        opts = data["model"]["options"]
        opts["image"] = {"name": "vit_base_patch16_256", "options": {}}
        opts["text"] = {"name": "bert_base", "options": {}}
        opts["embed_dim"] = 256
        opts["max_text_len"] = 30
        opts["vocab_size"] = 30522
        from simla_bench.config import parse_config

        cfg = parse_config(data, "reference size")
    machine = C.machine(str(device))
    print(f"preparing world ({cfg.datasets['world'].options.get('preset')}) ...", file=sys.stderr)
    source = C.prepare_world(cfg)
    dtype = torch.bfloat16 if args.reference else torch.float32

    # matmul before
    records, tokenizer, model0, _ = C.build_parts(cfg, source, tmp, objectives=[])
    if args.reference:
        batches = synthetic_batches(cfg, tokenizer, model0.image_size, 4, device)
    else:
        batches = load_batches(cfg, records, tokenizer, model0.image_size, 1 if quick else 6, device)
    text_len = int(sum(b["input_ids"].shape[1] for b in batches) / len(batches))
    shapes = model_shapes(model0, cfg.pretrain.batch_size, text_len)
    n_params = sum(p.numel() for p in model0.parameters())
    del model0
    print("matmul probe ...", file=sys.stderr)
    mm_before = matmul_probe(shapes, square, args.device, dtype, quick)

    rows_out = []
    for spec in sets:
        names = spec.split(",")
        torch.manual_seed(0)
        _, _, model, objectives = C.build_parts(cfg, source, tmp / spec.replace(",", "_"), objectives=names)
        runner = StepRunner(cfg, model, objectives, records, device,
                            autocast_dtype=torch.bfloat16 if args.reference else None)
        print(f"set {spec}: counting FLOPs, timing {steps} steps ...", file=sys.stderr)
        flops = count_flops(runner, batches[: (1 if quick else 2)])
        t = time_steps(runner, batches, steps, warmup, sync)
        rows_out.append({"objectives": spec, "step_s": t["median_s"], "step_mean_s": t["mean_s"],
                         "pairs_per_s": cfg.pretrain.batch_size / t["median_s"], "flops_per_step": flops,
                         "model_gflops_per_s": flops / t["median_s"] / 1e9})
        if spec == SIMLA and args.profile:
            print("profiling the SIMLA step ...", file=sys.stderr)
            rows_out[-1]["profile"] = profile_step(runner, batches, 1 if quick else 6)
        del runner, model, objectives

    print("matmul probe (again) ...", file=sys.stderr)
    mm_after = matmul_probe(shapes, square, args.device, dtype, quick)
    sq_rate = (mm_before["square"]["gflops_per_s"] + mm_after["square"]["gflops_per_s"]) / 2
    typ_rate = (mm_before["typical_gflops_per_s"] + mm_after["typical_gflops_per_s"]) / 2
    for r in rows_out:
        r["util_vs_square"] = r["model_gflops_per_s"] / sq_rate
        r["util_vs_typical"] = r["model_gflops_per_s"] / typ_rate

    trainer = None
    if trainer_steps > 0 and not args.reference and SIMLA in sets:
        print(f"timing the real trainer for {trainer_steps} steps (SIMLA set) ...", file=sys.stderr)
        torch.manual_seed(0)
        _, _, model, objectives = C.build_parts(cfg, source, tmp / "trainer", objectives=SIMLA.split(","))
        trainer = trainer_rate(cfg, objectives, model, records, trainer_steps, tmp / "trainer" / "run")

    simla = next((r for r in rows_out if r["objectives"] == SIMLA), None)
    target = C.verdict(simla["util_vs_square"] if simla else None, TARGET_UTILISATION)
    C.print_table(
        f"pretraining step, {cfg.pretrain.batch_size} pairs/step, {n_params / 1e6:.2f}M params, {machine['device']} "
        f"({machine['torch_threads']} threads)",
        ["objectives", "step ms", "pairs/s", "GFLOP/step", "model GFLOP/s", "util vs square", "util vs typical"],
        [[r["objectives"], r["step_s"] * 1e3, r["pairs_per_s"], r["flops_per_step"] / 1e9, r["model_gflops_per_s"],
          f"{100 * r['util_vs_square']:.1f}%", f"{100 * r['util_vs_typical']:.1f}%"] for r in rows_out],
        caption=f"matmul: {square}^3 square {sq_rate:.1f} GFLOP/s, model shapes {typ_rate:.1f} GFLOP/s "
                f"(mean of before/after); target SIMLA >= {TARGET_UTILISATION:.0%} of square: "
                f"{'met' if target['met'] else 'NOT met'}")
    C.print_table("dense matmul (before | after the step timings)", ["shape", "GFLOP/s before", "GFLOP/s after"],
                  [[a["shape"], a["gflops_per_s"], b["gflops_per_s"]]
                   for a, b in zip(mm_before["shapes"] + [mm_before["square"]], mm_after["shapes"] + [mm_after["square"]])])
    if trainer:
        step_rate = simla["pairs_per_s"] if simla else None
        print(f"trainer (SIMLA, num_workers={trainer['num_workers']}): {trainer['pairs_per_s_median_step']:.1f} pairs/s "
              f"per step (median), {trainer['pairs_per_s_overall']:.1f} overall incl. start-up and checkpoint; "
              f"pure step {step_rate:.1f} pairs/s")
    if simla and simla.get("profile"):
        prof = simla["profile"]
        C.print_table(f"torch.profiler: SIMLA step, self CPU time ({prof['self_ms_per_step']:.0f} ms/step)",
                      ["op", "ms/step", "share", "calls/step"],
                      [[o["op"], o["self_ms_per_step"], f"{100 * o['self_share']:.1f}%", o["calls_per_step"]]
                       for o in prof["top_ops"][:15]])
        C.print_table("profile by op group", ["group", "share"],
                      [[g, f"{100 * s:.1f}%"] for g, s in prof["groups"].items()])

    peak = None
    if device.type == "cuda":
        precision = "bf16" if args.reference else "fp32"
        name = D.device_name(device)
        value, what = D.peak_tflops(name, precision)
        peak = {"device": name, "precision": precision, "peak_tflops": value, "matched": what}
        for r in rows_out:
            r["util_vs_device_peak"] = None if value is None else r["model_gflops_per_s"] / (value * 1e3)
            print(f"{r['objectives']}: {D.utilisation_line(r['model_gflops_per_s'] * 1e9, name, precision)}")
    payload = {"machine": machine, "quick": quick, "reference": args.reference, "batch_size": cfg.pretrain.batch_size,
               "device_peak": peak,
               "model": {"image": C.model_options(cfg)["image"]["name"], "text": C.model_options(cfg)["text"]["name"], "params": n_params,
                         "image_size": cfg.datasets["world"].options.get("image_size", 64),
                         "mean_text_len": text_len, "precision": "bf16" if args.reference else "fp32"},
               "world": cfg.datasets["world"].options.get("preset"),
               "matmul": {"square_size": square, "square_gflops_per_s": sq_rate, "typical_gflops_per_s": typ_rate,
                          "before": mm_before, "after": mm_after},
               "sets": rows_out, "trainer": trainer, "targets": {"simla_util_vs_square": target}}
    path = C.write_result("pretrain_step" + ("_reference" if args.reference else ""), payload, args.out)
    print(f"wrote {path}", file=sys.stderr)
    return payload


if __name__ == "__main__":
    main()

"""Render the JSON results in ``benchmarks/results/`` as the Markdown tables that
``docs/performance.md`` and the README "Performance" section show.

    .venv/bin/python benchmarks/summarise.py              # all results present
    .venv/bin/python benchmarks/summarise.py pretrain_step
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, fmt  # noqa: E402


def _table(columns: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"]
    out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _met(t: dict) -> str:
    return "n/a" if t.get("met") is None else ("**met**" if t["met"] else "**not met**")


def _machine(doc: dict) -> str:
    m = doc["machine"]
    load = m.get("load_avg_start")
    return (f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, torch {m['torch']}, "
            f"git {m.get('git')}, load average {load[0]:.1f} at start / {m.get('load_avg_end', [0])[0]:.1f} at end"
            if load else f"{m['cpu']}, {m['cores']} cores")


def pretrain_step(doc: dict) -> str:
    mm = doc["matmul"]
    rows = [[r["objectives"], r["step_s"] * 1e3, r["pairs_per_s"], r["flops_per_step"] / 1e9, r["model_gflops_per_s"],
             f"{100 * r['util_vs_square']:.1f}%", f"{100 * r['util_vs_typical']:.1f}%"] for r in doc["sets"]]
    text = _table(["objectives", "step ms", "pairs/s", "GFLOP/step", "model GFLOP/s", "util vs square",
                   "util vs model shapes"], rows)
    text += (f"\n\nMatmul: {mm['square_size']}³ square {mm['square_gflops_per_s']:.1f} GFLOP/s; the model's own "
             f"shapes {mm['typical_gflops_per_s']:.1f} GFLOP/s (mean of a probe before and after the steps). "
             f"Batch {doc['batch_size']}, {doc['model']['params'] / 1e6:.2f}M parameters, mean text length "
             f"{doc['model']['mean_text_len']}. Target SIMLA >= 50% of square: "
             f"{_met(doc['targets']['simla_util_vs_square'])}.")
    tr = doc.get("trainer")
    if tr:
        text += (f" The real trainer (`simla_bench.training.pretrain`, loader in-process, num_workers="
                 f"{tr['num_workers']}): {tr['pairs_per_s_median_step']:.1f} pairs/s per step (median).")
    prof = next((r.get("profile") for r in doc["sets"] if r.get("profile")), None)
    if prof:
        text += "\n\nProfile of the SIMLA step (torch.profiler, self CPU time):\n\n"
        text += _table(["op group", "share"], [[g, f"{100 * s:.1f}%"] for g, s in prof["groups"].items()])
        text += "\n\n" + _table(["op", "ms/step", "share", "calls/step"],
                                [[o["op"], o["self_ms_per_step"], f"{100 * o['self_share']:.1f}%", o["calls_per_step"]]
                                 for o in prof["top_ops"][:10]])
    return text + f"\n\nMachine: {_machine(doc)}."


def data_pipeline(doc: dict) -> str:
    rows = [[f"{r['workers']} workers" + (" (default)" if r["workers"] == doc["default_workers"] else ""),
             r["samples_per_s"], f"{r['ratio_to_step']:.1f}x", r["first_batch_s"]] for r in doc["loaders"]]
    text = _table(["loader", "samples/s", "vs SIMLA step rate", "first batch s"], rows)
    st = doc["stages"]
    text += (f"\n\nSIMLA step: {doc['step']['pairs_per_s']:.1f} pairs/s (same run). Per sample: decode "
             f"{st['decode_ms']:.2f} ms, augment {st['augment_ms']:.2f} ms, collate {st['collate_ms']:.2f} ms. "
             f"Target loader >= 3x step with default workers: {_met(doc['targets']['loader_vs_step_default_workers'])}.")
    if doc.get("serial_trainer_pairs_per_s"):
        text += (f" With num_workers=0 the loader runs between steps: expected trainer rate "
                 f"{doc['serial_trainer_pairs_per_s']:.1f} pairs/s.")
    return text + f"\n\nMachine: {_machine(doc)}."


def retrieval_eval(doc: dict) -> str:
    rows = [[r["images"], r["k"], r["unique_pairs"], r["shared_s"], r["rerank_s"], r["eval_s"], r["reference_s"],
             f"{r['speedup']:.1f}x", r.get("plain_batched_s"),
             None if "speedup_vs_plain_batched" not in r else f"{r['speedup_vs_plain_batched']:.2f}x",
             r["max_abs_diff_sampled"], r["measured"]] for r in doc["cells"]]
    text = _table(["N images", "k", "unique pairs", "encode+sims s", "rerank s", "eval s", "reference s", "speedup",
                   "plain batched s", "vs plain", "max abs diff", "measured"], rows)
    ck = doc["exact_check"]
    slopes = ", ".join(f"k={k}: {v:.2f}" for k, v in doc["loglog_slope_vs_N"].items()
                       if v is not None and "_" not in k) or "n/a (one N)"
    text += (f"\n\nExact check (N={ck['images']}, k={ck['k']}, full `rerank_reference` loop): max abs diff "
             f"{ck['max_abs_diff']:.1e}, {'equal' if ck['equal'] else 'DIFFERENT'}, measured speed-up "
             f"{ck['speedup_measured']:.1f}x. Log-log slope of eval time vs N: {slopes} (1 = linear). "
             f"Target >= 10x at N=1000, k=128: {_met(doc['targets']['speedup_at_N1000_k128'])}.")
    return text + f"\n\nMachine: {_machine(doc)}."


def end_to_end(doc: dict) -> str:
    d = doc["default"]
    rows = [["default run, fresh", d["first"]["wall_s"], d["first"]["peak_rss_gib"]],
            ["  world generation (separate child)", doc["world"]["wall_s"], doc["world"]["peak_rss_gib"]]]
    rows += [[f"  pretraining ({r})", s, None] for r, s in d["breakdown"]["pretrain_s"].items()]
    rows += [[f"  task {t}", s, None] for t, s in d["breakdown"]["task_s"].items()]
    rows += [["  rest (start-up, tokenizer, model builds, report)", d["other_s"], None],
             ["default run, cached rerun", d["rerun"]["wall_s"], d["rerun"]["peak_rss_gib"]]]
    ab = doc["ablate"]
    if ab.get("estimated"):
        rows.append([f"run --ablate ({ab['rows']} rows): estimate, not run", ab["estimate_wall_s"], None])
    else:
        rows += [["run --ablate", ab["first"]["wall_s"], ab["first"]["peak_rss_gib"]],
                 ["run --ablate, cached rerun", ab["rerun"]["wall_s"], ab["rerun"]["peak_rss_gib"]]]
    t = doc["targets"]
    text = _table(["what", "wall s", "peak RSS GiB"], rows)
    text += (f"\n\nTargets: default <= 300 s {_met(t['default_wall_s'])}; <= 4 GiB {_met(t['default_peak_rss_gib'])}; "
             f"cached rerun < 10 s {_met(t['cached_rerun_wall_s'])}.")
    return text + f"\n\nMachine: {_machine(doc)}."


def coco_eval(doc: dict) -> str:
    proj, gpu = doc["projection"], doc["gpu_projection"]
    rows = [[name, proj["items"][name], proj["seconds_per_item"][name], proj["seconds"][name],
             proj["flops"][name] / 1e9, None if gpu["bound_s"] is None else proj["flops"][name] / (gpu["peak_tflops"] * 1e12)]
            for name in proj["seconds"]]
    rows.append(["total", None, None, proj["total_s"], proj["total_flops"] / 1e9, gpu["bound_s"]])
    text = _table(["stage", "items", "s per item", "projected s (this device)", "GFLOP", f"{gpu['device']} s at 100%"], rows)
    s, per = doc["sample"], doc["per_1000_pairs"]
    text += (f"\n\nUnique pairs {doc['stage1']['unique_pairs']:,} of {doc['stage1']['candidate_pairs']:,} candidates. "
             f"1,000 pairs: {per['measured_s']:.1f} s cached"
             + (f", {per['plain_measured_s']:.1f} s without caches" if "plain_measured_s" in per else "")
             + f" ({per['flops'] / 1e12:.2f} TFLOP). GPU projection: {gpu['peak']}; "
             + ("-" if gpu["bound_s"] is None else f"{gpu['bound_s']:.0f} s at 100%, {gpu['assumed_s']:.0f} s at an "
                                                  f"assumed {gpu['utilisation']:.0%}")
             + f". Peak RSS {doc['peak_rss_gib']:.2f} GiB; a full split holds "
             f"{sum(doc['held_memory_gib'].values()):.1f} GiB (fp32, from shapes).")
    return text + f"\n\nMachine: {_machine(doc)}."


def refcoco_gradcam(doc: dict) -> str:
    per, fl, n = doc["seconds_per_expression"], doc["flops_per_expression"], doc["expressions"]
    rows = [["image: ViT encode", per["encode_image"], n * per["encode_image"], fl["encode_image"] / 1e9],
            ["Grad-CAM forward + backward", per["gradcam"], n * per["gradcam"], fl["gradcam"] / 1e9],
            ["upsample + score proposals", per["upsample_and_proposals"], n * per["upsample_and_proposals"], None],
            ["total", doc["seconds_per_expression_total"], doc["projected_s"], fl["total"] / 1e9]]
    text = _table(["stage", "s per expression", f"s for {n:,}", "GFLOP per expression"], rows)
    gpu = doc["gpu_projection"]
    text += (f"\n\nGPU projection: {gpu['peak']}; "
             + ("-" if gpu["bound_s"] is None else f"{gpu['bound_s']:.1f} s at 100%, {gpu['assumed_s']:.1f} s at an "
                                                  f"assumed {gpu['utilisation']:.0%}")
             + f". Peak RSS {doc['peak_rss_gib']:.2f} GiB.")
    return text + f"\n\nMachine: {_machine(doc)}."


RENDER = {"pretrain_step": pretrain_step, "data_pipeline": data_pipeline, "retrieval_eval": retrieval_eval,
          "end_to_end": end_to_end, "coco_eval": coco_eval, "refcoco_gradcam": refcoco_gradcam}


def main(argv: list[str] | None = None) -> None:
    names = (argv if argv is not None else sys.argv[1:]) or list(RENDER)
    for name in names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            print(f"## {name}\n\n(no result: run `.venv/bin/python benchmarks/{name}.py`)\n")
            continue
        doc = json.loads(path.read_text())
        print(f"## {name}\n\n`{doc['command']}` ({doc['created']})\n\n{RENDER[name](doc)}\n")


if __name__ == "__main__":
    main()

"""Smoke tests of the performance benchmarks in ``benchmarks/``: each script runs
end to end in its ``--quick`` mode on the tiny world and writes a JSON result
with the fields the performance docs read.  No timing is asserted (timings
belong in the benchmark scripts, never in unit tests)."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def _load(path: Path) -> dict:
    doc = json.loads(path.read_text())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["torch"]
    assert doc["created"] and doc["command"]
    return doc


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_common_helpers(bench, tmp_path):
    c = bench("_common")
    assert c.verdict(3.0, 2.0) == {"value": 3.0, "target": 2.0, "met": True}
    assert c.verdict(3.0, 2.0, higher_is_better=False)["met"] is False
    assert c.verdict(None, 2.0)["met"] is None
    rate = c.matmul_rate(32, 16, 8, repeats=1)
    assert rate["flops"] == 2 * 32 * 16 * 8 and _positive(rate["gflops_per_s"])
    path = c.write_result("x", {"value": 1}, tmp_path / "x.json", command="cmd")
    doc = _load(path)
    assert doc["benchmark"] == "x" and doc["value"] == 1 and doc["command"] == "cmd"
    assert c.fmt(1234.5) == "1,234" and c.fmt(None) == "-" and c.fmt(0.5) == "0.5"


def test_retrieval_slope_and_inputs(bench):
    r = bench("retrieval_eval")
    assert r.loglog_slope([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
    assert r.loglog_slope([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)
    assert r.loglog_slope([1], [1]) is None


def test_pretrain_step_quick(bench, simla_tiny_world, tmp_path):
    out = tmp_path / "ps.json"
    bench("pretrain_step").main(["--quick", "--world-root", str(simla_tiny_world.root), "--out", str(out),
                                 "--sets", "itc", "--trainer-steps", "0"])
    doc = _load(out)
    (row,) = doc["sets"]
    assert row["objectives"] == "itc"
    assert _positive(row["pairs_per_s"]) and _positive(row["flops_per_step"]) and _positive(row["util_vs_square"])
    assert _positive(doc["matmul"]["square_gflops_per_s"])
    assert "simla_util_vs_square" in doc["targets"]


def test_data_pipeline_quick(bench, simla_tiny_world, tmp_path):
    out = tmp_path / "dp.json"
    bench("data_pipeline").main(["--quick", "--world-root", str(simla_tiny_world.root), "--out", str(out)])
    doc = _load(out)
    assert _positive(doc["step"]["pairs_per_s"])
    assert all(_positive(r["samples_per_s"]) and _positive(r["ratio_to_step"]) for r in doc["loaders"])
    assert doc["targets"]["loader_vs_step_default_workers"]["met"] in (True, False)


def test_retrieval_eval_quick(bench, simla_tiny_world, tmp_path):
    out = tmp_path / "re.json"
    bench("retrieval_eval").main(["--quick", "--world-root", str(simla_tiny_world.root), "--out", str(out),
                                  "--sizes", "6", "--ks", "4", "--max-pairs", "40"])   # extrapolated from whole images
    doc = _load(out)
    check = doc["exact_check"]
    assert check["equal"] is True and check["same_fill"] is True and check["max_abs_diff"] <= 1e-5
    (cell,) = doc["cells"]
    assert cell["images"] == 6 and cell["texts"] == 30 and cell["k"] == 4
    assert cell["measured"].startswith("extrapolated")
    assert _positive(cell["eval_s"]) and _positive(cell["reference_s"]) and cell["max_abs_diff_sampled"] < 1e-5
    assert _positive(cell["plain_batched_s"]) and _positive(cell["speedup_vs_plain_batched"])


def test_flop_counter_counts_cpu_attention(bench):
    import torch
    import torch.nn.functional as F

    c = bench("_common")
    q = torch.randn(2, 3, 10, 8, requires_grad=True)
    with c.flop_counter() as counter:
        F.scaled_dot_product_attention(q, q, q).sum().backward()
    forward = 2 * (2 * 3 * 10 * 10 * 8) * 2          # q @ k^T and p @ v
    assert counter.get_total_flops() > forward        # forward counted, and the backward on top
    with c.flop_counter() as counter:
        F.scaled_dot_product_attention(q.detach(), q.detach(), q.detach())
    assert counter.get_total_flops() == forward


def test_device_peak_table_and_unknown_device(bench):
    d = bench("_device")
    assert d.peak_tflops("NVIDIA H100 80GB HBM3")[0] == 989.0
    assert d.peak_tflops("NVIDIA H100 PCIe")[0] == 756.0          # the more specific name wins
    assert d.peak_tflops("NVIDIA A100-SXM4-80GB")[0] == 312.0      # not A10's
    assert d.peak_tflops("NVIDIA L40S")[0] == 362.0                # not L4's
    assert d.peak_tflops("NVIDIA A100-SXM4-80GB", "fp32")[0] == 19.5
    value, why = d.peak_tflops("Tesla V100-SXM2-16GB", "bf16")
    assert value is None and "no bf16" in why
    value, why = d.peak_tflops("Some Future GPU")
    assert value is None and "not in the peak table" in why
    assert "50.0% of H100" in d.utilisation_line(494.5e12, "NVIDIA H100 80GB HBM3")
    assert "not in the peak table" in d.utilisation_line(1e12, "Some Future GPU")
    proj = d.projection(989e12, "H100", 0.5)
    assert proj["bound_s"] == pytest.approx(1.0) and proj["assumed_s"] == pytest.approx(2.0)
    assert d.projection(1e12, "Some Future GPU", 0.5)["bound_s"] is None
    assert d.projection_line("x", d.projection(1e12, "Some Future GPU", 0.5)).startswith("no GPU projection")


@pytest.mark.parametrize("script,args", [("pretrain_step", ["--device", "cuda"]),
                                         ("pretrain_step", ["--reference"]),
                                         ("coco_eval", ["--device", "cuda"]),
                                         ("refcoco_gradcam", ["--device", "cuda"]),
                                         ("coco_eval", ["--device", "tpu"])])
def test_gpu_scripts_refuse_a_missing_device_in_one_line(bench, script, args):
    import torch

    if torch.cuda.is_available() and "--device" in args and "cuda" in args:
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as exc:
        bench(script).main(args)
    message = str(exc.value)
    assert f"{script}.py" in message and "\n" not in message


def test_coco_eval_quick(bench, tmp_path):
    out = tmp_path / "coco.json"
    bench("coco_eval").main(["--quick", "--out", str(out)])
    doc = _load(out)
    s1, sample, proj = doc["stage1"], doc["sample"], doc["projection"]
    assert doc["images"] == 60 and doc["texts"] == 300 and doc["k"] == 16
    assert s1["candidate_pairs"] == 60 * 16 + 300 * 16 and 0 < s1["unique_pairs"] <= s1["candidate_pairs"]
    assert s1["scored_cells"] == s1["candidate_pairs"]          # every candidate scored, the rest -100
    assert sample["plain_vs_cached_max_abs_diff"] < 1e-5
    assert sample["fuse_pair_flops"] < sample["plain_pair_flops"]   # the caches save FLOPs per pair
    assert _positive(proj["total_s"]) and _positive(proj["total_flops"]) and _positive(doc["gpu_projection"]["bound_s"])
    assert _positive(doc["per_1000_pairs"]["measured_s"]) and _positive(doc["peak_rss_gib"])
    assert doc["gpu_measured"] is False


def test_refcoco_gradcam_quick(bench, tmp_path):
    out = tmp_path / "rg.json"
    bench("refcoco_gradcam").main(["--quick", "--out", str(out), "--expressions", "10"])
    doc = _load(out)
    assert doc["sample"] == 2 and doc["expressions"] == 10
    assert _positive(doc["seconds_per_expression_total"]) and _positive(doc["flops_per_expression"]["gradcam"])
    assert _positive(doc["gpu_projection"]["bound_s"]) and doc["gpu_measured"] is False


@pytest.mark.slow
def test_end_to_end_quick(bench, tmp_path):
    out = tmp_path / "e2e.json"
    bench("end_to_end").main(["--quick", "--workdir", str(tmp_path / "w"), "--out", str(out)])
    doc = _load(out)
    assert doc["default"]["first"]["exit_code"] == 0 and doc["default"]["rerun"]["exit_code"] == 0
    assert doc["default"]["breakdown"]["cells"] == 1
    assert _positive(doc["default"]["first"]["peak_rss_gib"])
    assert doc["ablate"]["estimated"] is True

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
                                  "--sizes", "6", "--ks", "4"])
    doc = _load(out)
    assert doc["exact_check"]["equal"] is True
    (cell,) = doc["cells"]
    assert cell["images"] == 6 and cell["texts"] == 30 and cell["k"] == 4
    assert _positive(cell["eval_s"]) and _positive(cell["reference_s"]) and cell["max_abs_diff_sampled"] < 1e-4


@pytest.mark.slow
def test_end_to_end_quick(bench, tmp_path):
    out = tmp_path / "e2e.json"
    bench("end_to_end").main(["--quick", "--workdir", str(tmp_path / "w"), "--out", str(out)])
    doc = _load(out)
    assert doc["default"]["first"]["exit_code"] == 0 and doc["default"]["rerun"]["exit_code"] == 0
    assert doc["default"]["breakdown"]["cells"] == 1
    assert _positive(doc["default"]["first"]["peak_rss_gib"])
    assert doc["ablate"]["estimated"] is True

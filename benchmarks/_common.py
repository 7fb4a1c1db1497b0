"""Shared plumbing of the performance benchmarks in ``benchmarks/``.

Owns: the machine description every result carries (CPU model, cores, torch
threads and build, memory, load average before/after), the rich table printer,
the JSON result writer (``benchmarks/results/<name>.json`` unless ``--out``),
a robust timer (median of repeats after warm-up), the dense-matmul roofline
probe, the FLOP counter (torch's, plus the CPU attention kernel), and helpers that build the default experiment's world, tokenizer,
model and objectives through the same public APIs ``simla-bench run`` uses.

Benchmarks report ratios measured in one process on one machine; absolute
numbers on a shared machine are noisy, so every result also records the load
average at the start and the end of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": usable_cores(), "torch_threads": torch.get_num_threads(),
        "memory_gib": _mem_total_gib(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "mkl": bool(torch.backends.mkl.is_available()), "device": device, "git": _git_commit(),
        "load_avg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------------- timing
def timeit(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None,
           min_seconds: float = 0.0) -> dict[str, float]:
    """Median / min wall seconds of ``fn()`` over ``repeats`` runs after ``warmup``.

    With ``min_seconds`` each timed sample repeats ``fn`` until that long has
    passed (and reports the time per call), so very short calls are measured
    over enough wall time to be stable.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(max(1, repeats)):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                break
        samples.append(elapsed / calls)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "samples": len(samples)}


def matmul_rate(m: int, k: int, n: int, *, device: str = "cpu", dtype: Any = None, repeats: int = 5,
                min_seconds: float = 0.2, batch: int | None = None) -> dict[str, Any]:
    """Measured dense ``torch.matmul`` throughput for ``[m,k] @ [k,n]`` (FLOP/s = 2mkn / t)."""
    import torch

    dtype = dtype or torch.float32
    gen = torch.Generator(device="cpu").manual_seed(0)
    shape_a = (batch, m, k) if batch else (m, k)
    shape_b = (batch, k, n) if batch else (k, n)
    a = torch.randn(*shape_a, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(*shape_b, generator=gen).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    t = timeit(lambda: torch.matmul(a, b), repeats=repeats, warmup=2, sync=sync, min_seconds=min_seconds)
    flops = 2.0 * m * k * n * (batch or 1)
    return {"shape": f"{'%dx' % batch if batch else ''}[{m}x{k}]@[{k}x{n}]", "flops": flops,
            "seconds": t["median_s"], "gflops_per_s": flops / t["median_s"] / 1e9,
            "best_gflops_per_s": flops / t["min_s"] / 1e9}


# ----------------------------------------------------------------------- FLOPs
def flop_counter():
    """``torch.utils.flop_counter.FlopCounterMode`` that also counts the CPU's fused
    attention kernel (torch registers only the CUDA SDPA kernels: on the CPU the
    attention FLOPs went uncounted), forward and backward."""
    import torch
    from torch.utils import flop_counter as fc

    def forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query_shape, key_shape, value_shape)

    def backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)

    aten = torch.ops.aten
    extra = {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", forward),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", backward)):
        op = getattr(aten, name, None)
        if op is not None:
            extra[op] = formula
    return fc.FlopCounterMode(display=False, custom_mapping=extra)


# ---------------------------------------------------------------------- output
def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks the script end to end in seconds (numbers meaningless)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON result path (default: benchmarks/results/<name>.json)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice, as simla-bench run uses)")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, caption=caption, show_lines=False)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    Console(width=max(100, min(180, _term_width()))).print(table)


def _term_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 140


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


def write_result(name: str, payload: dict[str, Any], out: Path | None = None, command: str | None = None) -> Path:
    """Write ``payload`` (plus machine, command, timestamps) as JSON; returns the path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    mach = payload.pop("machine", None) or machine()
    if hasattr(os, "getloadavg"):
        mach["load_avg_end"] = list(os.getloadavg())
    doc = {"benchmark": name, "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": mach, **payload}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def verdict(value: float | None, target: float, higher_is_better: bool = True) -> dict[str, Any]:
    """``{"value", "target", "met"}`` for one target."""
    if value is None:
        return {"value": None, "target": target, "met": None}
    met = value >= target if higher_is_better else value <= target
    return {"value": value, "target": target, "met": bool(met)}


# ------------------------------------------------------------ experiment parts
def load_default_config(world: str | None = None, world_root: str | None = None, overrides: dict | None = None):
    """``configs/default.yaml`` with an optional world preset / root and pretrain overrides."""
    from simla_bench.config import load_config

    cfg = load_config(None)
    data = cfg.model_dump()
    wopts = data["datasets"]["world"]["options"]
    if world:
        wopts["preset"] = world
    if world_root:
        wopts["root"] = str(Path(world_root).expanduser().absolute())
    for key, value in (overrides or {}).items():
        section, field = key.split(".", 1)
        data[section][field] = value
    from simla_bench.config import parse_config

    return parse_config(data, "benchmark config")


def prepare_world(cfg) -> Any:
    """The prepared world dataset source of ``cfg`` (generated if missing)."""
    from simla_bench.registry import get_registry

    dc = cfg.datasets[cfg.pretrain.dataset]
    source = get_registry().load("dataset", dc.source)(cfg.pretrain.dataset, dc.options)
    source.prepare(lambda *a, **k: None)
    return source


def model_options(cfg) -> dict:
    """The model's options with the recipe's defaults filled in (``model.options`` as run)."""
    from simla_bench.assemble import model_recipe

    return model_recipe(cfg.model).options


def build_parts(cfg, source, workdir: Path, objectives: Sequence[str] | None = None):
    """(records, tokenizer, model, {name: (objective, weight)}) as the runner builds them."""
    from simla_bench.assemble import assemble

    records = list(source.load("pretrain", "train"))
    names = objectives if objectives is not None else cfg.objective_names()
    built = assemble(cfg.model, captions=[r.caption for r in records], tokenizer_dir=Path(workdir) / "tokenizer",
                     objectives={n: cfg.objectives.get(n) for n in names})
    return records, built.tokenizer, built.model, built.objectives


def peak_rss_gib_children() -> float:
    """Peak resident set size of waited-for child processes (GiB, Linux ru_maxrss is KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20

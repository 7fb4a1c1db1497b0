"""Run by tests/test_training_distributed.py under ``torchrun --nproc-per-node 2``
(not a test module).  Each rank checks the differentiable gather against a
single-process computation, then pretrains the toy model with the toy ITC and
writes what the test compares (rank 0: loss curve, parameters; every rank:
its gather check and the number of ITC keys it saw).

usage: training_dist_worker.py toy|real DATA_ROOT WORKDIR OUT STEPS STOP_AT
(``real``: the built-in VLPModel, without dropout, and the built-in ITC objective)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the helpers.* imports

from simla_bench.training import pretrain  # noqa: E402
from simla_bench.training.distributed import init_from_env  # noqa: E402
from helpers.training_toys import ToyITC, toy_cfg, toy_model, toy_records  # noqa: E402

DIST_PRETRAIN = dict(steps=4, batch_size=8, lr=3e-3, warmup_steps=2, checkpoint_every=2)


def gather_check(dctx) -> dict:
    """Gradient of a contrastive loss through gather == single-process gradient."""
    torch.manual_seed(0)
    n, world, rank = 3, dctx.world_size, dctx.rank
    full = torch.randn(n * world, 5)
    local = full[rank * n:(rank + 1) * n].clone().requires_grad_(True)
    keys = dctx.gather(local)
    targets = torch.arange(n) + rank * n
    F.cross_entropy(local @ keys.T, targets).backward()
    # the whole-batch loss is the mean of the ranks' losses; the trainer's
    # gradient average divides by the world size in the same way
    grad = local.grad / world

    ref = full.clone().requires_grad_(True)
    F.cross_entropy(ref @ ref.T, torch.arange(n * world)).backward()
    # sharded evaluation: blocks of 7 rows, uneven across 2 ranks, gathered back in order
    rows = torch.arange(7 * 2, dtype=torch.float32).view(7, 2)
    block = dctx.shard(7)
    uneven = dctx.gather_uneven(rows[block.start:block.stop] * 10)
    return {"grad": grad, "ref": ref.grad[rank * n:(rank + 1) * n].clone(),
            "gathered_rows": keys.shape[0], "shard": (block.start, block.stop), "uneven": uneven}


def real_setup(records, steps: int):
    """The built-in model (no dropout) and ITC, as in test_training_integration."""
    from simla_bench.registry import get_registry
    from test_training_integration import TINY_MODEL, _build

    model_cfg = {**TINY_MODEL, "text": {**TINY_MODEL["text"], "options": {"config": {
        **TINY_MODEL["text"]["options"]["config"], "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}}}
    from simla_bench.config import parse_config

    cfg = parse_config({"device": "cpu", "model": model_cfg, "objectives": ["itc"],
                        "pretrain": {**DIST_PRETRAIN, "steps": steps, "image_size": 32, "lr": 1e-3}})
    model = _build(cfg, records)
    itc = get_registry().get("objective", "itc").load()("itc")
    return cfg, model, itc


def main() -> None:
    mode, data_root, workdir, out, steps, stop_at = sys.argv[1:7]
    out = Path(out)
    dctx = init_from_env("cpu")
    check = gather_check(dctx)
    if mode == "real":
        records = toy_records(Path(data_root), size=32, write=False)
        cfg, model, itc = real_setup(records, int(steps))
    else:
        records = toy_records(Path(data_root), write=False)
        model = toy_model()
        model.online.drop.p = model.momentum.drop.p = 0.0
        itc = ToyITC()
        cfg = toy_cfg(**{**DIST_PRETRAIN, "steps": int(steps)})
    stop = int(stop_at)
    res = pretrain(cfg, {itc.name: (itc, 1.0)}, model, records, workdir, seed=0,
                   should_stop=(lambda s: s == stop) if stop > 0 else None, dist_ctx=dctx)
    torch.save({**check, "key_counts": getattr(itc, "key_counts", None), "world_size": res.world_size},
               out / f"rank{dctx.rank}.pt")
    if dctx.is_main:
        torch.save({"curve": res.loss_curve, "state": model.state_dict(), "steps": res.steps}, out / "result.pt")
    dctx.close()


if __name__ == "__main__":
    main()

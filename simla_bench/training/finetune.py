"""The fine-tuning loop every task uses: a task builds its loss closure and hands
it to :func:`train_steps`, which runs AdamW steps with the same parameter
grouping (:func:`simla_bench.training.optim.param_groups`) and the same
warmup + cosine schedule (:func:`simla_bench.training.schedule.warmup_cosine`)
as pretraining, and records the loss curve.

Also here, because every task needs them alike: :func:`begin_task` (device,
batch generator and own model copy of a task's ``run``), :func:`copy_model` (the task's
own copy of the pretrained model on its device), :func:`steps_for` (the steps
of an epoch-based schedule), :class:`ShuffledBatches` (seeded mini-batches)
and :class:`TrainLog`.  Seeding is the runner's, once per cell
(:func:`simla_bench.training.seeding.seed_everything`); a task draws its
batches from :func:`simla_bench.training.seeding.generator`.  Nothing here
knows a particular task.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from simla_bench.devices import resolve_device
from simla_bench.training.optim import FINETUNE_NO_DECAY, build_optimizer
from simla_bench.training.schedule import warmup_cosine
from simla_bench.training.seeding import generator

#: fine-tuning's warmup convention (see :func:`simla_bench.training.schedule.warmup_cosine`)
FINETUNE_WARMUP_OFFSET = 1


def copy_model(model: torch.nn.Module, device: str | torch.device | None) -> torch.nn.Module:
    """A deep copy of the pretrained ``model`` on ``device`` (a name is resolved by
    :func:`simla_bench.devices.resolve_device`).  A task never changes the model it
    was given: the other tasks of the same row share it; this is the one copy a cell makes."""
    if not isinstance(device, torch.device):
        device = resolve_device(device)
    return copy.deepcopy(model).to(device)


def begin_task(ctx: Any) -> tuple[torch.device, torch.Generator, torch.nn.Module]:
    """What a task's ``run`` starts from: ``(device, generator, model)`` -- the device
    of ``ctx.device``, a batch generator seeded with ``ctx.seed`` (the runner has
    already seeded the global RNGs for the cell) and the task's own copy of
    ``ctx.model`` on that device."""
    device = resolve_device(ctx.device)
    return device, generator(ctx.seed), copy_model(ctx.model, device)


def steps_for(n_examples: int, batch_size: int, epochs: float, max_steps: int) -> int:
    """Steps of an ``epochs``-long schedule over ``n_examples``, capped by
    ``max_steps`` (0 = no cap); at least one step when there is data."""
    if n_examples <= 0:
        return 0
    steps = max(1, math.ceil(epochs * n_examples / batch_size))
    return min(steps, max_steps) if max_steps > 0 else steps


class ShuffledBatches:
    """Mini-batches of example indices: epochs of seeded permutations, a new
    permutation appended whenever fewer than a batch remain (so no example is
    dropped at an epoch boundary)."""

    def __init__(self, n_examples: int, generator: torch.Generator):
        self.n = n_examples
        self.generator = generator
        self._order: list[int] = []

    def draw(self, batch_size: int) -> list[int]:
        if len(self._order) < batch_size:
            self._order = self._order + torch.randperm(self.n, generator=self.generator).tolist()
        pick, self._order = self._order[:batch_size], self._order[batch_size:]
        return pick


@dataclass
class TrainLog:
    """What a fine-tuning loop did (reported in the task's ``extra``)."""

    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)

    def summary(self, points: int = 10) -> dict[str, Any]:
        n = len(self.losses)
        if n == 0:
            return {"steps": 0, "seconds": round(self.seconds, 2)}
        k = max(1, n // points)
        curve = [round(sum(self.losses[i:i + k]) / len(self.losses[i:i + k]), 4) for i in range(0, n, k)]
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 2),
            "loss_first": round(self.losses[0], 4),
            "loss_last": round(self.losses[-1], 4),
            "loss_curve": curve,
        }


def train_steps(
    modules: list[torch.nn.Module],
    step_loss: Callable[[int], torch.Tensor],
    *,
    steps: int,
    lr: float,
    min_lr: float,
    warmup_steps: int,
    weight_decay: float,
    grad_clip: float,
    after_step: Callable[[int], None] | None = None,
    lr_mults: list[float] | None = None,
    progress: Callable[..., None] | None = None,
    log: Callable[[str], None] | None = None,
    label: str = "fine-tune",
) -> TrainLog:
    """Run ``steps`` AdamW steps; ``step_loss(i)`` builds the batch and
    returns the scalar loss of step ``i``.  A non-finite loss stops the run
    with an error rather than training on garbage."""
    from simla_bench.errors import PluginError

    out = TrainLog()
    if steps <= 0:
        return out
    for m in modules:
        m.train()
    mults = list(lr_mults) if lr_mults is not None else [1.0] * len(modules)
    device = next((p.device for m in modules for p in m.parameters()), torch.device("cpu"))
    optimizer = build_optimizer(modules, lr, weight_decay, device, lr_mults=mults,
                                no_decay_names=FINETUNE_NO_DECAY, fast_kernels=False)
    all_params = [p for g in optimizer.param_groups for p in g["params"]]
    start = time.perf_counter()
    for i in range(steps):
        lr_i = warmup_cosine(i, steps, lr, min_lr, warmup_steps, warmup_offset=FINETUNE_WARMUP_OFFSET)
        for group in optimizer.param_groups:
            group["lr"] = lr_i * group["lr_mult"]
        loss = step_loss(i)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise PluginError(f"{label}: loss became {value} at step {i}",
                              hint="lower the task's lr or check the model")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(all_params, grad_clip)
        optimizer.step()
        if after_step is not None:
            after_step(i)
        out.losses.append(value)
        if progress is not None:
            progress(stage=label, step=i + 1, total=steps, loss=value)
    out.steps = steps
    out.seconds = time.perf_counter() - start
    for m in modules:
        m.eval()
    if log is not None:
        log(f"{label}: {steps} steps in {out.seconds:.1f}s, loss {out.losses[0]:.3f} -> {out.losses[-1]:.3f}")
    return out

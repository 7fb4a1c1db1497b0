"""Shared fine-tuning machinery for the downstream tasks: task defaults from
YAML, seeding and model copying, AdamW with warmup + cosine schedule, and a
small step loop that records the loss curve.

Nothing here knows about a particular task; each task module builds its own
loss closure and hands it to :func:`train_steps`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
import yaml

from simla_bench.errors import ConfigError

_HERE = Path(__file__).resolve().parent


def load_defaults(name: str) -> dict[str, Any]:
    """The default options of task ``name``, read from ``tasks/<name>.yaml``."""
    path = _HERE / f"{name}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the task defaults must be a mapping of option -> value")
    return dict(data)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG and return a CPU generator for sampling
    batches, so that the same config and seed give the same numbers."""
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def resolve_device(device: str | None) -> torch.device:
    if not device or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def copy_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A deep copy of the pretrained model on ``device`` (tasks never change
    the model they were given: other tasks of the same row share it)."""
    return copy.deepcopy(model).to(device)


def check_positive(task: str, options: Mapping[str, Any], *names: str) -> None:
    for name in names:
        value = options[name]
        if value is None or value <= 0:
            raise ConfigError(f"task '{task}': option '{name}' must be > 0, got {value!r}")


def param_groups(modules: Iterable[torch.nn.Module], weight_decay: float,
                 lr_mults: Iterable[float] | None = None) -> list[dict[str, Any]]:
    """AdamW groups per module: no weight decay on biases, norms, position
    tables and scalar parameters (the temperature); each group carries its
    module's ``lr_mult`` (a new task head may learn faster than the backbone)."""
    modules = list(modules)
    mults = list(lr_mults) if lr_mults is not None else [1.0] * len(modules)
    groups, seen = [], set()
    for module, mult in zip(modules, mults):
        decay, no_decay = [], []
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if p.ndim <= 1 or name.endswith(".bias") or "norm" in name.lower() or "pos_embed" in name:
                no_decay.append(p)
            else:
                decay.append(p)
        groups.append({"params": decay, "weight_decay": weight_decay, "lr_mult": mult})
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr_mult": mult})
    return [g for g in groups if g["params"]]


def lr_at(step: int, total: int, lr: float, min_lr: float, warmup: int) -> float:
    """Linear warmup from ``min_lr`` then cosine decay to ``min_lr``."""
    if warmup > 0 and step < warmup:
        return min_lr + (lr - min_lr) * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


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
    params = param_groups(modules, weight_decay, lr_mults)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    all_params = [p for g in params for p in g["params"]]
    start = time.perf_counter()
    for i in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(i, steps, lr, min_lr, warmup_steps) * group["lr_mult"]
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

"""The pretraining loop: :func:`pretrain` trains a model with a weighted set of
objectives and returns a :class:`PretrainResult`.

Per optimizer step: ``grad_accum`` micro-batches, each a :class:`StepContext`
whose objectives' weighted losses are summed and back-propagated (under
autocast when ``pretrain.precision`` is bf16/fp16); gradients are averaged over
ranks, unscaled (fp16), clipped, AdamW steps, the warmup+cosine LR schedule
advances and the momentum (EMA) model is updated.  A checkpoint is written
every ``checkpoint_every`` steps, at the end and when ``should_stop`` says so;
a run whose workdir holds a checkpoint resumes from it and continues
bit-for-bit as if it had never stopped (same machine, same world size).

``pretrain.batch_size`` is the global micro-batch (summed over ranks); one
optimizer step sees ``batch_size * grad_accum`` pairs.  ``pretrain.steps``
counts optimizer steps.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from simla_bench.runtime import configure_math
from simla_bench.errors import ConfigError, PluginError
from simla_bench.devices import resolve_device, resolve_device_name
from simla_bench.heads import mark_trained, trained_heads
from simla_bench.training import checkpoint as ckpt_io
from simla_bench.training.data import build_loader, move_batch
from simla_bench.training.distributed import DistContext, init_from_env
from simla_bench.training.errors import CheckpointMismatchError, NonFiniteLossError, NonFiniteValuesError
from simla_bench.training.needs import check_needs
from simla_bench.training.optim import build_optimizer
from simla_bench.training.schedule import WarmupCosine, alpha_at
from simla_bench.training.seeding import seed_everything
from simla_bench.training.step_context import StepContext

ProgressFn = Callable[..., None]


@dataclass
class PretrainResult:
    model: Any
    #: one entry per optimizer step: {"step", "loss" (weighted total), "lr", "alpha", <objective>: loss}
    loss_curve: list[dict[str, float]]
    steps: int
    seconds: float
    #: optimizer step the run resumed from (None for a fresh run)
    resumed_from: int | None = None
    device: str = "cpu"
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def autocast_for(precision: str, device: torch.device) -> tuple[Callable[[], Any], Any]:
    """(autocast context factory, GradScaler or None) for ``precision``."""
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("pretrain.precision bf16 is not supported by this GPU", hint="use precision: fp16 or fp32")
    if not torch.amp.is_autocast_available(device.type):
        raise ConfigError(f"mixed precision is not available on device '{device.type}'", hint="use precision: fp32")
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), scaler


def _is_submodule(model: torch.nn.Module, other: Any) -> bool:
    return other is not None and any(m is other for m in model.modules())


def _fingerprint(cfg: Any, objectives: Mapping[str, tuple[Any, float]], n_records: int, seed: int) -> dict[str, Any]:
    p = cfg.pretrain
    return {
        "objectives": {k: float(w) for k, (_, w) in objectives.items()},
        "batch_size": p.batch_size, "grad_accum": p.grad_accum, "records": n_records, "seed": seed,
        "lr": p.lr, "min_lr": p.min_lr, "warmup_steps": p.warmup_steps,
    }


def pretrain(cfg: Any, objectives: Mapping[str, tuple[Any, float]], model: Any, records: Sequence[Any],
             workdir: str | Path, seed: int, progress: ProgressFn | None = None,
             should_stop: Callable[[int], bool] | None = None, *, dist_ctx: DistContext | None = None,
             transform: Callable[[Any], torch.Tensor] | None = None) -> PretrainResult:
    """Pretrain ``model`` with ``objectives`` (``name -> (Objective, weight)``) on
    ``records`` as given: ``pretrain.data_fraction`` is the caller's to apply, with
    :func:`simla_bench.training.data.subset_records` (the runner does, once per row).

    ``progress(step=, total=, losses=, pairs_per_s=, lr=)`` is called after
    each optimizer step; ``should_stop(step)`` (checked after each step) ends
    the run early with a checkpoint.  ``transform`` overrides the image
    transform (default: the model's ``image_transform``).
    """
    pcfg = cfg.pretrain
    active = {name: (obj, float(w)) for name, (obj, w) in objectives.items() if float(w) > 0}
    if not active:
        raise ConfigError("no pretraining objective with a weight above 0", hint="list objectives under 'objectives:'")
    check_needs({n: o for n, (o, _) in active.items()}, model)

    configure_math()
    workdir = Path(workdir)
    wants_cuda = resolve_device_name(str(cfg.device)).startswith("cuda")
    dctx = dist_ctx or init_from_env("cuda" if wants_cuda else "cpu")
    device = resolve_device(str(cfg.device), dctx.local_rank if dctx.active else None)
    autocast, scaler = autocast_for(pcfg.precision, device)

    records = list(records)  # the caller cut them to pcfg.data_fraction (training.data.subset_records)
    global_batch = pcfg.batch_size
    accum = pcfg.grad_accum
    total = pcfg.steps
    micro_per_epoch = max(1, len(records) // global_batch)
    steps_per_epoch = max(1, micro_per_epoch // accum)
    alpha_warm = steps_per_epoch if pcfg.alpha_warmup_steps is None else pcfg.alpha_warmup_steps

    # set-up (objective states, heads they add) is seeded alike on every rank,
    # then rank 0's parameters are broadcast; training RNG streams differ per rank
    seed_everything(seed)
    model.to(device)
    if pcfg.image_size and hasattr(model, "set_image_size") and getattr(model, "image_size", None) != pcfg.image_size:
        model.set_image_size(pcfg.image_size)  # resamples the position embeddings (and the momentum copy's)
    caps = frozenset(getattr(model, "capabilities", frozenset()))
    momentum = model.momentum_model() if "momentum" in caps and hasattr(model, "momentum_model") else None
    momentum_separate = momentum is not None and not _is_submodule(model, momentum)
    if momentum_separate:
        momentum.to(device)
    for obj, _ in active.values():
        obj.setup(model, records)
    if total > 0:  # the heads these objectives train (a task asks before relying on one)
        mark_trained(model, {h for obj, _ in active.values() for h in getattr(obj, "trains", ())})
    # objective state a loaded full checkpoint carried (e.g. ALBEF's ITC queues); a resumed run overrides it below
    carried = getattr(model, "objective_states", None) or {}
    for name, (obj, _) in active.items():
        if name in carried:
            obj.load_state_dict(carried[name])
    dctx.broadcast_module(model)
    if momentum_separate:
        dctx.broadcast_module(momentum)
    seed_everything(seed + dctx.rank)

    exclude = {id(p) for p in momentum.parameters()} if momentum is not None else set()
    optimizer = build_optimizer(model, pcfg.lr, pcfg.weight_decay, device, exclude)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    scheduler = WarmupCosine(optimizer, pcfg.lr, pcfg.min_lr, pcfg.warmup_steps, total)
    fingerprint = _fingerprint(cfg, active, len(records), seed)

    step, position, curve, prior_seconds, resumed_from = 0, 0, [], 0.0, None
    path = ckpt_io.checkpoint_path(workdir)
    state = ckpt_io.load_checkpoint(path, map_location=device)
    if state is not None:
        _check_fingerprint(state.get("fingerprint", {}), fingerprint, path)
        if state["step"] > total:
            raise CheckpointMismatchError(
                f"{path} is at step {state['step']}, beyond pretrain.steps {total}",
                hint="raise pretrain.steps or use a fresh workdir")
        model.load_state_dict(state["model"])
        if momentum_separate and state.get("momentum") is not None:
            momentum.load_state_dict(state["momentum"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        for name, (obj, _) in active.items():
            obj.load_state_dict(state["objectives"].get(name, {}))
        rng = state["rng"]
        if len(rng) == dctx.world_size:
            ckpt_io.restore_rng(rng[dctx.rank])
        else:  # resumed at another world size: deterministic, but not the same stream
            seed_everything(seed + 7919 * state["step"] + dctx.rank)
        step, position = int(state["step"]), int(state["position"])
        curve = list(state["loss_curve"])
        prior_seconds = float(state.get("seconds", 0.0))
        resumed_from = step

    def save() -> None:
        rng_all = dctx.gather_object(ckpt_io.capture_rng())
        if dctx.is_main:
            ckpt_io.save_checkpoint(path, {
                "step": step, "position": position, "fingerprint": fingerprint,
                "model": model.state_dict(),
                "momentum": momentum.state_dict() if momentum_separate else None,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "objectives": {n: o.state_dict() for n, (o, _) in active.items()},
                "rng": rng_all, "loss_curve": curve, "seconds": prior_seconds + (time.perf_counter() - t_start),
                "world_size": dctx.world_size, "trained_heads": sorted(trained_heads(model)),
            })
        dctx.barrier()

    loader, _ = build_loader(
        records, tokenizer=model.tokenizer, max_text_len=model.max_text_len,
        global_batch=global_batch, seed=seed, start=position, rank=dctx.rank, world_size=dctx.world_size,
        num_workers=pcfg.num_workers, pin_memory=device.type == "cuda",
        transform=transform or model.image_transform(train=pcfg.augment,
                                                     size=pcfg.image_size or getattr(model, "image_size", 64)))
    batches = iter(loader)
    names = list(active)
    model.train()
    t_start = time.perf_counter()

    while step < total:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        alpha = alpha_at(step, pcfg.alpha, alpha_warm)
        lr = scheduler.current_lr()
        sums = torch.zeros(len(names), dtype=torch.float64, device=device)
        for micro in range(accum):
            batch = move_batch(next(batches), device)
            position += 1
            ctx = StepContext(batch=batch, model=model, momentum=momentum, alpha=alpha, step=step,
                              micro_step=micro, gather=dctx.gather, rank=dctx.rank, world_size=dctx.world_size)
            details: dict[str, str] = {}
            with autocast():
                losses = [_loss_of(name, active[name][0], ctx, details, device) for name in names]
                total_loss = sum(active[name][1] * loss.float() for name, loss in zip(names, losses))
            values = torch.stack([loss.detach().double() for loss in losses])
            dctx.all_reduce_mean_(values)  # every rank sees the same non-finite values and stops alike
            bad = [names[int(i)] for i in (~torch.isfinite(values)).nonzero()[:, 0]]
            if bad:  # an objective that said what was non-finite explains it best
                first = next((n for n in bad if n in details), bad[0])
                raise NonFiniteLossError(first, step + 1, float(values[names.index(first)]), details.get(first),
                                         tuple(n for n in bad if n != first))
            sums += values
            scaled = total_loss / accum
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        dctx.average_gradients(trainable)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if pcfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, pcfg.grad_clip, foreach=True)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        if momentum is not None and hasattr(model, "update_momentum"):
            model.update_momentum()
        step += 1

        means = (sums / accum).tolist()
        entry = {"step": step, "lr": lr, "alpha": alpha}
        entry.update({name: v for name, v in zip(names, means)})
        entry["loss"] = sum(active[n][1] * v for n, v in zip(names, means))
        curve.append(entry)
        if progress is not None and dctx.is_main:
            dt = max(time.perf_counter() - t0, 1e-9)
            progress(step=step, total=total, losses={n: entry[n] for n in names} | {"loss": entry["loss"]},
                     pairs_per_s=global_batch * accum / dt, lr=lr)
        stop = bool(should_stop(step)) if should_stop is not None else False
        if should_stop is not None and dctx.active:  # rank 0 decides, so no rank waits for the others forever
            stop = bool(dctx.broadcast_object(stop))
        if step % pcfg.checkpoint_every == 0 or step == total or stop:
            save()
        if stop:
            break

    seconds = prior_seconds + (time.perf_counter() - t_start)
    model.eval()  # returned ready for evaluation; tasks that fine-tune switch to train() themselves
    return PretrainResult(model=model, loss_curve=curve, steps=step, seconds=seconds, resumed_from=resumed_from,
                          device=str(device), world_size=dctx.world_size)


def _loss_of(name: str, objective: Any, ctx: StepContext, details: dict[str, str], device: torch.device) -> torch.Tensor:
    """The objective's checked loss; a :class:`NonFiniteValuesError` it raises becomes a NaN
    loss (``details[name]`` says what was non-finite) so that all ranks stop at the same check."""
    try:
        return _checked_loss(name, objective.loss(ctx))
    except NonFiniteValuesError as exc:
        details[name] = exc.detail
        return torch.full((), float("nan"), device=device)


def _checked_loss(name: str, loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        kind = type(loss).__name__ if not isinstance(loss, torch.Tensor) else f"tensor of shape {tuple(loss.shape)}"
        err = PluginError(f"objective '{name}' returned a {kind} from loss(), not a scalar tensor",
                          hint="return a 0-dim torch tensor")
        err.objective = name  # lets the runner name the distribution that provides it
        raise err
    return loss.reshape(())


def _check_fingerprint(saved: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> None:
    for key, value in now.items():
        if key in saved and saved[key] != value:
            raise CheckpointMismatchError(
                f"{path} was written with {key}={saved[key]!r}, this run has {key}={value!r}",
                hint="use the same settings to resume, or a fresh workdir to start over")

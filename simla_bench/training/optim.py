"""The optimizer, for pretraining and fine-tuning: AdamW with weight decay on weight matrices only.

:func:`param_groups` is the one grouping: per module, a decay group and a
no-decay group.  No decay on biases, 0-/1-D parameters (normalisation
weights, the temperature) and names containing ``temp``; beyond those,
``no_decay_names`` picks the rule: ``None`` (pretraining) = the names the model
lists in ``model.no_weight_decay()`` (timm convention: position embedding, CLS
and mask tokens), a tuple of name fragments (fine-tuning passes
:data:`FINETUNE_NO_DECAY`: names containing ``norm`` or ``pos_embed``, the
tasks' rule from before the two were merged, kept so that task numbers do not
move: fine-tuning still decays the CLS and mask tokens).  Frozen parameters
(``requires_grad=False``, e.g. the momentum copy), ``exclude``-d ones and ones
an earlier module already listed are not optimised.  With ``lr_mults`` each
group carries its module's ``lr_mult`` (a new task head may learn faster).

:func:`build_optimizer` builds AdamW over those groups; ``fast_kernels`` (the
pretraining default) uses the fused kernel where the device has one, foreach
otherwise; fine-tuning uses torch's default kernel (``fast_kernels=False``), as
it always did, so its numbers do not move.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

#: name fragments fine-tuning keeps out of weight decay besides the common rule
FINETUNE_NO_DECAY = ("norm", "pos_embed")


def _skip_names(module: torch.nn.Module) -> set[str]:
    if not hasattr(module, "no_weight_decay"):
        return set()
    try:
        return set(module.no_weight_decay())
    except Exception:  # noqa: BLE001 - an optional timm-style hook
        return set()


def param_groups(modules: torch.nn.Module | Sequence[torch.nn.Module], weight_decay: float,
                 exclude: set[int] | None = None, *, lr_mults: Iterable[float] | None = None,
                 no_decay_names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """AdamW parameter groups of ``modules`` (one module or a list); see the module docstring."""
    modules = [modules] if isinstance(modules, torch.nn.Module) else list(modules)
    mults = list(lr_mults) if lr_mults is not None else None
    exclude = exclude or set()
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, module in enumerate(modules):
        skip_names = _skip_names(module) if no_decay_names is None else set()
        fragments = tuple(no_decay_names or ())
        decay, no_decay = [], []
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in exclude or id(p) in seen:
                continue
            seen.add(id(p))
            leaf = name.rsplit(".", 1)[-1]
            if (p.ndim <= 1 or leaf == "bias" or "temp" in leaf or name in skip_names or leaf in skip_names
                    or any(part in name.lower() for part in fragments)):
                no_decay.append(p)
            else:
                decay.append(p)
        extra = {"lr_mult": mults[i]} if mults is not None else {}
        for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "weight_decay": wd, **extra})
    return groups


def build_optimizer(modules: torch.nn.Module | Sequence[torch.nn.Module], lr: float, weight_decay: float,
                    device: torch.device, exclude: set[int] | None = None, *,
                    lr_mults: Iterable[float] | None = None, no_decay_names: Sequence[str] | None = None,
                    fast_kernels: bool = True) -> torch.optim.Optimizer:
    groups = param_groups(modules, weight_decay, exclude, lr_mults=lr_mults, no_decay_names=no_decay_names)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    betas = (0.9, 0.999)
    if not fast_kernels:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError, TypeError):
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)

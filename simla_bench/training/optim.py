"""The optimizer: AdamW with weight decay on weight matrices only.

No decay on biases, normalisation weights, other 0-/1-D parameters (the
temperature, CLS/mask tokens) or names the model lists in
``model.no_weight_decay()`` (timm convention).  Frozen parameters
(``requires_grad=False``, e.g. the momentum copy) are not optimised.
Fused kernels are used where the device supports them, foreach otherwise.
"""

from __future__ import annotations

from typing import Any

import torch


def param_groups(model: torch.nn.Module, weight_decay: float, exclude: set[int] | None = None) -> list[dict[str, Any]]:
    exclude = exclude or set()
    skip_names: set[str] = set()
    if hasattr(model, "no_weight_decay"):
        try:
            skip_names = set(model.no_weight_decay())
        except Exception:  # noqa: BLE001 - an optional timm-style hook
            skip_names = set()
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in exclude or id(p) in seen:
            continue
        seen.add(id(p))
        leaf = name.rsplit(".", 1)[-1]
        if p.ndim <= 1 or leaf == "bias" or "temp" in leaf or name in skip_names or leaf in skip_names:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, device: torch.device,
                    exclude: set[int] | None = None) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay, exclude)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    betas = (0.9, 0.999)
    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError, TypeError):
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay, foreach=True)

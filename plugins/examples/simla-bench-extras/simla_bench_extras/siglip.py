"""The ``siglip`` objective: SigLIP's sigmoid pairwise image-text loss.

Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (ICCV 2023).  For
the L2-normalised image and text features ``x_i``, ``y_j`` of a batch of size
``n`` (the *global* batch: both sides go through ``step.gather``)::

    logit_ij = exp(t') * <x_i, y_j> + b
    z_ij     = +1 if i == j (a matching pair) else -1
    loss     = -(1 / n) * sum_ij log sigmoid(z_ij * logit_ij)

with a learnable log-temperature ``t'`` (initialised to ``log(temperature)``,
paper: ``log 10``) and a learnable bias ``b`` (paper: ``-10``).  Unlike ITC's
softmax there is no normalisation over the batch: every pair is an independent
binary classification.  Every rank computes the same global loss; the
gradients reach each rank's own features through ``step.gather``.

The trainer's optimizer only holds model parameters, so ``t'`` and ``b`` live
on the objective with an AdamW of their own (option ``lr``, no weight decay)
that steps right after the trainer's backward, from a post-accumulate-grad
hook on each of them.  ``state_dict`` carries both values and the optimizer
state, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from simla_bench.interfaces import Objective


class SigLIP(Objective):
    """SigLIP sigmoid pairwise image-text loss with learnable temperature and bias."""

    needs = frozenset({"text"})
    defaults = {
        "temperature": 10.0,   # initial exp(t')
        "bias": -10.0,         # initial b
        "learnable": True,     # train t' and b (False: keep them fixed)
        "lr": 1e-3,            # learning rate of t' and b (their own AdamW)
    }

    def __init__(self, name: str, options: Mapping[str, Any] | None = None):
        super().__init__(name, options)
        if self.options["temperature"] <= 0:
            from simla_bench.errors import ConfigError

            raise ConfigError(f"objective '{name}': option 'temperature' must be > 0, got {self.options['temperature']}")
        self.log_temperature: torch.nn.Parameter | None = None
        self.bias: torch.nn.Parameter | None = None
        self._optimizers: list[torch.optim.Optimizer] = []

    # ----------------------------------------------------------- parameters
    def _ensure_parameters(self, device: torch.device) -> None:
        if self.log_temperature is not None:
            if self.log_temperature.device != device:
                self.log_temperature.data = self.log_temperature.data.to(device)
                self.bias.data = self.bias.data.to(device)
            return
        learnable = bool(self.options["learnable"])
        self.log_temperature = torch.nn.Parameter(
            torch.tensor(math.log(self.options["temperature"]), device=device), requires_grad=learnable)
        self.bias = torch.nn.Parameter(torch.tensor(float(self.options["bias"]), device=device), requires_grad=learnable)
        if learnable:
            for param in (self.log_temperature, self.bias):
                opt = torch.optim.AdamW([param], lr=self.options["lr"], weight_decay=0.0)
                self._optimizers.append(opt)
                param.register_post_accumulate_grad_hook(self._stepper(opt))

    @staticmethod
    def _stepper(opt: torch.optim.Optimizer):
        def step_now(_param: torch.Tensor) -> None:
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step_now

    def setup(self, model: Any, data: Any) -> None:
        self._ensure_parameters(next(model.parameters()).device)

    @property
    def temperature(self) -> float:
        return math.exp(self.log_temperature.item()) if self.log_temperature is not None else self.options["temperature"]

    # ----------------------------------------------------------------- loss
    def loss(self, step: Any) -> torch.Tensor:
        image = step.gather(step.image_feat)
        text = step.gather(step.text_feat)
        self._ensure_parameters(image.device)
        return sigmoid_pair_loss(image, text, self.log_temperature.exp(), self.bias)

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        if self.log_temperature is None:
            return {}
        return {
            "log_temperature": self.log_temperature.detach().cpu().clone(),
            "bias": self.bias.detach().cpu().clone(),
            "optimizers": [opt.state_dict() for opt in self._optimizers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            return
        device = state["log_temperature"].device if self.log_temperature is None else self.log_temperature.device
        self._ensure_parameters(device)
        with torch.no_grad():
            self.log_temperature.copy_(state["log_temperature"])
            self.bias.copy_(state["bias"])
        for opt, saved in zip(self._optimizers, state.get("optimizers", [])):
            opt.load_state_dict(saved)


def sigmoid_pair_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``-(1/n) sum_ij log sigmoid(z_ij (scale <x_i, y_j> + bias))``, ``z`` = +1 on the diagonal, -1 elsewhere."""
    logits = image.float() @ text.float().t() * scale + bias
    n = logits.shape[0]
    signs = 2.0 * torch.eye(n, logits.shape[1], device=logits.device, dtype=logits.dtype) - 1.0
    return -F.logsigmoid(signs * logits).sum() / n

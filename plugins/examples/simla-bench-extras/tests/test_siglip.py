"""The ``siglip`` objective: the loss against hand-computed values, learnable
temperature and bias, checkpoint state, and training on the tiny world."""

import math
from types import SimpleNamespace

import pytest
import torch

from simla_bench.testing import make_step
from simla_bench_extras.siglip import SigLIP, sigmoid_pair_loss


def _fake_step(image, text):
    return SimpleNamespace(image_feat=image, text_feat=text, gather=lambda t: t)


def test_registered_by_the_entry_point(simla_registry):
    entry = simla_registry.get("objective", "siglip")
    assert entry.plugin.dist_name == "simla-bench-extras"
    assert entry.load() is SigLIP


def test_loss_matches_a_hand_computed_case():
    # orthonormal features: logits = 10 * I - 10 -> diagonal 0, off-diagonal -10
    eye = torch.eye(2)
    loss = SigLIP("siglip").loss(_fake_step(eye, eye))
    expected = (2 * math.log(2) + 2 * math.log1p(math.exp(-10))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # swapped texts: both positives are now at -10, both negatives at 0
    swapped = SigLIP("siglip").loss(_fake_step(eye, eye.flip(0)))
    expected = (2 * math.log1p(math.exp(10)) + 2 * math.log(2)) / 2
    assert swapped.item() == pytest.approx(expected, rel=1e-6)


def test_options_change_the_initial_temperature_and_bias():
    x = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0], [0.8, 0.6]])
    loss = SigLIP("siglip", {"temperature": 2.0, "bias": 0.5}).loss(_fake_step(x, y))
    logits = 2.0 * (x @ y.t()) + 0.5
    manual = -sum(math.log(1 / (1 + math.exp(-(1 if i == j else -1) * logits[i, j].item())))
                  for i in range(2) for j in range(2)) / 2
    assert loss.item() == pytest.approx(manual, rel=1e-6)
    assert sigmoid_pair_loss(x, y, torch.tensor(2.0), torch.tensor(0.5)).item() == pytest.approx(manual, rel=1e-6)


def test_temperature_and_bias_learn_after_each_backward_and_round_trip():
    torch.manual_seed(0)
    objective = SigLIP("siglip", {"lr": 0.1})
    image = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    text = torch.nn.functional.normalize(image.detach() + 0.1 * torch.randn(4, 8), dim=-1)
    before = (objective.temperature, objective.options["bias"])
    objective.loss(_fake_step(image, text)).backward()
    # at init the positives sit at logit ~0 and push the bias up and the temperature up
    assert objective.bias.item() > before[1]
    assert objective.temperature > before[0]
    assert objective.bias.grad is None  # stepped and cleared by the hook

    state = objective.state_dict()
    restored = SigLIP("siglip", {"lr": 0.1})
    restored.load_state_dict(state)
    assert restored.bias.item() == objective.bias.item()
    assert restored.temperature == pytest.approx(objective.temperature)
    a = objective.loss(_fake_step(image, text))
    b = restored.loss(_fake_step(image, text))
    assert a.item() == b.item()


def test_fixed_parameters_when_not_learnable():
    objective = SigLIP("siglip", {"learnable": False})
    image = torch.eye(3, requires_grad=True)
    objective.loss(_fake_step(image, torch.eye(3))).backward()
    assert objective.bias.item() == -10.0 and objective.temperature == pytest.approx(10.0)


def test_training_the_tiny_model_lowers_the_loss(simla_tiny_model, simla_batch):
    torch.manual_seed(0)
    objective = SigLIP("siglip", {"bias": -2.0})
    objective.setup(simla_tiny_model, [])
    optimizer = torch.optim.AdamW([p for p in simla_tiny_model.parameters() if p.requires_grad], lr=3e-4)
    losses = []
    for i in range(12):
        loss = objective.loss(make_step(simla_tiny_model, simla_batch, step=i))
        assert loss.dim() == 0 and math.isfinite(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # measured: 4.52 at the start, 3.05-3.25 over the last three steps
    assert sum(losses[-3:]) / 3 < 0.85 * losses[0]

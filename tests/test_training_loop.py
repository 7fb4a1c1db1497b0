"""The pretraining loop on a toy model: loss goes down, needs/NaN errors,
momentum receives no gradient, the optimizer groups and the progress callback."""

import pytest
import torch

from simla_bench.training import pretrain
from simla_bench.training.errors import NonFiniteLossError, UnmetNeedsError
from simla_bench.training.optim import param_groups
from helpers.training_toys import NaNAt, ToyITC, ToyNoise, toy_cfg, toy_model, toy_records


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return toy_records(tmp_path_factory.mktemp("toy"))


def test_loss_goes_down(records, tmp_path):
    model = toy_model()
    cfg = toy_cfg(steps=20, batch_size=16, lr=1e-2, warmup_steps=3, checkpoint_every=100)
    seen = []
    res = pretrain(cfg, {"toy_itc": (ToyITC(), 1.0)}, model, records, tmp_path, seed=0,
                   progress=lambda **kw: seen.append(kw))
    first = sum(e["toy_itc"] for e in res.loss_curve[:5]) / 5
    last = sum(e["toy_itc"] for e in res.loss_curve[-5:]) / 5
    assert res.steps == 20 and len(res.loss_curve) == 20
    assert last < 0.7 * first, (first, last)  # measured: 3.74 -> 2.15
    assert len(seen) == 20 and seen[-1]["step"] == 20 and seen[-1]["total"] == 20
    assert set(seen[0]["losses"]) == {"toy_itc", "loss"} and seen[0]["pairs_per_s"] > 0
    assert res.loss_curve[0]["lr"] == pytest.approx(cfg.pretrain.min_lr)
    assert (tmp_path / "checkpoint.pt").is_file()  # written at the end


def test_weighted_total_and_per_objective_losses(records, tmp_path):
    res = pretrain(toy_cfg(steps=2), {"toy_itc": (ToyITC(), 1.0), "toy_noise": (ToyNoise(), 2.0)},
                   toy_model(), records, tmp_path, seed=0)
    e = res.loss_curve[-1]
    assert e["loss"] == pytest.approx(e["toy_itc"] + 2.0 * e["toy_noise"])


def test_unmet_needs_names_objective_and_fix(records, tmp_path):
    model = toy_model(capabilities=("text",))
    with pytest.raises(UnmetNeedsError) as info:
        pretrain(toy_cfg(), {"toy_itc": (ToyITC(), 1.0)}, model, records, tmp_path, seed=0)
    msg = info.value.one_line()
    assert "objective 'toy_itc' needs momentum" in msg
    assert "momentum:" in msg
    assert not (tmp_path / "checkpoint.pt").exists()


def test_nan_loss_names_objective_and_step(records, tmp_path):
    objectives = {"toy_itc": (ToyITC(), 1.0), "nan_obj": (NaNAt("nan_obj", {"at": 3}), 1.0)}
    with pytest.raises(NonFiniteLossError) as info:
        pretrain(toy_cfg(steps=5), objectives, toy_model(), records, tmp_path, seed=0)
    assert info.value.objective == "nan_obj" and info.value.step == 3
    assert "'nan_obj'" in info.value.one_line() and "step 3" in info.value.one_line()


def test_momentum_gets_no_gradient_and_moves_by_ema(records, tmp_path):
    model = toy_model()
    before = [p.detach().clone() for p in model.momentum.parameters()]
    grads_seen = []

    class Spy(ToyITC):
        def loss(self, step):
            out = super().loss(step)
            out.backward(retain_graph=True)  # inspect which tensors get gradients
            grads_seen.append([p.grad for p in step.model.momentum.parameters()])
            step.model.zero_grad(set_to_none=True)
            return out

    pretrain(toy_cfg(steps=2, checkpoint_every=10), {"spy": (Spy("spy"), 1.0)}, model, records, tmp_path, seed=0)
    assert grads_seen and all(g is None for gs in grads_seen for g in gs)
    assert all(not p.requires_grad for p in model.momentum.parameters())
    after = list(model.momentum.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # EMA moved it


def test_momentum_update_follows_ema_formula(records, tmp_path):
    model = toy_model()
    cfg = toy_cfg(steps=1, checkpoint_every=10)
    model.ema = 0.9
    m0 = [p.detach().clone() for p in model.momentum.parameters()]
    pretrain(cfg, {"toy_itc": (ToyITC(), 1.0)}, model, records, tmp_path, seed=0)
    for q0, p, q in zip(m0, model.online.parameters(), model.momentum.parameters()):
        torch.testing.assert_close(q, 0.9 * q0 + 0.1 * p.detach())


def test_no_weight_decay_on_norms_biases_and_temp():
    model = toy_model()
    groups = param_groups(model, 0.05)
    decay = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decay}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert "online.patch.weight" in names and "online.word.weight" in names
    assert not any(n.endswith("bias") or "norm" in n or n == "temp" or n.startswith("momentum") for n in names)
    all_params = {id(p) for g in groups for p in g["params"]}
    assert id(model.temp) in all_params and not any(id(p) in all_params for p in model.momentum.parameters())


def test_grad_accumulation_matches_larger_batch_for_mean_loss(records, tmp_path):
    """A per-sample (batch-separable) loss with accum 2 x 8 equals one batch of 16."""

    class MSE(ToyNoise):
        def loss(self, step):
            return (step.image_embeds[:, 0] ** 2).mean()

    def run(batch, accum, sub):
        model = toy_model()
        model.online.drop.p = 0.0
        cfg = toy_cfg(steps=3, batch_size=batch, grad_accum=accum, checkpoint_every=10, augment=False)
        pretrain(cfg, {"mse": (MSE("mse"), 1.0)}, model, records, tmp_path / sub, seed=0)
        return model

    a, b = run(16, 1, "a"), run(8, 2, "b")
    for p, q in zip(a.online.parameters(), b.online.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_bf16_autocast_on_cpu_trains(records, tmp_path):
    res = pretrain(toy_cfg(steps=3, precision="bf16"), {"toy_itc": (ToyITC(), 1.0)}, toy_model(),
                   records, tmp_path, seed=0)
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in res.loss_curve)


def test_rich_progress_bar_shows_objective_losses(records, tmp_path):
    import io

    from rich.console import Console

    from simla_bench.training.progress import pretrain_progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with pretrain_progress(console) as progress:
        pretrain(toy_cfg(steps=2), {"toy_itc": (ToyITC(), 1.0)}, toy_model(), records, tmp_path, seed=0,
                 progress=progress)
    text = out.getvalue()
    assert "2/2" in text and "toy_itc" in text and "pairs/s" in text


def test_returned_model_is_in_eval_mode(records, tmp_path):
    res = pretrain(toy_cfg(steps=1), {"toy_itc": (ToyITC(), 1.0)}, toy_model(), records, tmp_path, seed=0)
    assert not res.model.training and not res.model.online.drop.training

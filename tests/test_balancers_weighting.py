"""Loss-weighting balancers: DWA, uncertainty weighting, loss normalisation and GradNorm against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from balancer_toys import make, one_torch_thread, toy_data
from torch import nn

from mtspeech.train.balancers import BALANCERS, BalancerConfig, DWABalancer, GradNormBalancer

TASKS = ["asr_ctc", "intent", "lid"]


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


def fixed_losses(values: dict[str, float]) -> tuple[nn.Parameter, dict[str, torch.Tensor]]:
    """Losses with given values that depend on one parameter (so backward works): L_t = value_t * p, p = 1."""
    p = nn.Parameter(torch.ones(()))
    return p, {t: v * p for t, v in values.items()}


def scalar_balancer(name: str, tasks: list[str], **options):
    p = nn.Parameter(torch.ones(()))
    balancer = BALANCERS[name](tasks, [p], {}, BalancerConfig(name=name, telemetry_every=0, **options))
    return p, balancer


# --------------------------------------------------------------------------------------------------------- DWA
def test_dwa_weights_from_loss_histories():
    previous = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    last = torch.tensor([1.0, 0.9, 0.5], dtype=torch.float64)  # ratios 0.5, 0.9, 1.0
    weights = DWABalancer.weights_from_history(previous, last, temperature=2.0)
    e = [math.exp(r / 2.0) for r in (0.5, 0.9, 1.0)]
    expected = [3 * v / sum(e) for v in e]
    assert weights.tolist() == pytest.approx(expected)
    assert float(weights.sum()) == pytest.approx(3.0)
    assert weights[2] > weights[1] > weights[0]  # the task that stopped improving gets the most weight


def test_dwa_task_without_history_keeps_weight_one():
    previous = torch.tensor([2.0, math.nan, 1.0], dtype=torch.float64)
    last = torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64)
    weights = DWABalancer.weights_from_history(previous, last, temperature=2.0)
    assert weights[1] == 1.0
    assert float(weights.sum()) == pytest.approx(3.0)
    e = [math.exp(0.25), math.exp(0.5)]
    assert weights[[0, 2]].tolist() == pytest.approx([2 * v / sum(e) for v in e])


def test_dwa_warm_start_then_window_ratios():
    _, balancer = scalar_balancer("dwa", ["a", "b"], window=2)
    schedule = [{"a": 4.0, "b": 1.0}, {"a": 4.0, "b": 1.0}, {"a": 2.0, "b": 1.0}, {"a": 2.0, "b": 1.0}]
    seen = []
    for values in schedule:
        p, losses = fixed_losses(values)
        seen.append(balancer.backward(losses))
        balancer.before_step()
    assert all(w == {"a": 1.0, "b": 1.0} for w in seen)  # warm start: two full windows needed
    p, losses = fixed_losses({"a": 1.0, "b": 1.0})
    weights = balancer.backward(losses)
    ea, eb = math.exp(0.5 / 2), math.exp(1.0 / 2)  # a halved its loss, b did not
    assert weights == pytest.approx({"a": 2 * ea / (ea + eb), "b": 2 * eb / (ea + eb)})


# ------------------------------------------------------------------------------------------------- uncertainty
@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_uncertainty_log_variance_gradient_matches_the_derivative(kind):
    p, balancer = scalar_balancer("uncertainty", ["a", "b"], loss_kinds={"a": kind}, log_var_init=0.3)
    with torch.no_grad():
        balancer.log_vars.copy_(torch.tensor([0.3, -0.7]))
    _, losses = fixed_losses({"a": 2.5, "b": 0.8})
    weights = balancer.backward(losses, loss_scale=0.5)
    c = 1.0 if kind == "classification" else 0.5
    s = [0.3, -0.7]
    expected_grad = [0.5 * (-c * math.exp(-s[0]) * 2.5 + 0.5), 0.5 * (-math.exp(-s[1]) * 0.8 + 0.5)]
    assert balancer.log_vars.grad.tolist() == pytest.approx(expected_grad, rel=1e-5)
    assert weights == pytest.approx({"a": c * math.exp(-0.3), "b": math.exp(0.7)}, rel=1e-6)


def test_uncertainty_log_variance_stays_bounded_as_a_loss_vanishes():
    p, balancer = scalar_balancer("uncertainty", ["a"], log_var_min=-4.0)
    optimizer = torch.optim.SGD(balancer.extra_parameters(), lr=2.0)
    for _ in range(60):
        _, losses = fixed_losses({"a": 1e-6})  # a near-perfect task pulls s toward -inf
        balancer.backward(losses)
        optimizer.step()
        optimizer.zero_grad()
    _, losses = fixed_losses({"a": 1e-6})
    weights = balancer.backward(losses)
    assert float(balancer.log_vars.detach().min()) >= -4.0
    assert weights["a"] <= math.exp(4.0) + 1e-6
    assert math.isfinite(weights["a"])


# -------------------------------------------------------------------------------------------------- loss_norm
def test_loss_norm_divides_by_the_running_mean():
    _, balancer = scalar_balancer("loss_norm", ["a", "b"], ema_decay=0.5, weights={"b": 2.0})
    _, losses = fixed_losses({"a": 4.0, "b": 10.0})
    assert balancer.backward(losses) == pytest.approx({"a": 0.25, "b": 0.2})  # first step: its own value
    balancer.before_step()  # ema = (4, 10)
    _, losses = fixed_losses({"a": 8.0})
    assert balancer.backward(losses) == pytest.approx({"a": 0.25})
    balancer.before_step()  # ema_a = 0.5 * 4 + 0.5 * 8 = 6; b absent: unchanged
    _, losses = fixed_losses({"a": 1.0, "b": 1.0})
    assert balancer.backward(losses) == pytest.approx({"a": 1 / 6, "b": 2.0 / 10})


def test_non_finite_losses_do_not_poison_running_state():
    _, balancer = scalar_balancer("loss_norm", ["a"], ema_decay=0.5)
    for value in (2.0, float("inf")):
        _, losses = fixed_losses({"a": value})
        balancer.backward(losses)
        balancer.before_step()
    assert balancer.ema.tolist() == [2.0]


# --------------------------------------------------------------------------------------------------- GradNorm
def test_gradnorm_weight_gradient_is_the_analytic_one():
    x, ys = toy_data(["a", "b"])
    model, balancer = make("gradnorm", ["a", "b"], alpha=1.0)
    with torch.no_grad():
        balancer.task_weights.copy_(torch.tensor([1.5, 0.5]))
    balancer.initial_losses = torch.tensor([2.0, 1.0], dtype=torch.float64)
    losses, _ = model(x, ys)
    norms = [
        torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(losses[t], list(model.last.parameters()), retain_graph=True)]
        ).norm()
        for t in ("a", "b")
    ]
    values = [float(losses[t].detach()) for t in ("a", "b")]
    balancer.backward(losses)
    w = [1.5, 0.5]
    G = [w[i] * float(norms[i]) for i in range(2)]
    relative = [values[0] / 2.0, values[1] / 1.0]
    rates = [r / (sum(relative) / 2) for r in relative]
    target = [sum(G) / 2 * r for r in rates]
    expected = [math.copysign(1.0, G[i] - target[i]) * float(norms[i]) for i in range(2)]
    assert balancer.task_weights.grad.tolist() == pytest.approx(expected, rel=1e-4)


def test_gradnorm_moves_weights_toward_equal_training_rates():
    """Two tasks on one shared layer, one with a 10x larger loss: GradNorm shrinks the dominant task's weight
    until the weighted gradient norms match (both losses fall at the same relative rate here)."""
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    heads = {"big": nn.Linear(4, 1), "small": nn.Linear(4, 1)}
    x = torch.randn(64, 4)
    targets = {"big": x.sum(1), "small": x[:, 0] - x[:, 1]}
    scale = {"big": 10.0, "small": 1.0}
    config = BalancerConfig(name="gradnorm", alpha=0.0, telemetry_every=0)
    task_params = {t: list(h.parameters()) for t, h in heads.items()}
    balancer = GradNormBalancer(["big", "small"], list(shared.parameters()), task_params, config, shared)
    optimizer = torch.optim.Adam(balancer.extra_parameters(), lr=0.03)  # only the weights learn: a fixed model

    def forward():
        enc = shared(x)
        return {t: scale[t] * (heads[t](enc).squeeze(-1) - targets[t]).pow(2).mean() for t in heads}, enc

    def weighted_norms():
        losses, _ = forward()
        norms = []
        for i, t in enumerate(heads):
            g = torch.autograd.grad(losses[t], list(shared.parameters()), retain_graph=True)
            norms.append(float(balancer.task_weights[i].detach()) * float(torch.cat([v.reshape(-1) for v in g]).norm()))
        return norms

    before = weighted_norms()
    for _ in range(50):
        losses, enc = forward()
        balancer.backward(losses, shared_repr=enc)
        balancer.before_step()
        optimizer.step()
        optimizer.zero_grad()
        shared.zero_grad()
        for h in heads.values():
            h.zero_grad()
    balancer.renormalise()
    after = weighted_norms()
    assert abs(after[0] - after[1]) < 0.2 * abs(before[0] - before[1])
    assert balancer.task_weights[0] < balancer.task_weights[1]
    assert float(balancer.task_weights.sum()) == pytest.approx(2.0)


def test_gradnorm_needs_a_shared_last_layer():
    p = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="last_shared_layer"):
        GradNormBalancer(["a", "b"], [p], {}, BalancerConfig(name="gradnorm"))


def test_gradnorm_update_every_only_measures_on_those_steps():
    x, ys = toy_data(["a", "b"])
    model, balancer = make("gradnorm", ["a", "b"], update_every=3)
    seen = []
    for _ in range(4):
        losses, enc = model(x, ys)
        balancer.backward(losses, shared_repr=enc)
        balancer.before_step()
        seen.append(balancer.task_weights.grad is not None)
        balancer.task_weights.grad = None
    assert seen == [True, False, False, True]

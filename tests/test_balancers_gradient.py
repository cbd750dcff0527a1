"""Gradient methods (PCGrad, MGDA, CAGrad, UPGrad, ...): closed forms, torchjd agreement, the balancer's plumbing."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from balancer_toys import grads, make, one_torch_thread, toy_data
from torch import nn

from mtspeech.train.balancers import BalancerConfig, JacobianBalancer
from mtspeech.train.balancers.gramian import (
    cagrad_weights,
    make_weighting,
    mgda_two_task_weights,
    pcgrad_coefficients,
)

TASKS = ["asr_ctc", "intent", "lid"]


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


def combine(rule: str, J: torch.Tensor, seed: int = 0, **options) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    J = J.double()
    return make_weighting(rule, **options)(J @ J.T, gen).double() @ J


# ------------------------------------------------------------------------------------------------------ PCGrad
def test_pcgrad_two_vectors_match_the_formula():
    g1 = torch.tensor([1.0, 0.0, 2.0])
    g2 = torch.tensor([-2.0, 1.0, 0.5])
    dot = g1 @ g2  # -1 < 0: they conflict
    expected = (g1 - dot / (g2 @ g2) * g2) + (g2 - dot / (g1 @ g1) * g1)
    torch.testing.assert_close(combine("pcgrad", torch.stack([g1, g2])), expected.double())


def test_pcgrad_matches_torchjd_for_two_tasks():
    from torchjd.aggregation import PCGrad

    J = torch.randn(2, 50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    J[1] = -J[0] + 0.3 * J[1]  # make sure they conflict
    torch.testing.assert_close(combine("pcgrad", J), PCGrad()(J))


def test_after_projection_no_task_conflicts_with_the_other():
    gen = torch.Generator().manual_seed(0)
    conflicts = 0
    for _ in range(30):
        J = torch.randn(2, 10, generator=gen, dtype=torch.float64)
        conflicts += int(J[0] @ J[1] < 0)
        projected = pcgrad_coefficients(J @ J.T, torch.tensor([1, 0])) @ J
        assert float(projected[0] @ J[1]) >= -1e-9
        assert float(projected[1] @ J[0]) >= -1e-9
        if J[0] @ J[1] >= 0:
            torch.testing.assert_close(projected, J)  # nothing to project
    assert conflicts > 5  # the draw did exercise conflicting pairs


def test_order_randomisation_does_not_change_a_non_conflicting_update():
    J = torch.tensor([[1.0, 0.2, 0.0], [0.5, 1.0, 0.1], [0.1, 0.3, 2.0]], dtype=torch.float64)
    assert bool(((J @ J.T) >= 0).all())
    results = [combine("pcgrad", J, seed=s) for s in range(6)]
    for r in results:
        torch.testing.assert_close(r, J.sum(0))


def test_order_matters_with_three_conflicting_tasks_and_is_seeded():
    J = torch.tensor([[1.0, 0.0], [-0.8, 0.6], [-0.3, -1.0]], dtype=torch.float64)
    orders = {tuple(combine("pcgrad", J, seed=s).tolist()) for s in range(12)}
    assert len(orders) > 1  # the random order is used
    torch.testing.assert_close(combine("pcgrad", J, seed=5), combine("pcgrad", J, seed=5))


# -------------------------------------------------------------------------------------------- MGDA and others
def test_mgda_two_task_closed_form_matches_torchjd_and_is_the_min_norm_point():
    from torchjd.aggregation import MGDAWeighting

    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        J = torch.randn(2, 6, generator=gen, dtype=torch.float64)
        G = J @ J.T
        ours = mgda_two_task_weights(G)
        theirs = MGDAWeighting(epsilon=1e-9, max_iters=1000)(G)
        torch.testing.assert_close(ours @ J, theirs @ J, atol=1e-6, rtol=1e-5)
        best = min(float((g * J[0] + (1 - g) * J[1]).norm()) for g in torch.linspace(0, 1, 2001).double())
        assert float((ours @ J).norm()) <= best + 1e-9


def test_cagrad_maximises_the_worst_task_improvement_within_the_ball():
    gen = torch.Generator().manual_seed(2)
    c = 0.5
    for _ in range(5):
        J = torch.randn(3, 5, generator=gen, dtype=torch.float64)
        d = cagrad_weights(J @ J.T, c) @ J
        g0 = J.mean(0)
        radius = c * float(g0.norm())
        assert float((d - g0).norm()) <= radius * (1 + 1e-6)
        worst = float((J @ d).min())
        # No point of the ball does better on its worst task.
        directions = torch.randn(4000, 5, generator=gen, dtype=torch.float64)
        candidates = g0 + radius * directions / directions.norm(dim=1, keepdim=True)
        assert worst >= float((candidates @ J.T).min(dim=1).values.max()) - 1e-6


@pytest.mark.skipif(importlib.util.find_spec("cvxpy") is None, reason="torchjd's CAGrad needs cvxpy")
def test_cagrad_matches_torchjd():
    from torchjd.aggregation import CAGrad

    J = torch.randn(3, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    torch.testing.assert_close(combine("cagrad", J, cagrad_c=0.4) * 1.4 / 3, CAGrad(c=0.4)(J), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("rule", ["pcgrad", "cagrad", "mgda", "upgrad", "imtlg", "dualproj"])
def test_identical_gradients_give_the_plain_sum(rule):
    g = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(combine(rule, torch.stack([g, g, g])), 3 * g, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule", ["mgda", "upgrad", "dualproj"])
def test_conflict_averse_rules_do_not_hurt_any_task(rule):
    # Pairwise conflicts, but a direction improving all three exists (0 is outside their convex hull).
    J = torch.tensor([[1.0, 0.0], [-0.9, 0.5], [0.3, 0.6]], dtype=torch.float64)
    assert float((J @ J.T).min()) < 0
    d = combine(rule, J)
    assert bool((J @ d >= -1e-7).all())


# --------------------------------------------------------------------------------------- balancer plumbing
def per_task_grads(model, x, ys, params):
    losses, _ = model(x, ys)
    return {t: torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True) for t, loss in losses.items()}


@pytest.mark.parametrize("use_repr", [False, True])
def test_balancer_update_is_the_rule_on_per_task_gradients(use_repr):
    x, ys = toy_data(TASKS)
    model, balancer = make("pcgrad", TASKS, weights={"intent": 2.0})
    reference = copy.deepcopy(model)
    losses, enc = model(x, ys)
    balancer.backward(losses, shared_repr=enc if use_repr else None)
    balancer.before_step()
    got = grads(model)

    shared = [p for p in reference.shared_parameters() if p is not reference.unused_shared]
    per_task = per_task_grads(reference, x, ys, shared)
    J = torch.stack([torch.cat([g.reshape(-1) for g in per_task[t]]) * (2.0 if t == "intent" else 1.0) for t in TASKS])
    expected = combine("pcgrad", J, seed=0).float()
    flat = torch.cat([got[n].reshape(-1) for n, p in reference.named_parameters() if any(p is q for q in shared)])
    torch.testing.assert_close(flat, expected, rtol=1e-5, atol=1e-6)
    # heads: their own (prior-weighted) loss only
    head = per_task_grads(reference, x, ys, list(reference.heads["intent"].parameters()))["intent"][0]
    torch.testing.assert_close(got["heads.intent.weight"], 2.0 * head)
    # a shared parameter no task reaches keeps grad None
    assert got["unused_shared"] is None
    assert balancer.effective_weights.keys() == set(TASKS)


def test_representation_mode_combines_encoder_output_gradients():
    x, ys = toy_data(TASKS)
    model, balancer = make("mgda", TASKS, representation=True)
    reference = copy.deepcopy(model)
    losses, enc = model(x, ys)
    applied = balancer.backward(losses, shared_repr=enc)
    balancer.before_step()

    ref_losses, ref_enc = reference(x, ys)
    R = torch.stack([torch.autograd.grad(ref_losses[t], ref_enc, retain_graph=True)[0].reshape(-1) for t in TASKS])
    weights = make_weighting("mgda")((R @ R.T).double(), torch.Generator())
    assert applied == pytest.approx({t: float(w) for t, w in zip(TASKS, weights, strict=True)}, rel=1e-5)
    ref_enc.backward((weights.float() @ R).view_as(ref_enc), inputs=[reference.last.weight])
    torch.testing.assert_close(model.last.weight.grad, reference.last.weight.grad, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shared_repr"):
        losses, _ = model(x, ys)
        balancer.backward(losses)


def test_task_reaching_only_part_of_the_shared_parameters():
    """A shared parameter one task does not reach counts as a zero gradient for that task."""

    class Split(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor([1.0, 2.0]))
            self.b = nn.Parameter(torch.tensor([3.0]))

    m = Split()
    balancer = JacobianBalancer(["t1", "t2"], [m.a, m.b], {}, BalancerConfig(name="pcgrad"))
    losses = {"t1": (m.a**2).sum(), "t2": -(m.a[0] * 3.0) + m.b.sum() * 2.0}
    balancer.backward(losses)
    balancer.before_step()
    J = torch.tensor([[2.0, 4.0, 0.0], [-3.0, 0.0, 2.0]], dtype=torch.float64)
    expected = combine("pcgrad", J).float()
    torch.testing.assert_close(torch.cat([m.a.grad, m.b.grad]), expected)


def test_telemetry_reports_cosines_conflicts_and_norms():
    x, ys = toy_data(TASKS)
    for name in ("pcgrad", "static"):
        model, balancer = make(name, TASKS, telemetry_every=1)
        reference = copy.deepcopy(model)
        losses, enc = model(x, ys)
        balancer.backward(losses, shared_repr=enc, loss_scale=0.25)
        balancer.before_step()
        record = balancer.pop_telemetry()
        assert balancer.pop_telemetry() is None
        per_task = per_task_grads(reference, x, ys, reference.shared_parameters())
        flat = {t: torch.cat([g.reshape(-1) for g in gs if g is not None]) for t, gs in per_task.items()}
        cos = torch.nn.functional.cosine_similarity(flat["asr_ctc"], flat["lid"], dim=0)
        assert record["cosine"][0][2] == pytest.approx(float(cos), abs=1e-5)
        assert record["grad_norm"]["intent"] == pytest.approx(float(flat["intent"].norm()), rel=1e-4)
        pairs = [
            float(torch.nn.functional.cosine_similarity(flat[a], flat[b], dim=0))
            for a, b in [("asr_ctc", "intent"), ("asr_ctc", "lid"), ("intent", "lid")]
        ]
        assert record["conflict_share"] == pytest.approx(sum(c < 0 for c in pairs) / 3)
        assert set(record["weights"]) == set(TASKS)


# ---------------------------------------------------------------------------------------------- the toy
def valley_losses(theta: torch.Tensor, stiffness: float = 10.0) -> dict[str, torch.Tensor]:
    """Task 1: stay on the parabola y = x^2/4 (a narrow curved valley); task 2: x -> 4. Both are 0 at (4, 4),
    the only Pareto-optimal point; the valley's curvature across grows with x."""
    x, y = theta[0], theta[1]
    return {"valley": stiffness * (y - 0.25 * x**2) ** 2, "pull": 0.5 * (x - 4.0) ** 2}


def descend(name: str, steps: int, lr: float = 0.03) -> list[float]:
    theta = nn.Parameter(torch.tensor([-3.0, 2.25], dtype=torch.float64))
    balancer = make_toy_balancer(name, theta)
    totals = []
    for _ in range(steps):
        losses = valley_losses(theta)
        totals.append(float(sum(loss.detach() for loss in losses.values())))
        balancer.backward(losses)
        balancer.before_step()
        with torch.no_grad():
            theta -= lr * theta.grad
        theta.grad = None
    return totals


def make_toy_balancer(name, theta):
    from mtspeech.train.balancers import BALANCERS

    config = BalancerConfig(name=name, weights={"valley": 1.0, "pull": 1.0}, telemetry_every=0)
    return BALANCERS[name](["valley", "pull"], [theta], {}, config)


def test_plain_sum_stalls_where_pcgrad_reaches_the_pareto_front():
    """Gradient descent with one step size: the sum of the losses gets stuck in a 2-cycle across the valley
    where its curvature exceeds 2 / lr (task 1 oscillates, task 2 pushes it back), never reaching (4, 4). PCGrad
    removes the oscillating component that conflicts with task 2 and reaches the optimum of both tasks."""
    plain = descend("static", 1500)
    projected = descend("pcgrad", 1500)
    assert min(plain[-500:]) > 1.0  # stalled: no progress in the last 500 steps
    assert abs(plain[-1] - plain[-3]) < 1e-6  # ... in a 2-cycle
    assert projected[-1] < 1e-6  # both losses ~0: on the Pareto front

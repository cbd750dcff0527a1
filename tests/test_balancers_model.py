"""Balancers on the real MultiTaskModel (tiny encoder, every task): the fast paths give the exact gradients."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import ALL_TASKS, random_batch, single_thread, tiny_config  # noqa: F401  (autouse fixture)

from mtspeech.model.model import MultiTaskModel
from mtspeech.train.balancers import METHODS, BalancerConfig, build_balancer


def model_and_batch():
    torch.manual_seed(0)
    model = MultiTaskModel(tiny_config())
    model.eval()  # no dropout: the two runs must see the same function
    model.set_progress(0.5)  # the accent task's reversed gradient is 0 at the start
    return model, random_batch(batch_size=4, max_frames=64, unlabelled_rows=(3,))


def gradients(name: str, use_repr: bool, **options) -> dict[str, torch.Tensor | None]:
    model, batch = model_and_batch()
    balancer = build_balancer(BalancerConfig(name=name, **options), model, model.task_names)
    out = model(batch)
    balancer.backward(out.losses, shared_repr=out.enc if use_repr else None, loss_scale=0.5)
    balancer.before_step()
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["pcgrad", "gradnorm"])
def test_head_by_head_backward_equals_per_task_backward(name):
    """With shared_repr, heads are backpropagated once each and only the encoder per task: same gradients."""
    fast = gradients(name, use_repr=True)
    plain = gradients(name, use_repr=False)
    assert fast.keys() == plain.keys()
    for key, value in plain.items():
        if value is None:
            assert fast[key] is None, key
        else:
            torch.testing.assert_close(fast[key], value, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_every_task_of_the_model(name):
    model, batch = model_and_batch()
    options = {"representation": True} if name == "mgda" else {}
    balancer = build_balancer(BalancerConfig(name=name, telemetry_every=1, **options), model, model.task_names)
    out = model(batch)
    weights = balancer.backward(out.losses, shared_repr=out.enc)
    balancer.before_step()
    record = balancer.pop_telemetry()
    assert set(weights) == set(out.losses) == set(ALL_TASKS)
    assert set(record["tasks"]) == set(ALL_TASKS)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())
    for task, params in model.task_parameters().items():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), task

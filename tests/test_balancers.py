"""Balancer interface: config validation, static weighting, accumulation, missing tasks, exact resume."""

from __future__ import annotations

import copy

import pytest
import torch
from balancer_toys import ToyMultiTask, grads, make, one_torch_thread, toy_data
from pydantic import ValidationError

from mtspeech.errors import UserError
from mtspeech.train.balancers import BALANCERS, METHODS, BalancerConfig, build_balancer, mean_over_ranks

TASKS = ["asr_ctc", "intent", "lid"]


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


def test_every_method_is_registered():
    assert set(BALANCERS) == set(METHODS)
    for name in METHODS:
        model, balancer = make(name, TASKS)
        assert balancer.name == name


def test_config_rejects_unknown_keys_and_options_of_other_methods():
    with pytest.raises(ValidationError, match="tempreature"):
        BalancerConfig.model_validate({"name": "dwa", "tempreature": 2})
    with pytest.raises(ValidationError, match="'temperature' applies to dwa only"):
        BalancerConfig(name="pcgrad", temperature=3.0)
    with pytest.raises(ValidationError, match="'representation' applies to pcgrad"):
        BalancerConfig(name="static", representation=True)
    with pytest.raises(ValidationError):
        BalancerConfig(name="nope")
    with pytest.raises(ValidationError, match=">= 0"):
        BalancerConfig(weights={"intent": -1.0})
    assert BalancerConfig(name="dwa", temperature=3.0).temperature == 3.0


def test_unknown_task_in_weights_is_a_user_error():
    model = ToyMultiTask(TASKS)
    with pytest.raises(UserError, match="'intnet'.*tasks: asr_ctc, intent, lid"):
        build_balancer(BalancerConfig(weights={"intnet": 1.0}), model, TASKS)


def test_static_default_weights_favour_asr():
    config = BalancerConfig()
    assert config.prior_weights(["asr_ctc", "decoder", "intent"]) == {"asr_ctc": 1.0, "decoder": 1.0, "intent": 0.5}
    assert BalancerConfig(weights={"intent": 2.0}).prior_weights(["asr_ctc", "intent"]) == {
        "asr_ctc": 1.0,
        "intent": 2.0,
    }
    assert BalancerConfig(name="dwa").prior_weights(["asr_ctc", "intent"]) == {"asr_ctc": 1.0, "intent": 1.0}


def test_static_gradient_is_the_weighted_sum():
    x, ys = toy_data(TASKS)
    model, balancer = make("static", TASKS, weights={"intent": 2.0})
    losses, _ = model(x, ys)
    applied = balancer.backward(losses, loss_scale=0.5)
    assert applied == {"asr_ctc": 1.0, "intent": 2.0, "lid": 0.5}
    got = grads(model)

    reference = copy.deepcopy(model)
    reference.zero_grad(set_to_none=True)
    ref_losses, _ = reference(x, ys)
    (0.5 * (ref_losses["asr_ctc"] + 2.0 * ref_losses["intent"] + 0.5 * ref_losses["lid"])).backward()
    for name, p in reference.named_parameters():
        if p.grad is None:
            assert got[name] is None
        else:
            torch.testing.assert_close(got[name], p.grad)


def test_missing_tasks_are_skipped_and_unknown_tasks_rejected():
    x, ys = toy_data(TASKS)
    model, balancer = make("static", TASKS)
    losses, _ = model(x, {"intent": ys["intent"]})
    assert balancer.backward(losses) == {"intent": 0.5}
    assert model.heads["lid"].weight.grad is None
    assert model.heads["intent"].weight.grad is not None
    with pytest.raises(ValueError, match="speaker"):
        balancer.backward({"speaker": losses["intent"]})
    assert balancer.backward({}) == {}


def _accumulated_grads(name: str, micro_batches: int, **options) -> dict[str, torch.Tensor | None]:
    x, ys = toy_data(TASKS, n=16)
    model, balancer = make(name, TASKS, **options)
    for part in torch.arange(16).chunk(micro_batches):
        losses, enc = model(x[part], {t: y[part] for t, y in ys.items()})
        balancer.backward(losses, shared_repr=enc, loss_scale=1.0 / micro_batches)
    balancer.before_step()
    return grads(model)


@pytest.mark.parametrize(
    ("name", "options"),
    [("static", {}), ("pcgrad", {}), ("mgda", {}), ("upgrad", {}), ("cagrad", {}), ("dwa", {})],
)
def test_two_micro_batches_equal_one_batch(name, options):
    """Gradient methods accumulate per-task gradients and combine once, so accumulation is exact."""
    whole = _accumulated_grads(name, 1, **options)
    split = _accumulated_grads(name, 2, **options)
    for key, value in whole.items():
        if value is None:
            assert split[key] is None, key
        else:
            torch.testing.assert_close(split[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("static", {}),
        ("loss_norm", {"ema_decay": 0.5}),
        ("dwa", {"window": 1}),
        ("uncertainty", {}),
        ("gradnorm", {}),
        ("pcgrad", {}),
        ("pcgrad", {"representation": True}),
        ("cagrad", {}),
    ],
)
def test_state_dict_round_trip_continues_identically(name, options):
    tasks = ["asr_ctc", "intent", "lid", "emotion"]
    model, balancer = make(name, tasks, telemetry_every=2, **options)
    optimizer = torch.optim.Adam([*model.parameters(), *balancer.extra_parameters()], lr=0.01)
    batches = [toy_data(tasks, seed=s) for s in range(8)]

    def run(model, balancer, optimizer, batches):
        for x, ys in batches:
            ys = dict(ys) if x[0, 0] > -0.5 else {t: y for t, y in ys.items() if t != "lid"}  # some lack a task
            losses, enc = model(x, ys)
            balancer.backward(losses, shared_repr=enc)
            balancer.before_step()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    run(model, balancer, optimizer, batches[:4])
    saved = copy.deepcopy((model.state_dict(), balancer.state_dict(), optimizer.state_dict()))
    run(model, balancer, optimizer, batches[4:])
    expected = [p.detach().clone() for p in model.parameters()]

    fresh_model, fresh = make(name, tasks, seed=123, telemetry_every=2, **options)
    fresh_optimizer = torch.optim.Adam([*fresh_model.parameters(), *fresh.extra_parameters()], lr=0.01)
    fresh_model.load_state_dict(saved[0])
    fresh.load_state_dict(saved[1])
    fresh_optimizer.load_state_dict(saved[2])
    run(fresh_model, fresh, fresh_optimizer, batches[4:])
    for got, want in zip(fresh_model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert fresh.state_dict().keys() == balancer.state_dict().keys()


def test_loading_another_methods_state_is_a_user_error():
    _, pcgrad = make("pcgrad", TASKS)
    _, dwa = make("dwa", TASKS)
    with pytest.raises(UserError, match="balancer 'pcgrad'.*'dwa'"):
        dwa.load_state_dict(pcgrad.state_dict())


def test_mean_over_ranks_is_identity_without_distributed():
    t = torch.tensor([1.0, 2.0])
    assert mean_over_ranks(t) is t

"""Replay: mixing old data into a new task's stream keeps the old task from being forgotten."""

from __future__ import annotations

import itertools

import pytest
import torch
from balancer_toys import one_torch_thread
from lhotse import CutSet
from lhotse.cut import MonoCut
from pydantic import ValidationError
from torch import nn

from mtspeech.errors import UserError
from mtspeech.train.balancers import BalancerConfig, StaticBalancer
from mtspeech.train.replay import ReplayConfig, replay_mix


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


def index_cuts(task: str, n: int) -> CutSet:
    """Cuts that only carry (task, row index) into a synthetic data table."""
    return CutSet.from_cuts(
        MonoCut(id=f"{task}-{i}", start=0.0, duration=1.0, channel=0, custom={"task": task, "row": i}) for i in range(n)
    )


def test_replay_share_and_determinism():
    stream = replay_mix(
        index_cuts("new", 50), {"a": index_cuts("a", 10), "b": index_cuts("b", 10)}, ReplayConfig(share=0.25)
    )
    tasks = [cut.custom["task"] for cut in itertools.islice(stream, 2000)]
    old_share = sum(t != "new" for t in tasks) / len(tasks)
    assert old_share == pytest.approx(0.25, abs=0.04)
    assert {"a", "b"} <= set(tasks)
    again = replay_mix(
        index_cuts("new", 50), {"a": index_cuts("a", 10), "b": index_cuts("b", 10)}, ReplayConfig(share=0.25)
    )
    assert [c.id for c in itertools.islice(again, 100)] == [c.id for c in itertools.islice(stream, 100)]
    only_new = replay_mix(index_cuts("new", 5), {}, ReplayConfig(share=0.0))
    assert {c.custom["task"] for c in itertools.islice(only_new, 20)} == {"new"}


def test_replay_config_errors():
    with pytest.raises(ValidationError):
        ReplayConfig(share=1.0)
    with pytest.raises(UserError, match="no old corpora"):
        replay_mix(index_cuts("new", 5), {}, ReplayConfig(share=0.5))


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh())
        self.heads = nn.ModuleDict({"old": nn.Linear(16, 1), "new": nn.Linear(16, 1)})


def test_replay_keeps_the_old_task_near_its_loss():
    """Train task 'old', then fine-tune on task 'new' (which needs different shared features) with and without
    replay: without, the old task's loss rises many-fold; with 30 % replay it stays near where it was."""
    gen = torch.Generator().manual_seed(0)
    x = {"old": torch.randn(256, 6, generator=gen), "new": torch.randn(256, 6, generator=gen)}
    y = {
        "old": torch.sin(2 * x["old"][:, 0]) + x["old"][:, 1] ** 2,
        "new": torch.cos(3 * x["new"][:, 2]) * x["new"][:, 3],
    }

    def train(model, stream, steps, batch=32):
        balancer = StaticBalancer(
            ["old", "new"],
            list(model.shared.parameters()),
            {t: list(h.parameters()) for t, h in model.heads.items()},
            BalancerConfig(weights={"old": 1.0, "new": 1.0}, telemetry_every=0),
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        cuts = iter(stream)
        for _ in range(steps):
            rows = {"old": [], "new": []}
            for cut in itertools.islice(cuts, batch):
                rows[cut.custom["task"]].append(cut.custom["row"])
            losses = {}
            for task, index in rows.items():
                if index:
                    pred = model.heads[task](model.shared(x[task][index])).squeeze(-1)
                    losses[task] = (pred - y[task][index]).pow(2).mean()
            balancer.backward(losses)
            balancer.before_step()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def old_loss(model):
        with torch.no_grad():
            return float((model.heads["old"](model.shared(x["old"])).squeeze(-1) - y["old"]).pow(2).mean())

    base = TwoHeads()
    train(base, index_cuts("old", 256).repeat(), 400)
    learned = old_loss(base)

    results = {}
    for share in (0.0, 0.3):
        model = TwoHeads()
        model.load_state_dict(base.state_dict())
        train(model, replay_mix(index_cuts("new", 256), index_cuts("old", 256), ReplayConfig(share=share)), 300)
        results[share] = old_loss(model)
    assert results[0.0] > 4 * learned  # forgotten
    assert results[0.3] < 1.5 * learned + 0.02  # kept

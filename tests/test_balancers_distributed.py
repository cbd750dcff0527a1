"""Two ranks (gloo on CPU): gradient methods see the global per-task gradients, loss-driven state stays equal."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from balancer_toys import grads, make, toy_data

TASKS = ["asr_ctc", "intent", "lid"]
# name, options, whether rank 1 lacks the 'lid' labels
SCENARIOS = [("pcgrad", {}, True), ("dwa", {"window": 1}, True), ("loss_norm", {}, True), ("pcgrad", {}, False)]


def average_gradients(model: torch.nn.Module, world: int) -> None:
    """What the trainer does after before_step: one mean over ranks per gradient."""
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def worker(rank: int, world: int, port: int, out: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for index, (name, options, drop_lid) in enumerate(SCENARIOS):
            model, balancer = make(name, TASKS, **options)
            for step in range(3):
                model.zero_grad(set_to_none=True)
                x, ys = toy_data(TASKS, n=16, seed=step)
                rows = torch.arange(16).chunk(world)[rank]
                local = {t: y[rows] for t, y in ys.items() if not (drop_lid and rank == 1 and t == "lid")}
                losses, enc = model(x[rows], local)
                balancer.backward(losses, shared_repr=enc)
                balancer.before_step()
            average_gradients(model, world)
            torch.save({"grads": grads(model), "state": balancer.state_dict()}, f"{out}/{index}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, str(out)), nprocs=2, join=True)
    return [[torch.load(out / f"{i}-rank{r}.pt", weights_only=False) for r in range(2)] for i in range(len(SCENARIOS))]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_state_and_gradients_are_identical_on_every_rank(ranks, index):
    first, second = ranks[index]
    for key, value in first["grads"].items():
        torch.testing.assert_close(second["grads"][key], value)
    for key, value in first["state"].items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(second["state"][key], value, equal_nan=True)
        else:
            assert second["state"][key] == value


def test_pcgrad_over_two_ranks_equals_one_process_on_the_whole_batch(ranks):
    """sync_task_grads averages the per-task gradients before projecting: the same update as one big batch."""
    distributed = ranks[3][0]["grads"]
    model, balancer = make("pcgrad", TASKS)
    for step in range(3):
        model.zero_grad(set_to_none=True)
        x, ys = toy_data(TASKS, n=16, seed=step)
        losses, enc = model(x, ys)
        balancer.backward(losses, shared_repr=enc)
        balancer.before_step()
    for key, value in grads(model).items():
        expected = torch.zeros_like(distributed[key]) if value is None else value
        torch.testing.assert_close(distributed[key], expected, rtol=1e-5, atol=1e-6)

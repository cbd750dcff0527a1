"""Small models and data for the balancer tests: a shared trunk with one linear head per task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from mtspeech.train.balancers import Balancer, BalancerConfig, build_balancer


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models run ~10x faster on one thread when the CPU is shared (no thread-pool contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ToyMultiTask(nn.Module):
    """``enc = W2 tanh(W1 x)`` shared; task t predicts ``y_t`` from ``enc`` with its own linear head (MSE)."""

    def __init__(self, tasks: list[str], d_in: int = 4, d_hidden: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Linear(d_in, d_hidden)
        self.last = nn.Linear(d_hidden, d_hidden)
        self.heads = nn.ModuleDict({t: nn.Linear(d_hidden, 1) for t in tasks})
        self.unused_shared = nn.Parameter(torch.zeros(3))  # shared but reached by no task

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(torch.tanh(self.trunk(x)))

    def forward(self, x: torch.Tensor, ys: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        enc = self.encode(x)
        losses = {t: (self.heads[t](enc).squeeze(-1) - y).pow(2).mean() for t, y in ys.items()}
        return losses, enc

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.last.parameters(), self.unused_shared]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {t: list(h.parameters()) for t, h in self.heads.items()}

    def last_shared_layer(self) -> nn.Module:
        return self.last


def toy_data(
    tasks: list[str], n: int = 16, d_in: int = 4, seed: int = 1
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Inputs and one regression target per task (different linear functions, so the tasks conflict)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen)
    ys = {t: x @ torch.randn(d_in, generator=gen) * (1 + i) for i, t in enumerate(tasks)}
    return x, ys


def make(name: str, tasks: list[str], seed: int = 0, **options) -> tuple[ToyMultiTask, Balancer]:
    model = ToyMultiTask(tasks, seed=seed)
    balancer = build_balancer(BalancerConfig(name=name, **options), model, tasks)
    return model, balancer


def grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}

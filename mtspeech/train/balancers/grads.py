"""Gradient plumbing shared by the balancers: flat per-task gradient buffers and per-task backward passes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FlatLayout:
    """Where each parameter lives in a flat float32 vector, so a task's gradient over many parameters is one row
    of a ``(tasks, P)`` matrix (Gramians, projections and sums are then single matrix operations)."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        self.params = list(params)
        self.numels = [p.numel() for p in self.params]
        self.size = sum(self.numels)
        self.device = self.params[0].device if self.params else torch.device("cpu")

    def zeros(self, rows: int) -> torch.Tensor:
        return torch.zeros(rows, self.size, dtype=torch.float32, device=self.device)

    def flatten(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """One flat float32 vector; a parameter the loss does not reach (None) contributes zeros."""
        parts = [
            torch.zeros(n, dtype=torch.float32, device=self.device) if g is None else g.reshape(-1).float()
            for g, n in zip(grads, self.numels, strict=True)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, device=self.device)

    def add_to_grad(self, flat: torch.Tensor, reached: Sequence[bool] | None = None) -> None:
        """``p.grad += flat[slice of p]`` for every parameter (creating ``.grad`` where it is None).

        Parameters that no task reached (``reached[i]`` False) keep ``.grad`` None, like a plain backward."""
        offset = 0
        for i, (p, n) in enumerate(zip(self.params, self.numels, strict=True)):
            if reached is None or reached[i]:
                piece = flat[offset : offset + n].view_as(p).to(p.dtype)
                if p.grad is None:
                    p.grad = piece.clone()
                else:
                    p.grad.add_(piece)
            offset += n


def grads_of(
    output: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    *,
    retain_graph: bool = True,
    grad_output: torch.Tensor | None = None,
) -> list[torch.Tensor | None]:
    """``d output / d inputs`` without touching ``.grad``; None where an input is not reached."""
    if not inputs:
        return []
    return list(
        torch.autograd.grad(
            output,
            list(inputs),
            grad_outputs=grad_output,
            retain_graph=retain_graph,
            allow_unused=True,
            materialize_grads=False,
        )
    )


def accumulate_grads(params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None], scale: float = 1.0) -> None:
    """``p.grad += scale * g`` for every reached parameter."""
    for p, g in zip(params, grads, strict=True):
        if g is None:
            continue
        g = g if scale == 1.0 else g * scale
        if p.grad is None:
            p.grad = g.detach().clone() if scale == 1.0 else g.detach()
        else:
            p.grad.add_(g)


def split_backward(
    losses: dict[str, torch.Tensor],
    shared_repr: torch.Tensor,
    head_params: Sequence[nn.Parameter],
    head_scales: dict[str, float],
) -> dict[str, torch.Tensor]:
    """Backpropagate each loss through its head only, stopping at the shared representation.

    Returns ``d loss_t / d shared_repr`` per task (unweighted) and accumulates ``head_scales[t] * d loss_t / d
    head`` into the head parameters' ``.grad``. Heads are traversed once each, as in a plain backward, and the
    per-task representation gradients come for free; the caller then runs the encoder backward once (or once per
    task) with whatever combination of them it wants. Requires that shared parameters reach the losses only
    through ``shared_repr`` (true for MultiTaskModel: every head reads the encoder output)."""
    repr_grads: dict[str, torch.Tensor] = {}
    inputs = [shared_repr, *head_params]
    for task, loss in losses.items():
        grads = grads_of(loss, inputs, retain_graph=True)
        repr_grad = grads[0] if grads[0] is not None else torch.zeros_like(shared_repr)
        repr_grads[task] = repr_grad
        accumulate_grads(head_params, grads[1:], head_scales[task])
    return repr_grads

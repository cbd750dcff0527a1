"""GradNorm (Chen et al., 2018): learn task weights so that the tasks train at similar rates.

With ``G_t = |grad_W (w_t L_t)|`` on the last shared layer ``W``, ``Gbar`` their mean and the relative inverse
training rate ``r_t = (L_t / L_t(0)) / mean_j (L_j / L_j(0))``, the weights minimise

    ``L_grad = sum_t | G_t - Gbar * r_t^alpha |``    (the target is a constant: no gradient through it)

by the trainer's optimizer (the weights are :meth:`extra_parameters`), and are renormalised to sum to the number
of tasks at the start of every step. The model itself is trained on ``sum_t w_t L_t`` with the weights held
fixed. ``G_t = w_t |grad_W L_t|``, so ``dL_grad / dw_t`` needs only the per-task norms: no second-order backward.

Cost: one extra backward through ``W`` per task (with ``shared_repr``, heads are still traversed once).
``update_every: k`` measures and updates on every k-th step only; the other steps cost a plain backward.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mtspeech.train.balancers.base import Balancer, LossStats, unique_parameters
from mtspeech.train.balancers.grads import grads_of, split_backward


def _norm(grads: list[torch.Tensor | None]) -> torch.Tensor:
    squares = [g.float().pow(2).sum() for g in grads if g is not None]
    return torch.stack(squares).sum().sqrt() if squares else torch.zeros(())


class GradNormBalancer(Balancer):
    """See the module docstring. ``L_t(0)`` is the task's mean loss over the first step it appears in."""

    name = "gradnorm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.last_shared_layer is None:
            raise ValueError("gradnorm needs last_shared_layer (model.last_shared_layer())")
        self.layer_params = unique_parameters(self.last_shared_layer.parameters())
        shared_ids = {id(p) for p in self.shared}
        if not self.layer_params or any(id(p) not in shared_ids for p in self.layer_params):
            raise ValueError("gradnorm: last_shared_layer must be a trainable part of the shared parameters")
        device = self.shared[0].device
        self.task_weights = nn.Parameter(torch.ones(len(self.tasks), device=device))
        self.initial_losses = torch.full((len(self.tasks),), math.nan, dtype=torch.float64)
        self.stats = LossStats(self.tasks)
        self._normalised_at = -1

    def extra_parameters(self) -> list[nn.Parameter]:
        return [self.task_weights]

    def renormalise(self) -> None:
        """Floor the weights at ``min_weight`` and rescale them to sum to the number of tasks."""
        with torch.no_grad():
            self.task_weights.clamp_(min=self.config.min_weight)
            self.task_weights.mul_(len(self.tasks) / self.task_weights.sum())

    def _backward(self, losses, shared_repr, loss_scale):
        if self._normalised_at != self.step:  # the optimizer moved the weights since the last step
            self.renormalise()
            self._normalised_at = self.step
        self.stats.add(losses)
        names = list(losses)
        index = [self.tasks.index(t) for t in names]
        fixed = self.task_weights.detach()
        values = fixed.cpu().tolist()  # one host sync
        weights = {t: values[i] for t, i in zip(names, index, strict=True)}
        scales = {t: w * loss_scale for t, w in weights.items()}
        if self.step % self.config.update_every:  # not a measuring step: the plain weighted backward
            (sum(losses[t] * scales[t] for t in names)).backward()
            return weights

        norms = []  # |grad_W (loss_scale * L_t)|, unweighted
        if shared_repr is not None and shared_repr.requires_grad:
            repr_grads = split_backward(losses, shared_repr, self.head_params, scales)
            for task in names:
                grad = repr_grads[task] * loss_scale
                norms.append(_norm(grads_of(shared_repr, self.layer_params, grad_output=grad, retain_graph=True)))
            combined = sum(repr_grads[t] * scales[t] for t in names)
            shared_repr.backward(combined)
        else:
            for task in names:
                norms.append(_norm(grads_of(losses[task] * loss_scale, self.layer_params, retain_graph=True)))
            (sum(losses[t] * scales[t] for t in names)).backward()

        self._weight_gradient(names, index, torch.stack(norms).to(fixed.device), losses)
        return weights

    def _weight_gradient(
        self, names: list[str], index: list[int], norms: torch.Tensor, losses: dict[str, torch.Tensor]
    ) -> None:
        """Accumulate ``d L_grad / d w`` into ``task_weights.grad``."""
        current = torch.tensor([float(losses[t].detach()) for t in names], dtype=torch.float64)
        initial = self.initial_losses[index]
        initial = torch.where(torch.isnan(initial), current, initial)  # first sighting: rate 1
        relative = current / initial.clamp(min=1e-12)
        if not torch.isfinite(relative).all() or len(names) < 2:
            return  # one task has nothing to balance against; a non-finite loss is skipped by the scaler
        rates = (relative / relative.mean()).to(norms.device, norms.dtype)
        weighted = self.task_weights[index] * norms  # G_t, differentiable in w only
        target = weighted.detach().mean() * rates.pow(self.config.alpha)
        (weighted - target).abs().sum().backward()

    def _before_step(self) -> None:
        means = self.stats.means()
        fresh = ~torch.isnan(means) & torch.isnan(self.initial_losses)
        self.initial_losses[fresh] = means[fresh]

    def _state(self):
        return {
            "task_weights": self.task_weights.detach().cpu().clone(),
            "initial_losses": self.initial_losses.clone(),
            "normalised_at": self._normalised_at,
        }

    def _load_state(self, state):
        with torch.no_grad():
            self.task_weights.copy_(state["task_weights"])
        self.initial_losses = state["initial_losses"].clone().double()
        self._normalised_at = int(state["normalised_at"])

"""Gradient methods: PCGrad, CAGrad, MGDA, UPGrad, IMTL-G, DualProj.

Each keeps one gradient per task on the shared parameters (a row of the ``(T, P)`` matrix ``J``), accumulated
over the micro-batches of an optimizer step, and combines them once in :meth:`before_step` as ``w @ J`` with
weights from the Gramian ``J J^T`` (:mod:`mtspeech.train.balancers.gramian`). Task-specific (head) parameters are
updated by their own loss only: heads never see another task's gradient, so there is nothing to combine there.

Cost: one encoder backward per task present. When the trainer passes ``shared_repr`` (the encoder output), each
head is backpropagated once to get ``d L_t / d enc`` and only the encoder part is repeated per task.

``representation: true`` is the cheap approximation: the rule runs on the per-task gradients of the encoder
output ``d L_t / d enc`` (free, from the heads' backward) and the combined gradient goes through the encoder
once, so the cost is that of a plain backward. It combines per micro-batch (the representation differs between
micro-batches), and it is what MGDA-UB (Sener & Koltun, 2018) does for MGDA.
"""

from __future__ import annotations

from typing import Any

import torch

from mtspeech.train.balancers.base import Balancer, mean_over_ranks, sum_over_ranks
from mtspeech.train.balancers.grads import accumulate_grads, grads_of, split_backward
from mtspeech.train.balancers.gramian import TINY, make_weighting


class JacobianBalancer(Balancer):
    """Per-task gradients combined by the rule named ``config.name``; see the module docstring."""

    name = "pcgrad"  # replaced per instance by the configured method

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = self.config.name
        self.rule = make_weighting(self.name, cagrad_c=self.config.cagrad_c)
        self.generator = torch.Generator()
        self.generator.manual_seed(self.config.seed)
        self.representation = self.config.representation
        self.keeps_task_gradients = not self.representation
        self.rows: torch.Tensor | None = None  # (T, P), allocated on first use
        self.row_factor = [0.0] * len(self.tasks)  # loss scale x prior carried by each row, summed over micro-batches
        self.reached = torch.zeros(len(self.shared), dtype=torch.bool)
        self._synced = False

    # ------------------------------------------------------------------------------------------- backward
    def _backward(self, losses, shared_repr, loss_scale):
        scales = {t: self.priors[t] * loss_scale for t in losses}
        if self.representation:
            return self._backward_representation(losses, shared_repr, scales)
        if self.rows is None:
            self.rows = self._layout.zeros(len(self.tasks))
        if shared_repr is not None and shared_repr.requires_grad:
            repr_grads = split_backward(losses, shared_repr, self.head_params, scales)
            last = len(repr_grads) - 1
            for k, (task, grad) in enumerate(repr_grads.items()):
                grads = grads_of(shared_repr, self.shared, grad_output=grad * scales[task], retain_graph=k < last)
                self._add_row(task, grads, scales[task])
        else:
            for task, loss in losses.items():
                self._add_row(task, grads_of(loss * scales[task], self.shared, retain_graph=True), scales[task])
            total = sum(loss * scales[t] for t, loss in losses.items())
            accumulate_grads(self.head_params, grads_of(total, self.head_params, retain_graph=False))
        return {t: self.priors[t] for t in losses}

    def _add_row(self, task: str, grads: list[torch.Tensor | None], factor: float) -> None:
        i = self.tasks.index(task)
        self.rows[i] += self._layout.flatten(grads)
        self.row_factor[i] += factor
        self.reached |= torch.tensor([g is not None for g in grads], dtype=torch.bool)

    def _backward_representation(self, losses, shared_repr, scales):
        if shared_repr is None:
            raise ValueError(f"balancer {self.name!r} with representation: true needs backward(..., shared_repr=enc)")
        repr_grads = split_backward(losses, shared_repr, self.head_params, scales)
        names = list(repr_grads)
        matrix = torch.stack([repr_grads[t].reshape(-1).float() * scales[t] for t in names])
        weights = self._weights(matrix)
        combined = (weights.to(matrix.dtype) @ matrix).view_as(shared_repr)
        shared_repr.backward(combined.to(shared_repr.dtype))
        return {t: self.priors[t] * float(weights[k]) for k, t in enumerate(names)}

    def _weights(self, matrix: torch.Tensor) -> torch.Tensor:
        """Sum-scale weights for the rows of ``matrix``; rows that are all zero get weight 0 and no say."""
        gramian = (matrix @ matrix.T).double().cpu()
        alive = [i for i in range(matrix.shape[0]) if gramian[i, i] > TINY]
        weights = torch.zeros(matrix.shape[0], dtype=torch.float64)
        if len(alive) == 1:
            weights[alive[0]] = 1.0
        elif alive:
            weights[alive] = self.rule(gramian[alive][:, alive], self.generator).double()
        return weights.to(matrix.device)

    # ----------------------------------------------------------------------------------------- before_step
    def _sync(self) -> None:
        """Average the per-task gradients over ranks once per step, so the rule sees the global gradients."""
        if self._synced or self.representation:
            return
        if self.rows is None:  # no loss on this rank this step: join the all-reduce with zeros
            self.rows = self._layout.zeros(len(self.tasks))
        if self.config.sync_task_grads:
            self.rows = mean_over_ranks(self.rows)
            self.reached = sum_over_ranks(self.reached.float()) > 0
        self._synced = True

    def _task_gradient_rows(self):
        self._sync()
        return self.rows, list(self.row_factor)

    def _before_step(self) -> None:
        if self.representation:
            return
        self._sync()
        present = [i for i in range(len(self.tasks)) if bool(self.rows[i].any())]
        if present:
            matrix = self.rows[present]
            weights = self._weights(matrix)
            self._layout.add_to_grad(weights.to(matrix.dtype) @ matrix, self.reached.tolist())
            self.effective_weights = {
                self.tasks[i]: self.priors[self.tasks[i]] * float(weights[k]) for k, i in enumerate(present)
            }
        self.rows.zero_()
        self.row_factor = [0.0] * len(self.tasks)
        self.reached.zero_()
        self._synced = False

    # ------------------------------------------------------------------------------------------------ state
    def _state(self):
        return {"generator": self.generator.get_state()}

    def _load_state(self, state):
        self.generator.set_state(state["generator"])

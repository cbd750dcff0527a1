"""The Balancer interface: how the trainer turns a dict of task losses into parameter gradients.

Call pattern, per optimizer step::

    for micro_batch in step:
        out = model(batch)
        balancer.backward(out.losses, shared_repr=out.enc, loss_scale=scale / accumulation)  # instead of .backward()
    balancer.before_step()        # finalises .grad (gradient methods combine the per-task gradients here)
    (all-reduce .grad over ranks) -> unscale -> clip -> optimizer.step() -> zero_grad()

Every method is one subclass: loss-weighting methods (static, loss_norm, dwa, uncertainty, gradnorm) scale the
losses and backpropagate their weighted sum; gradient methods (pcgrad, cagrad, mgda, ...) keep one gradient per
task on the shared parameters and combine them once per step. Telemetry (cosines between task gradients, their
norms, the effective weights) is gathered by this base class every ``telemetry_every`` steps, see
:mod:`mtspeech.train.telemetry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import nn

from mtspeech.errors import UserError
from mtspeech.train.balancers.config import BalancerConfig
from mtspeech.train.balancers.grads import FlatLayout, grads_of
from mtspeech.train.telemetry import telemetry_record


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_copy(tensor: torch.Tensor) -> torch.Tensor:
    """Summed copy of ``tensor`` over ranks, on ``tensor``'s device (NCCL reduces CUDA tensors only)."""
    reduced = tensor.detach().clone()
    if torch.distributed.get_backend() == "nccl" and not reduced.is_cuda:
        on_gpu = reduced.to(torch.device("cuda", torch.cuda.current_device()))
        torch.distributed.all_reduce(on_gpu)
        return on_gpu.to(tensor.device)
    torch.distributed.all_reduce(reduced)
    return reduced


def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all ranks (a copy); the tensor itself when torch.distributed is not initialised."""
    if not _distributed():
        return tensor
    return _all_reduce_copy(tensor) / torch.distributed.get_world_size()


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks (a copy); the tensor itself when torch.distributed is not initialised."""
    if not _distributed():
        return tensor
    return _all_reduce_copy(tensor)


def unique_parameters(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Trainable parameters in first-seen order, each once (a parameter may be listed under two tasks)."""
    seen: set[int] = set()
    unique = []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    return unique


class LossStats:
    """Per-task sums and counts of the loss values seen in one optimizer step, reduced over ranks on demand.

    Balancers whose state follows the loss values (DWA, loss_norm, GradNorm) update it from :meth:`means`, which
    all-reduces once per step so every rank keeps identical state. Non-finite values (fp16 overflow steps,
    which the GradScaler skips anyway) are left out so one bad step cannot poison a running mean."""

    def __init__(self, tasks: list[str]) -> None:
        self.tasks = tasks
        self.totals: torch.Tensor | None = None  # (2, T): sums and counts, on the losses' device (no host sync)

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for i, task in enumerate(self.tasks):
            if task in losses:
                value = losses[task].detach().double()
                if self.totals is None:
                    self.totals = torch.zeros(2, len(self.tasks), dtype=torch.float64, device=value.device)
                finite = torch.isfinite(value)
                self.totals[0, i] += torch.where(finite, value, torch.zeros_like(value))
                self.totals[1, i] += finite.double()

    def means(self) -> torch.Tensor:
        """Mean loss per task over the step and all ranks (CPU float64); NaN for tasks not seen anywhere. Resets
        the sums. Every rank must call it (it all-reduces), also one that saw no loss."""
        totals = self.totals if self.totals is not None else torch.zeros(2, len(self.tasks), dtype=torch.float64)
        sums, counts = sum_over_ranks(totals).cpu()
        self.totals = None
        return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))


class Balancer(ABC):
    """Combines task losses into gradients; see the module docstring for the call pattern."""

    name: ClassVar[str]

    def __init__(
        self,
        tasks: list[str],
        shared: list[nn.Parameter],
        task_params: dict[str, list[nn.Parameter]],
        config: BalancerConfig,
        last_shared_layer: nn.Module | None = None,
    ) -> None:
        if not tasks:
            raise ValueError("a balancer needs at least one task")
        for key in ("weights", "loss_kinds"):
            unknown = sorted(set(getattr(config, key)) - set(tasks))
            if unknown:
                raise UserError(
                    f"balancer.{key} names task(s) {', '.join(map(repr, unknown))} that the model does not train; "
                    f"tasks: {', '.join(tasks)}"
                )
        self.tasks = list(tasks)
        self.config = config
        self.shared = unique_parameters(shared)
        self.head_params = unique_parameters(p for t in task_params for p in task_params[t])
        shared_ids = {id(p) for p in self.shared}
        overlap = [p for p in self.head_params if id(p) in shared_ids]
        if overlap:
            raise ValueError(f"{len(overlap)} parameter(s) are both shared and task-specific")
        self.last_shared_layer = last_shared_layer
        self.priors = config.prior_weights(self.tasks)
        self.step = 0  # optimizer steps finished (before_step calls)
        self.effective_weights: dict[str, float] = {}  # last weights applied, for logging
        self.last_telemetry: dict[str, Any] | None = None
        self._layout = FlatLayout(self.shared)
        self._telemetry_rows: torch.Tensor | None = None  # (T, P) per-task shared gradients on telemetry steps
        self._telemetry_scale = 0.0
        self.keeps_task_gradients = False  # gradient methods set True when they hold per-task shared gradients

    # ----------------------------------------------------------------------------------------------- interface
    def extra_parameters(self) -> list[nn.Parameter]:
        """Learned balancing parameters the trainer must add to the optimizer (none by default)."""
        return []

    def backward(
        self, losses: dict[str, torch.Tensor], *, shared_repr: torch.Tensor | None = None, loss_scale: float = 1.0
    ) -> dict[str, float]:
        """Accumulate this micro-batch's gradients into ``.grad``; returns the weights applied to its losses.

        ``losses`` holds only the tasks present in the micro-batch. ``shared_repr`` is the encoder output the
        losses were computed from (needed by ``representation`` mode, used by GradNorm and gradient methods to
        backpropagate through the heads once). ``loss_scale`` = 1/accumulation steps x the fp16 loss scale."""
        unknown = sorted(set(losses) - set(self.tasks))
        if unknown:
            raise ValueError(f"losses for task(s) {unknown} that the balancer was not built for ({self.tasks})")
        losses = {t: losses[t] for t in self.tasks if t in losses and losses[t].requires_grad}
        if not losses:
            return {}
        if self.telemetry_due and not self.keeps_task_gradients:
            self._collect_telemetry_gradients(losses, loss_scale)
        weights = self._backward(losses, shared_repr, loss_scale)
        self.effective_weights.update(weights)
        return weights

    def before_step(self) -> None:
        """Finalise ``.grad`` for this optimizer step (after all micro-batches, before clipping / step)."""
        gramian = self._telemetry_gramian() if self.telemetry_due else None
        self._before_step()
        if gramian is not None:
            self.last_telemetry = telemetry_record(self.step, *gramian, weights=self.effective_weights)
        self.step += 1

    def pop_telemetry(self) -> dict[str, Any] | None:
        """The telemetry record of the step that just finished (once), or None; the trainer logs it as JSONL."""
        record, self.last_telemetry = self.last_telemetry, None
        return record

    @property
    def telemetry_due(self) -> bool:
        """Whether the current step gathers gradient telemetry."""
        every = self.config.telemetry_every
        return every > 0 and self.step % every == 0

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": list(self.tasks), "step": self.step, **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise UserError(
                f"checkpoint was trained with balancer {state.get('name')!r}, the config says {self.name!r}"
            )
        if state.get("tasks") != self.tasks:
            raise UserError(f"checkpoint balancer tasks {state.get('tasks')} differ from this model's {self.tasks}")
        self.step = int(state["step"])
        self._load_state(state)

    # ------------------------------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _backward(
        self, losses: dict[str, torch.Tensor], shared_repr: torch.Tensor | None, loss_scale: float
    ) -> dict[str, float]:
        """Backpropagate one micro-batch (``losses`` non-empty, known tasks only); return the applied weights."""

    def _before_step(self) -> None:  # noqa: B027 (optional hook)
        """Per-step finalisation; loss-weighting methods update their state here."""

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`_state` saved."""

    def _task_gradient_rows(self) -> tuple[torch.Tensor, list[float]] | None:
        """When ``keeps_task_gradients``: this step's (T, P) per-task shared gradients (already averaged over
        ranks) and, per task, the factor each row carries (loss scales x prior weight); called before
        :meth:`_before_step` combines them."""
        return None

    # ----------------------------------------------------------------------------------------------- telemetry
    def _collect_telemetry_gradients(self, losses: dict[str, torch.Tensor], loss_scale: float) -> None:
        """Extra per-task backward passes on telemetry steps (the graph is kept for the real backward)."""
        if self._telemetry_rows is None:
            self._telemetry_rows = self._layout.zeros(len(self.tasks))
        for task, loss in losses.items():
            grads = grads_of(loss * loss_scale, self.shared, retain_graph=True)
            self._telemetry_rows[self.tasks.index(task)] += self._layout.flatten(grads)
        self._telemetry_scale += loss_scale

    def _telemetry_gramian(self) -> tuple[list[str], torch.Tensor, list[float]] | None:
        """Gramian of the per-task gradients of this step (tasks with a gradient only) and the row factors."""
        kept = self._task_gradient_rows() if self.keeps_task_gradients else None
        if kept is not None:
            rows, factors = kept
        else:
            # Every rank joins the all-reduce, also one that saw no loss this step (rows of zeros).
            rows = self._telemetry_rows if self._telemetry_rows is not None else self._layout.zeros(len(self.tasks))
            rows = mean_over_ranks(rows)
            factors = [self._telemetry_scale] * len(self.tasks)
        self._telemetry_rows, self._telemetry_scale = None, 0.0
        present = [i for i in range(len(self.tasks)) if bool(rows[i].any())]
        if not present:
            return None
        sub = rows[present].double()
        return [self.tasks[i] for i in present], sub @ sub.T, [factors[i] for i in present]

"""Loss-weighting balancers: one backward of a weighted loss sum per micro-batch.

* ``static``: fixed weights.
* ``loss_norm``: each loss divided by its running mean, so every task contributes on the same scale.
* ``dwa``: Dynamic Weight Averaging (Liu et al., 2019): tasks whose loss fell slowly over the last window get
  more weight.
* ``uncertainty``: homoscedastic-uncertainty weighting (Kendall et al., 2018) with learned log-variances.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mtspeech.train.balancers.base import Balancer, LossStats


class StaticBalancer(Balancer):
    """``sum_t w_t L_t`` with fixed ``weights`` (default 1.0 for ASR tasks, 0.5 for the others)."""

    name = "static"

    def loss_weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Weights for this micro-batch's losses (fixed within an optimizer step)."""
        return {t: self.priors[t] for t in losses}

    def _backward(self, losses, shared_repr, loss_scale):
        weights = self.loss_weights(losses)
        total = sum(weights[t] * loss for t, loss in losses.items())
        (total * loss_scale).backward()
        return weights


class LossNormBalancer(StaticBalancer):
    """``w_t = prior_t / EMA(L_t)``: every loss is measured relative to its own typical size.

    The running mean is updated once per optimizer step from the step's mean loss (all ranks agree), so the
    weights are fixed within a step. Before a task has one, its first loss value of the step stands in."""

    name = "loss_norm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ema = torch.full((len(self.tasks),), math.nan, dtype=torch.float64)
        self.stats = LossStats(self.tasks)
        self._stand_in: dict[str, float] = {}  # first loss value this step of tasks without a running mean

    def loss_weights(self, losses):
        self.stats.add(losses)
        weights = {}
        for task, loss in losses.items():
            scale = float(self.ema[self.tasks.index(task)])
            if math.isnan(scale):
                scale = self._stand_in.setdefault(task, float(loss.detach()))
            weights[task] = self.priors[task] / max(abs(scale), 1e-8)
        return weights

    def _before_step(self) -> None:
        means = self.stats.means()
        self._stand_in.clear()
        decay = self.config.ema_decay
        seen = ~torch.isnan(means)
        fresh = seen & torch.isnan(self.ema)
        self.ema[fresh] = means[fresh]
        update = seen & ~fresh
        self.ema[update] = decay * self.ema[update] + (1 - decay) * means[update]

    def _state(self):
        return {"ema": self.ema.clone()}

    def _load_state(self, state):
        self.ema = state["ema"].clone().double()


class DWABalancer(StaticBalancer):
    """Dynamic Weight Averaging: ``w_t = T * softmax_t(r_t / temperature)`` with ``r_t = Lbar_t(k-1) / Lbar_t(k-2)``,
    the ratio of the task's mean loss over the last two windows of ``window`` optimizer steps.

    Equal weights until two windows of history exist (warm start). A task without history in both windows keeps
    weight 1 and the softmax is shared by the others, so the weights always sum to the number of tasks."""

    name = "dwa"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        n = len(self.tasks)
        self.stats = LossStats(self.tasks)
        self.window_sum = torch.zeros(n, dtype=torch.float64)
        self.window_count = torch.zeros(n, dtype=torch.float64)
        self.history = torch.full((2, n), math.nan, dtype=torch.float64)  # [k-2, k-1] window means
        self.dwa_weights = torch.ones(n, dtype=torch.float64)

    @staticmethod
    def weights_from_history(previous: torch.Tensor, last: torch.Tensor, temperature: float) -> torch.Tensor:
        """DWA weights from the window means ``previous`` (k-2) and ``last`` (k-1); NaN = no history."""
        weights = torch.ones_like(last)
        known = ~torch.isnan(previous) & ~torch.isnan(last) & (previous > 0)
        count = int(known.sum())
        if count:
            ratios = last[known] / previous[known]
            weights[known] = count * torch.softmax(ratios / temperature, dim=0)
        return weights

    def loss_weights(self, losses):
        self.stats.add(losses)
        return {t: self.priors[t] * float(self.dwa_weights[self.tasks.index(t)]) for t in losses}

    def _before_step(self) -> None:
        means = self.stats.means()
        seen = ~torch.isnan(means)
        self.window_sum[seen] += means[seen]
        self.window_count[seen] += 1
        if (self.step + 1) % self.config.window == 0:  # window complete: shift the history, new weights
            window_mean = torch.where(
                self.window_count > 0, self.window_sum / self.window_count.clamp(min=1), torch.nan
            )
            self.history = torch.stack([self.history[1], window_mean])
            self.window_sum.zero_()
            self.window_count.zero_()
            self.dwa_weights = self.weights_from_history(self.history[0], self.history[1], self.config.temperature)

    def _state(self):
        return {
            "window_sum": self.window_sum.clone(),
            "window_count": self.window_count.clone(),
            "history": self.history.clone(),
            "dwa_weights": self.dwa_weights.clone(),
        }

    def _load_state(self, state):
        for key in ("window_sum", "window_count", "history", "dwa_weights"):
            setattr(self, key, state[key].clone().double())


class UncertaintyBalancer(Balancer):
    """Kendall et al. (2018): learn ``s_t = log sigma_t^2`` per task and minimise

    ``sum_t c_t exp(-s_t) L_t + s_t / 2`` with ``c_t = 1`` (classification, the default) or ``1/2`` (regression).

    The regulariser ``s_t / 2`` would run to minus infinity as a loss approaches zero, so ``s_t`` is kept in
    ``[log_var_min, log_var_max]``: projected back into the interval at the start of each step (after the
    optimizer moved it), which bounds every weight by ``exp(-log_var_min)``."""

    name = "uncertainty"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        device = self.shared[0].device if self.shared else torch.device("cpu")
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(self.config.log_var_init), device=device))
        kinds = self.config.loss_kinds
        self.factors = [0.5 if kinds.get(t, "classification") == "regression" else 1.0 for t in self.tasks]

    def extra_parameters(self) -> list[nn.Parameter]:
        return [self.log_vars]

    def objective(self, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted loss plus regulariser, and the effective weight of each loss."""
        total = self.log_vars.new_zeros(())
        values = self.log_vars.detach().cpu().tolist()  # one host sync for the reported weights
        weights = {}
        for task, loss in losses.items():
            i = self.tasks.index(task)
            s = self.log_vars[i]
            total = total + self.priors[task] * self.factors[i] * torch.exp(-s) * loss + 0.5 * s
            weights[task] = self.priors[task] * self.factors[i] * math.exp(-values[i])
        return total, weights

    def _backward(self, losses, shared_repr, loss_scale):
        with torch.no_grad():
            self.log_vars.clamp_(self.config.log_var_min, self.config.log_var_max)
        total, weights = self.objective(losses)
        (total * loss_scale).backward()
        return weights

    def _state(self):
        return {"log_vars": self.log_vars.detach().cpu().clone()}

    def _load_state(self, state):
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])

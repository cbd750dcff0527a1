"""Task balancing: how the losses of many tasks become one update of the shared model (see docs/balancing.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mtspeech.train.balancers.base import Balancer, LossStats, mean_over_ranks, sum_over_ranks
from mtspeech.train.balancers.config import GRADIENT_METHODS, LOSS_WEIGHTING, METHODS, BalancerConfig
from mtspeech.train.balancers.gradnorm import GradNormBalancer
from mtspeech.train.balancers.jacobian import JacobianBalancer
from mtspeech.train.balancers.weighting import DWABalancer, LossNormBalancer, StaticBalancer, UncertaintyBalancer

BALANCERS: dict[str, type[Balancer]] = {
    "static": StaticBalancer,
    "loss_norm": LossNormBalancer,
    "dwa": DWABalancer,
    "uncertainty": UncertaintyBalancer,
    "gradnorm": GradNormBalancer,
    **{name: JacobianBalancer for name in GRADIENT_METHODS},
}


def build_balancer(config: BalancerConfig, model: Any, tasks: Sequence[str]) -> Balancer:
    """The balancer named by ``config.name`` for ``tasks`` of ``model`` (a MultiTaskModel or anything with
    ``shared_parameters()``, ``task_parameters()`` and ``last_shared_layer()``)."""
    cls = BALANCERS[config.name]
    task_params = model.task_parameters()
    last_layer = model.last_shared_layer() if config.name == "gradnorm" else None
    return cls(list(tasks), list(model.shared_parameters()), dict(task_params), config, last_layer)


__all__ = [
    "BALANCERS",
    "GRADIENT_METHODS",
    "LOSS_WEIGHTING",
    "METHODS",
    "Balancer",
    "BalancerConfig",
    "DWABalancer",
    "GradNormBalancer",
    "JacobianBalancer",
    "LossNormBalancer",
    "LossStats",
    "StaticBalancer",
    "UncertaintyBalancer",
    "build_balancer",
    "mean_over_ranks",
    "sum_over_ranks",
]

"""Gradient-combination rules as functions of the Gramian ``G = J J^T`` of the per-task gradients ``J`` (T x P).

Every rule here returns weights ``w`` (T,) and the update is ``w @ J``. Working on the T x T Gramian instead of
the T x P gradients keeps the rules cheap (P is millions) and lets the same rule run on parameter gradients or on
representation gradients. Weights are on the *sum* scale: with identical, non-conflicting gradients every rule
gives the plain sum of the task gradients, the update of ``static`` with weights 1.

PCGrad, CAGrad and the two-task MGDA are written here (each a few lines on the Gramian; CAGrad avoids the cvxpy
dependency of torchjd's version); MGDA for more tasks, UPGrad, IMTL-G and DualProj come from torchjd.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize

Weighting = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

TINY = 1e-20


def pcgrad_coefficients(gramian: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """PCGrad (Yu et al., 2020): the projected gradients as ``C @ J`` (row i is task i's projected gradient).

    Each task's gradient ``g_i'`` starts as ``g_i``; for every other task ``j`` in ``order`` (a permutation),
    if ``g_i' . g_j < 0`` the component along the *original* ``g_j`` is removed:
    ``g_i' -= (g_i' . g_j / |g_j|^2) g_j``. Tracking ``g_i' = C[i] @ J`` makes every dot product
    ``C[i] @ G[:, j]``, so no P-sized vector is touched."""
    g = gramian.double()
    m = g.shape[0]
    coefficients = torch.eye(m, dtype=torch.float64, device=g.device)
    for i in range(m):
        for j in order.tolist():
            if j == i or g[j, j] <= TINY:
                continue
            dot = coefficients[i] @ g[:, j]
            if dot < 0:
                coefficients[i, j] -= dot / g[j, j]
    return coefficients


def pcgrad_weights(gramian: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """PCGrad's update ``sum_i g_i'`` as weights over the original gradients."""
    return pcgrad_coefficients(gramian, order).sum(dim=0)


def mgda_two_task_weights(gramian: torch.Tensor) -> torch.Tensor:
    """Minimum-norm point of the segment between two gradients (Sener & Koltun, 2018, closed form), on the
    convex-combination scale (weights sum to 1)."""
    g = gramian.double()
    gap = g[0, 0] + g[1, 1] - 2 * g[0, 1]  # |g1 - g2|^2
    gamma = torch.tensor(0.5, dtype=torch.float64) if gap <= TINY else ((g[1, 1] - g[0, 1]) / gap).clamp(0.0, 1.0)
    return torch.stack([gamma, 1 - gamma])


def cagrad_weights(gramian: torch.Tensor, c: float) -> torch.Tensor:
    """CAGrad (Liu et al., 2021) on the mean scale: ``d = g0 + (sqrt(phi) / |g_w|) g_w``, ``g0`` the mean gradient,
    ``phi = c^2 |g0|^2`` and ``w`` minimising ``g_w . g0 + sqrt(phi) |g_w|`` over the simplex (the dual of
    maximising the worst task improvement within a ball of radius ``c |g0|`` around ``g0``). Solved with SLSQP:
    the problem has only T variables."""
    g = gramian.double().cpu()
    m = g.shape[0]
    scale = float(g.diagonal().mean())
    if scale <= TINY:
        return torch.full((m,), 1.0 / m, dtype=torch.float64)
    a = (g / scale).numpy()
    mean_dir = a.sum(axis=1) / m  # G 1 / m: g_i . g0
    sqrt_phi = c * float(np.sqrt(max(mean_dir.sum() / m, 0.0)))  # c |g0|

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        gw_norm = float(np.sqrt(max(w @ a @ w, TINY)))
        value = float(w @ mean_dir) + sqrt_phi * gw_norm
        grad = mean_dir + sqrt_phi * (a @ w) / gw_norm
        return value, grad

    result = minimize(
        objective,
        np.full(m, 1.0 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"ftol": 1e-12, "maxiter": 200},
    )
    w = np.clip(result.x, 0.0, None)
    gw_norm = float(np.sqrt(max(w @ a @ w, 0.0)))
    weights = np.full(m, 1.0 / m)
    if gw_norm > 1e-8:
        weights = weights + (sqrt_phi / gw_norm) * w
    return torch.from_numpy(weights)


def make_weighting(name: str, *, cagrad_c: float = 0.4) -> Weighting:
    """The rule for a gradient method; the callable maps (Gramian, generator) to sum-scale weights."""
    if name == "pcgrad":
        return lambda g, gen: pcgrad_weights(g, torch.randperm(g.shape[0], generator=gen))
    if name == "cagrad":
        # Divided by 1 + c: agreeing gradients then give exactly the plain sum, like every other rule here.
        return lambda g, gen: g.shape[0] * cagrad_weights(g, cagrad_c) / (1.0 + cagrad_c)

    from torchjd.aggregation import DualProjWeighting, IMTLGWeighting, MGDAWeighting, UPGradWeighting

    torchjd_rules = {
        "mgda": MGDAWeighting(),
        "upgrad": UPGradWeighting(),
        "imtlg": IMTLGWeighting(),
        "dualproj": DualProjWeighting(),
    }
    if name not in torchjd_rules:
        raise ValueError(f"no gradient weighting named {name!r}")
    rule = torchjd_rules[name]

    def weighting(g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        m = g.shape[0]
        if name == "mgda" and m == 2:
            return m * mgda_two_task_weights(g)
        return m * rule(g.double().cpu()).double()

    return weighting

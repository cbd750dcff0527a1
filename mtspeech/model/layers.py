"""Building blocks shared by the encoder, the decoder and the task heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """Pre-norm position-wise feed-forward: LayerNorm -> Linear -> activation -> dropout -> Linear -> dropout."""

    def __init__(self, d_model: int, hidden_dim: int, dropout: float, activation: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, hidden_dim),
            activation(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvolutionModule(nn.Module):
    """Conformer convolution module: LayerNorm -> pointwise conv (2x) -> GLU -> depthwise conv -> norm -> swish ->
    pointwise conv -> dropout.

    Padded frames are zeroed right before the depthwise convolution, so a valid frame next to padding sees the
    same zeros as at the end of an unpadded row. ``causal`` pads only on the left (no look-ahead: needed for
    chunk streaming). ``norm="layer"`` (default) normalises each frame on its own, independent of the batch and
    of padding; ``"batch"`` is the paper's BatchNorm (statistics include padded frames while training).
    """

    def __init__(self, d_model: int, kernel_size: int, dropout: float, causal: bool = False, norm: str = "layer"):
        super().__init__()
        self.causal = causal
        self.left_pad = kernel_size - 1 if causal else (kernel_size - 1) // 2
        self.right_pad = 0 if causal else (kernel_size - 1) // 2
        self.pre_norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model)
        self.norm: nn.Module = nn.LayerNorm(d_model) if norm == "layer" else nn.BatchNorm1d(d_model)
        self.pointwise_out = nn.Conv1d(d_model, d_model, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, T, D)``; ``valid``: ``(B, T)`` bool."""
        y = self.pointwise_in(self.pre_norm(x).transpose(1, 2))  # (B, 2D, T)
        y = F.glu(y, dim=1)
        y = y.masked_fill(~valid[:, None, :], 0.0)
        y = self.depthwise(F.pad(y, (self.left_pad, self.right_pad)))
        # LayerNorm normalises channels last; BatchNorm1d expects them in dim 1.
        y = self.norm(y.transpose(1, 2)).transpose(1, 2) if isinstance(self.norm, nn.LayerNorm) else self.norm(y)
        y = self.pointwise_out(F.silu(y))
        return self.dropout(y.transpose(1, 2))


class AttentionPooling(nn.Module):
    """Utterance vector = softmax-weighted sum of the valid frames (weights from a small tanh scorer).

    Learns which frames carry the label (the voiced ones for speaker, the content words for intent) instead of
    averaging silence in, as mean pooling would. With ``statistics`` it also returns the weighted standard
    deviation of every channel (attentive statistics pooling, Okabe et al. 2018, as in ECAPA-TDNN): how much a
    channel varies over the utterance (pitch range, loudness swings) is what prosody-borne labels such as
    emotion are made of. Output width: :attr:`output_dim` (``d_model``, or ``2 * d_model`` with statistics)."""

    def __init__(self, d_model: int, hidden_dim: int, statistics: bool = False) -> None:
        super().__init__()
        self.scorer = nn.Sequential(nn.Linear(d_model, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1))
        self.statistics = statistics
        self.output_dim = 2 * d_model if statistics else d_model

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, T, D)``, ``valid``: ``(B, T)`` bool with at least one True per row -> ``(B, output_dim)``."""
        scores = self.scorer(x).squeeze(-1).masked_fill(~valid, float("-inf"))
        weights = scores.softmax(dim=-1)
        mean = torch.einsum("bt,btd->bd", weights, x)
        if not self.statistics:
            return mean
        variance = torch.einsum("bt,btd->bd", weights, x.square()) - mean.square()
        # the floor keeps the square root's gradient finite where a channel is constant (one valid frame)
        return torch.cat([mean, variance.clamp_min(1e-6).sqrt()], dim=-1)


class LayerMix(nn.Module):
    """A learned softmax-weighted sum of encoder layers, each layer-normalised (SUPERB's weighted layer sum).

    Why: the CTC loss shapes the top layers for the words, and what a voice or a prosody-borne label needs may be
    clearer lower down (``python bench/layer_probe.py`` measures it per layer). The residual stream grows with
    depth, so every layer is normalised (without parameters) before mixing; the weights start equal."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"LayerMix needs at least one layer, got {num_layers}")
        self.logits = nn.Parameter(torch.zeros(num_layers))

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """``num_layers`` tensors ``(B, T, D)`` -> their weighted sum ``(B, T, D)``."""
        if len(layers) != self.logits.numel():
            raise ValueError(f"LayerMix was built for {self.logits.numel()} layers, got {len(layers)}")
        weights = self.logits.softmax(dim=0)
        return sum(w * F.layer_norm(x, x.shape[-1:]) for w, x in zip(weights, layers, strict=True))


def mlp_head(d_in: int, d_out: int, hidden_dim: int, dropout: float) -> nn.Module:
    """Linear classifier, or one hidden GELU layer when ``hidden_dim > 0``."""
    if hidden_dim <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(d_in, d_out))
    return nn.Sequential(nn.Linear(d_in, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, d_out))


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``coefficient``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.coefficient, None


def scale_gradient(x: torch.Tensor, coefficient: float) -> torch.Tensor:
    """Pass ``x`` through unchanged; its gradient is multiplied by ``coefficient`` on the way back.

    A negative coefficient is the gradient-reversal layer of DANN (Ganin & Lempitsky, 2015)."""
    return _ScaleGradient.apply(x, coefficient)

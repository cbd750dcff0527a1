"""Multi-head attention with rotary position embedding, and the boolean masks the encoder and decoder use.

Masks follow ``torch.nn.functional.scaled_dot_product_attention``: boolean, ``True`` = may attend, broadcast to
``(B, heads, T_query, T_key)``.

Why rotary (RoPE, Su et al. 2021) rather than Transformer-XL relative positions (WeNet's ``rel_pos``): the score
depends only on the query-key distance, as with relative positions, but it is applied to q and k *before*
attention, so the fused ``scaled_dot_product_attention`` kernels stay usable (no ``(T, T)`` position term, no
``rel_shift``, no extra parameters), it extrapolates to lengths unseen in training, and the same module serves
the decoder where left-padded prompts keep their relative positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotates channel pairs of q/k by position-dependent angles (``base ** (-2i / head_dim)`` per pair).

    Each pair ``(x[2i], x[2i + 1])`` is taken as the complex number ``x[2i] + i x[2i + 1]`` and multiplied by
    ``e^(i angle)``: one complex product does what four products of strided real slices, two sums and a stack did
    before, 1.6x (a decoder step) to 7x (a training batch) faster on a CPU (``python bench/rotary.py``), the same
    rotation up to float rounding."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embedding needs an even head size, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._table: torch.Tensor | None = None  # rotations of positions 0.. for inference, grown on demand

    def rotation(self, offset: int, length: int, device: torch.device) -> torch.Tensor:
        """``(length, head_dim / 2)`` complex rotations of positions ``offset ..``. Without gradients and outside
        torch.compile they are sliced from a table kept across calls (the same values: the same products of the
        same positions), so inference skips four small operations per q or k (a decoder search step has several
        per layer); training computes them per call, which keeps compiled graphs free of module state."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self._rotations(torch.arange(offset, offset + length, device=device, dtype=torch.float32))
        end, table = offset + length, self._table
        if table is None or table.size(0) < end or table.device != device:
            size = max(end, 2 * table.size(0) if table is not None else 0, 256)
            table = self._table = self._rotations(torch.arange(size, device=device, dtype=torch.float32))
        return table[offset:end]

    def _rotations(self, positions: torch.Tensor) -> torch.Tensor:
        angles = torch.outer(positions, self.inv_freq.to(positions.device))  # (T, head_dim / 2)
        return torch.polar(torch.ones_like(angles), angles)  # cos + i sin

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x``: ``(B, heads, T, head_dim)``; positions ``offset .. offset + T - 1``."""
        rotation = self.rotation(offset, x.size(-2), x.device)
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # complex tensors are float32 here
        return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention; rotary positions on q and k when ``rotary`` (self-attention only)."""

    def __init__(
        self, d_model: int, num_heads: int, dropout: float = 0.0, rotary: bool = True, rope_base: float = 10000.0
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) is not divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(self.head_dim, rope_base) if rotary else None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, _ = x.shape
        return x.view(batch, time, self.num_heads, self.head_dim).transpose(1, 2)

    # The projections, each ``(B, T, D)`` -> ``(B, heads, T, head_dim)``: one place to change how they are computed
    # (serving fuses them: mtspeech.serve.serving_model), for this forward and for cached decoding alike.
    def project_q(self, x: torch.Tensor) -> torch.Tensor:
        return self._heads(self.query(x))

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._heads(self.key(source)), self._heads(self.value(source))

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.project_q(x), *self.project_kv(x))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, memory: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x``: ``(B, T, D)`` queries; keys/values from ``memory`` (cross-attention) or ``x`` itself."""
        if memory is None:
            q, k, v = self.project_qkv(x)
        else:
            q, (k, v) = self.project_q(x), self.project_kv(memory)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        dropout = self.dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.out(context.transpose(1, 2).flatten(2))


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, max_len)`` bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def chunk_mask(size: int, chunk_size: int, left_chunks: int = -1, device: torch.device | None = None) -> torch.Tensor:
    """``(size, size)`` bool: frame ``i`` sees its own chunk and ``left_chunks`` chunks before it (-1: all)."""
    chunk_of = torch.arange(size, device=device) // chunk_size
    query, key = chunk_of[:, None], chunk_of[None, :]
    allowed = key <= query
    if left_chunks >= 0:
        allowed &= key >= query - left_chunks
    return allowed


def causal_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """``(size, size)`` bool lower triangle: position ``i`` sees ``0 .. i``."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def ensure_attendable(mask: torch.Tensor) -> torch.Tensor:
    """Let query rows that may attend to nothing (padding, e.g. a padded frame in a chunk of padding) see every
    key, so softmax gives no NaN. Only padded positions have such rows and their outputs are never used."""
    return mask | ~mask.any(dim=-1, keepdim=True)

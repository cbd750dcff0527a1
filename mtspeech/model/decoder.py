"""Transformer decoder over tokens with cross-attention to the encoder output (Whisper-style task prompts).

Pre-norm layers (self-attention with rotary positions and a causal mask, cross-attention, GELU feed-forward),
a final LayerNorm and an output projection tied to the token embedding. No absolute position table: rotary
positions make a left-padded prompt behave exactly like the same prompt unpadded, which batched greedy
decoding with prompts of different lengths relies on.
"""

from __future__ import annotations

import torch
from torch import nn

from mtspeech.model.attention import MultiHeadAttention, causal_mask, ensure_attendable
from mtspeech.model.layers import FeedForward


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout=0.0, rotary=True)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout=0.0, rotary=False)
        self.ff = FeedForward(d_model, ffn_dim, dropout, activation=nn.GELU)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, self_mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.self_norm(x), self_mask))
        x = x + self.dropout(self.cross_attn(self.cross_norm(x), memory_mask, memory=memory))
        return x + self.ff(x)


class TransformerDecoder(nn.Module):
    """``tokens (B, U)`` + encoder output ``(B, T, D)`` -> next-token logits ``(B, U, vocab_size)``."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_layers: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        tie_embeddings: bool = True,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        # Small embeddings keep the tied output layer's initial logits near zero (loss starts at ~log(vocab)).
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        self.embed_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.output.weight = self.embed.weight

    def forward(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        memory_valid: torch.Tensor,
        token_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``memory_valid``: ``(B, T)`` bool encoder frames to attend to. ``token_valid``: ``(B, U)`` bool, only
        needed for *left* padding (right padding never reaches earlier positions through a causal mask)."""
        size = tokens.size(1)
        self_mask = causal_mask(size, tokens.device)[None, None]  # (1, 1, U, U)
        if token_valid is not None:
            self_mask = ensure_attendable(self_mask & token_valid[:, None, None, :])
        memory_mask = memory_valid[:, None, None, :]
        x = self.embed_dropout(self.embed(tokens))
        for layer in self.layers:
            x = layer(x, self_mask, memory, memory_mask)
        return self.output(self.final_norm(x))

"""The shared audio encoder: Conv2d subsampling (x4 by default) followed by Conformer blocks (Gulati et al., 2020).

Input: log-mel ``(B, T, n_mels)`` (10 ms frames) and lengths; output: ``(B, T_enc, d_model)`` (40 ms frames at x4)
and ``T_enc = subsampled_length(T, factor)`` per row (x4: ``((T - 1) // 2 - 1) // 2``). Padded frames never
influence valid ones (key padding masks in attention, zeroed padding before every convolution), so a row's output
does not depend on what it is batched with. With a chunk size the encoder attends only to its own and earlier
chunks (WeNet's U2 dynamic chunk training), which with ``causal_conv`` makes each chunk's output independent of
later audio: the model can stream.
"""

from __future__ import annotations

import torch
from torch import nn

from mtspeech.data.features import SUBSAMPLING_LAYOUTS, subsampled_length
from mtspeech.errors import UserError
from mtspeech.model.attention import MultiHeadAttention, chunk_mask, ensure_attendable, padding_mask
from mtspeech.model.config import EncoderConfig
from mtspeech.model.layers import ConvolutionModule, FeedForward

__all__ = ["Conv2dSubsampling", "ConformerBlock", "ConformerEncoder", "subsampled_length"]


def min_input_frames(factor: int) -> int:
    """Fewest feature frames that give one encoder frame at ``factor`` (x4: 7 frames, 70 ms)."""
    frames = 1
    while subsampled_length(frames, factor) < 1:
        frames += 1
    return frames


class Conv2dSubsampling(nn.Module):
    """WeNet-style unpadded Conv2d subsampling over (time, mel): one convolution per step of the factor's layout in
    :data:`~mtspeech.data.features.SUBSAMPLING_LAYOUTS` (x4: two 3x3 stride-2; x2: one), the same kernel and stride
    on both axes, ReLU after each, then a linear projection of the flattened (channels x remaining mel bins) to
    ``d_model``. x4 is WeNet's ``Conv2dSubsampling4`` (the same parameter names, so x4 checkpoints load).

    ``channels`` defaults to ``d_model``; fewer channels make the second convolution, the costliest single layer
    of a small encoder on a CPU (and one that dynamic int8 quantisation does not cover), much cheaper."""

    def __init__(
        self, input_dim: int, d_model: int, dropout: float, channels: int | None = None, factor: int = 4
    ) -> None:
        super().__init__()
        if factor not in SUBSAMPLING_LAYOUTS or factor == 1:
            raise ValueError(f"subsampling factor must be one of {sorted(set(SUBSAMPLING_LAYOUTS) - {1})}")
        channels = channels or d_model
        self.factor = factor
        layers: list[nn.Module] = []
        for i, (kernel, stride) in enumerate(SUBSAMPLING_LAYOUTS[factor]):
            layers += [nn.Conv2d(1 if i == 0 else channels, channels, kernel_size=kernel, stride=stride), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        freq = int(subsampled_length(input_dim, factor))
        self.project = nn.Linear(channels * freq, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(features.unsqueeze(1))  # (B, C, T', F')
        x = self.project(x.transpose(1, 2).flatten(2))  # (B, T', C * F') -> (B, T', D)
        return self.dropout(x), subsampled_length(lengths, self.factor)


class ConformerBlock(nn.Module):
    """Macaron block: x + FF/2, x + MHSA, x + Conv, x + FF/2 (each sub-module pre-normed), then optionally
    LayerNorm (``block_norm``, as in the paper).

    Why the encoder normalises once at the end by default: with a LayerNorm closing every block, whatever a block
    adds that is common to all frames (biases, the response to the stream's own mean) is renormalised into the
    stream, and the frame-to-frame differences shrink by about half per block. On the small CPU recipe that made
    the output of 10 blocks nearly the same vector for every frame of every utterance within 20 updates, and no
    head could learn from it. A plain pre-norm residual stream keeps the differences until the single final norm.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ff_in = FeedForward(d, config.ffn_dim, config.dropout)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, config.num_heads, config.attention_dropout, True, config.rope_base)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.conv = ConvolutionModule(d, config.conv_kernel, config.dropout, config.causal_conv, config.conv_norm)
        self.ff_out = FeedForward(d, config.ffn_dim, config.dropout)
        self.final_norm: nn.Module = nn.LayerNorm(d) if config.block_norm else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff_in(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), attn_mask))
        x = x + self.conv(x, valid)
        x = x + 0.5 * self.ff_out(x)
        return self.final_norm(x)


class ConformerEncoder(nn.Module):
    """Conv2d subsampling + ``num_blocks`` Conformer blocks; see the module docstring."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.output_dim = config.d_model
        self.subsampling_factor = config.subsampling_factor
        self.min_input_frames = min_input_frames(config.subsampling_factor)
        self.subsampling = Conv2dSubsampling(
            config.input_dim, config.d_model, config.dropout, config.subsampling_channels, config.subsampling_factor
        )
        self.blocks = nn.ModuleList(ConformerBlock(config) for _ in range(config.num_blocks))
        # With per-block norms the last block's norm is the output norm already.
        self.final_norm: nn.Module = nn.Identity() if config.block_norm else nn.LayerNorm(config.d_model)

    def chunking(self, num_frames: int) -> tuple[int, int]:
        """``(chunk_size, left_chunks)`` for a batch of ``num_frames`` encoder frames; chunk_size 0 = full context.

        In ``dynamic`` mode while training, half the batches (on average) get full context and the others a
        chunk size drawn from 1..``max_dynamic_size``, as in WeNet; draws use torch's RNG (seeded runs repeat)."""
        chunk = self.config.chunk
        if chunk.mode == "full":
            return 0, -1
        if chunk.mode == "static" or not self.training:
            return chunk.size, chunk.left_chunks
        draw = int(torch.randint(1, max(num_frames, 2), (1,)))
        if draw > num_frames // 2:
            return 0, -1
        size = draw % chunk.max_dynamic_size + 1
        left = chunk.left_chunks
        if chunk.dynamic_left_chunks:
            left = int(torch.randint(0, (num_frames - 1) // size + 1, (1,)))
        return size, left

    def forward(
        self,
        features: torch.Tensor,
        feature_lens: torch.Tensor,
        chunk_size: int | None = None,
        left_chunks: int = -1,
        keep_layers: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(B, T, input_dim)`` + ``(B,)`` -> ``(B, T_enc, d_model)`` + ``(B,)``.

        ``chunk_size`` overrides the configured chunking (0 = full context), e.g. to decode a dynamic-chunk
        model with a given latency; ``left_chunks`` then applies (-1 = all past chunks). ``keep_layers`` adds a
        third item: the residual stream after the subsampling and after every block (``num_blocks + 1`` tensors
        ``(B, T_enc, d_model)``, un-normalised), for heads that mix layers."""
        self._check_input(features, feature_lens)
        x, lengths = self.subsampling(features, feature_lens)
        valid = padding_mask(lengths, x.size(1))
        size, left = self.chunking(x.size(1)) if chunk_size is None else (chunk_size, left_chunks)
        attn_mask = valid[:, None, None, :]  # (B, 1, 1, T_enc): keys
        if 0 < size < x.size(1):
            attn_mask = ensure_attendable(attn_mask & chunk_mask(x.size(1), size, left, x.device))
        layers = [x] if keep_layers else []
        for block in self.blocks:
            x = block(x, attn_mask, valid)
            if keep_layers:
                layers.append(x)
        if keep_layers:
            return self.final_norm(x), lengths, layers
        return self.final_norm(x), lengths

    def _check_input(self, features: torch.Tensor, feature_lens: torch.Tensor) -> None:
        if features.dim() != 3 or features.size(-1) != self.config.input_dim:
            raise UserError(
                f"encoder input must be (batch, frames, {self.config.input_dim}) log-mel features "
                f"(encoder.input_dim), got shape {tuple(features.shape)}"
            )
        if feature_lens.shape != features.shape[:1] or int(feature_lens.max()) > features.size(1):
            raise UserError(
                f"feature_lens {tuple(feature_lens.shape)} (max {int(feature_lens.max())}) do not match features "
                f"{tuple(features.shape)}"
            )
        short = (feature_lens < self.min_input_frames).nonzero().flatten().tolist()
        if short:
            raise UserError(
                f"rows {short} have fewer than {self.min_input_frames} feature frames "
                f"({self.min_input_frames * 10} ms), too short for the x{self.subsampling_factor} convolutional "
                "subsampling"
            )

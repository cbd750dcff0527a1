"""The serving copy of a model: the same outputs (up to float rounding) from layers rearranged for CPU inference.

* the Conformer convolution module runs channels last (:class:`ChannelsLastConvolution`): its pointwise (kernel-1)
  convolutions become ``nn.Linear`` layers, so that dynamic int8 quantisation, which handles Linear but not Conv1d,
  covers them, and its depthwise convolution reads channels-last frames; float serving uses it too, so comparing
  int8 with float measures int8 alone (any other kernel-1 ``Conv1d`` becomes a :class:`PointwiseLinear`);
* attention input projections are fused (:class:`FusedProjectionAttention`): q, k and v of a self-attention as one
  product, k and v of a cross-attention as one;
* the convolutional subsampling runs channels last (:class:`ChannelsLastSubsampling`): its first convolution (one
  input channel) as one matrix product over input patches, its later ones either as channels-last convolutions or,
  for int8, as Linear products over their input patches (:data:`MIN_PATCH_CHANNELS`).

:func:`serving_copy` makes the copy; the caller's model is never changed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mtspeech.data.features import subsampled_length
from mtspeech.model.attention import MultiHeadAttention
from mtspeech.model.decoder import DecoderLayer
from mtspeech.model.encoder import ConformerBlock, Conv2dSubsampling
from mtspeech.model.layers import ConvolutionModule

MIN_PATCH_CHANNELS = 128
"""Fewest input channels of a later subsampling convolution worth running as an int8 patch Linear: with fewer,
copying the patches costs about what int8 saves (``patch_gain`` of ``int8_subsampling_by_channels``, ``python
bench/serve.py``, Intel Xeon, against int8 with the convolution in float: 0.92x at 64 channels, 1.10x at 96, 1.21x
at 128, 1.89x at 256; 96 channels measured 0.94x in the run before)."""


class PointwiseLinear(nn.Module):
    """A kernel-1 ``Conv1d`` over ``(B, C, T)`` as an ``nn.Linear`` over channels (same weights, same output)."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.linear = nn.Linear(
            conv.in_channels, conv.out_channels, conv.bias is not None, conv.weight.device, conv.weight.dtype
        )
        with torch.no_grad():
            self.linear.weight.copy_(conv.weight.squeeze(-1))
            if conv.bias is not None:
                self.linear.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(1, 2)).transpose(1, 2)


def _is_pointwise(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv1d
        and module.kernel_size == (1,)
        and module.stride == (1,)
        and module.dilation == (1,)
        and module.groups == 1
        and module.padding in ((0,), "valid")
    )


def replace_modules(
    model: nn.Module, wanted: Callable[[nn.Module], bool], make: Callable[[Any], nn.Module]
) -> nn.Module:
    """Replace (in place) every submodule of ``model`` that ``wanted`` picks by ``make(submodule)``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if wanted(child):
                setattr(parent, name, make(child))
    return model


def pointwise_convs_as_linear(model: nn.Module) -> nn.Module:
    """Replace every kernel-1 Conv1d of ``model`` (in place) by the equivalent :class:`PointwiseLinear`."""
    return replace_modules(model, _is_pointwise, PointwiseLinear)


def _as_linear(conv: nn.Conv1d) -> nn.Linear:
    return PointwiseLinear(conv).linear


class ChannelsLastConvolution(nn.Module):
    """:class:`~mtspeech.model.layers.ConvolutionModule` on ``(B, T, D)`` frames throughout, the same output up to
    rounding: pointwise convolutions as Linear layers over the channels, the depthwise one as a channels-last
    convolution.

    Why: the model's module turns the frames channels first for its convolutions and back, and every turn is a
    copy (the int8 Linear kernels copy non-contiguous input too); the CPU kernels also run the depthwise
    convolution faster on channels-last input. ``convolution_module_by_layout`` of ``python bench/serve.py`` times
    the whole module both ways."""

    def __init__(self, module: ConvolutionModule) -> None:
        super().__init__()
        self.pre_norm = module.pre_norm
        self.pointwise_in = _as_linear(module.pointwise_in)
        depthwise = module.depthwise
        self.channels = depthwise.out_channels
        # (D, 1, k) -> (D, 1, 1, k): a 2-D depthwise convolution over a (B, D, 1, T) view of channels-last frames
        weight = depthwise.weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last)
        self.depthwise_weight = nn.Parameter(weight, requires_grad=False)
        self.depthwise_bias = nn.Parameter(depthwise.bias.detach().clone(), requires_grad=False)
        self.left_pad, self.right_pad = module.left_pad, module.right_pad
        self.norm = module.norm
        self.pointwise_out = _as_linear(module.pointwise_out)
        self.dropout = module.dropout

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, T, D)``; ``valid``: ``(B, T)`` bool."""
        y = F.glu(self.pointwise_in(self.pre_norm(x)), dim=-1).masked_fill(~valid[:, :, None], 0.0)
        y = F.pad(y, (0, 0, self.left_pad, self.right_pad)).transpose(1, 2).unsqueeze(2)  # (B, D, 1, T), strided
        y = F.conv2d(y, self.depthwise_weight, self.depthwise_bias, groups=self.channels).squeeze(2).transpose(1, 2)
        y = self.norm(y) if isinstance(self.norm, nn.LayerNorm) else self.norm(y.transpose(1, 2)).transpose(1, 2)
        return self.dropout(self.pointwise_out(F.silu(y)))


def _stacked(*linears: nn.Linear) -> nn.Linear:
    """One Linear layer whose output is the outputs of ``linears`` side by side."""
    first = linears[0]
    out = sum(linear.out_features for linear in linears)
    stacked = nn.Linear(first.in_features, out, device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        stacked.weight.copy_(torch.cat([linear.weight for linear in linears]))
        stacked.bias.copy_(torch.cat([linear.bias for linear in linears]))
    return stacked


class FusedProjectionAttention(MultiHeadAttention):
    """A :class:`~mtspeech.model.attention.MultiHeadAttention` in one role, with its input projections fused: a
    self-attention computes q, k and v as one product, a cross-attention k and v (of the encoder memory) as one.

    Why: one product of three times the width makes one call where there were three, and for int8 it is three
    times the size the float fallback of :class:`~mtspeech.serve.quantize.Int8Linear` judges (the ``base``
    preset's 256 x 256 projections of a few seconds of audio fall below its threshold one by one, not fused)."""

    def __init__(self, attention: MultiHeadAttention, cross: bool) -> None:
        nn.Module.__init__(self)  # the parent's separate projections are not wanted
        self.num_heads, self.head_dim, self.dropout = attention.num_heads, attention.head_dim, attention.dropout
        self.out, self.rotary, self.cross = attention.out, attention.rotary, cross
        if cross:
            self.query = attention.query
            self.kv = _stacked(attention.key, attention.value)
        else:
            self.qkv = _stacked(attention.query, attention.key, attention.value)

    def project_q(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cross:
            raise RuntimeError("a fused self-attention projects q, k and v together (project_qkv)")
        return self._heads(self.query(x))

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.cross:
            raise RuntimeError("a fused self-attention projects q, k and v together (project_qkv)")
        k, v = self.kv(source).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.cross:
            return super().project_qkv(x)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self._heads(q), self._heads(k), self._heads(v)


def fuse_attention_projections(model: nn.Module) -> nn.Module:
    """Give (in place) every Conformer block's and decoder layer's attention fused projections, by its role."""
    for module in list(model.modules()):
        if isinstance(module, ConformerBlock) and type(module.attn) is MultiHeadAttention:
            module.attn = FusedProjectionAttention(module.attn, cross=False)
        elif isinstance(module, DecoderLayer) and type(module.self_attn) is MultiHeadAttention:
            module.self_attn = FusedProjectionAttention(module.self_attn, cross=False)
            module.cross_attn = FusedProjectionAttention(module.cross_attn, cross=True)
    return model


def _patches(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """``(B, T, F, C)`` channels last -> ``(B, T', F', kt * kf * C)``: each output position's input patch, whose
    ``kernel`` rows are runs of contiguous channels (so gathering them is a fast copy)."""
    (kt, kf), (st, sf) = kernel, stride
    batch, time, freq, channels = x.shape
    out_time, out_freq = (time - kt) // st + 1, (freq - kf) // sf + 1
    b, t, f, c = x.stride()
    patches = x.as_strided((batch, out_time, out_freq, kt, kf, channels), (b, st * t, sf * f, t, f, c))
    return patches.reshape(batch, out_time, out_freq, kt * kf * channels)


def _patch_weight(conv: nn.Conv2d) -> torch.Tensor:
    """``(out, in, kh, kw)`` -> ``(out, kh * kw * in)``: the convolution's weight in :func:`_patches` order."""
    return conv.weight.detach().permute(0, 2, 3, 1).flatten(1)


class ChannelsLastSubsampling(nn.Module):
    """:class:`~mtspeech.model.encoder.Conv2dSubsampling` computed channels last, the same output up to rounding.

    Why: the CPU convolution kernels run the later convolutions faster on channels-last input, the first one (one
    input channel) is as fast as a product over its 3 x 3 patches that hands on channels-last output, and the
    projection then reads the result without a transposing copy (its weight columns are reordered instead):
    ``channels_last_gain`` of ``int8_subsampling_by_channels`` (``python bench/serve.py``) measures it by channel
    count. ``patch_channels``: later convolutions with at least that many input channels run as Linear products
    over their patches instead (for int8, which covers Linear layers); the first convolution's product is not a
    Linear layer, so int8 leaves its 9-wide product alone."""

    def __init__(self, subsampling: Conv2dSubsampling, patch_channels: float = math.inf) -> None:
        super().__init__()
        convs = [m for m in subsampling.conv if isinstance(m, nn.Conv2d)]
        first = convs[0]
        self.first_weight = nn.Parameter(_patch_weight(first).T.contiguous(), requires_grad=False)
        self.first_bias = nn.Parameter(first.bias.detach().clone(), requires_grad=False)
        self.geometry = [(conv.kernel_size, conv.stride) for conv in convs]
        self.later = nn.ModuleList()
        for conv in convs[1:]:
            if conv.in_channels >= patch_channels:
                linear = nn.Linear(conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1], conv.out_channels)
                with torch.no_grad():
                    linear.weight.copy_(_patch_weight(conv))
                    linear.bias.copy_(conv.bias)
                self.later.append(linear)
            else:
                self.later.append(copy.deepcopy(conv))
        channels, project = convs[-1].out_channels, subsampling.project
        freq = project.in_features // channels
        self.project = nn.Linear(project.in_features, project.out_features)
        with torch.no_grad():  # input (channels, freq) -> (freq, channels), the channels-last flattening
            weight = project.weight.view(project.out_features, channels, freq).transpose(1, 2)
            self.project.weight.copy_(weight.reshape(project.out_features, -1))
            self.project.bias.copy_(project.bias)
        self.dropout = subsampling.dropout
        self.factor = subsampling.factor

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kernel, stride = self.geometry[0]
        patches = _patches(features.contiguous().unsqueeze(-1), kernel, stride)
        x = torch.addmm(self.first_bias, patches.flatten(0, 2), self.first_weight).relu_()
        x = x.view(*patches.shape[:3], -1)  # (B, T, F, C)
        for layer, (kernel, stride) in zip(self.later, self.geometry[1:], strict=True):
            if isinstance(layer, nn.Conv2d):  # (B, C, T, F) in channels-last memory, and back as a view
                x = layer(x.permute(0, 3, 1, 2)).relu_().permute(0, 2, 3, 1)
            else:
                x = layer(_patches(x, kernel, stride)).relu_()
        return self.dropout(self.project(x.flatten(2))), subsampled_length(lengths, self.factor)


def _plain_subsampling(module: nn.Module) -> bool:
    if not isinstance(module, Conv2dSubsampling):
        return False
    convs = [m for m in module.conv if isinstance(m, nn.Conv2d)]
    return convs[0].in_channels == 1 and all(
        c.padding == (0, 0) and c.dilation == (1, 1) and c.groups == 1 for c in convs
    )


def serving_copy(model: nn.Module, patch_channels: float = math.inf) -> nn.Module:
    """A copy of ``model`` in eval mode with fused attention projections, the convolution modules and the
    subsampling channels last (later subsampling convolutions of at least ``patch_channels`` input channels as
    patch Linear layers) and any other kernel-1 convolution as a Linear layer."""
    model = fuse_attention_projections(copy.deepcopy(model))
    model = replace_modules(model, lambda m: type(m) is ConvolutionModule, ChannelsLastConvolution)
    model = pointwise_convs_as_linear(model)
    return replace_modules(model, _plain_subsampling, lambda m: ChannelsLastSubsampling(m, patch_channels)).eval()

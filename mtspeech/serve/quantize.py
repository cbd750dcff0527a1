"""Dynamic int8 quantisation for CPU serving: every ``nn.Linear`` gets an int8 twin whose activations are quantised
on the fly per call (torch's dynamic quantised Linear). Attention projections, feed-forward layers and every head
are Linear layers; the Conformer convolution module's pointwise (kernel-1) convolutions are the same product
written as a convolution, so they are rewritten as Linear layers first and quantised too. So are the subsampling's
wide convolutions (the second of x4 and later, when they have at least :data:`MIN_PATCH_CHANNELS` input channels,
as in the ``base`` preset): each output pixel is one Linear product over its input patch
(:class:`PatchLinearSubsampling`). What stays in float: the subsampling's first convolution (one input channel),
the depthwise convolutions and the attention products.

A call runs in int8 only when its product is big enough to pay for quantising the activations
(:class:`Int8Linear`, :data:`MIN_INT8_MACS`): a pooled classifier's one row or a decoder search step of a small
layer runs in float, as in the float model. With every call in int8, translation (a beam search of one-row steps)
of the demo model ran at 0.73x the float speed, at 0.98x with the fallback, and whole requests at 0.97x against
1.04x (``bench/results/serve-trained.json``, Intel Xeon). The float weights kept for those calls make the int8
model up to 1.25x the float one's size (:func:`weight_bytes`; demo model 35.0 against 29.6 MB).

Which kernels run the int8 products is the quantised engine the weights are packed for (torch keeps the choice
in the packed weights, so the process-wide engine setting is restored afterwards). ``auto`` takes oneDNN on CPUs
with AMX tiles (Intel Sapphire Rapids and later), where its int8 tile kernels beat FBGEMM's AVX-512 ones, and
torch's default engine elsewhere: ``python bench/serve.py`` records both engines on the machine it runs on.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mtspeech.data.features import subsampled_length
from mtspeech.errors import UserError
from mtspeech.model.encoder import Conv2dSubsampling

QUANTIZATION_MODES = ("int8",)
ENGINE_CHOICES = ("auto", "x86", "fbgemm", "onednn", "qnnpack")


def available_engines() -> list[str]:
    """The quantised CPU engines this torch build has (``x86`` is torch's FBGEMM/oneDNN dispatcher)."""
    return [e for e in torch.backends.quantized.supported_engines if e != "none"]


def has_amx() -> bool:
    """Whether the CPU has AMX tiles (torch's own probe; False where this torch does not have it)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def resolve_engine(engine: str = "auto") -> str:
    """The engine that ``engine`` names on this machine; ``auto``: oneDNN with AMX, else torch's default."""
    engines = available_engines()
    if not engines:
        raise UserError("this torch build has no quantised CPU kernels (no fbgemm/x86/onednn/qnnpack engine)")
    if engine == "auto":
        if has_amx() and "onednn" in engines:
            return "onednn"
        default = torch.backends.quantized.engine
        return default if default in engines else engines[0]
    if engine not in ENGINE_CHOICES:
        raise UserError(f"unknown int8 engine {engine!r} (--int8-engine); choose one of: {', '.join(ENGINE_CHOICES)}")
    if engine not in engines:
        raise UserError(
            f"int8 engine {engine!r} (--int8-engine) is not in this torch build; it has: {', '.join(engines)}"
        )
    return engine


@contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Pack weights for ``engine`` inside the block; the process-wide setting is restored after it."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def quantize_model(model: nn.Module, mode: str, device: torch.device | str = "cpu", engine: str = "auto") -> nn.Module:
    """A quantised copy of ``model`` (in eval mode) with weights packed for ``engine`` (see :func:`resolve_engine`);
    the original is left unchanged."""
    if mode not in QUANTIZATION_MODES:
        raise UserError(f"unknown quantisation {mode!r}; choose one of: {', '.join(QUANTIZATION_MODES)}")
    if torch.device(device).type != "cpu":
        raise UserError(
            f"int8 dynamic quantisation runs on the CPU only, not on {device}; drop --quantize or the device"
        )
    engine = resolve_engine(engine)
    model = patch_linear_subsampling(pointwise_convs_as_linear(copy.deepcopy(model))).eval()
    with warnings.catch_warnings(), quantized_engine(engine):
        # torch 2.10+ marks torch.ao.quantization deprecated in favour of torchao, which is not a dependency
        # here; the eager dynamic API still works and is what we test.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*")
        replace_modules(model, lambda m: type(m) is nn.Linear, Int8Linear)
    return model.eval()


MIN_INT8_MACS = 6_000_000
"""Smallest product (rows x in x out multiply-adds) that :class:`Int8Linear` runs in int8: below it quantising the
activations costs more than the int8 product saves (``int8_linear_by_size`` of ``python bench/serve.py``, Intel
Xeon with AMX, oneDNN: a 144 x 144 layer 0.82x at 256 rows, 5.3M, and 1.07x at 512, 10.6M; 144 x 576 0.51x at 16
rows, 1.3M, and 1.01x at 64, 5.3M: the break-even moves with the layer's shape, and 6M lies between)."""

MIN_INT8_WEIGHTS = 2**18
"""Layers with at least this many weights run every call in int8: reading their float weights costs more than
quantising even one row (the same figures: 256 x 2048 was 1.69x faster in int8 at one row)."""


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights for big products and its float weights for small ones (see the module
    docstring): ``rows x in x out >= MIN_INT8_MACS`` runs the dynamic int8 kernel, anything smaller the float one,
    except in layers of at least ``MIN_INT8_WEIGHTS`` weights, which always run in int8."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.float_linear = linear
        linear.qconfig = torch.ao.quantization.default_dynamic_qconfig  # per-tensor int8 weights, as quantize_dynamic
        self.int8_linear = torch.ao.nn.quantized.dynamic.Linear.from_float(linear)
        del linear.qconfig
        weights = linear.in_features * linear.out_features
        self.min_int8_rows = 0.0 if weights >= MIN_INT8_WEIGHTS else MIN_INT8_MACS / weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.size(-1)
        return self.int8_linear(x) if rows >= self.min_int8_rows else self.float_linear(x)


class PointwiseLinear(nn.Module):
    """A kernel-1 ``Conv1d`` over ``(B, C, T)`` as an ``nn.Linear`` over channels (same weights, same output),
    so dynamic quantisation, which handles Linear but not Conv1d, covers it. Float serving uses it too, so that
    comparing int8 with float measures int8 alone."""

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


MIN_PATCH_CHANNELS = 128
"""Fewest input channels of a subsampling convolution worth running as a patch Linear: with fewer, copying the
patches costs about what int8 saves (``int8_subsampling_by_channels`` of ``python bench/serve.py``, Intel Xeon:
0.87x at 64 channels, 0.91x at 96, 1.09x at 128, 1.46x at 256)."""


class PatchLinearSubsampling(nn.Module):
    """The convolutional subsampling of the encoder (:class:`~mtspeech.model.encoder.Conv2dSubsampling`) with every
    convolution after the first run as a Linear layer over input patches, channels last, so int8 covers it.

    Why not torch's own int8 convolutions: on this convolution's input the dynamic one returned zeros (relative
    error 1.0 at 8, 64 and 256 channels, torch 2.13: ``python bench/int8_conv.py``), and the static ones need an
    output scale calibrated on data the service does not have. Channels last makes each patch ``kernel x kernel``
    runs of contiguous channels, so gathering patches is a fast copy; the same output as the float module up to
    rounding."""

    def __init__(self, subsampling: nn.Module) -> None:
        super().__init__()
        convs = [m for m in subsampling.conv if isinstance(m, nn.Conv2d)]
        self.first = convs[0]
        self.patches = nn.ModuleList()
        self.geometry: list[tuple[tuple[int, int], tuple[int, int]]] = []
        for conv in convs[1:]:
            linear = nn.Linear(conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1], conv.out_channels)
            with torch.no_grad():  # (out, in, kh, kw) -> (out, kh * kw * in): the channels-last patch order
                linear.weight.copy_(conv.weight.permute(0, 2, 3, 1).flatten(1))
                linear.bias.copy_(conv.bias)
            self.patches.append(linear)
            self.geometry.append((conv.kernel_size, conv.stride))
        self.project = subsampling.project
        self.dropout = subsampling.dropout
        self.factor = subsampling.factor

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.first(features.unsqueeze(1)).relu().permute(0, 2, 3, 1).contiguous()  # (B, T, F, C)
        for linear, ((kt, kf), (st, sf)) in zip(self.patches, self.geometry, strict=True):
            batch, time, freq, channels = x.shape
            out_time, out_freq = (time - kt) // st + 1, (freq - kf) // sf + 1
            b, t, f, c = x.stride()
            patches = x.as_strided((batch, out_time, out_freq, kt, kf, channels), (b, st * t, sf * f, t, f, c))
            x = linear(patches.reshape(batch, out_time, out_freq, kt * kf * channels)).relu()
        x = self.project(x.transpose(2, 3).flatten(2))  # (B, T', C * F'), the order the float module flattens
        return self.dropout(x), subsampled_length(lengths, self.factor)


def _patch_linear_pays(module: nn.Module) -> bool:
    if not isinstance(module, Conv2dSubsampling):
        return False
    convs = [m for m in module.conv if isinstance(m, nn.Conv2d)]
    return len(convs) > 1 and all(
        c.in_channels >= MIN_PATCH_CHANNELS and c.padding == (0, 0) and c.dilation == (1, 1) and c.groups == 1
        for c in convs[1:]
    )


def patch_linear_subsampling(model: nn.Module) -> nn.Module:
    """Replace (in place) every :class:`~mtspeech.model.encoder.Conv2dSubsampling` whose later convolutions are
    wide enough (:data:`MIN_PATCH_CHANNELS`) by the equivalent :class:`PatchLinearSubsampling`."""
    return replace_modules(model, _patch_linear_pays, PatchLinearSubsampling)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights: its float parameters plus the int8 twins' weights (one byte each)."""
    floats = sum(p.numel() * p.element_size() for p in model.parameters())
    return floats + sum(m.int8_linear.weight().numel() for m in model.modules() if isinstance(m, Int8Linear))


def count_quantized_linears(model: nn.Module) -> int:
    """How many Linear layers have int8 weights (an :class:`Int8Linear` may still run a small call in float)."""
    return sum(1 for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic"))

"""Dynamic int8 quantisation for CPU serving: every ``nn.Linear`` gets int8 weights, activations are quantised
on the fly per batch (``torch.ao.quantization.quantize_dynamic``). Attention projections, feed-forward layers
and every head are Linear layers; the Conformer convolution module's pointwise (kernel-1) convolutions are the
same product written as a convolution, so they are rewritten as Linear layers first and quantised too. What
stays in float: the subsampling Conv2d layers, the depthwise convolutions and the attention products.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from mtspeech.errors import UserError

QUANTIZATION_MODES = ("int8",)


def quantize_model(model: nn.Module, mode: str, device: torch.device | str = "cpu") -> nn.Module:
    """A quantised copy of ``model`` (in eval mode); the original is left unchanged."""
    if mode not in QUANTIZATION_MODES:
        raise UserError(f"unknown quantisation {mode!r}; choose one of: {', '.join(QUANTIZATION_MODES)}")
    if torch.device(device).type != "cpu":
        raise UserError(
            f"int8 dynamic quantisation runs on the CPU only, not on {device}; drop --quantize or the device"
        )
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        raise UserError("this torch build has no quantised CPU kernels (no fbgemm/x86/qnnpack engine)")
    model = pointwise_convs_as_linear(copy.deepcopy(model))
    with warnings.catch_warnings():
        # torch 2.10+ marks torch.ao.quantization deprecated in favour of torchao, which is not a dependency
        # here; the eager dynamic API still works and is what we test.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*")
        quantized = torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=True)
    return quantized.eval()


class PointwiseLinear(nn.Module):
    """A kernel-1 ``Conv1d`` over ``(B, C, T)`` as an ``nn.Linear`` over channels (same weights, same output),
    so dynamic quantisation, which handles Linear but not Conv1d, covers it."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.linear = nn.Linear(conv.in_channels, conv.out_channels, bias=conv.bias is not None)
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


def pointwise_convs_as_linear(model: nn.Module) -> nn.Module:
    """Replace every kernel-1 Conv1d of ``model`` (in place) by the equivalent :class:`PointwiseLinear`."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_pointwise(child):
                setattr(parent, name, PointwiseLinear(child))
    return model


def count_quantized_linears(model: nn.Module) -> int:
    """How many Linear layers run with int8 weights (for tests and the benchmark report)."""
    return sum(1 for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic"))

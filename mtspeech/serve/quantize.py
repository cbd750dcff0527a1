"""Dynamic int8 quantisation for CPU serving: every ``nn.Linear`` gets an int8 twin whose activations are quantised
on the fly per call (torch's dynamic quantised Linear). Attention projections, feed-forward layers and every head
are Linear layers, and so are, in the serving copy the quantisation starts from (:mod:`mtspeech.serve.serving_model`),
the Conformer convolution module's pointwise (kernel-1) convolutions and the subsampling's wide convolutions (the
second of x4 and later, when they have at least :data:`~mtspeech.serve.serving_model.MIN_PATCH_CHANNELS` input
channels, as in the ``base`` preset), whose every output pixel is then one Linear product over its input patch.
What stays in float: the subsampling's first convolution (one input channel: a 9-wide product, kept out of the
Linear layers), the narrower later ones, the depthwise convolutions and the attention products.

A call runs in int8 only when its product is big enough to pay for quantising the activations
(:class:`Int8Linear`, :data:`MIN_INT8_MACS`): a pooled classifier's one row or a decoder search step of a small
layer runs in float, as in the float model. With every call in int8, translation (a beam search of one-row steps)
of the demo model ran at 0.78x the float speed, at 0.91x with the fallback, and whole requests at 1.05x against
1.06x (``bench/results/serve-trained.json``, Intel Xeon). The float weights kept for those calls make the int8
model up to 1.25x the float one's size (:func:`weight_bytes`; demo model 35.0 against 29.6 MB).

Which kernels run the int8 products is the quantised engine the weights are packed for (torch keeps the choice
in the packed weights, so the process-wide engine setting is restored afterwards). ``auto`` takes oneDNN on CPUs
with AMX tiles (Intel Sapphire Rapids and later), where its int8 tile kernels beat FBGEMM's AVX-512 ones, and
torch's default engine elsewhere: ``python bench/serve.py`` records both engines on the machine it runs on.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from mtspeech.errors import UserError
from mtspeech.serve.serving_model import MIN_PATCH_CHANNELS, replace_modules, serving_copy

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
    model = serving_copy(model, patch_channels=MIN_PATCH_CHANNELS)
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
Xeon with AMX, oneDNN: a 144 x 144 layer 0.82-1.06x at 256 rows, 5.3M, and 1.07-1.22x at 512, 10.6M, over the
last runs; 144 x 576 0.50x at 16 rows, 1.3M, and 1.14x at 64, 5.3M: the break-even moves with the layer's shape
and from run to run, and 6M lies between)."""

MIN_INT8_WEIGHTS = 2**18
"""Layers with at least this many weights run every call in int8: reading their float weights costs more than
quantising even one row (the same figures: 256 x 2048 was 1.69-1.78x faster in int8 at one row over the last runs)."""


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


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's weights: its float parameters plus the int8 twins' weights (one byte each)."""
    floats = sum(p.numel() * p.element_size() for p in model.parameters())
    return floats + sum(m.int8_linear.weight().numel() for m in model.modules() if isinstance(m, Int8Linear))


def count_quantized_linears(model: nn.Module) -> int:
    """How many Linear layers have int8 weights (an :class:`Int8Linear` may still run a small call in float)."""
    return sum(1 for m in model.modules() if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic"))

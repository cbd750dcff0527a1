"""Layout figures of ``bench/serve.py``: the Conformer convolution module as the model computes it (channels first
around its convolutions) against float serving's channels-last rewrite, in float and in int8, by model width."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch

from bench.timing import compare_ms, ratio


def convolution_module_by_layout(repeats: int, frames: int = 100) -> dict[str, Any]:
    """One convolution module (random weights, kernel 15, ``frames`` encoder frames: a 4-second request) per width:
    the model's module, the same with its pointwise convolutions as Linear layers (serving before the channels-last
    rewrite), and :class:`~mtspeech.serve.serving_model.ChannelsLastConvolution`; the last two also in int8."""
    from mtspeech.model.layers import ConvolutionModule
    from mtspeech.serve.quantize import quantized_engine, resolve_engine
    from mtspeech.serve.serving_model import ChannelsLastConvolution, pointwise_convs_as_linear

    engine = resolve_engine("auto")
    out: dict[str, Any] = {"engine": engine, "frames": frames}
    for width in (144, 256):
        module = ConvolutionModule(width, 15, 0.0).eval()
        x, valid = torch.randn(1, frames, width), torch.ones(1, frames, dtype=torch.bool)
        pointwise = pointwise_convs_as_linear(copy.deepcopy(module))
        channels_last = ChannelsLastConvolution(module)
        with quantized_engine(engine), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            int8 = {
                name: torch.ao.quantization.quantize_dynamic(copy.deepcopy(m), {torch.nn.Linear}, dtype=torch.qint8)
                for name, m in (("pointwise_linear", pointwise), ("channels_last", channels_last))
            }
        variants = {
            "model": module,
            "pointwise_linear": pointwise,
            "channels_last": channels_last,
            "int8_pointwise_linear": int8["pointwise_linear"],
            "int8_channels_last": int8["channels_last"],
        }
        with torch.inference_mode():
            times = compare_ms(
                {k: (lambda _, m=m, x=x, valid=valid: m(x, valid)) for k, m in variants.items()}, [np.zeros(1)], repeats
            )
        out[str(width)] = {
            **times,
            "channels_last_gain": ratio(times["pointwise_linear"], times["channels_last"]),
            "int8_channels_last_gain": ratio(times["int8_pointwise_linear"], times["int8_channels_last"]),
        }
        print("convolution module", width, out[str(width)], flush=True)
    return out

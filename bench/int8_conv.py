"""Why the subsampling's wide convolution gets our own int8 path: torch's dynamic int8 Conv2d against the float
convolution and against ``ChannelsLastSubsampling``'s int8 patch Linear, on the x4 subsampling's second convolution
(3 x 3, stride 2, one 4-second input after the first convolution and its ReLU), by channel count.

Prints and writes (bench/results/int8-conv.json) the largest error of each int8 path relative to the float output's
largest value, per quantised engine.

    python bench/int8_conv.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.common import write_results  # noqa: E402
from mtspeech.serve.quantize import Int8Linear, available_engines, quantized_engine  # noqa: E402


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return round(float((got - expected).abs().max() / expected.abs().max()), 4)


def main() -> None:
    torch.manual_seed(0)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for channels in (8, 64, 256):
        conv = nn.Conv2d(channels, channels, 3, 2).eval()
        x = torch.randn(1, channels, 199, 39).relu()  # what the first convolution and its ReLU hand on
        with torch.inference_mode():
            expected = conv(x)
        patches = x.permute(0, 2, 3, 1).unfold(1, 3, 2).unfold(2, 3, 2)  # (1, T', F', C, 3, 3)
        patches = patches.permute(0, 1, 2, 4, 5, 3).flatten(3)  # channels last within each patch, as the module
        linear = nn.Linear(channels * 9, channels)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.permute(0, 2, 3, 1).flatten(1))
            linear.bias.copy_(conv.bias)
        row: dict[str, dict[str, float]] = {}
        for engine in [e for e in ("fbgemm", "onednn") if e in available_engines()]:
            with quantized_engine(engine), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conv.qconfig = torch.ao.quantization.default_dynamic_qconfig
                dynamic_conv = torch.ao.nn.quantized.dynamic.Conv2d.from_float(conv)
                del conv.qconfig
                patch_linear = Int8Linear(linear).int8_linear
            with torch.inference_mode():
                by_conv = dynamic_conv(x)
                by_patches = patch_linear(patches).permute(0, 3, 1, 2)
            row[engine] = {
                "torch_dynamic_conv2d": relative_error(by_conv, expected),
                "patch_linear": relative_error(by_patches, expected),
            }
        figures[str(channels)] = row
        print(f"{channels} channels: {row}", flush=True)
    print(f"wrote {write_results('int8-conv', figures, 'python bench/int8_conv.py')}")


if __name__ == "__main__":
    main()

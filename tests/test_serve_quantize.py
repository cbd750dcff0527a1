"""Convolutions rewritten as Linear layers so int8 covers them: the same output in float."""

from __future__ import annotations

import torch
from torch import nn

from mtspeech.serve.quantize import PointwiseLinear, pointwise_convs_as_linear


def test_pointwise_conv1d_as_linear_gives_the_same_output() -> None:
    torch.manual_seed(1)
    conv = nn.Conv1d(6, 8, kernel_size=1)
    x = torch.randn(3, 6, 11)
    torch.testing.assert_close(PointwiseLinear(conv)(x), conv(x), atol=1e-5, rtol=1e-5)
    model = pointwise_convs_as_linear(nn.Sequential(nn.Conv1d(6, 8, 1), nn.Conv1d(8, 8, 3)))
    assert [type(m).__name__ for m in model] == ["PointwiseLinear", "Conv1d"]

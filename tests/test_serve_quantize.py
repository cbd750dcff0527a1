"""The serving copy (layers rearranged, the same output in float) and int8 serving: which layers, which engine."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtspeech.errors import UserError
from mtspeech.model.attention import MultiHeadAttention
from mtspeech.model.encoder import Conv2dSubsampling
from mtspeech.model.layers import ConvolutionModule
from mtspeech.serve import quantize
from mtspeech.serve.serving_model import (
    MIN_PATCH_CHANNELS,
    ChannelsLastConvolution,
    ChannelsLastSubsampling,
    FusedProjectionAttention,
    PointwiseLinear,
    pointwise_convs_as_linear,
    serving_copy,
)


def test_pointwise_conv1d_as_linear_gives_the_same_output() -> None:
    torch.manual_seed(1)
    conv = nn.Conv1d(6, 8, kernel_size=1)
    x = torch.randn(3, 6, 11)
    torch.testing.assert_close(PointwiseLinear(conv)(x), conv(x), atol=1e-5, rtol=1e-5)
    model = pointwise_convs_as_linear(nn.Sequential(nn.Conv1d(6, 8, 1), nn.Conv1d(8, 8, 3)))
    assert [type(m).__name__ for m in model] == ["PointwiseLinear", "Conv1d"]


def test_auto_engine_takes_onednn_on_amx_cpus_and_the_default_elsewhere(monkeypatch) -> None:
    monkeypatch.setattr(quantize, "available_engines", lambda: ["qnnpack", "onednn", "x86", "fbgemm"])
    monkeypatch.setattr(quantize, "has_amx", lambda: True)
    assert quantize.resolve_engine("auto") == "onednn"
    monkeypatch.setattr(quantize, "has_amx", lambda: False)
    monkeypatch.setattr(torch.backends.quantized, "engine", "x86")
    assert quantize.resolve_engine("auto") == "x86"
    assert quantize.resolve_engine("fbgemm") == "fbgemm"
    with pytest.raises(UserError, match=r"--int8-engine.*auto, x86"):
        quantize.resolve_engine("tensorrt")
    monkeypatch.setattr(quantize, "available_engines", lambda: ["qnnpack"])
    with pytest.raises(UserError, match="'onednn' .*not in this torch build; it has: qnnpack"):
        quantize.resolve_engine("onednn")


@pytest.mark.parametrize("engine", [e for e in ("fbgemm", "onednn") if e in quantize.available_engines()])
def test_each_engine_quantizes_close_to_float_and_leaves_the_process_setting_alone(engine: str) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64)).eval()
    x = torch.randn(200, 256)  # 200 x 256 x 256 = 13M multiply-adds: int8
    before = torch.backends.quantized.engine
    quantized = quantize.quantize_model(model, "int8", engine=engine)
    assert torch.backends.quantized.engine == before
    assert quantize.count_quantized_linears(quantized) == 2 and quantize.count_quantized_linears(model) == 0
    with torch.inference_mode():
        expected, got = model(x), quantized(x)
    assert not torch.equal(got, expected)  # the int8 kernels ran
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()


def test_int8_linear_runs_small_products_in_float_and_big_ones_in_int8() -> None:
    torch.manual_seed(4)
    linear = nn.Linear(128, 128).eval()
    int8 = quantize.Int8Linear(linear)
    big_rows = int(quantize.MIN_INT8_MACS // (128 * 128)) + 1  # the fewest rows that run in int8
    small, big = torch.randn(1, big_rows - 1, 128), torch.randn(1, big_rows, 128)
    with torch.inference_mode():
        assert torch.equal(int8(small), linear(small))  # one row fewer: float, as a pooled vector or a search step
        got, expected = int8(big), linear(big)
    assert not torch.equal(got, expected) and (got - expected).abs().max() < 0.05 * expected.abs().max()
    assert quantize.weight_bytes(int8) == 4 * (128 * 128 + 128) + 128 * 128  # float weights and bias + int8 weights
    wide = nn.Linear(256, quantize.MIN_INT8_WEIGHTS // 256).eval()  # big enough that one row pays
    one_row = torch.randn(1, 256)
    with torch.inference_mode():
        assert not torch.equal(quantize.Int8Linear(wide)(one_row), wide(one_row))


@pytest.mark.parametrize("factor", [2, 4, 6, 8])
@pytest.mark.parametrize("patch_channels", [0, float("inf")])
def test_channels_last_subsampling_gives_the_float_modules_output(factor: int, patch_channels: float) -> None:
    torch.manual_seed(factor)
    float_module = Conv2dSubsampling(40, 32, 0.0, channels=8, factor=factor).eval()
    features, lengths = torch.randn(2, 61, 40), torch.tensor([61, 50])
    channels_last = ChannelsLastSubsampling(float_module, patch_channels).eval()
    later = nn.Linear if patch_channels == 0 else nn.Conv2d
    assert all(type(layer) is later for layer in channels_last.later)
    with torch.inference_mode():
        expected, expected_lens = float_module(features, lengths)
        got, got_lens = channels_last(features, lengths)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert got_lens.tolist() == expected_lens.tolist()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_channels_last_convolution_module_gives_the_models_output(causal: bool, norm: str) -> None:
    torch.manual_seed(3)
    module = ConvolutionModule(16, 5, 0.0, causal=causal, norm=norm).eval()
    if isinstance(module.norm, nn.BatchNorm1d):  # statistics as after training
        module.norm.running_mean.normal_()
        module.norm.running_var.uniform_(0.5, 2.0)
    x, valid = torch.randn(2, 13, 16), torch.ones(2, 13, dtype=torch.bool)
    valid[1, 9:] = False  # padding must stay out of the valid frames' answers, as in the model
    x[1, 9:] = 1e3
    with torch.inference_mode():
        expected = module(x, valid)
        got = ChannelsLastConvolution(module)(x, valid)
    torch.testing.assert_close(got[0], expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1, :9], expected[1, :9], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rotary", [False, True])
def test_fused_projection_attention_gives_the_same_attention(rotary: bool) -> None:
    torch.manual_seed(4)
    attention = MultiHeadAttention(16, 4, rotary=rotary).eval()
    x, memory = torch.randn(2, 6, 16), torch.randn(2, 9, 16)
    mask = (torch.arange(9)[None, :] < torch.tensor([9, 5])[:, None])[:, None, None, :]
    self_fused = FusedProjectionAttention(attention, cross=False)
    cross_fused = FusedProjectionAttention(attention, cross=True)
    with torch.inference_mode():
        torch.testing.assert_close(self_fused(x), attention(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cross_fused(x, mask, memory), attention(x, mask, memory), atol=1e-5, rtol=1e-5)
        with pytest.raises(RuntimeError, match="project_qkv"):
            self_fused(x, mask, memory)  # a self-attention stays one


def test_serving_copy_leaves_the_model_alone_and_keeps_its_output() -> None:
    torch.manual_seed(2)
    parts = {"sub": Conv2dSubsampling(40, 16, 0.0, channels=8), "conv": nn.Conv1d(16, 16, 1)}
    model = nn.ModuleDict({**parts, "block": ConvolutionModule(16, 3, 0.0)}).eval()
    served = serving_copy(model)
    assert type(model["sub"]) is Conv2dSubsampling and type(model["conv"]) is nn.Conv1d
    assert type(model["block"]) is ConvolutionModule
    assert type(served["sub"]) is ChannelsLastSubsampling and type(served["conv"]) is PointwiseLinear
    assert type(served["block"]) is ChannelsLastConvolution
    features, lengths = torch.randn(1, 30, 40), torch.tensor([30])
    with torch.inference_mode():
        torch.testing.assert_close(served["sub"](features, lengths)[0], model["sub"](features, lengths)[0])


def test_int8_runs_wide_subsampling_convolutions_as_patch_linears_only() -> None:
    torch.manual_seed(5)
    wide = nn.ModuleDict({"sub": Conv2dSubsampling(40, 64, 0.0, channels=MIN_PATCH_CHANNELS)}).eval()
    narrow = nn.ModuleDict({"sub": Conv2dSubsampling(40, 64, 0.0, channels=MIN_PATCH_CHANNELS - 1)})
    assert [type(m) for m in quantize.quantize_model(wide, "int8")["sub"].later] == [quantize.Int8Linear]
    assert [type(m) for m in quantize.quantize_model(narrow, "int8")["sub"].later] == [nn.Conv2d]  # nothing to gain
    quantized = quantize.quantize_model(wide, "int8")
    features, lengths = torch.randn(1, 80, 40), torch.tensor([80])
    with torch.inference_mode():
        expected, got = wide["sub"](features, lengths)[0], quantized["sub"](features, lengths)[0]
    assert quantize.count_quantized_linears(quantized) == 2  # the patch Linear and the projection, not the first
    assert (got - expected).abs().mean() < 0.05 * expected.abs().mean()

"""Rotary position embedding: the complex-product rotation is the pairwise rotation it replaced, and attention
scores through it depend on the query-key distance only."""

from __future__ import annotations

import torch

from mtspeech.model.attention import RotaryEmbedding


def rotate_pairs(x: torch.Tensor, inv_freq: torch.Tensor, offset: int) -> torch.Tensor:
    """The definition: channel pair ``(2i, 2i + 1)`` at position ``p`` turned by ``p * inv_freq[i]``."""
    angles = torch.arange(offset, offset + x.size(-2), dtype=torch.float64)[:, None] * inv_freq.double()[None, :]
    x = x.double()
    even, odd = x[..., 0::2], x[..., 1::2]
    turned_even = even * angles.cos() - odd * angles.sin()
    turned_odd = even * angles.sin() + odd * angles.cos()
    return torch.stack((turned_even, turned_odd), dim=-1).flatten(-2)


def test_rotary_turns_each_channel_pair_by_its_position_angle() -> None:
    torch.manual_seed(0)
    rotary = RotaryEmbedding(8)
    x = torch.randn(2, 3, 7, 8)
    for offset in (0, 5):
        expected = rotate_pairs(x, rotary.inv_freq, offset).float()
        torch.testing.assert_close(rotary(x, offset=offset), expected, atol=1e-5, rtol=1e-5)
    strided = torch.randn(2, 7, 3, 8).transpose(1, 2)  # (B, heads, T, head_dim) as attention's heads view it
    torch.testing.assert_close(rotary(strided), rotate_pairs(strided, rotary.inv_freq, 0).float(), atol=1e-5, rtol=1e-5)


def test_rotary_scores_depend_on_the_distance_only_and_keep_the_dtype() -> None:
    torch.manual_seed(1)
    rotary = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    scores = [float((rotary(q, offset=p + 3) * rotary(k, offset=p)).sum()) for p in (0, 4, 40)]
    assert max(scores) - min(scores) < 1e-4
    assert abs(scores[0] - float((q * k).sum())) > 1e-3  # the distance does change the score
    half = rotary(q.bfloat16(), offset=2)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), rotary(q, offset=2), atol=2e-2, rtol=2e-2)


def test_inference_takes_rotations_from_a_table_with_the_very_same_values() -> None:
    rotary = RotaryEmbedding(8)
    x = torch.randn(2, 2, 5, 8)
    expected, expected_far = rotary(x, offset=3), rotary(x[:, :, :1], offset=300)  # gradients on: per call
    assert rotary._table is None
    with torch.inference_mode():
        first = rotary(x, offset=3)
        far = rotary(x[:, :, :1], offset=300)  # past the table's end: it grows
    assert rotary._table is not None and rotary._table.size(0) >= 301
    assert torch.equal(first, expected) and torch.equal(far, expected_far)

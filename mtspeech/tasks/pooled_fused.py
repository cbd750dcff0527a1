"""Several pooled classifier heads run as one at inference: the same probabilities from a handful of batched
products instead of a dozen small operations per head.

Why: run one by one, each head is a dozen small operations (scorer, softmax, weighted sums, normalisation, a
two-layer classifier) whose fixed costs outweigh their arithmetic on a CPU thread. Here every head's scorer is a
slice of one product over the encoder frames, the pooling of all heads is one batched product and the classifiers
two more (``pooled_heads_unfused`` of ``python bench/serve.py`` measures what that saves a request).

Inference only: eval-mode BatchNorm is folded into the first classifier layer, dropout is gone, and
:meth:`PooledClassifierTask.features` must only touch gradients (the accent head's gradient reversal). Heads
that mix encoder layers, change their input's values or use a linear classifier stay unfused
(:func:`fusable`); heads of different sizes are zero-padded to the largest, which changes no output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mtspeech.model.attention import padding_mask
from mtspeech.tasks.base import Task
from mtspeech.tasks.pooled import PooledBatchNorm, PooledClassifierTask


def fusable(task: Task) -> bool:
    """True for a pooled classifier that reads the encoder output as it is and has a hidden GELU layer."""
    if not isinstance(task, PooledClassifierTask) or task.reads_layers or task.features_change_values:
        return False
    layers = list(task.head["classifier"])
    kinds = [nn.Linear, nn.GELU, nn.Dropout, nn.Linear]
    return (
        len(layers) == len(kinds)
        and all(type(m) is k for m, k in zip(layers, kinds, strict=True))
        and (layers[1].approximate == "none")
    )


def _folded_first_layer(task: PooledClassifierTask) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's first Linear with the eval-mode normalisation before it folded in: ``(W', b')`` such
    that ``W' p + b' == W norm(p) + b``."""
    first: nn.Linear = task.head["classifier"][0]
    weight, bias = first.weight.detach().double(), first.bias.detach().double()
    norm = task.head["norm"]
    if isinstance(norm, PooledBatchNorm):
        scale = norm.weight.detach().double() / (norm.running_var.double() + norm.eps).sqrt()
        shift = norm.bias.detach().double() - norm.running_mean.double() * scale
        bias = bias + weight @ shift
        weight = weight * scale[None, :]
    return weight.float(), bias.float()


class FusedPooledHeads(nn.Module):
    """The heads of ``tasks`` (all :func:`fusable`, same ``d_model``) as one module; see the module docstring."""

    def __init__(self, tasks: Mapping[str, PooledClassifierTask]) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("FusedPooledHeads needs at least one head")
        unfit = [name for name, task in tasks.items() if not fusable(task)]
        if unfit:
            raise ValueError(f"heads that cannot be fused: {', '.join(unfit)}")
        self.names = list(tasks)
        heads = list(tasks.values())
        d_model = heads[0].d_model
        if any(task.d_model != d_model for task in heads):
            raise ValueError("fused heads must share one d_model")
        scorers = [task.head["pool"].scorer for task in heads]
        hidden = max(s[0].out_features for s in scorers)
        mlp_hidden = max(task.head["classifier"][0].out_features for task in heads)
        self.num_classes = [task.head["classifier"][3].out_features for task in heads]
        self.statistics = any(task.head["pool"].statistics for task in heads)
        pooled_dim = 2 * d_model if self.statistics else d_model
        count, ref = len(heads), scorers[0][0].weight
        classes = max(self.num_classes)
        shapes = {
            "scorer_in": (count * hidden, d_model),
            "scorer_in_bias": (count * hidden,),
            "scorer_out": (count, count * hidden),  # block diagonal: head h scores with its own hidden units
            "scorer_out_bias": (count,),
            "mlp_in": (count, pooled_dim, mlp_hidden),
            "mlp_in_bias": (count, 1, mlp_hidden),
            "mlp_out": (count, mlp_hidden, classes),
            "mlp_out_bias": (count, 1, classes),
        }
        for name, shape in shapes.items():
            self.register_buffer(name, torch.zeros(shape, dtype=ref.dtype, device=ref.device), persistent=False)
        with torch.no_grad():
            for h, (task, scorer) in enumerate(zip(heads, scorers, strict=True)):
                rows = slice(h * hidden, h * hidden + scorer[0].out_features)
                self.scorer_in[rows], self.scorer_in_bias[rows] = scorer[0].weight, scorer[0].bias
                self.scorer_out[h, rows], self.scorer_out_bias[h] = scorer[2].weight[0], scorer[2].bias[0]
                weight, bias = _folded_first_layer(task)
                self.mlp_in[h, : weight.size(1), : weight.size(0)] = weight.T
                self.mlp_in_bias[h, 0, : bias.numel()] = bias
                last: nn.Linear = task.head["classifier"][3]
                self.mlp_out[h, : last.in_features, : last.out_features] = last.weight.T
                self.mlp_out_bias[h, 0, : last.out_features] = last.bias

    @torch.no_grad()
    def forward(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder output ``(B, T, D)`` -> ``{head name: (B, num_classes) logits}``, as each head's
        :meth:`~PooledClassifierTask.logits` gives them (up to float rounding)."""
        hidden = torch.tanh(F.linear(enc, self.scorer_in, self.scorer_in_bias))  # (B, T, heads * hidden)
        scores = F.linear(hidden, self.scorer_out, self.scorer_out_bias)  # (B, T, heads)
        valid = padding_mask(enc_lens, enc.size(1))
        weights = scores.masked_fill(~valid[:, :, None], float("-inf")).softmax(dim=1).transpose(1, 2)
        pooled = weights @ enc  # (B, heads, D)
        if self.statistics:  # every head gets the deviation; heads without statistics pooling weigh it by zero
            variance = weights @ enc.square() - pooled.square()
            pooled = torch.cat([pooled, variance.clamp_min(1e-6).sqrt()], dim=-1)
        per_head = pooled.transpose(0, 1)  # (heads, B, pooled_dim)
        mlp = F.gelu(torch.baddbmm(self.mlp_in_bias, per_head, self.mlp_in))
        logits = torch.baddbmm(self.mlp_out_bias, mlp, self.mlp_out)  # (heads, B, max classes)
        return {name: logits[h, :, :n] for h, (name, n) in enumerate(zip(self.names, self.num_classes, strict=True))}

    def probabilities(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{head name: (B, num_classes) probabilities}``."""
        return {name: logits.float().softmax(dim=-1) for name, logits in self(enc, enc_lens).items()}


def fuse_pooled_heads(tasks: Mapping[str, Task], names: Sequence[str]) -> FusedPooledHeads | None:
    """The :func:`fusable` heads among ``names`` as one module (None when fewer than two are)."""
    chosen = {name: tasks[name] for name in dict.fromkeys(names) if name in tasks and fusable(tasks[name])}
    return FusedPooledHeads(chosen) if len(chosen) >= 2 else None  # type: ignore[arg-type]

"""One model, many tasks: a shared Conformer encoder whose output every enabled task head reads.

The encoder runs ONCE per batch (:meth:`MultiTaskModel.encode`); each task then computes its loss from that
shared representation on the rows that carry its label. Which tasks exist is pure configuration:

* "shared encoder, separate heads": ``asr_ctc`` plus pooled classifiers, ``vad``, ``slots``;
* "one encoder-decoder, tasks chosen by tokens": only ``decoder`` (transcribe/translate/slu by prompt);
* any mix, e.g. the hybrid CTC/attention ASR of ESPnet/WeNet (``asr_ctc`` + ``decoder``, weighted by
  ``ctc_weight``) with classifiers beside it.

The model also carries the log-mel front end (:class:`~mtspeech.data.features.LogMelFrontend`, no trainable
parameters; its CMVN statistics are buffers), so a saved model turns raw 16 kHz audio into answers on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mtspeech.data.batch import Batch
from mtspeech.data.features import LogMelFrontend
from mtspeech.errors import UserError
from mtspeech.model.config import ModelConfig
from mtspeech.model.encoder import ConformerEncoder
from mtspeech.model.layers import scale_gradient
from mtspeech.tasks.base import Task, get_task_class

HYBRID_TASKS = ("asr_ctc", "decoder")


@dataclass
class ModelOutput:
    """What :meth:`MultiTaskModel.forward` returns.

    ``losses`` and ``num_items`` hold only tasks with at least one labelled row in the batch. When ``asr_ctc``
    and ``decoder`` are both enabled their losses are already scaled by ``ctc_weight`` and ``1 - ctc_weight``.
    """

    losses: dict[str, torch.Tensor]
    num_items: dict[str, int]
    enc: torch.Tensor  # (B, T_enc, d_model): the shared representation
    enc_lens: torch.Tensor  # (B,)
    raw_losses: dict[str, torch.Tensor] = field(default_factory=dict)  # before the hybrid CTC/attention scaling
    layers: list[torch.Tensor] = field(default_factory=list)  # every encoder layer, when a task mixes them


class MultiTaskModel(nn.Module):
    """Front end + shared :class:`ConformerEncoder` + one :class:`Task` per enabled task (``self.tasks``)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"MultiTaskModel needs a ModelConfig, got {type(config).__name__}")
        self.config = config
        self.frontend = LogMelFrontend(num_mel_bins=config.encoder.input_dim)
        self.encoder = ConformerEncoder(config.encoder)
        tasks: dict[str, Task] = {}
        for name, task_config in config.tasks.items():
            tasks[name] = get_task_class(name)(task_config, config.encoder.d_model)
        for name, task in tasks.items():
            missing = [peer for peer in task.requires if peer not in tasks]
            if missing:
                raise UserError(f"task {name!r} needs task(s) {', '.join(missing)} enabled in model.tasks too")
        for task in tasks.values():
            task.attach(tasks)
            task.bind_encoder(config.encoder.num_blocks + 1)
        self.tasks = nn.ModuleDict(tasks)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks.keys())

    # --- encoder ----------------------------------------------------------------------------------
    def encode(
        self,
        features: torch.Tensor,
        feature_lens: torch.Tensor,
        chunk_size: int | None = None,
        left_chunks: int = -1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``(B, T, n_mels)`` -> shared representation ``(B, T_enc, d_model)`` and its lengths."""
        return self.encoder(features, feature_lens, chunk_size=chunk_size, left_chunks=left_chunks)

    @property
    def reads_layers(self) -> bool:
        """True when some task reads encoder layers besides the output (``encoder_layers: mix``)."""
        return any(task.reads_layers for task in self.tasks.values())

    def encode_layers(
        self, features: torch.Tensor, feature_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """:meth:`encode` plus every encoder layer when some task reads them (else an empty list); give both
        to :meth:`task_input`."""
        if not self.reads_layers:
            return (*self.encoder(features, feature_lens), [])
        return self.encoder(features, feature_lens, keep_layers=True)

    def task_input(self, name: str, enc: torch.Tensor, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """What task ``name`` reads: the encoder output, or its own mix of ``layers`` (from :meth:`encode_layers`)."""
        task = self.tasks[name]
        if not task.reads_layers:
            return enc
        if not layers:
            raise UserError(f"task {name!r} mixes encoder layers: encode with encode_layers(), not encode()")
        return task.layer_input(layers)

    def features_from_audio(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        """Padded 16 kHz waveforms ``(B, N)`` -> normalised log-mel features and frame lengths."""
        return self.frontend(waveforms, lengths)

    # --- training ---------------------------------------------------------------------------------
    def _selected(self, tasks: Sequence[str] | None) -> list[str]:
        if tasks is None:
            return self.task_names
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise UserError(
                f"task(s) {', '.join(map(repr, unknown))} not enabled in this model; enabled: {', '.join(self.tasks)}"
            )
        return list(dict.fromkeys(tasks))

    def forward(
        self,
        batch: Batch,
        tasks: Sequence[str] | None = None,
        encoder_grad: Mapping[str, float] | None = None,
    ) -> ModelOutput:
        """Encode once, then each selected task's loss on its labelled rows (all enabled tasks by default).

        ``encoder_grad``: task -> factor on the gradient that task's loss sends into the encoder (0 trains its
        head alone on the detached encoder output; tasks not listed: 1). The curriculum's head warm-up uses it."""
        enc, enc_lens, layers = self.encode_layers(batch.features, batch.feature_lens)
        losses: dict[str, torch.Tensor] = {}
        num_items: dict[str, int] = {}
        for name in self._selected(tasks):
            factor = (encoder_grad or {}).get(name, 1.0)
            task_enc, task_layers = enc, layers
            if factor != 1.0:
                task_enc = _scaled_gradient(enc, factor)
                task_layers = [_scaled_gradient(x, factor) for x in layers] if self.tasks[name].reads_layers else []
            result = self.tasks[name].loss(self.task_input(name, task_enc, task_layers), enc_lens, batch)
            if result.num_items > 0:
                losses[name] = result.loss
                num_items[name] = result.num_items
        raw = dict(losses)
        if all(t in self.tasks for t in HYBRID_TASKS):
            alpha = self.config.ctc_weight
            if "asr_ctc" in losses:
                losses["asr_ctc"] = alpha * losses["asr_ctc"]
            if "decoder" in losses:
                losses["decoder"] = (1.0 - alpha) * losses["decoder"]
        return ModelOutput(losses, num_items, enc, enc_lens, raw, layers)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside every task head: the encoder (the front end has none)."""
        task_ids = {id(p) for params in self.task_parameters().values() for p in params}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in task_ids]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Task name -> the trainable parameters of its head."""
        return {name: [p for p in task.parameters() if p.requires_grad] for name, task in self.tasks.items()}

    def last_shared_layer(self) -> nn.Module:
        """The last Conformer block (GradNorm measures per-task gradient norms on its weights)."""
        return self.encoder.blocks[-1]

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1], forwarded to every task (e.g. the accent task's reversal ramp)."""
        progress = min(max(float(progress), 0.0), 1.0)
        for task in self.tasks.values():
            task.set_progress(progress)

    # --- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        features: torch.Tensor,
        feature_lens: torch.Tensor,
        tasks: Sequence[str] | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, list]:
        """Greedy predictions of each task after ONE encoder pass: task -> one prediction per row.

        ``options``: task -> keyword options of its ``predict`` (e.g. ``{"decoder": {"prompts": [...]}}``).
        With ``tasks=None`` every enabled task answers, except ``decoder`` when no prompt is given (it has no
        sensible default task). Call ``model.eval()`` first: dropout and dynamic chunking follow the mode."""
        options = dict(options or {})
        unknown = [t for t in options if t not in self.tasks]
        if unknown:
            raise UserError(f"options for task(s) not in this model: {', '.join(unknown)}")
        if tasks is None:
            names = [n for n in self.task_names if n != "decoder" or "prompts" in options.get("decoder", {})]
        else:
            names = self._selected(tasks)
        enc, enc_lens, layers = self.encode_layers(features, feature_lens)
        return {
            name: self.tasks[name].predict(self.task_input(name, enc, layers), enc_lens, **dict(options.get(name, {})))
            for name in names
        }


def _scaled_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` unchanged, its gradient times ``factor``; at 0 no graph is kept back into the encoder at all."""
    return x.detach() if factor == 0.0 else scale_gradient(x, factor)


def resolve_model_config(config: ModelConfig, tokenizer: Any, vocabs: Mapping[str, Any]) -> ModelConfig:
    """A copy of ``config`` with every data-dependent value filled in from the tokenizer and label vocabularies
    (vocabulary sizes, class counts, special token ids). A value set explicitly that disagrees with the data is
    a UserError naming the key."""
    tasks: dict[str, Any] = {}
    for name, task_config in config.tasks.items():
        values = task_config.model_dump()
        for key, value in get_task_class(name).sizes_from_data(tokenizer, vocabs).items():
            if key in task_config.model_fields_set and values[key] != value:
                raise UserError(f"model.tasks.{name}.{key} is {values[key]!r} but the data gives {value!r}; remove it")
            values[key] = value
        tasks[name] = values
    data = config.model_dump()
    data["tasks"] = tasks
    return ModelConfig.from_dict(data)


def count_parameters(model: MultiTaskModel) -> dict[str, int]:
    """Trainable parameters of the encoder, each task head and in total (tied weights counted once)."""
    counts = {"encoder": sum(p.numel() for p in model.shared_parameters())}
    for name, params in model.task_parameters().items():
        counts[name] = sum(p.numel() for p in params)
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts

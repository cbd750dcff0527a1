"""The generic utterance classifier: attention pooling over encoder frames, then a small MLP.

Every utterance-level task (intent, language, emotion, speaker, gender, accent) is a thin subclass that only
names its label (``Batch.class_targets[label_key]``, :data:`~mtspeech.data.batch.IGNORE` where missing). The
loss is cross-entropy averaged over the labelled rows; rows without a label are not even pooled, so they cannot
change the loss. Subclasses may transform the encoder output before pooling (:meth:`features`): the accent task
puts its gradient-reversal layer there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.errors import UserError
from mtspeech.model.attention import padding_mask
from mtspeech.model.layers import AttentionPooling, LayerMix, mlp_head
from mtspeech.tasks.base import Task, TaskConfig, TaskLoss, rows_with
from mtspeech.tasks.metrics import accuracy


class PooledClassifierConfig(TaskConfig):
    num_classes: int | None = Field(None, ge=2, description="labels in the task's vocabulary (filled from it)")
    pool_hidden: int = Field(128, ge=1, description="hidden size of the attention-pooling scorer")
    pooling: Literal["attention", "attention_stats"] = Field(
        "attention",
        description="attention: weighted mean of the frames; attention_stats: weighted mean and standard deviation "
        "(attentive statistics pooling, for labels carried by prosody such as emotion)",
    )
    hidden_dim: int = Field(256, ge=0, description="hidden layer of the classifier MLP; 0 = linear classifier")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    pool_norm: Literal["batch", "none"] = Field(
        "batch", description="normalise the pooled vector over the batch (running statistics at inference)"
    )
    encoder_layers: Literal["last", "mix"] = Field(
        "last",
        description="last: pool the encoder output; mix: pool a learned weighted sum of the subsampling output and "
        "every block's output (for labels the top layers give up for the words, such as the voice)",
    )


class PooledBatchNorm(nn.BatchNorm1d):
    """BatchNorm over pooled utterance vectors (as ECAPA-TDNN does after its pooling).

    Why: pooled encoder vectors share a large common part and differ little between utterances; standardising
    each dimension over the batch hands the classifier the differences, and its gradient reaches the encoder
    without the common "shift every utterance alike" direction that otherwise flattens the encoder early. A
    training batch with a single labelled row cannot be normalised over the batch: it uses the running
    statistics (as inference does) and leaves them unchanged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.size(0) < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class PooledClassifierTask(Task):
    """One label per utterance from attention-pooled encoder frames; subclasses set ``name`` (and ``label_vocab``
    when the label vocabulary / Batch key differs from the task name)."""

    config_class = PooledClassifierConfig
    config: PooledClassifierConfig
    # True when features() changes the values the pooling sees and not only their gradients (the accent head's
    # reversal touches gradients only): inference cannot then fuse the head with others (tasks.pooled_fused).
    features_change_values: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The label vocabulary and Batch.class_targets key default to the task name.
        if "name" in cls.__dict__ and "label_vocab" not in cls.__dict__:
            cls.label_vocab = cls.name

    def __init__(self, config: PooledClassifierConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        num_classes = self.require("num_classes")
        pool = AttentionPooling(d_model, config.pool_hidden, statistics=config.pooling == "attention_stats")
        self.head = nn.ModuleDict(
            {
                "pool": pool,
                "norm": PooledBatchNorm(pool.output_dim) if config.pool_norm == "batch" else nn.Identity(),
                "classifier": mlp_head(pool.output_dim, num_classes, config.hidden_dim, config.dropout),
            }
        )

    def bind_encoder(self, num_layers: int) -> None:
        if self.reads_layers and "layer_mix" not in self.head:
            self.head["layer_mix"] = LayerMix(num_layers)

    @property
    def reads_layers(self) -> bool:
        return self.config.encoder_layers == "mix"

    def layer_input(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        if "layer_mix" not in self.head:
            raise UserError(f"task {self.name!r} mixes encoder layers but was never bound to an encoder")
        return self.head["layer_mix"](layers)

    @classmethod
    def key(cls) -> str:
        """The ``Batch.class_targets`` key (= the label vocabulary name)."""
        return cls.label_vocab or cls.name

    @classmethod
    def sizes_from_data(cls, tokenizer: Any, vocabs: Mapping[str, Any]) -> dict[str, Any]:
        vocab = vocabs.get(cls.key())
        if vocab is None:
            raise UserError(
                f"task {cls.name!r} needs a {cls.key()!r} label vocabulary, but the data has none "
                f"(vocabularies: {', '.join(sorted(vocabs)) or 'none'}); disable the task or add the labels"
            )
        return {"num_classes": max(len(vocab), 2)}  # a one-label vocabulary still gets a (trivial) 2-way head

    def target(self, batch: Batch) -> torch.Tensor | None:
        labels = batch.class_targets.get(self.key())
        if labels is None or not bool((labels != IGNORE).any()):
            return None
        return labels

    def features(self, enc: torch.Tensor) -> torch.Tensor:
        """What the pooling sees; identity here (the accent task reverses gradients)."""
        return enc

    def logits(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, num_classes)`` class logits."""
        valid = padding_mask(enc_lens, enc.size(1))
        pooled = self.head["pool"](self.features(enc), valid)
        return self.head["classifier"](self.head["norm"](pooled))

    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        labels = self.target(batch)
        if labels is None:
            return self.empty_loss(enc)
        rows = rows_with(labels != IGNORE)
        logits = self.logits(enc[rows], enc_lens[rows]).float()
        loss = F.cross_entropy(logits, labels[rows], label_smoothing=self.config.label_smoothing)
        return TaskLoss(loss, int(rows.numel()))

    @torch.no_grad()
    def probabilities(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> torch.Tensor:
        """``(B, num_classes)`` class probabilities (confidences for serving)."""
        return self.logits(enc, enc_lens).float().softmax(dim=-1)

    @torch.no_grad()
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[int]:
        """The most probable class id per row."""
        self.check_options(options)
        return self.logits(enc, enc_lens).argmax(dim=-1).tolist()

    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Accuracy over the rows whose reference is not IGNORE."""
        return accuracy([int(p) for p in predictions], [int(r) for r in references], ignore=IGNORE)

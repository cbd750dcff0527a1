"""The Task interface and the task registry.

A task turns the shared encoder output into one kind of answer. It owns its *head* (every task-specific
parameter lives under ``task.head``), knows which Batch fields hold its labels (:meth:`Task.target`), computes
its loss on the rows that have a label (:meth:`Task.loss`), predicts (:meth:`Task.predict`, greedy/argmax; beam
search lives in ``mtspeech.decode``) and scores predictions simply (:meth:`Task.score`).

Missing labels: a row without this task's label contributes nothing. When *no* row has one, :meth:`Task.loss`
returns a zero that is still connected to the head and the encoder output (so ``sum(losses).backward()``
works and every parameter gets a zero gradient) with ``num_items == 0``; ``MultiTaskModel.forward`` leaves
such tasks out of its loss dict, so balancers only see tasks that are present in the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

import torch
from torch import nn

from mtspeech.data.batch import Batch
from mtspeech.errors import UserError
from mtspeech.model.config import StrictConfig


class TaskConfig(StrictConfig):
    """Options of one task; each task subclasses it (unknown keys are errors naming the key)."""


class TaskLoss(NamedTuple):
    loss: torch.Tensor  # scalar, mean over the task's items (rows, tokens or frames: see each task)
    num_items: int  # rows of the batch that had this task's label


class Task(nn.Module, ABC):
    """One task on top of the shared encoder; see the module docstring."""

    name: ClassVar[str]
    config_class: ClassVar[type[TaskConfig]] = TaskConfig
    # Other tasks this one needs in the same model (e.g. slots tags the asr_ctc hypothesis at inference).
    requires: ClassVar[tuple[str, ...]] = ()
    # The label vocabulary (mtspeech.data.labels) this task's targets are encoded with, if any.
    label_vocab: ClassVar[str | None] = None
    head: nn.Module

    def __init__(self, config: TaskConfig, d_model: int) -> None:
        super().__init__()
        self.config = config
        self.d_model = d_model
        self._peers: dict[str, Task] = {}  # a plain dict: peers must not become submodules (no double params)

    @classmethod
    def sizes_from_data(cls, tokenizer: Any, vocabs: Mapping[str, Any]) -> dict[str, Any]:
        """Config values that follow from the tokenizer and label vocabularies (vocabulary and class counts,
        special token ids); :func:`mtspeech.model.model.resolve_model_config` fills them in. A missing
        vocabulary is a UserError naming it."""
        return {}

    def attach(self, tasks: Mapping[str, Task]) -> None:
        """Called once the model has built every task; tasks listed in ``requires`` pick up their peers here."""
        self._peers = {name: tasks[name] for name in self.requires}

    def transcript_tokens(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: Any) -> list[list[int]]:
        """For tasks that read the transcript: ``tokens`` (one id row per batch row) as given, else the
        ``asr_ctc`` greedy hypothesis of this encoder output."""
        if tokens is None:
            if "asr_ctc" not in self._peers:
                raise UserError(f"{self.name} needs 'tokens' or the asr_ctc task in the same model")
            tokens = self._peers["asr_ctc"].predict(enc, enc_lens)
        if len(tokens) != enc.size(0):
            raise UserError(f"{self.name}: {len(tokens)} token rows for a batch of {enc.size(0)}")
        return [[int(t) for t in row] for row in tokens]

    def bind_encoder(self, num_layers: int) -> None:
        """Called once by the model with the number of encoder layers it can hand over (the subsampling output
        and every block's); tasks that read more than the encoder output build their layer weights here."""

    @property
    def reads_layers(self) -> bool:
        """True when :meth:`layer_input` (not the encoder output alone) is this task's input."""
        return False

    def layer_input(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """This task's input made from every encoder layer (only for tasks whose :attr:`reads_layers`)."""
        raise NotImplementedError(f"task {self.name!r} reads the encoder output, not its layers")

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1] (for schedules such as the accent task's gradient-reversal ramp)."""

    @abstractmethod
    def target(self, batch: Batch) -> Any:
        """The Batch fields this task learns from (None when the batch carries none for it)."""

    @abstractmethod
    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        """Loss on the rows that have a label; see the module docstring for batches without any."""

    @abstractmethod
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[Any]:
        """One prediction per row (greedy / argmax)."""

    @abstractmethod
    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Simple metrics of predictions against references (accuracy, token error rate)."""

    # --- helpers for subclasses --------------------------------------------------------------------
    def text_only_rows(self) -> int:
        """Text-only rows (sentences without audio, ``Batch.text_rows``) this task learns from per training batch;
        0, the default, asks for none. Only a task that reads nothing but the transcript can use them."""
        return 0

    def empty_loss(self, enc: torch.Tensor) -> TaskLoss:
        """A zero loss connected to the head and to ``enc``: backward works and gives zero gradients."""
        anchor = enc.reshape(-1)[0] + sum(p.reshape(-1)[0] for p in self.head.parameters())
        return TaskLoss(anchor * 0.0, 0)

    def check_options(self, options: Mapping[str, Any], known: tuple[str, ...] = ()) -> None:
        """Prediction options may come from users (CLI flags, API requests): unknown ones are a UserError."""
        unknown = sorted(set(options) - set(known))
        if unknown:
            accepted = ", ".join(known) if known else "none"
            raise UserError(f"{self.name} prediction: unknown option(s) {', '.join(unknown)}; accepted: {accepted}")

    def require(self, field: str) -> Any:
        """The config value ``field``, or a UserError saying it must be filled (sizes come from vocabularies)."""
        value = getattr(self.config, field)
        if value is None:
            raise UserError(
                f"tasks.{self.name}.{field} is not set; it comes from the tokenizer or label vocabulary "
                "(the trainer fills it) or must be given in the model config"
            )
        return value


TASKS: dict[str, type[Task]] = {}
TaskT = TypeVar("TaskT", bound=type[Task])


def register_task(cls: TaskT) -> TaskT:
    """Class decorator: make a task available by its ``name`` in model configs."""
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task name {cls.name!r} is registered twice ({TASKS[cls.name].__name__}, {cls.__name__})")
    TASKS[cls.name] = cls
    return cls


def get_task_class(name: str) -> type[Task]:
    """The registered task class for ``name``; a UserError listing the known tasks otherwise."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def with_preset(data: Any, presets: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any] | None) -> Any:
    """For a task config's ``model_validator(mode="before")``: fill sizes from ``presets[preset]`` where the
    options do not set them. ``preset`` defaults to the encoder's (passed by ModelConfig as validation context),
    so ``encoder: {preset: tiny}`` shrinks the heads with it; explicit keys always win."""
    if not isinstance(data, Mapping):
        return data
    preset = data.get("preset") or (context or {}).get("encoder_preset") or "small"
    if preset not in presets:  # an unknown preset is reported by the field's Literal check
        return data
    return {**presets[preset], **data, "preset": preset}


def rows_with(mask: torch.Tensor) -> torch.Tensor:
    """Indices of the True entries of a ``(B,)`` bool mask (the rows a task trains on)."""
    return mask.nonzero().flatten()

"""Model configuration: pydantic (v2) models where every unknown key is an error naming the key.

A model config is a mapping with three parts::

    encoder:  {preset: small, num_blocks: 8, chunk: {mode: dynamic}}   # preset values, then overrides
    tasks:    {asr_ctc: {vocab_size: 512}, decoder: {vocab_size: 512, eot_id: 3}, intent: {num_classes: 18}}
    ctc_weight: 0.3                                                      # hybrid CTC/attention alpha

Task option models live next to their task (``mtspeech/tasks/*.py``) and are looked up in the task registry
when ``tasks`` is validated, so a typo in a task name lists the known tasks and a typo in an option lists that
task's known options. :meth:`ModelConfig.from_dict` turns validation errors into one :class:`UserError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from mtspeech.errors import UserError


def _unknown_key_error(key: str, known: list[str], what: str = "key") -> InitErrorDetails:
    message = f"unknown {what} {key!r}; known {what}s: {', '.join(known)}"
    return InitErrorDetails(type=PydanticCustomError("unknown_key", message), loc=(key,), input=key)


class StrictConfig(BaseModel):
    """Base of every config model: unknown keys are rejected with the list of known ones."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = sorted(cls.model_fields)
            errors = [_unknown_key_error(str(k), known) for k in data if k not in cls.model_fields]
            if errors:
                raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


class ChunkConfig(StrictConfig):
    """Chunked self-attention so the encoder can stream (WeNet's dynamic chunk training).

    ``full``: no chunk mask (offline). ``static``: every batch uses ``size`` encoder frames per chunk.
    ``dynamic``: while training each batch draws its chunk size (half the batches full context, the others a
    size in 1..``max_dynamic_size``); in eval mode ``size`` is used, 0 meaning full context.
    """

    mode: Literal["full", "static", "dynamic"] = "full"
    size: int = Field(0, ge=0, description="encoder frames (40 ms each) per chunk; 0 = full context")
    left_chunks: int = Field(-1, ge=-1, description="chunks of left context each chunk sees; -1 = all")
    max_dynamic_size: int = Field(25, ge=1)
    dynamic_left_chunks: bool = Field(False, description="also draw the left context per batch while training")

    @model_validator(mode="after")
    def _static_needs_size(self) -> ChunkConfig:
        if self.mode == "static" and self.size == 0:
            raise ValueError("chunk.mode 'static' needs chunk.size > 0 (encoder frames per chunk)")
        return self


ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    # < 1M parameters: unit tests and smoke runs.
    "tiny": {"d_model": 64, "num_heads": 2, "ffn_dim": 128, "num_blocks": 2, "conv_kernel": 7},
    # Conformer-S width, 6 blocks (~5.9M parameters with a decoder and every head): the CPU demo. Fewer blocks fit
    # more updates into the 15-minute budget, which CTC needs to leave its blank plateau (bench/results/ctc-probe.json).
    "small": {
        "d_model": 144,
        "num_heads": 4,
        "ffn_dim": 576,
        "num_blocks": 6,
        "conv_kernel": 15,
        "subsampling_channels": 64,  # 30% faster training steps on 2 CPU cores than 144 channels
    },
    # ~33M parameters (WeNet's Conformer recipe size): GPU training.
    "base": {"d_model": 256, "num_heads": 4, "ffn_dim": 2048, "num_blocks": 12, "conv_kernel": 15},
}


class EncoderConfig(StrictConfig):
    """Conv2d x4 subsampling + Conformer blocks. ``preset`` fills the sizes; explicit keys override it."""

    preset: Literal["tiny", "small", "base"] = "small"
    input_dim: int = Field(80, ge=7, description="mel bins of Batch.features")
    d_model: int = Field(144, ge=8)
    num_heads: int = Field(4, ge=1)
    ffn_dim: int = Field(576, ge=1)
    num_blocks: int = Field(10, ge=1)
    conv_kernel: int = Field(15, ge=1, description="depthwise convolution kernel (odd)")
    conv_norm: Literal["layer", "batch"] = "layer"
    subsampling_factor: Literal[2, 4, 6, 8] = Field(
        4,
        description="time reduction of the conv front (x4: 40 ms frames); x2 gives character-level CTC two frames "
        "per character of fast speech",
    )
    subsampling_channels: int | None = Field(
        None, ge=1, description="channels of the subsampling convolutions; default d_model (as WeNet)"
    )
    block_norm: bool = Field(
        False,
        description="LayerNorm at the end of every block (the Conformer paper) instead of once after the last",
    )
    causal_conv: bool = Field(False, description="left-only depthwise convolution (required for chunk streaming)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    rope_base: float = Field(10000.0, gt=1.0)
    chunk: ChunkConfig = Field(default_factory=ChunkConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            preset = data.get("preset", "small")
            if preset in ENCODER_PRESETS:  # an unknown preset is reported by the Literal check
                return {**ENCODER_PRESETS[preset], **data}
        return data

    @model_validator(mode="after")
    def _check_shapes(self) -> EncoderConfig:
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(
                f"d_model ({self.d_model}) must split into num_heads ({self.num_heads}) heads of even size "
                "(rotary position embedding rotates pairs of channels)"
            )
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if self.chunk.mode != "full" and not self.causal_conv:
            raise ValueError(
                f"chunk.mode {self.chunk.mode!r} needs causal_conv: true, otherwise the convolution module "
                "sees frames beyond the chunk and the encoder cannot stream"
            )
        return self


class ModelConfig(StrictConfig):
    """The whole model: one encoder and the enabled tasks (name -> that task's options)."""

    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    tasks: dict[str, Any] = Field(..., description="enabled tasks: name -> options (see mtspeech/tasks)")
    ctc_weight: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="hybrid alpha when asr_ctc and decoder are both enabled: alpha*ctc + (1-alpha)*att",
    )

    @field_validator("tasks", mode="before")
    @classmethod
    def _validate_tasks(cls, value: Any, info: ValidationInfo) -> Any:
        # Importing mtspeech.tasks registers every built-in task; it imports model layers, hence lazily.
        from mtspeech.tasks.base import TASKS, TaskConfig

        if not isinstance(value, Mapping):
            return value  # the dict type check reports it
        if not value:
            raise ValueError(f"enable at least one task; known tasks: {', '.join(sorted(TASKS))}")
        encoder = info.data.get("encoder")
        # Task heads may size themselves after the encoder preset (the decoder does).
        context = {"encoder_preset": encoder.preset if isinstance(encoder, EncoderConfig) else None}
        errors: list[InitErrorDetails] = []
        validated: dict[str, TaskConfig] = {}
        for name, options in value.items():
            task = TASKS.get(str(name))
            if task is None:
                errors.append(_unknown_key_error(str(name), sorted(TASKS), what="task"))
                continue
            try:
                validated[name] = task.config_class.model_validate({} if options is None else options, context=context)
            except ValidationError as err:  # re-raise with the task name in the error location
                for e in err.errors():
                    kind = PydanticCustomError(e["type"], e["msg"].replace("{", "{{").replace("}", "}}"))
                    errors.append(InitErrorDetails(type=kind, loc=(name, *e["loc"]), input=e["input"]))
        if errors:
            raise ValidationError.from_exception_data("tasks", errors)
        return validated

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | Path | None = None) -> ModelConfig:
        """Validate a config mapping (e.g. a YAML file's ``model:`` section); errors become one UserError."""
        if not isinstance(data, Mapping):
            raise UserError(f"model config must be a mapping, got {type(data).__name__}", path=source)
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise UserError(format_validation_error(err, prefix="model"), path=source) from None


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``model.tasks.intent.num_clases: unknown key ...; known keys: ...``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(part) for part in (prefix, *e["loc"]) if part != "")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "invalid config:\n  " + "\n  ".join(lines)

"""The training config: one typed tree validated from YAML, where every unknown key is an error naming it.

Top level: run settings (output dir, budget, validation/checkpoint cadence, seed, device) and one section per
part of the system: ``data``, ``tokenizer``, ``model`` (:class:`~mtspeech.model.config.ModelConfig`), ``optim``,
``balancer``, ``curriculum``, ``distributed``. ``docs/training.md`` is the reference for every key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from mtspeech.data.augment import AugmentConfig
from mtspeech.data.tokenizer import TASKS as DECODER_TASKS
from mtspeech.errors import UserError
from mtspeech.model.config import ModelConfig, StrictConfig
from mtspeech.train.balancers import BalancerConfig
from mtspeech.train.config_file import RawConfig, apply_overrides, load_raw_config
from mtspeech.train.curriculum import CurriculumConfig

DecoderTask = Literal["transcribe", "translate", "slu"]
assert set(DECODER_TASKS) == {"transcribe", "translate", "slu"}


class CorpusConfig(StrictConfig):
    """One corpus directory (``mtspeech corpus synth`` output or an importer's)."""

    path: Path
    name: str | None = Field(None, description="label in logs and the mixing table; default: the directory name")
    weight: float = Field(1.0, gt=0, description="multiplies the corpus size before temperature mixing")
    train_split: str = "train"
    valid_split: str | None = Field("valid", description="split validated on; null = none from this corpus")

    @property
    def label(self) -> str:
        return self.name or self.path.name


class AugmentOptions(StrictConfig):
    """Training-time augmentation (see :mod:`mtspeech.data.augment`); validation never augments."""

    spec_augment: bool = True
    num_freq_masks: int = Field(2, ge=0)
    freq_mask_width: int = Field(27, ge=0)
    num_time_masks: int = Field(5, ge=0)
    time_mask_width: int = Field(40, ge=0)
    max_time_mask_fraction: float = Field(0.05, ge=0.0, le=1.0)
    speed_perturb: bool = False
    speed_factors: list[float] = Field(default_factory=lambda: [0.9, 1.0, 1.1], min_length=1)

    def to_augment_config(self) -> AugmentConfig:
        values = self.model_dump()
        values["speed_factors"] = tuple(values["speed_factors"])
        return AugmentConfig(**values)


class DataConfig(StrictConfig):
    corpora: list[CorpusConfig] = Field(..., min_length=1)
    temperature: float = Field(5.0, gt=0, description="corpus mixing: p_i ∝ (weight_i * size_i)^(1/T)")
    size_unit: Literal["hours", "cuts"] = "hours"
    max_duration: float = Field(100.0, gt=0, description="seconds of audio per training batch (per rank)")
    valid_max_duration: float | None = Field(None, gt=0, description="per validation batch; default max_duration")
    num_buckets: int = Field(10, ge=1)
    buffer_size: int = Field(20000, ge=1, description="cuts held by the bucketing sampler for shuffling")
    min_duration: float = Field(0.1, ge=0, description="training cuts shorter than this are skipped (s)")
    max_cut_duration: float | None = Field(30.0, gt=0, description="training cuts longer than this are skipped (s)")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (feature extraction runs there)")
    valid_max_cuts: int | None = Field(None, ge=1, description="validate on at most this many cuts per corpus")
    cmvn: bool = Field(True, description="global mean/variance normalisation of the features, fitted on train cuts")
    augment: AugmentOptions = Field(default_factory=AugmentOptions)
    decoder_tasks: list[DecoderTask] = Field(default_factory=lambda: list(DECODER_TASKS))
    decoder_task_weights: dict[DecoderTask, float] = Field(default_factory=dict)
    timestamp_prob: float = Field(0.0, ge=0.0, le=1.0, description="share of transcribe targets with timestamps")

    @field_validator("corpora")
    @classmethod
    def _distinct_labels(cls, corpora: list[CorpusConfig]) -> list[CorpusConfig]:
        labels = [c.label for c in corpora]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"corpora need distinct names (set 'name'); duplicated: {', '.join(duplicates)}")
        return corpora


class TokenizerConfig(StrictConfig):
    """Load an existing tokenizer (``path``) or train one on the training cuts of all corpora."""

    path: Path | None = Field(None, description="directory with tokenizer.model + tokenizer.json")
    vocab_size: int = Field(1000, gt=0, description="text pieces when training (soft limit)")
    model_type: Literal["unigram", "bpe", "char"] = "unigram"


class EmaConfig(StrictConfig):
    """Exponential moving average of the weights; when enabled, validation and export use the average."""

    enabled: bool = False
    decay: float = Field(0.999, gt=0.0, lt=1.0)
    warmup: bool = Field(True, description="ramp the decay as min(decay, (1 + step) / (10 + step))")


class OptimConfig(StrictConfig):
    lr: float = Field(1e-3, gt=0, description="peak learning rate (reached at the end of warm-up)")
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.01, ge=0, description="AdamW decay; never applied to biases, norms, embeddings")
    schedule: Literal["cosine", "noam", "constant"] = "cosine"
    warmup_steps: int = Field(1000, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0.0, le=1.0, description="cosine floor as a share of lr")
    grad_clip: float | None = Field(5.0, gt=0, description="max global grad norm; null = no clipping")
    accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    ema: EmaConfig = Field(default_factory=EmaConfig)


class DistributedConfig(StrictConfig):
    """Used when launched by torchrun (WORLD_SIZE > 1); ignored in a single process."""

    strategy: Literal["ddp", "fsdp"] = Field("ddp", description="fsdp shards parameters (FSDP2 fully_shard)")
    backend: Literal["auto", "nccl", "gloo"] = Field("auto", description="auto: nccl on CUDA, gloo on CPU")
    timeout_minutes: float = Field(30.0, gt=0)


class TrainConfig(StrictConfig):
    output_dir: Path
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N (torchrun ranks use cuda:LOCAL_RANK)")
    max_steps: int = Field(..., ge=1, description="optimizer steps; also the horizon of LR and GRL schedules")
    max_minutes: float | None = Field(None, gt=0, description="stop (with a checkpoint) after this much training")
    log_every: int = Field(10, ge=1)
    valid_every: int = Field(500, ge=1)
    valid_decode: bool = Field(
        True,
        description="greedy-decode the decoder's answers in validation (transcribe/slu WER and CER, BLEU, SLU "
        "intent); false: its teacher-forced token accuracy only, which costs one forward instead of a search",
    )
    checkpoint_every: int = Field(1000, ge=1)
    keep_last_k: int = Field(3, ge=1, description="step checkpoints kept (best.pt is kept apart)")
    best_metric: str = Field("loss", description="'loss' (summed valid loss) or TASK.METRIC, e.g. asr_ctc.cer")
    best_mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for accuracy/f1, else min")
    export: Literal["best", "final"] = Field("best", description="weights in the exported model file")
    compile: bool = Field(
        False,
        description="torch.compile every encoder block (regional: the blocks share one compiled graph); "
        "needs a C++ compiler on CPU",
    )
    progress_bar: bool = True
    tensorboard: bool = True
    plots: bool = True
    data: DataConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: ModelConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    balancer: BalancerConfig = Field(default_factory=BalancerConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    @model_validator(mode="after")
    def _check_best_metric(self) -> TrainConfig:
        if self.best_metric != "loss":
            task, _, metric = self.best_metric.partition(".")
            if not metric or task not in self.model.tasks:
                raise ValueError(
                    f"best_metric must be 'loss' or TASK.METRIC with an enabled task "
                    f"({', '.join(self.model.tasks)}), got {self.best_metric!r}"
                )
        return self

    @model_validator(mode="after")
    def _decoder_metrics_are_measured(self) -> TrainConfig:
        if self.valid_decode:
            return self
        read = [("best_metric", self.best_metric)] + [
            (f"curriculum.tasks.{name}.when.metric", s.when.metric)
            for name, s in self.curriculum.tasks.items()
            if s.when is not None
        ]
        for key, metric in read:
            if metric.startswith("decoder.") and metric not in ("decoder.loss", "decoder.token_accuracy"):
                raise ValueError(
                    f"{key} reads {metric!r}, which only the decoder's greedy search measures, but valid_decode "
                    "is false; set valid_decode: true or read decoder.token_accuracy / decoder.loss"
                )
        return self

    @model_validator(mode="after")
    def _curriculum_starts_in_time(self) -> TrainConfig:
        # A task switched on at or after the last step never trains: most likely a shortened run (--set max_steps,
        # compare --steps) that kept a recipe's curriculum, so say which key to change instead of training silently.
        late = {name: s.start_step for name, s in self.curriculum.tasks.items() if s.start_step >= self.max_steps}
        if late:
            name, start = next(iter(late.items()))
            raise ValueError(
                f"curriculum.tasks.{name}.start_step ({start}) is not before max_steps ({self.max_steps}), so "
                f"{', '.join(late)} would never train; lower the start_step or raise max_steps"
            )
        return self

    def resolved_best_mode(self) -> Literal["min", "max"]:
        if self.best_mode != "auto":
            return self.best_mode
        higher_is_better = ("accuracy", "acc", "f1", "bleu", "precision", "recall")
        return "max" if self.best_metric.rsplit(".", 1)[-1] in higher_is_better else "min"


def validate_train_config(raw: RawConfig, source: str | Path | None = None) -> TrainConfig:
    """Validate a merged raw config; every problem becomes one line of a single UserError with its origin."""
    try:
        return TrainConfig.model_validate(raw.data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = [part for part in e["loc"] if part != ""]
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            origin = raw.origin(loc)
            where = f"{origin}: " if origin is not None else ""
            lines.append(f"{where}{dotted}: {e['msg'].removeprefix('Value error, ')}")
        raise UserError("invalid training config:\n  " + "\n  ".join(lines), path=source) from None


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read ``path`` (following ``base:``), apply ``--set`` overrides, validate."""
    raw = apply_overrides(load_raw_config(path), overrides)
    return validate_train_config(raw, source=path)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """JSON-able dict of the whole config (paths as strings), as saved in the run dir and checkpoints; it
    validates again, so ``mtspeech train RUN/config.yaml`` reruns a run."""
    data = config.model_dump(mode="json")
    data["balancer"] = config.balancer.used_options()
    return data

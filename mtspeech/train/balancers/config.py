"""The ``balancer:`` section of a training config.

One flat model for every method, so a config reads ``{name: dwa, temperature: 2}``. Each option belongs to the
methods listed in :data:`OPTION_METHODS`; setting an option that the chosen method does not use is an error
naming the option and the methods it applies to (a typo'd method switch must not be silently ignored).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mtspeech.model.config import StrictConfig

LOSS_WEIGHTING = ("static", "loss_norm", "dwa", "uncertainty", "gradnorm")
GRADIENT_METHODS = ("pcgrad", "cagrad", "mgda", "upgrad", "imtlg", "dualproj")
METHODS = LOSS_WEIGHTING + GRADIENT_METHODS
BalancerName = Literal[
    "static", "loss_norm", "dwa", "uncertainty", "gradnorm", "pcgrad", "cagrad", "mgda", "upgrad", "imtlg", "dualproj"
]

# Tasks weighted 1.0 by ``static`` when ``weights`` does not name them; every other task gets 0.5.
ASR_TASKS = ("asr_ctc", "decoder")

OPTION_METHODS: dict[str, tuple[str, ...]] = {
    "ema_decay": ("loss_norm",),
    "temperature": ("dwa",),
    "window": ("dwa",),
    "loss_kinds": ("uncertainty",),
    "log_var_init": ("uncertainty",),
    "log_var_min": ("uncertainty",),
    "log_var_max": ("uncertainty",),
    "alpha": ("gradnorm",),
    "min_weight": ("gradnorm",),
    "update_every": ("gradnorm",),
    "representation": GRADIENT_METHODS,
    "seed": ("pcgrad",),
    "sync_task_grads": GRADIENT_METHODS,
    "cagrad_c": ("cagrad",),
}


class BalancerConfig(StrictConfig):
    """How the task losses are combined into one update (see docs/balancing.md)."""

    name: BalancerName = Field("static", description="balancing method")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="per-task loss weights. static: the weights (default 1.0 for asr_ctc/decoder, 0.5 otherwise); "
        "other methods: fixed priors multiplied into each loss before balancing (default 1.0)",
    )
    telemetry_every: int = Field(
        100, ge=0, description="optimizer steps between gradient-telemetry records (cosines, norms); 0 = off"
    )
    # loss_norm
    ema_decay: float = Field(0.99, ge=0.0, lt=1.0, description="loss_norm: decay of the running mean of each loss")
    # dwa
    temperature: float = Field(2.0, gt=0.0, description="dwa: softmax temperature (Liu et al. use 2)")
    window: int = Field(100, ge=1, description="dwa: optimizer steps per window (the paper's 'epoch')")
    # uncertainty
    loss_kinds: dict[str, Literal["regression", "classification"]] = Field(
        default_factory=dict,
        description="uncertainty: per-task likelihood form; classification (default): L/sigma^2, "
        "regression: L/(2 sigma^2)",
    )
    log_var_init: float = Field(0.0, description="uncertainty: initial log sigma^2")
    log_var_min: float = Field(
        -6.0, description="uncertainty: lower clamp of log sigma^2 (keeps the objective bounded)"
    )
    log_var_max: float = Field(6.0, description="uncertainty: upper clamp of log sigma^2")
    # gradnorm
    alpha: float = Field(1.5, ge=0.0, description="gradnorm: restoring-force strength (Chen et al.: 0.5 to 3)")
    min_weight: float = Field(0.01, gt=0.0, description="gradnorm: floor of a task weight before renormalising")
    update_every: int = Field(
        1, ge=1, description="gradnorm: steps between weight updates; steps in between cost a plain backward"
    )
    # gradient methods
    representation: bool = Field(
        False,
        description="gradient methods: combine per-task gradients of the shared representation (encoder output) "
        "instead of all shared parameters; one encoder backward instead of one per task",
    )
    seed: int = Field(0, description="pcgrad: seed of the random task order (saved with the balancer state)")
    sync_task_grads: bool = Field(
        True, description="gradient methods, multi-GPU: average per-task gradients over ranks before combining them"
    )
    cagrad_c: float = Field(0.4, ge=0.0, description="cagrad: radius of the ball around the mean gradient")

    @model_validator(mode="after")
    def _options_match_method(self) -> BalancerConfig:
        wrong = [
            f"'{key}' applies to {' / '.join(OPTION_METHODS[key])} only"
            for key in sorted(self.model_fields_set)
            if key in OPTION_METHODS and self.name not in OPTION_METHODS[key]
        ]
        if wrong:
            raise ValueError(f"balancer {self.name!r} does not use: {'; '.join(wrong)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"weights must be >= 0, got {self.weights}")
        if self.log_var_min >= self.log_var_max:
            raise ValueError(f"log_var_min ({self.log_var_min}) must be below log_var_max ({self.log_var_max})")
        return self

    def used_options(self) -> dict[str, Any]:
        """The options as JSON, without those of other methods: what a saved run config may set and load again
        (setting another method's option is an error, see the module docstring)."""
        return {
            key: value
            for key, value in self.model_dump(mode="json").items()
            if key not in OPTION_METHODS or self.name in OPTION_METHODS[key]
        }

    def prior_weights(self, tasks: list[str]) -> dict[str, float]:
        """The fixed per-task weights: ``weights`` where given, else the method's default (see ``weights``)."""
        if self.name == "static":
            return {t: float(self.weights.get(t, 1.0 if t in ASR_TASKS else 0.5)) for t in tasks}
        return {t: float(self.weights.get(t, 1.0)) for t in tasks}

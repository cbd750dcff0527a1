"""Task curriculum: switch tasks on at a step or once another task is good enough, then ramp their weight up.

::

    curriculum:
      tasks:
        decoder: {start_step: 2000, ramp_steps: 1000}               # on at step 2000, full weight at 3000
        intent:  {when: {metric: asr_ctc.cer, below: 0.30}, ramp_steps: 500}   # after CER < 30 %
        emotion: {head_start_step: 300, start_step: 1400, ramp_steps: 200}     # head alone from 300

``Curriculum(config).multipliers(step, metrics)`` gives each scheduled task a multiplier in [0, 1]; the trainer
multiplies the task's loss by it before the balancer and drops tasks at 0. Tasks not listed are always at 1.

A task switches on at the first step ``>= start_step`` where its condition holds (``metrics`` are the latest
validation metrics, the same on every rank) and stays on: a metric that later gets worse does not switch it off
again, which would make training oscillate. The switch-on steps are the state saved for resume.

``head_start_step`` warms the head up first (linear probing before fine-tuning, Kumar et al., 2022): from that
step the task's loss trains its head at full weight on the *detached* encoder output, and the multiplier scales
only the gradient the task sends into the encoder. A head that is still guessing sends large, uninformative
gradients into the shared encoder; one warmed up on the features of the moment joins with useful ones.
``Curriculum.head_tasks(step)`` lists the tasks whose heads train at a step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, model_validator

from mtspeech.errors import UserError
from mtspeech.model.config import StrictConfig


class MetricCondition(StrictConfig):
    """``metric`` below (or above) a threshold, e.g. ``{metric: asr_ctc.cer, below: 0.3}``."""

    metric: str = Field(..., min_length=1, description="key of the validation metrics the trainer reports")
    below: float | None = None
    above: float | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> MetricCondition:
        if (self.below is None) == (self.above is None):
            raise ValueError(f"condition on {self.metric!r} needs exactly one of 'below' or 'above'")
        return self

    def holds(self, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False  # not measured yet
        return value < self.below if self.below is not None else value > self.above


class TaskSchedule(StrictConfig):
    """When one task joins training and how fast its weight reaches 1."""

    start_step: int = Field(0, ge=0, description="earliest optimizer step the task is on")
    when: MetricCondition | None = Field(None, description="also wait until this metric condition holds")
    ramp_steps: int = Field(0, ge=0, description="steps of linear ramp from 0 to 1 after switching on; 0 = jump")
    head_start_step: int | None = Field(
        None,
        ge=0,
        description="train the head alone (on the detached encoder output) from this step; the task's gradient "
        "reaches the encoder from start_step (and its condition) on, scaled by the ramp",
    )

    @model_validator(mode="after")
    def _head_first(self) -> TaskSchedule:
        if self.head_start_step is not None and self.head_start_step > self.start_step:
            raise ValueError(
                f"head_start_step ({self.head_start_step}) must not come after start_step ({self.start_step}): "
                "the head trains from head_start_step, the encoder joins at start_step"
            )
        return self


class CurriculumConfig(StrictConfig):
    """Task name -> schedule; an empty mapping (the default) trains every task from the start."""

    tasks: dict[str, TaskSchedule] = Field(default_factory=dict)


class Curriculum:
    """Evaluates a :class:`CurriculumConfig`; see the module docstring."""

    def __init__(self, config: CurriculumConfig, tasks: Sequence[str] | None = None) -> None:
        self.config = config
        self.tasks = list(tasks) if tasks is not None else None
        if self.tasks is not None:
            unknown = sorted(set(config.tasks) - set(self.tasks))
            if unknown:
                raise UserError(
                    f"curriculum.tasks names task(s) {', '.join(map(repr, unknown))} that the model does not "
                    f"train; tasks: {', '.join(self.tasks)}"
                )
        self.switched_on: dict[str, int] = {}  # task -> first step it was on

    def multipliers(self, step: int, metrics: Mapping[str, float] | None = None) -> dict[str, float]:
        """Loss multiplier per task at optimizer step ``step`` (scheduled tasks, or every task when the
        curriculum was built with ``tasks``)."""
        metrics = metrics or {}
        result = {t: 1.0 for t in self.tasks} if self.tasks is not None else {}
        for task, schedule in self.config.tasks.items():
            on_at = self.switched_on.get(task)
            if (
                on_at is None
                and step >= schedule.start_step
                and (schedule.when is None or schedule.when.holds(metrics))
            ):
                on_at = self.switched_on[task] = step
            result[task] = self._ramp(schedule, step, on_at)
        return result

    def head_tasks(self, step: int) -> set[str]:
        """Tasks with a ``head_start_step`` reached by ``step``: their heads train at full weight and their
        multiplier scales only the gradient they send into the encoder."""
        return {
            task
            for task, schedule in self.config.tasks.items()
            if schedule.head_start_step is not None and step >= schedule.head_start_step
        }

    def untrained(self, step: int) -> set[str]:
        """Scheduled tasks that no step before ``step`` has trained: not switched on and no warming head, and
        no curriculum condition reads their metrics. Their validation metrics would only measure a random head.
        Reads the switch-on state without changing it (unlike :meth:`multipliers`)."""
        watched = {s.when.metric.split(".", 1)[0] for s in self.config.tasks.values() if s.when is not None}
        return {
            task
            for task, schedule in self.config.tasks.items()
            if (task not in self.switched_on or self.switched_on[task] >= step)
            and (schedule.head_start_step is None or schedule.head_start_step >= step)
            and task not in watched
        }

    @staticmethod
    def _ramp(schedule: TaskSchedule, step: int, on_at: int | None) -> float:
        if on_at is None or step < on_at:
            return 0.0
        if schedule.ramp_steps == 0:
            return 1.0
        return min(1.0, (step - on_at + 1) / schedule.ramp_steps)

    def state_dict(self) -> dict[str, Any]:
        return {"switched_on": dict(self.switched_on)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.switched_on = {str(t): int(s) for t, s in state.get("switched_on", {}).items()}

"""The plain utterance classifiers: each is :class:`PooledClassifierTask` with a name (= its label key).

The accent classifier, which adds gradient reversal, lives in :mod:`mtspeech.tasks.accent`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mtspeech.tasks.base import register_task
from mtspeech.tasks.pooled import PooledClassifierConfig, PooledClassifierTask


@register_task
class IntentTask(PooledClassifierTask):
    """SLURP-style ``scenario_action`` intent."""

    name = "intent"


class LanguageIdConfig(PooledClassifierConfig):
    encoder_layers: Literal["last"] = Field(
        "last",
        description="always the encoder output: decoding asks this head for the language where it holds only that",
    )


@register_task
class LanguageIdTask(PooledClassifierTask):
    """Spoken language (ISO 639-1)."""

    name = "lid"
    config_class = LanguageIdConfig


@register_task
class EmotionTask(PooledClassifierTask):
    """Emotion of the voice (neutral, happy, sad, angry)."""

    name = "emotion"


@register_task
class SpeakerTask(PooledClassifierTask):
    """Closed-set speaker identity (speakers seen in training)."""

    name = "speaker"


@register_task
class GenderTask(PooledClassifierTask):
    """Speaker gender, where the corpus labels it."""

    name = "gender"

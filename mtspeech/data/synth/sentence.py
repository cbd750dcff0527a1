"""A written sentence before it is spoken: the unit the text sources hand to the audio builder."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtspeech.data.schema import SlotSpan


@dataclass(frozen=True)
class Sentence:
    sentence_id: str  # unique over the whole pool, stable across runs ("slurp-13804", "tpl-fr-weather-17")
    text: str  # spoken form: lowercase words separated by single spaces, numbers written out
    language: str  # ISO 639-1
    source: str  # "slurp" | "template"
    intent: str | None = None  # SLURP scenario_action (English SLU sentences only)
    slots: tuple[SlotSpan, ...] = ()  # word spans over text.split()
    translations: dict[str, str] = field(default_factory=dict)  # target language -> spoken-form text
    slurp_annotation: str | None = None  # SLURP's "[type : words]" form, for SLU decoder targets
    polarity: str = "neutral"  # "positive" | "negative" | "neutral": sentiment of the words alone
    group: str = ""  # sentences sharing a group go to the same split (e.g. one template's fills)

    def __post_init__(self) -> None:
        if not self.text or self.text != " ".join(self.text.split()):
            raise ValueError(f"{self.sentence_id}: text must be non-empty, single-spaced: {self.text!r}")
        n = len(self.text.split())
        for span in self.slots:
            if not 0 <= span.start < span.end <= n:
                raise ValueError(f"{self.sentence_id}: slot {span} outside the {n} words of {self.text!r}")

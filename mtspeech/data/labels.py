"""Label vocabularies for the classification heads (intent, lid, emotion, speaker, accent, gender) and slot tags.

Built once from the training cuts (plus the closed sets of :mod:`mtspeech.data.schema`, so ids of the closed
sets do not depend on which labels a corpus happens to contain) and saved with the model. A label that is not in
the vocabulary at encode time (a test speaker, a new intent) becomes :data:`IGNORE` and is counted, with one
warning per distinct label, instead of crashing a run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mtspeech.data.batch import IGNORE
from mtspeech.data.schema import ACCENT, ACCENTS, BIO, EMOTION, EMOTIONS, GENDERS, INTENT, LANGUAGES, SLOTS

logger = logging.getLogger(__name__)

CLASS_TASKS = ("intent", "lid", "emotion", "speaker", "accent", "gender")
SLOT_TASK = "slot"
OUTSIDE_TAG = "O"
# Labels every vocabulary of that task starts with, in this order, whether or not the corpus has them.
CLOSED_SETS: dict[str, tuple[str, ...]] = {
    "lid": LANGUAGES,
    "emotion": EMOTIONS,
    "accent": ACCENTS,
    "gender": GENDERS,
    SLOT_TASK: (OUTSIDE_TAG,),
}


class LabelVocab:
    """A fixed label <-> id mapping with counts from the data it was built on."""

    def __init__(self, name: str, labels: Sequence[str], counts: Mapping[str, int] | None = None) -> None:
        if len(set(labels)) != len(labels):
            raise ValueError(f"label vocabulary {name!r} has duplicate labels")
        self.name = name
        self.labels: list[str] = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.counts: dict[str, int] = {label: int((counts or {}).get(label, 0)) for label in self.labels}
        self.unknown_counts: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.index

    def __repr__(self) -> str:
        return f"LabelVocab({self.name!r}, {len(self)} labels)"

    def encode(self, label: str | None) -> int:
        """Id of ``label``; :data:`IGNORE` for a missing label (None) or an unknown one (counted, warned once)."""
        if label is None:
            return IGNORE
        idx = self.index.get(label)
        if idx is None:
            if label not in self.unknown_counts:
                logger.warning(
                    "%s: label %r is not in the vocabulary (%d labels); it is ignored", self.name, label, len(self)
                )
            self.unknown_counts[label] += 1
            return IGNORE
        return idx

    def decode(self, idx: int) -> str:
        if not 0 <= idx < len(self.labels):
            raise ValueError(f"{self.name}: id {idx} outside [0, {len(self.labels)})")
        return self.labels[idx]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": list(self.labels), "counts": dict(self.counts)}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> LabelVocab:
        try:
            return LabelVocab(str(data["name"]), [str(x) for x in data["labels"]], data.get("counts"))
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a label vocabulary dict (needs 'name' and 'labels'): {err}") from None


def supervision_label(task: str, sup: Any) -> str | None:
    """The utterance-level label of ``task`` on one supervision, per the schema; None when absent."""
    custom = sup.custom or {}
    value: Any
    if task == "intent":
        value = custom.get(INTENT)
    elif task == "lid":
        value = sup.language
    elif task == "emotion":
        value = custom.get(EMOTION)
    elif task == "speaker":
        value = sup.speaker
    elif task == "accent":
        value = custom.get(ACCENT)
    elif task == "gender":
        value = sup.gender
    else:
        raise ValueError(f"unknown class task {task!r}; expected one of {CLASS_TASKS}")
    return str(value) if value not in (None, "") else None


def slot_types(sup: Any) -> set[str]:
    """Slot types named on a supervision, from its ``slots`` spans or its ``bio`` tags."""
    custom = sup.custom or {}
    types = {str(span["type"]) for span in custom.get(SLOTS) or []}
    types |= {tag[2:] for tag in custom.get(BIO) or [] if tag[:2] in ("B-", "I-")}
    return types


def bio_tags_for(types: Iterable[str]) -> list[str]:
    """``O`` then ``B-x``, ``I-x`` for every slot type, sorted: the slot tag vocabulary order."""
    tags = [OUTSIDE_TAG]
    for kind in sorted(set(types)):
        tags += [f"B-{kind}", f"I-{kind}"]
    return tags


def build_label_vocabs(cuts: Iterable[Any], tasks: Sequence[str] = (*CLASS_TASKS, SLOT_TASK)) -> dict[str, LabelVocab]:
    """One :class:`LabelVocab` per task: the closed set first (schema order), then other labels seen, sorted.

    Counts are per supervision. One pass over ``cuts``, so a lazy manifest is fine."""
    counts: dict[str, Counter[str]] = {task: Counter() for task in tasks}
    for cut in cuts:
        for sup in cut.supervisions:
            for task in tasks:
                if task == SLOT_TASK:
                    for kind in slot_types(sup):
                        counts[task][f"B-{kind}"] += 1
                    continue
                label = supervision_label(task, sup)
                if label is not None:
                    counts[task][label] += 1
    vocabs: dict[str, LabelVocab] = {}
    for task in tasks:
        if task == SLOT_TASK:
            labels = bio_tags_for(tag[2:] for tag in counts[task])
        else:
            closed = CLOSED_SETS.get(task, ())
            labels = [*closed, *sorted(set(counts[task]) - set(closed))]
        vocabs[task] = LabelVocab(task, labels, counts[task])
    return vocabs


def vocabs_to_dict(vocabs: Mapping[str, LabelVocab]) -> dict[str, Any]:
    return {task: vocab.to_dict() for task, vocab in vocabs.items()}


def vocabs_from_dict(data: Mapping[str, Any]) -> dict[str, LabelVocab]:
    return {task: LabelVocab.from_dict(d) for task, d in data.items()}

"""Sentences from templates: one pattern per language, placeholders filled from aligned filler rows.

A :class:`TemplateTable` holds patterns written per language and the fillers their placeholders draw
from. A filler is one value written in every language of its table (``{"en": "kitchen", "fr": "dans la
cuisine", ...}``), so one choice of fillers renders the same meaning in each language: that is how the
translation tables stay parallel, and why a filler carries whatever the grammar of its language needs
around it (article, preposition, case) while the English form is the bare slot value.

Placeholders are ``{category}`` or ``{category2}`` (a second, different value of the same category);
``{category:variant}`` takes the filler's ``"<language>:<variant>"`` form, for a language that needs
another form in that sentence ("de la cuisine" where the other sentences say "dans la cuisine").
Two placeholders never get the same value (a row's ``"_key"`` names its value when rows of different
categories can mean the same thing: "fifty euros" and "euros"). In an English filler, ``[...]`` marks
the words that form the slot when the placeholder is one ("the [airport]": the slot is "airport");
without brackets the whole filler is the slot.

Which fills of a template become sentences is a seeded sample of the cartesian product of its
placeholders' fillers; a sentence id names the template and the product index, so an id always means
the same words.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from math import prod

import numpy as np

from mtspeech.data.schema import SlotSpan
from mtspeech.data.synth.numbers import spoken_words

PLACEHOLDER = re.compile(r"\{([a-z_]+?)(\d*)(?::([a-z]+))?\}")
KEY = "_key"
POLARITIES = ("positive", "negative", "neutral")

Filler = Mapping[str, str]  # language -> words (English may bracket the slot words)


@dataclass(frozen=True)
class Template:
    """Patterns of one sentence shape, per language, with its SLU labels (English only)."""

    name: str  # unique over all tables; part of every sentence id made from it
    patterns: Mapping[str, str]  # language -> pattern with {placeholders}
    intent: str | None = None  # SLURP scenario_action of the English sentence
    slots: Mapping[str, str] = field(default_factory=dict)  # placeholder -> SLURP slot type
    polarity: str = "neutral"  # sentiment of the words alone
    limit: int = 60  # at most this many fills become sentences

    def placeholders(self, language: str) -> list[str]:
        """Placeholder names of the pattern in ``language`` (variants left out)."""
        return [m.group(1) + m.group(2) for m in PLACEHOLDER.finditer(self.patterns[language])]

    def form_keys(self, language: str) -> list[tuple[str, str]]:
        """(placeholder name, filler key) for each placeholder of the pattern in ``language``."""
        return [
            (m.group(1) + m.group(2), _form_key(language, m)) for m in PLACEHOLDER.finditer(self.patterns[language])
        ]


@dataclass(frozen=True)
class TemplateTable:
    """Templates that share languages and fillers; the first language is the one spoken."""

    name: str
    languages: tuple[str, ...]
    templates: tuple[Template, ...]
    fillers: Mapping[str, Sequence[Filler]]

    def __post_init__(self) -> None:
        for template in self.templates:
            if set(template.patterns) != set(self.languages):
                raise ValueError(f"template {template.name!r} must have patterns for {self.languages}")
            if template.polarity not in POLARITIES:
                raise ValueError(f"template {template.name!r}: polarity must be one of {POLARITIES}")
            names = set(template.placeholders(self.languages[0]))
            for language in self.languages:
                if set(template.placeholders(language)) != names:
                    raise ValueError(f"template {template.name!r}: {language} uses other placeholders than the rest")
            for language in self.languages:
                for name, key in template.form_keys(language):
                    rows = self.fillers.get(category_of(name))
                    if not rows:
                        raise ValueError(f"template {template.name!r}: no fillers for {{{name}}} in {self.name!r}")
                    if any(key not in row for row in rows):
                        raise ValueError(f"template {template.name!r}: some {category_of(name)!r} fillers lack {key!r}")
            unknown = set(template.slots) - names
            if unknown:
                raise ValueError(f"template {template.name!r}: slots name unknown placeholders {sorted(unknown)}")


@dataclass(frozen=True)
class Rendering:
    """One fill of a template in one language: its words and the word span of each placeholder's slot."""

    words: list[str]
    spans: dict[str, tuple[int, int]]


def category_of(placeholder: str) -> str:
    """The filler category of a placeholder name: "city2" -> "city"."""
    return placeholder.rstrip("0123456789")


def _form_key(language: str, match: re.Match[str]) -> str:
    """The filler form a placeholder takes: "fr", or "fr:of" for ``{room:of}``."""
    return f"{language}:{match.group(3)}" if match.group(3) else language


def _segments(pattern: str, language: str) -> Iterator[tuple[str, str | None, str]]:
    """The pattern as (literal text, None, "") and (placeholder, its name, filler key) pieces, in order."""
    position = 0
    for match in PLACEHOLDER.finditer(pattern):
        yield pattern[position : match.start()], None, ""
        yield match.group(0), match.group(1) + match.group(2), _form_key(language, match)
        position = match.end()
    yield pattern[position:], None, ""


def _split_slot(form: str) -> tuple[str, str, str]:
    """("the ", "airport", "") for "the [airport]"; the whole form when it has no brackets."""
    if "[" not in form:
        return "", form, ""
    before, rest = form.split("[", 1)
    inside, after = rest.split("]", 1)
    return before, inside, after


@functools.lru_cache(maxsize=65536)
def _words(text: str) -> tuple[str, ...]:
    """``spoken_words`` remembered: the same literals and fillers recur in thousands of sentences."""
    return tuple(spoken_words(text))


def render(pattern: str, fills: Mapping[str, Filler], language: str) -> Rendering:
    """Words of ``pattern`` in ``language`` with ``fills`` (placeholder -> filler) put in.

    Raises ValueError when the pieces do not join into the same words as the whole sentence (a
    placeholder glued to a word, say), because the slot spans would then be wrong.
    """
    words: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    plain_parts: list[str] = []
    for text, name, key in _segments(pattern, language):
        if name is None:
            words += _words(text)
            plain_parts.append(text)
            continue
        before, inside, after = _split_slot(fills[name][key])
        words += _words(before)
        start = len(words)
        words += _words(inside)
        spans[name] = (start, len(words))
        words += _words(after)
        plain_parts.append(before + inside + after)
    if words != spoken_words("".join(plain_parts)):
        raise ValueError(f"placeholders of {pattern!r} must stand apart from the words around them")
    return Rendering(words, spans)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    digest = hashlib.sha256("|".join([str(seed), *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sample_fills(table: TemplateTable, template: Template, seed: int) -> list[tuple[int, dict[str, Filler]]]:
    """Up to ``template.limit`` fills as (product index, placeholder -> filler), sampled with ``seed``.

    A fill that puts one value in two placeholders ({city} and {city2} both "paris") is dropped."""
    names = sorted(set(template.placeholders(table.languages[0])))
    sizes = [len(table.fillers[category_of(n)]) for n in names]
    total = prod(sizes)
    picks = _rng(seed, table.name, template.name).choice(total, size=min(template.limit, total), replace=False)
    fills = []
    for index in sorted(int(i) for i in picks):
        chosen: dict[str, int] = {}
        rest = index
        for name, size in zip(names, sizes, strict=True):
            rest, chosen[name] = divmod(rest, size)
        fill = {n: table.fillers[category_of(n)][i] for n, i in chosen.items()}
        values = [fill[n].get(KEY) or (category_of(n), i) for n, i in chosen.items()]
        if len(set(values)) < len(values):
            continue
        fills.append((index, fill))
    return fills


def template_slots(template: Template, rendering: Rendering) -> tuple[SlotSpan, ...]:
    """The SLU slots of an English rendering, in word order."""
    slots = [
        SlotSpan(kind, *rendering.spans[name], " ".join(rendering.words[slice(*rendering.spans[name])]))
        for name, kind in template.slots.items()
    ]
    return tuple(sorted(slots, key=lambda s: s.start))


def parallel(
    name: str,
    languages: Sequence[str],
    *patterns: str,
    intent: str | None = None,
    slots: Mapping[str, str] | None = None,
    polarity: str = "neutral",
    limit: int = 60,
) -> Template:
    """A template from patterns written in the order of ``languages`` (keeps the tables compact)."""
    if len(patterns) != len(languages):
        raise ValueError(f"template {name!r} needs one pattern for each of {tuple(languages)}")
    return Template(name, dict(zip(languages, patterns, strict=True)), intent, dict(slots or {}), polarity, limit)

"""The sentence pool the corpus is spoken from: SLURP's English commands plus templated sentences.

- English SLU: every SLURP development-split sentence (text_slurp.py), and templated commands with
  SLURP's intent and slot names (templates_english.py);
- speech translation: English sentences with French, German and Spanish translations from parallel
  templates (templates_translation.py); those that are commands carry intent and slots too;
- French, German, Spanish and Italian sentences written in each language (templates_{fr,de,es,it}.py);
- positive-word sentences in every language (prosody conflict), among the above.

The pool depends on ``seed`` only through which fills of each template are taken; a sentence id names
its source and, for templates, the template and fill, so it always means the same words. Texts are
unique within a language: a later duplicate (from another template, or a SLURP duplicate) is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from mtspeech.data.schema import TRANSLATION_TARGETS
from mtspeech.data.synth import templates_de, templates_english, templates_es, templates_fr, templates_it
from mtspeech.data.synth.plan import WORDS_MAX, WORDS_MIN, kind_filters
from mtspeech.data.synth.sentence import Sentence
from mtspeech.data.synth.templates_translation import TRANSLATION_TABLE
from mtspeech.data.synth.templating import TemplateTable, render, sample_fills, template_slots
from mtspeech.data.synth.text_slurp import annotate, load_slurp_sentences, word_polarity

# Order matters only for which of two identical texts is kept: SLURP first, then these.
TEMPLATE_TABLES: tuple[TemplateTable, ...] = (
    TRANSLATION_TABLE,
    templates_english.TABLE,
    templates_fr.TABLE,
    templates_de.TABLE,
    templates_es.TABLE,
    templates_it.TABLE,
)


def template_sentences(table: TemplateTable, seed: int) -> list[Sentence]:
    """The sentences of one table: its first language spoken, the others as translations.

    Raises ValueError on a table mistake (digits left in a text, a "positive" English template whose
    words are not positive), so a bad edit fails the tests instead of producing odd labels."""
    spoken, *targets = table.languages
    sentences = []
    for template in table.templates:
        for index, fill in sample_fills(table, template, seed):
            rendering = render(template.patterns[spoken], fill, spoken)
            words = rendering.words
            sentence_id = f"tpl-{template.name}-{index}"
            if any(ch.isdigit() for word in words for ch in word):
                raise ValueError(f"{sentence_id}: digits left in {' '.join(words)!r}")
            slots = template_slots(template, rendering) if spoken == "en" else ()
            polarity = template.polarity
            if spoken == "en":
                polarity = word_polarity(words, slots)
                if template.polarity == "positive" and polarity != "positive":
                    raise ValueError(f"{sentence_id}: template says positive, the words are {polarity}")
            sentences.append(
                Sentence(
                    sentence_id=sentence_id,
                    text=" ".join(words),
                    language=spoken,
                    source="template",
                    intent=template.intent if spoken == "en" else None,
                    slots=slots,
                    translations={t: " ".join(render(template.patterns[t], fill, t).words) for t in targets},
                    slurp_annotation=annotate(words, slots) if spoken == "en" and template.intent else None,
                    polarity=polarity,
                )
            )
    return sentences


def unique_texts(sentences: Iterable[Sentence]) -> list[Sentence]:
    """The sentences in order, without a later one whose (language, text) was already seen."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for sentence in sentences:
        key = (sentence.language, sentence.text)
        if key not in seen:
            seen.add(key)
            kept.append(sentence)
    return kept


def build_sentence_pool(seed: int = 0) -> list[Sentence]:
    """Every sentence the corpus may speak, deterministic for ``seed``; ids are unique."""
    names = Counter(t.name for table in TEMPLATE_TABLES for t in table.templates)
    if max(names.values()) > 1:
        raise ValueError(f"template names used twice: {[n for n, k in names.items() if k > 1]}")
    sentences = list(load_slurp_sentences().sentences)
    for table in TEMPLATE_TABLES:
        sentences += template_sentences(table, seed)
    pool = unique_texts(sentences)
    duplicates = [i for i, n in Counter(s.sentence_id for s in pool).items() if n > 1]
    if duplicates:
        raise ValueError(f"sentence ids used twice: {duplicates[:5]}")
    return pool


def pool_stats(pool: Sequence[Sentence]) -> dict[str, Any]:
    """What the pool holds: sentences per language, source, task and plan kind (docs/corpus.md)."""
    lengths = [len(s.text.split()) for s in pool]
    filters = kind_filters()
    return {
        "sentences": len(pool),
        "languages": dict(sorted(Counter(s.language for s in pool).items())),
        "sources": dict(sorted(Counter(s.source for s in pool).items())),
        "slu_sentences": sum(s.intent is not None for s in pool),
        "intents": len({s.intent for s in pool if s.intent}),
        "with_slots": sum(bool(s.slots) for s in pool),
        "slot_types": len({slot.type for s in pool for slot in s.slots}),
        "translations": {t: sum(t in s.translations for s in pool) for t in TRANSLATION_TARGETS},
        "positive": dict(sorted(Counter(s.language for s in pool if s.polarity == "positive").items())),
        "kinds": {kind: sum(map(keep, pool)) for kind, keep in filters.items()},
        "words": {"min": min(lengths, default=0), "max": max(lengths, default=0),
                  "mean": round(sum(lengths) / max(len(lengths), 1), 2),
                  "in_range": sum(WORDS_MIN <= n <= WORDS_MAX for n in lengths)},
    }  # fmt: skip

"""English spoken-language-understanding sentences from SLURP (Bastianelli et al., 2020), CC BY 4.0.

The shipped file ``mtspeech/data/resources/slurp_devel.jsonl.gz`` holds the text annotations of the SLURP
development split (see ``SLURP_ATTRIBUTION.md`` beside it). Each record becomes one :class:`Sentence` whose
text is the SLURP transcript in spoken form (lowercase, punctuation dropped, digits spelled out) and whose
slots are SLURP's entities as word spans over that text.

SLURP gives entities as lists of token ids, and its tokens are not whitespace words ("what's" is two
tokens, "robert," too), the tokens follow the bracketed annotation while a handful of transcripts were
corrected afterwards ("grassmarket" vs "grass market"). Spans are therefore carried in three steps:
tokens -> words of the annotation text -> words of the transcript (difflib word alignment) -> words
after normalisation (a word that becomes several words widens its span). A record whose spans cannot
be carried through is skipped and reported, never guessed.
"""

from __future__ import annotations

import difflib
import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtspeech.data.schema import SlotSpan, spans_to_bio
from mtspeech.data.synth.numbers import expand_english_digits, spoken_words
from mtspeech.data.synth.sentence import Sentence
from mtspeech.errors import UserError
from mtspeech.jsonl import json_lines

SLURP_DEVEL = Path(__file__).resolve().parents[1] / "resources" / "slurp_devel.jsonl.gz"
REQUIRED_FIELDS = ("slurp_id", "sentence", "sentence_annotation", "intent", "tokens", "entities")

_BRACKET = re.compile(r"\[\s*(\w+)\s*:\s*([^\]]*?)\s*\]")
_SYMBOL_WORDS = {"&": " and ", "@": " at ", "+": " plus ", "=": " equals "}

# Words whose sentiment is plain without hearing them; negators flip a following positive word.
_POSITIVE = frozenset(
    {"love", "loved", "lovely", "great", "awesome", "amazing", "wonderful", "fantastic", "excellent", "happy"}
    | {"glad", "perfect", "brilliant", "beautiful", "enjoy", "enjoyed", "thanks", "thank", "fabulous", "delighted"}
)
_NEGATIVE = frozenset(
    {"hate", "hated", "terrible", "awful", "horrible", "sad", "angry", "annoying", "annoyed", "worst", "upset"}
    | {"boring", "bored", "disappointed", "stupid", "sucks", "depressed", "lonely", "miserable", "hurt", "hurts"}
)
_NEGATORS = frozenset({"not", "don't", "doesn't", "didn't", "never", "no", "isn't", "wasn't", "can't", "won't"})


class SlurpAlignmentError(ValueError):
    """A record whose entity spans cannot be carried onto the normalised words."""


@dataclass
class SlurpLoad:
    """The sentences read from a SLURP file, and what was skipped or repaired on the way."""

    sentences: list[Sentence]
    skipped: dict[int, str] = field(default_factory=dict)  # slurp_id -> why it could not be aligned
    repaired_intents: int = 0  # records whose "intent" lacked the scenario ("query" -> "weather_query")


def parse_annotation(annotation: str) -> tuple[list[str], list[tuple[str, int, int]]]:
    """Words of a SLURP ``sentence_annotation`` without brackets, and its entities as word spans.

    ``"wake me up at [time : eight] o'clock"`` -> (["wake", ..., "eight", "o'clock"], [("time", 4, 5)]).
    A bracket glued to punctuation ("[person : robert],") covers the whole word ("robert,").
    """
    plain = ""
    char_spans: list[tuple[str, int, int]] = []
    position = 0
    for match in _BRACKET.finditer(annotation):
        plain += annotation[position : match.start()]
        if match.group(2):
            char_spans.append((match.group(1), len(plain), len(plain) + len(match.group(2))))
        plain += match.group(2)
        position = match.end()
    plain += annotation[position:]
    word_of_char = _word_of_char(plain)
    entities = [(kind, word_of_char[start], word_of_char[end - 1] + 1) for kind, start, end in char_spans]
    return plain.split(), entities


def _word_of_char(text: str) -> list[int]:
    """Index of the whitespace word each character belongs to (spaces count with the word before)."""
    indices = []
    word = -1
    for i, ch in enumerate(text):
        if not ch.isspace() and (i == 0 or text[i - 1].isspace()):
            word += 1
        indices.append(max(word, 0))
    return indices


def normalise_english_words(words: list[str]) -> list[list[str]]:
    """Spoken form of each word (possibly several words, possibly none): lowercase, digits spelled out."""
    out: list[list[str]] = []
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else None
        core = word.strip('.,;:!?"()[]{}')
        core = expand_english_digits(core, following) if core else core
        for symbol, spoken in _SYMBOL_WORDS.items():
            core = core.replace(symbol, spoken)
        out.append(spoken_words(core))
    return out


def word_polarity(words: list[str], slots: list[SlotSpan] | tuple[SlotSpan, ...] = ()) -> str:
    """Sentiment of the words alone: "positive" or "negative" when unmistakable, else "neutral".

    Words inside slots are names ("i will always love you" is a song title) and do not count.
    """
    in_slot = {i for slot in slots for i in range(slot.start, slot.end)}
    found = set()
    for i, word in enumerate(words):
        if i in in_slot:
            continue
        negated = any(w in _NEGATORS for w in words[max(0, i - 2) : i])
        if word in _POSITIVE:
            found.add("negative" if negated else "positive")
        elif word in _NEGATIVE:
            found.add("negative")
    return found.pop() if len(found) == 1 else "neutral"


def _token_word_indices(reference: str, surfaces: list[str]) -> list[int]:
    """Whitespace-word index in ``reference`` of each token, found left to right, case-insensitively."""
    lowered = reference.lower()
    word_of_char = _word_of_char(reference)
    cursor = 0
    indices = []
    for surface in surfaces:
        needle = surface.lower().strip()
        found = lowered.find(needle, cursor) if needle else -1
        if found < 0 or lowered[cursor:found].strip():
            raise SlurpAlignmentError(f"token {surface!r} not found in order in {reference!r}")
        indices.append(word_of_char[found])
        cursor = found + len(needle)
    return indices


def _carry_spans(source: list[str], target: list[str], spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Move word spans over ``source`` onto ``target`` through a difflib word alignment."""
    if [w.lower() for w in source] == [w.lower() for w in target]:
        return spans
    key = [" ".join(spoken_words(w)) for w in source], [" ".join(spoken_words(w)) for w in target]
    image: dict[int, tuple[int, int, int, int]] = {}  # source word -> (block i1, i2, j1, j2)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=key[0], b=key[1], autojunk=False).get_opcodes():
        for i in range(i1, i2):
            image[i] = (i, i + 1, j1 + i - i1, j1 + i - i1 + 1) if tag == "equal" else (i1, i2, j1, j2)
    carried = []
    for kind, start, end in spans:
        covered: list[int] = []
        for i in range(start, end):
            i1, i2, j1, j2 = image[i]
            if i1 < start or i2 > end:
                raise SlurpAlignmentError(f"entity {kind!r} cuts through an edited stretch of the transcript")
            covered.extend(range(j1, j2))
        if not covered:
            raise SlurpAlignmentError(f"entity {kind!r} has no words left in the transcript")
        carried.append((kind, min(covered), max(covered) + 1))
    return carried


def slurp_record_to_sentence(record: dict[str, Any]) -> tuple[Sentence, bool]:
    """One SLURP record as a Sentence, and whether its intent name had to be repaired.

    Raises :class:`SlurpAlignmentError` when the entities cannot be placed on the normalised words.
    """
    annotation = str(record["sentence_annotation"])
    reference_words, annotated = parse_annotation(annotation)
    reference = " ".join(reference_words)
    tokens = sorted(record["tokens"], key=lambda t: int(t["id"]))
    token_word = _token_word_indices(reference, [str(t["surface"]) for t in tokens])
    position = {int(t["id"]): i for i, t in enumerate(tokens)}

    spans = []
    for entity in record["entities"]:
        ids = [int(x) for x in entity["span"]]
        if not ids or any(x not in position for x in ids):
            raise SlurpAlignmentError(f"entity {entity.get('type')!r} names unknown token ids {ids}")
        words = [token_word[position[x]] for x in ids]
        spans.append((str(entity["type"]), min(words), max(words) + 1))
    if sorted(spans, key=lambda s: s[1]) != annotated:
        raise SlurpAlignmentError(f"token entities {spans} disagree with the annotation's brackets {annotated}")

    transcript = str(record["sentence"]).split()
    spans = _carry_spans(reference_words, transcript, spans)
    normalised = normalise_english_words(transcript)
    offsets = [0]
    for pieces in normalised:
        offsets.append(offsets[-1] + len(pieces))
    words = [w for pieces in normalised for w in pieces]
    if not words or any(ch.isdigit() for w in words for ch in w):
        raise SlurpAlignmentError(f"transcript {record['sentence']!r} has no spoken form without digits")
    slots = []
    for kind, start, end in spans:
        new_start, new_end = offsets[start], offsets[end]
        if new_start >= new_end:
            raise SlurpAlignmentError(f"entity {kind!r} vanished in normalisation")
        slots.append(SlotSpan(kind, new_start, new_end, " ".join(words[new_start:new_end])))
    try:
        spans_to_bio(len(words), slots)
    except ValueError as err:
        raise SlurpAlignmentError(str(err)) from err

    intent = str(record["intent"])
    scenario, action = str(record.get("scenario", "")), str(record.get("action", ""))
    repaired = bool(scenario and action) and intent != f"{scenario}_{action}"
    if repaired:
        intent = f"{scenario}_{action}"
    sentence = Sentence(
        sentence_id=f"slurp-{record['slurp_id']}",
        text=" ".join(words),
        language="en",
        source="slurp",
        intent=intent,
        slots=tuple(sorted(slots, key=lambda s: s.start)),
        slurp_annotation=annotate(words, slots),
        polarity=word_polarity(words, slots),
    )
    return sentence, repaired


def annotate(words: list[str], slots: list[SlotSpan] | tuple[SlotSpan, ...]) -> str:
    """SLURP's bracketed form of ``words`` with ``slots``: "wake me up at [time : eight] o'clock"."""
    starts = {s.start: s for s in slots}
    out: list[str] = []
    i = 0
    while i < len(words):
        if i in starts:
            slot = starts[i]
            out.append(f"[{slot.type} : {' '.join(words[slot.start : slot.end])}]")
            i = slot.end
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def load_slurp_sentences(path: str | Path = SLURP_DEVEL) -> SlurpLoad:
    """Every alignable record of a SLURP ``.jsonl`` or ``.jsonl.gz`` file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise UserError("SLURP file not found (expected a .jsonl or .jsonl.gz of SLURP records)", path=path)
    opener = gzip.open if path.suffix == ".gz" else open
    load = SlurpLoad(sentences=[])
    seen: set[str] = set()
    with opener(path, "rt", encoding="utf-8") as lines:
        for line_number, record in json_lines(lines, path, objects=False):
            missing = [f for f in REQUIRED_FIELDS if not isinstance(record, dict) or f not in record]
            if missing:
                raise UserError(f"SLURP record lacks field(s) {missing}", path=path, line=line_number)
            try:
                sentence, repaired = slurp_record_to_sentence(record)
            except SlurpAlignmentError as err:
                load.skipped[int(record["slurp_id"])] = str(err)
                continue
            except (KeyError, TypeError, ValueError) as err:
                raise UserError(f"malformed SLURP record: {err!r}", path=path, line=line_number) from None
            if sentence.sentence_id in seen:
                raise UserError(f"duplicate slurp_id {record['slurp_id']}", path=path, line=line_number)
            seen.add(sentence.sentence_id)
            load.sentences.append(sentence)
            load.repaired_intents += repaired
    return load

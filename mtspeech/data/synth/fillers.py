"""Fillers made of numbers, clock times, dates and weekdays, written out per language by numbers.py.

Each function returns filler rows (language -> words) for the languages asked for, with the same value
in every language of a row, so they serve both the parallel translation tables and the tables of a
single language.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mtspeech.data.synth.numbers import WEEKDAYS, cardinal, clock_time, day_of_month, day_part, uses_twelve_hour
from mtspeech.data.synth.templating import Filler

# Clock times people set alarms and meetings at: every quarter of the waking hours, and some
# five-minute marks. Noon and midnight are left out, where "in the afternoon" would sound odd.
_HOURS = (6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22)
CLOCK_TIMES: tuple[tuple[int, int], ...] = tuple(
    [(h, m) for h in _HOURS for m in (0, 15, 30, 45)] + [(h, m) for h in (7, 8, 9, 17, 18) for m in (5, 10, 20, 40, 50)]
)
# Dates of the year without the year; the day cycles so every month gets a spread of days.
CALENDAR_DATES: tuple[tuple[int, int], ...] = tuple(
    ((3 * m + 7 * k) % 28 + 1, m) for m in range(1, 13) for k in range(4)
)


def time_phrase(hour: int, minute: int, language: str, style: str) -> str:
    """The clock time as said in a sentence; twelve-hour readings get their part of the day."""
    words = clock_time(hour, minute, language, style)
    if uses_twelve_hour(language, style):
        words = f"{words} {day_part(hour, language)}"
    return words


def italian_at(time_words: str) -> str:
    """Italian "at" joined to the article of a time: "le sette" -> "alle sette", "l'una" -> "all'una"."""
    if time_words.startswith("le "):
        return "alle " + time_words[3:]
    if time_words.startswith("l'"):
        return "all'" + time_words[2:]
    return "a " + time_words


def times(languages: Sequence[str], italian_with_at: bool = False) -> list[Filler]:
    """One row per clock time; quarter hours of even hours are read colloquially, the rest digitally.

    With ``italian_with_at`` the Italian form includes "alle"/"all'" (Italian fuses "a" with the article).
    """
    rows = []
    for hour, minute in CLOCK_TIMES:
        style = "colloquial" if minute % 15 == 0 and hour % 2 == 0 else "digital"
        row = {lang: time_phrase(hour, minute, lang, style) for lang in languages}
        if italian_with_at and "it" in row:
            row["it"] = italian_at(row["it"])
        rows.append(row)
    return rows


def dates(languages: Sequence[str]) -> list[Filler]:
    """Calendar dates as ``numbers.day_of_month`` writes them (en "march third", fr "le trois mars",
    de "dritten märz" after "am", es "el tres de marzo", it "il tre marzo")."""
    return [{lang: day_of_month(day, month, lang) for lang in languages} for day, month in CALENDAR_DATES]


def weekdays(languages: Sequence[str]) -> list[Filler]:
    """Bare weekday names; patterns add "on" / "am" / "el" as their language needs."""
    return [{lang: WEEKDAYS[lang][i] for lang in languages} for i in range(7)]


def numbers(values: Iterable[int], languages: Sequence[str], gender: dict[str, str] | None = None) -> list[Filler]:
    """Cardinals, in the gender of the noun that follows in each language (``gender``: language -> m/f/n)."""
    gender = gender or {}
    return [{lang: cardinal(n, lang, gender.get(lang)) for lang in languages} for n in values]


def counted(values: Iterable[int], nouns: dict[str, tuple[str, str]]) -> list[Filler]:
    """Cardinal and plural noun agreeing with it; ``nouns``: language -> (gender, plural noun).

    English keeps the noun as the slot ("two [pizzas]")."""
    rows = []
    for n in values:
        row = {}
        for lang, (gender, plural) in nouns.items():
            number = cardinal(n, lang, gender)
            row[lang] = f"{number} [{plural}]" if lang == "en" else f"{number} {plural}"
        rows.append(row)
    return rows


def rows(languages: Sequence[str], *table: Sequence[str]) -> list[Filler]:
    """Filler rows from tuples written in the order of ``languages``."""
    out = []
    for values in table:
        if len(values) != len(languages):
            raise ValueError(f"filler row {values!r} needs one form for each of {tuple(languages)}")
        out.append(dict(zip(languages, values, strict=True)))
    return out


def word_list(language: str, text: str, separator: str = ",") -> list[Filler]:
    """Single-language fillers from one string: "paris, lyon, saint malo" -> three rows."""
    return [{language: w.strip()} for w in text.split(separator) if w.strip()]

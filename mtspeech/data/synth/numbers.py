"""Numbers, clock times and dates written out as words, per language, in the spoken form of the pool.

Cardinals and ordinals come from num2words; this module adds what num2words leaves to the caller:
gender agreement before a noun (fr "vingt et une minutes", es "veintiún grados"), clock times as
people say them ("sept heures et quart", "halb acht", "las ocho menos cuarto"), dates with month
names, and the expansion of digits found in English transcripts ("5th", "10:30", "$5").
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

SPOKEN_LANGUAGES = ("en", "fr", "de", "es", "it")

_PUNCT_TO_SPACE = re.compile(r"[-\u2010-\u2015/_]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})


def spoken_words(text: str) -> list[str]:
    """Lowercase words of ``text`` with punctuation dropped, hyphens split, intra-word apostrophes kept.

    Digits are kept (callers expand them first and check none are left).
    """
    text = _PUNCT_TO_SPACE.sub(" ", text.translate(_APOSTROPHES).lower())
    words = []
    for raw in text.split():
        word = "".join(ch for ch in raw if ch.isalnum() or ch == "'").strip("'")
        if word:
            words.append(word)
    return words


def _check_language(lang: str) -> None:
    if lang not in SPOKEN_LANGUAGES:
        raise ValueError(f"language {lang!r} is not one of {SPOKEN_LANGUAGES}")


def cardinal(n: int, lang: str, gender: str | None = None) -> str:
    """``n`` in words; ``gender`` ("m", "f", "n") when the number stands before a noun of that gender.

    Without a gender the counting form is returned ("un", "eins", "uno").
    """
    _check_language(lang)
    words = spoken_words(num2words(n, lang=lang))
    if gender is None:
        return " ".join(words)
    last = words[-1]
    if lang == "fr" and gender == "f" and last == "un":
        words[-1] = "une"
    elif lang == "de" and n == 1:
        words = ["eine" if gender == "f" else "ein"]
    elif lang == "es":
        if last.endswith("uno"):  # apocope before a masculine noun, -una before a feminine one
            stem = last[: -len("uno")]
            words[-1] = stem + ("una" if gender == "f" else ("ún" if stem else "un"))
        if gender == "f":
            words = [w.replace("ientos", "ientas") for w in words]
    elif lang == "it" and n == 1:
        words = ["una" if gender == "f" else "un"]
    return " ".join(words)


def ordinal(n: int, lang: str) -> str:
    """Masculine ordinal in words ("third", "troisième", "dritte", "tercero", "terzo")."""
    _check_language(lang)
    return " ".join(spoken_words(num2words(n, lang=lang, to="ordinal")))


_MONTH_NAMES = {
    "en": "january february march april may june july august september october november december",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "januar februar märz april mai juni juli august september oktober november dezember",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
}
MONTHS = {lang: names.split() for lang, names in _MONTH_NAMES.items()}

_WEEKDAY_NAMES = {
    "en": "monday tuesday wednesday thursday friday saturday sunday",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "de": "montag dienstag mittwoch donnerstag freitag samstag sonntag",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica",
}
WEEKDAYS = {lang: names.split() for lang, names in _WEEKDAY_NAMES.items()}


def day_of_month(day: int, month: int, lang: str) -> str:
    """A calendar date without the year, as said in a sentence.

    en "march third", fr "le trois mars", de "dritten märz" (the caller adds "am"/"den"),
    es "el tres de marzo", it "il tre marzo" / "l'otto marzo".
    """
    _check_language(lang)
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise ValueError(f"no such date: day {day}, month {month}")
    name = MONTHS[lang][month - 1]
    if lang == "en":
        return f"{name} {ordinal(day, 'en')}"
    if lang == "fr":
        return f"le {'premier' if day == 1 else cardinal(day, 'fr')} {name}"
    if lang == "de":
        return f"{ordinal(day, 'de')}n {name}"
    if lang == "es":
        return f"el {'primero' if day == 1 else cardinal(day, 'es')} de {name}"
    number = "primo" if day == 1 else cardinal(day, "it")
    article = "l'" if number[0] in "aeiou" else "il "
    return f"{article}{number} {name}"


# --- clock times -------------------------------------------------------------------------------
CLOCK_STYLES = ("colloquial", "digital")


def uses_twelve_hour(lang: str, style: str) -> bool:
    """English and Spanish read the clock in twelve hours; fr/de/it read digital times in 24 hours."""
    return lang in ("en", "es") or style == "colloquial"


def day_part(hour: int, lang: str) -> str:
    """The words that disambiguate a twelve-hour time: "in the evening", "du soir", "abends" ..."""
    _check_language(lang)
    part = 0 if hour < 5 else 1 if hour < 12 else 2 if hour < 18 else 3
    table = {
        "en": ("at night", "in the morning", "in the afternoon", "in the evening"),
        "fr": ("du matin", "du matin", "de l'après-midi", "du soir"),
        "de": ("nachts", "morgens", "nachmittags", "abends"),
        "es": ("de la madrugada", "de la mañana", "de la tarde", "de la tarde" if hour < 21 else "de la noche"),
        "it": ("di notte", "di mattina", "del pomeriggio", "di sera"),
    }
    return table[lang][part]


def clock_time(hour: int, minute: int, lang: str, style: str = "colloquial") -> str:
    """``hour:minute`` (24-hour input) as spoken; Spanish and Italian include the article ("las siete")."""
    _check_language(lang)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f"no such time: {hour}:{minute:02d}")
    if style not in CLOCK_STYLES:
        raise ValueError(f"clock style {style!r} is not one of {CLOCK_STYLES}")
    twelve = uses_twelve_hour(lang, style)

    def shown(h24: int) -> int:
        return (h24 % 12 or 12) if twelve else h24

    return _CLOCK[lang](hour, (hour + 1) % 24, shown, minute, style == "colloquial")


def _clock_en(h: int, nxt: int, shown: Callable[[int], int], m: int, colloquial: bool) -> str:
    hw, nw = cardinal(shown(h), "en"), cardinal(shown(nxt), "en")
    if m == 0:
        return f"{hw} o'clock"
    if colloquial:
        named = {15: f"quarter past {hw}", 30: f"half past {hw}", 45: f"quarter to {nw}"}
        if m in named:
            return named[m]
        return f"{cardinal(m, 'en')} past {hw}" if m < 30 else f"{cardinal(60 - m, 'en')} to {nw}"
    return f"{hw} oh {cardinal(m, 'en')}" if m < 10 else f"{hw} {cardinal(m, 'en')}"


def _clock_fr(h: int, nxt: int, shown: Callable[[int], int], m: int, colloquial: bool) -> str:
    def hours(h24: int) -> str:
        if colloquial and h24 in (0, 12):
            return "minuit" if h24 == 0 else "midi"
        x = shown(h24)
        return f"{cardinal(x, 'fr', 'f')} {'heure' if x in (0, 1) else 'heures'}"

    if m == 0:
        return hours(h)
    if colloquial:
        half = "demi" if h in (0, 12) else "demie"  # midi et demi, sept heures et demie
        named = {15: f"{hours(h)} et quart", 30: f"{hours(h)} et {half}", 45: f"{hours(nxt)} moins le quart"}
        if m in named:
            return named[m]
        if m > 30:
            return f"{hours(nxt)} moins {cardinal(60 - m, 'fr', 'f')}"
    return f"{hours(h)} {cardinal(m, 'fr', 'f')}"


def _clock_de(h: int, nxt: int, shown: Callable[[int], int], m: int, colloquial: bool) -> str:
    def with_uhr(h24: int) -> str:
        x = shown(h24)
        return f"{'ein' if x == 1 else cardinal(x, 'de')} uhr"  # "ein uhr", but "viertel nach eins"

    if m == 0:
        return with_uhr(h)
    if colloquial:
        now, then = cardinal(shown(h), "de"), cardinal(shown(nxt), "de")
        named = {15: f"viertel nach {now}", 30: f"halb {then}", 45: f"viertel vor {then}"}
        if m in named:
            return named[m]
        return f"{cardinal(m, 'de')} nach {now}" if m < 30 else f"{cardinal(60 - m, 'de')} vor {then}"
    return f"{with_uhr(h)} {cardinal(m, 'de')}"


def _clock_es(h: int, nxt: int, shown: Callable[[int], int], m: int, colloquial: bool) -> str:
    def hours(h24: int) -> str:
        x = shown(h24)
        return "la una" if x == 1 else f"las {cardinal(x, 'es')}"

    if m == 0:
        return hours(h)
    if colloquial:
        named = {15: f"{hours(h)} y cuarto", 30: f"{hours(h)} y media", 45: f"{hours(nxt)} menos cuarto"}
        if m in named:
            return named[m]
        if m > 30:
            return f"{hours(nxt)} menos {cardinal(60 - m, 'es')}"
    return f"{hours(h)} y {cardinal(m, 'es')}"


def _clock_it(h: int, nxt: int, shown: Callable[[int], int], m: int, colloquial: bool) -> str:
    def hours(h24: int) -> str:
        if colloquial and h24 in (0, 12):
            return "mezzanotte" if h24 == 0 else "mezzogiorno"
        x = shown(h24)
        return "l'una" if x == 1 else f"le {cardinal(x, 'it')}"

    if m == 0:
        return hours(h)
    if colloquial:
        named = {15: f"{hours(h)} e un quarto", 30: f"{hours(h)} e mezza", 45: f"{hours(nxt)} meno un quarto"}
        if m in named:
            return named[m]
        if m > 30:
            return f"{hours(nxt)} meno {cardinal(60 - m, 'it')}"
    return f"{hours(h)} e {cardinal(m, 'it')}"


_CLOCK = {"en": _clock_en, "fr": _clock_fr, "de": _clock_de, "es": _clock_es, "it": _clock_it}


# --- digits inside English transcripts --------------------------------------------------------
_CURRENCY_SIGNS = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}
_ORDINAL = re.compile(r"^(\d+)(st|nd|rd|th)$")
_CLOCK_DIGITS = re.compile(r"^(\d{1,2}):(\d{2})(am|pm)?$")
_HOUR_SUFFIX = re.compile(r"^(\d{1,2})(am|pm)$")
_DECADE = re.compile(r"^(\d{2}|\d{4})'?s$")
_NUMBER = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")
_DECIMAL = re.compile(r"^\d+\.\d+$")


def _english_number(digits: str) -> str:
    value = int(digits.replace(",", ""))
    if len(digits) == 4 and 1100 <= value <= 2099 and value % 1000 >= 10:
        return " ".join(spoken_words(num2words(value, lang="en", to="year")))
    return cardinal(value, "en")


def _plural_of_number_word(words: str) -> str:
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def expand_english_digits(token: str, next_token: str | None = None) -> str:
    """Spell out the digits of one English word: "5th" -> "fifth", "10:30" -> "ten thirty",
    "$5" -> "five dollars", "20%" -> "twenty percent", "1990s" -> "nineteen nineties", "n9ne" -> "n nine ne".

    ``next_token`` decides "ten o'clock" (no am/pm follows) versus "ten" ("10:00 pm").
    Returns the token unchanged when it has no digits.
    """
    if not any(ch.isdigit() for ch in token):
        return token
    core = token.lower()
    for sign, (one, many) in _CURRENCY_SIGNS.items():
        if core.startswith(sign) or core.endswith(sign):
            amount = core.strip(sign)
            if _NUMBER.match(amount) or _DECIMAL.match(amount):
                unit = one if amount == "1" else many
                return f"{expand_english_digits(amount)} {unit}"
    if core.endswith("%"):
        return f"{expand_english_digits(core[:-1])} percent"
    if match := _ORDINAL.match(core):
        return ordinal(int(match.group(1)), "en")
    if match := _CLOCK_DIGITS.match(core):
        hour, minute, suffix = int(match.group(1)), int(match.group(2)), match.group(3)
        hour_words = cardinal(hour, "en")
        if minute == 0:
            spoken = hour_words if suffix or (next_token or "").lower() in ("am", "pm") else f"{hour_words} o'clock"
        else:
            spoken = (
                f"{hour_words} oh {cardinal(minute, 'en')}" if minute < 10 else f"{hour_words} {cardinal(minute, 'en')}"
            )
        return f"{spoken} {suffix}" if suffix else spoken
    if match := _HOUR_SUFFIX.match(core):
        return f"{cardinal(int(match.group(1)), 'en')} {match.group(2)}"
    if match := _DECADE.match(core):
        return _plural_of_number_word(_english_number(match.group(1)))
    if _NUMBER.match(core):
        return _english_number(core)
    if _DECIMAL.match(core):
        whole, frac = core.split(".")
        return f"{_english_number(whole)} point {' '.join(cardinal(int(d), 'en') for d in frac)}"
    # Digits glued to letters ("n9ne", "mp3", "4g"): spell each run of digits on its own.
    parts = re.findall(r"\d+|\D+", core)
    return " ".join(_english_number(p) if p.isdigit() else p for p in parts)

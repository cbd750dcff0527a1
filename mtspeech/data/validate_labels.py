"""Label checks shared by ``mtspeech data validate`` and the importers: ISO 639-1 languages, the closed
label sets of :mod:`mtspeech.data.schema`, SLURP-style intents, slot spans and BIO tags.

Each ``check_*`` function returns ``(field, message)`` pairs instead of raising, so a caller can report
every problem of a line at once; ``normalize_*`` functions turn what users write ("English", "Male",
"en-US") into the contract's form and raise :class:`ValueError` with a readable message otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mtspeech.data import schema

# The ISO 639-1 table is 183 fixed codes; a constant beats a dependency (pycountry/langcodes) for a lookup.
_ISO639_1_TABLE = (
    "aa:afar ab:abkhazian ae:avestan af:afrikaans ak:akan am:amharic an:aragonese ar:arabic as:assamese "
    "av:avaric ay:aymara az:azerbaijani ba:bashkir be:belarusian bg:bulgarian bi:bislama bm:bambara "
    "bn:bengali bo:tibetan br:breton bs:bosnian ca:catalan ce:chechen ch:chamorro co:corsican cr:cree "
    "cs:czech cu:church_slavic cv:chuvash cy:welsh da:danish de:german dv:divehi dz:dzongkha ee:ewe "
    "el:greek en:english eo:esperanto es:spanish et:estonian eu:basque fa:persian ff:fulah fi:finnish "
    "fj:fijian fo:faroese fr:french fy:western_frisian ga:irish gd:scottish_gaelic gl:galician gn:guarani "
    "gu:gujarati gv:manx ha:hausa he:hebrew hi:hindi ho:hiri_motu hr:croatian ht:haitian hu:hungarian "
    "hy:armenian hz:herero ia:interlingua id:indonesian ie:interlingue ig:igbo ii:sichuan_yi ik:inupiaq "
    "io:ido is:icelandic it:italian iu:inuktitut ja:japanese jv:javanese ka:georgian kg:kongo ki:kikuyu "
    "kj:kuanyama kk:kazakh kl:kalaallisut km:khmer kn:kannada ko:korean kr:kanuri ks:kashmiri ku:kurdish "
    "kv:komi kw:cornish ky:kyrgyz la:latin lb:luxembourgish lg:ganda li:limburgish ln:lingala lo:lao "
    "lt:lithuanian lu:luba_katanga lv:latvian mg:malagasy mh:marshallese mi:maori mk:macedonian "
    "ml:malayalam mn:mongolian mr:marathi ms:malay mt:maltese my:burmese na:nauru nb:norwegian_bokmal "
    "nd:north_ndebele ne:nepali ng:ndonga nl:dutch nn:norwegian_nynorsk no:norwegian nr:south_ndebele "
    "nv:navajo ny:chichewa oc:occitan oj:ojibwa om:oromo or:oriya os:ossetian pa:punjabi pi:pali pl:polish "
    "ps:pashto pt:portuguese qu:quechua rm:romansh rn:rundi ro:romanian ru:russian rw:kinyarwanda "
    "sa:sanskrit sc:sardinian sd:sindhi se:northern_sami sg:sango si:sinhala sk:slovak sl:slovenian "
    "sm:samoan sn:shona so:somali sq:albanian sr:serbian ss:swati st:southern_sotho su:sundanese "
    "sv:swedish sw:swahili ta:tamil te:telugu tg:tajik th:thai ti:tigrinya tk:turkmen tl:tagalog "
    "tn:tswana to:tonga tr:turkish ts:tsonga tt:tatar tw:twi ty:tahitian ug:uyghur uk:ukrainian ur:urdu "
    "uz:uzbek ve:venda vi:vietnamese vo:volapuk wa:walloon wo:wolof xh:xhosa yi:yiddish yo:yoruba "
    "za:zhuang zh:chinese zu:zulu"
)
ISO639_1: dict[str, str] = dict(pair.split(":") for pair in _ISO639_1_TABLE.split())
_LANGUAGE_BY_NAME = {name.replace("_", " "): code for code, name in ISO639_1.items()}

# SLURP intents are ``scenario_action``: lowercase words, the scenario first ("iot_hue_lightoff").
INTENT_PATTERN = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
_BIO_TAG = re.compile(r"^(O|[BI]-\S+)$")
_GENDER_ALIASES = {"m": "m", "male": "m", "man": "m", "f": "f", "female": "f", "woman": "f"}

# corpus.json "labels" keys a corpus may declare to replace the built-in closed sets.
DECLARABLE_LABELS = ("language", "gender", "emotion", "accent", "intent")
BUILTIN_LABEL_SETS: dict[str, tuple[str, ...]] = {
    "gender": schema.GENDERS,
    "emotion": schema.EMOTIONS,
    "accent": schema.ACCENTS,
}


def normalize_language(value: Any) -> str:
    """``"en"``, ``"EN"``, ``"en-US"``, ``"en_gb"`` and ``"English"`` all become ``"en"``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"language must be an ISO 639-1 code such as 'en', got {value!r}")
    text = value.strip().lower()
    primary = re.split(r"[-_]", text, maxsplit=1)[0]
    if primary in ISO639_1:
        return primary
    if text.replace("_", " ") in _LANGUAGE_BY_NAME:
        return _LANGUAGE_BY_NAME[text.replace("_", " ")]
    raise ValueError(f"language {value!r} is neither an ISO 639-1 code (en, fr, de, ...) nor a language name")


def normalize_gender(value: Any) -> str:
    """``m``/``f`` (also ``male``/``female``, any case)."""
    if isinstance(value, str) and value.strip().lower() in _GENDER_ALIASES:
        return _GENDER_ALIASES[value.strip().lower()]
    raise ValueError(f"gender must be 'm' or 'f' (or 'male'/'female'), got {value!r}")


def declared_label_sets(info: Mapping[str, Any]) -> dict[str, set[str]]:
    """The label sets ``corpus.json`` declares under ``"labels"`` (e.g. ``{"emotion": [...]}``).

    Plural keys (``"languages"``) are accepted too, so a corpus written by another tool still validates."""
    labels = info.get("labels")
    if not isinstance(labels, Mapping):
        return {}
    declared: dict[str, set[str]] = {}
    for name in DECLARABLE_LABELS:
        values = labels.get(name, labels.get(name + "s"))
        if isinstance(values, list | tuple) and all(isinstance(v, str) for v in values):
            declared[name] = set(values)
    return declared


def check_label(name: str, value: Any, declared: Mapping[str, set[str]]) -> str | None:
    """Why ``value`` is not a valid ``name`` label (language/gender/emotion/accent/intent), or None."""
    if not isinstance(value, str) or not value:
        return f"{name} must be a non-empty string, got {value!r}"
    if name == "language" and value not in ISO639_1:
        return f"language {value!r} is not an ISO 639-1 code (en, fr, de, ...)"
    if name == "intent" and not INTENT_PATTERN.match(value):
        return f"intent {value!r} is not of SLURP's scenario_action form (e.g. 'alarm_set')"
    if name in declared:
        if value not in declared[name]:
            return f"{name} {value!r} is not in corpus.json's declared {name} labels {sorted(declared[name])}"
    elif name in BUILTIN_LABEL_SETS and value not in BUILTIN_LABEL_SETS[name]:
        return (
            f"{name} {value!r} is not one of {list(BUILTIN_LABEL_SETS[name])} (declare others in corpus.json 'labels')"
        )
    return None


def parse_slots(raw: Any, words: list[str]) -> tuple[list[schema.SlotSpan], list[str]]:
    """Slot dicts -> (spans, BIO tags); ValueError names the bad span (outside the words, overlapping)."""
    if not isinstance(raw, list):
        raise ValueError(f"slots must be a list of {{type, start, end}} word spans, got {type(raw).__name__}")
    spans: list[schema.SlotSpan] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not {"type", "start", "end"} <= set(item):
            raise ValueError(f"slot #{i} must be an object with 'type', 'start' and 'end', got {item!r}")
        start, end = item["start"], item["end"]
        if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
            raise ValueError(f"slot #{i} start/end must be integer word indices, got {start!r}/{end!r}")
        value = " ".join(words[start:end]) if 0 <= start < end <= len(words) else ""
        spans.append(schema.SlotSpan(str(item["type"]), start, end, value))
    try:
        tags = schema.spans_to_bio(len(words), spans)
    except ValueError as err:
        raise ValueError(f"{err} (the text has {len(words)} words)") from None
    return spans, tags


def check_bio(raw: Any, words: list[str]) -> list[tuple[str, str]]:
    """Problems with a BIO tag list as ``(kind, message)``: malformed tags (``bio_tag``) or a tag count
    that differs from the word count (``bio_length``)."""
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        return [("bio_tag", f"bio must be a list of tag strings, got {raw!r}")]
    problems = [
        ("bio_tag", f"bio tag #{i} {tag!r} is not 'O', 'B-type' or 'I-type'")
        for i, tag in enumerate(raw)
        if not _BIO_TAG.match(tag)
    ]
    if len(raw) != len(words):
        problems.append(("bio_length", f"bio has {len(raw)} tags but the text has {len(words)} words"))
    return problems


def check_supervision_labels(sup: Mapping[str, Any], declared: Mapping[str, set[str]]) -> list[tuple[str, str, str]]:
    """Every label problem of one supervision (raw manifest dict) as ``(kind, field, message)``."""
    problems: list[tuple[str, str, str]] = []
    text = sup.get("text")
    words: list[str] = []
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            problems.append(("empty_transcript", "text", f"empty transcript {text!r} (use null when there is none)"))
        else:
            words = text.split()
    for name in ("language", "gender"):
        if sup.get(name) is not None and (why := check_label(name, sup[name], declared)):
            problems.append(("unknown_label", name, why))
    custom = sup.get("custom") or {}
    if not isinstance(custom, Mapping):
        return [*problems, ("invalid_entry", "custom", f"custom must be an object, got {custom!r}")]
    for key in (schema.INTENT, schema.EMOTION, schema.ACCENT):
        if custom.get(key) is not None and (why := check_label(key, custom[key], declared)):
            problems.append(("unknown_label", f"custom.{key}", why))
    problems += _check_slots_and_bio(custom, words, text)
    translation = custom.get(schema.TRANSLATION)
    if translation is not None:
        problems += _check_translation(translation)
    return problems


def _check_slots_and_bio(custom: Mapping[str, Any], words: list[str], text: Any) -> list[tuple[str, str, str]]:
    problems: list[tuple[str, str, str]] = []
    has_slots, has_bio = custom.get(schema.SLOTS) is not None, custom.get(schema.BIO) is not None
    if (has_slots or has_bio) and not words:
        return [("slot_span", "custom.slots", f"slots/BIO tags given but the transcript {text!r} has no words")]
    tags_from_slots: list[str] | None = None
    if has_slots:
        try:
            spans, tags_from_slots = parse_slots(custom[schema.SLOTS], words)
        except ValueError as err:
            problems.append(("slot_span", "custom.slots", str(err)))
        else:
            for span, raw in zip(spans, custom[schema.SLOTS], strict=True):
                if raw.get("value") not in (None, span.value):
                    problems.append(
                        (
                            "slot_span",
                            "custom.slots",
                            f"slot {span.type!r} value {raw['value']!r} differs from its "
                            f"words {span.value!r} (span [{span.start}, {span.end}))",
                        )
                    )
    if has_bio:
        bio_problems = check_bio(custom[schema.BIO], words)
        problems += [(kind, "custom.bio", message) for kind, message in bio_problems]
        if not bio_problems and tags_from_slots is not None and tags_from_slots != custom[schema.BIO]:
            problems.append(("bio_tag", "custom.bio", "BIO tags disagree with the slot spans"))
    return problems


def _check_translation(translation: Any) -> list[tuple[str, str, str]]:
    if not isinstance(translation, Mapping):
        return [("invalid_entry", "custom.translation", f"translation must be {{language: text}}, got {translation!r}")]
    problems: list[tuple[str, str, str]] = []
    for lang, target in translation.items():
        if lang not in ISO639_1:
            problems.append(("unknown_label", "custom.translation", f"translation language {lang!r} is not ISO 639-1"))
        if not isinstance(target, str) or not target.strip():
            problems.append(("empty_translation", "custom.translation", f"translation into {lang!r} is empty"))
    return problems


def collect_label_sets(supervisions: Iterable[Any]) -> dict[str, list[str]]:
    """The sorted set of each declarable label found on Lhotse supervisions (for corpus.json "labels")."""
    found: dict[str, set[str]] = {name: set() for name in DECLARABLE_LABELS}
    for sup in supervisions:
        custom = sup.custom or {}
        for name, value in (
            ("language", sup.language),
            ("gender", sup.gender),
            ("emotion", custom.get(schema.EMOTION)),
            ("accent", custom.get(schema.ACCENT)),
            ("intent", custom.get(schema.INTENT)),
        ):
            if isinstance(value, str) and value:
                found[name].add(value)
    return {name: sorted(values) for name, values in found.items() if values}

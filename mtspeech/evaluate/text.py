"""Text normalisation applied to references and hypotheses before WER and CER (never before BLEU/chrF).

The rule, in order (documented in docs/evaluation.md):

1. Unicode NFKC (full-width forms, ligatures and composed accents become one canonical spelling);
2. lowercase (``str.casefold``, so German ``ß`` and ``ss`` agree);
3. apostrophes (``'`` and ``’``) are deleted, joining the word (``o'clock`` -> ``oclock``, ``l'heure`` -> ``lheure``);
4. every other punctuation or symbol character (Unicode categories ``P*`` and ``S*``) becomes a space
   (``twenty-one`` -> ``twenty one``, ``a.m.`` -> ``a m``);
5. runs of whitespace collapse to one space, and the ends are stripped.

Accents are kept: ``é`` and ``e`` are different letters in French. Numbers are not spelled out, because the
synthetic corpus already writes them as words and imported corpora differ in how they would want it.
Own code rather than jiwer's transforms: jiwer's ``RemovePunctuation`` keeps symbols and joins hyphenated words.
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc")
_SPACES = re.compile(r"\s+")


def normalise_text(text: str | None) -> str:
    """The normalised form of ``text`` (empty for None)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return _SPACES.sub(" ", text).strip()


def normalise_filler(text: str | None) -> str:
    """Light normalisation for slot values: NFKC, lowercase and single spaces; punctuation is kept because
    SLURP's span metrics compare fillers as written (``5 a.m.`` and ``5 am`` are different fillers)."""
    if not text:
        return ""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()

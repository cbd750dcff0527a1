"""Repetition guards for autoregressive decoding: attention decoders can fall into loops ("the the the ...",
or a whole phrase over and over) that only the max-length guard would end. Two bans, computed per answer:

* loop guard: a token is banned when emitting it would make the answer end in more than ``max_repeats``
  consecutive copies of one unit of at most ``max_period`` tokens; the search then has to take another token,
  usually ``<|eot|>``;
* n-gram guard (off by default, as in fairseq/HF ``no_repeat_ngram_size``): no n-gram may occur twice.

Both need only the answer's tail or its n-grams: a few hundred comparisons per hypothesis and step.
"""

from __future__ import annotations

from collections.abc import Sequence


def loop_bans(answer: Sequence[int], max_repeats: int, max_period: int) -> set[int]:
    """Tokens that would complete ``max_repeats + 1`` back-to-back copies of a unit of ``<= max_period`` tokens.

    Appending ``c`` gives such a tail of period ``p`` only if ``c == answer[-p]`` and the previous
    ``(max_repeats + 1) * p - 1`` tokens already repeat with period ``p``; so each period bans at most one token.
    """
    if max_repeats < 1:
        return set()
    banned: set[int] = set()
    size = len(answer)
    for period in range(1, max_period + 1):
        span = (max_repeats + 1) * period - 1  # tokens of the tail that must already be periodic
        if span > size:
            break
        start = size - span
        if all(answer[i] == answer[i + period] for i in range(start, size - period)):
            banned.add(answer[size - period])
    return banned


def ngram_bans(answer: Sequence[int], ngram_size: int) -> set[int]:
    """Tokens that would repeat an n-gram already in ``answer`` (the last ``n - 1`` tokens seen before)."""
    if ngram_size < 1 or len(answer) < ngram_size - 1:
        return set()
    if ngram_size == 1:
        return set(answer)
    context = tuple(answer[len(answer) - ngram_size + 1 :])
    banned = set()
    for i in range(len(answer) - ngram_size + 1):
        if tuple(answer[i : i + ngram_size - 1]) == context:
            banned.add(answer[i + ngram_size - 1])
    return banned


def repetition_bans(answer: Sequence[int], max_repeats: int, max_period: int, ngram_size: int) -> set[int]:
    return loop_bans(answer, max_repeats, max_period) | ngram_bans(answer, ngram_size)

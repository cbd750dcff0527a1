"""The simple metrics tasks report from :meth:`Task.score` (full evaluation lives in ``mtspeech.evaluate``)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def edit_distance(hypothesis: Sequence[Hashable], reference: Sequence[Hashable]) -> int:
    """Levenshtein distance over sequence items (token ids, tags).

    Own 10-line DP rather than jiwer: jiwer works on strings and rejects empty references, which a VAD-only
    or noise-only row legitimately has."""
    previous = list(range(len(reference) + 1))
    for i, hyp in enumerate(hypothesis, start=1):
        current = [i]
        for j, ref in enumerate(reference, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (hyp != ref)))
        previous = current
    return previous[-1]


def error_rate(hypotheses: Sequence[Sequence[Hashable]], references: Sequence[Sequence[Hashable]]) -> float:
    """Total edits / total reference items (corpus-level, like WER); ``nan`` when references are all empty."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} predictions but {len(references)} references")
    edits = sum(edit_distance(h, r) for h, r in zip(hypotheses, references, strict=True))
    total = sum(len(r) for r in references)
    return edits / total if total else float("nan")


def accuracy(predictions: Sequence[int], references: Sequence[int], ignore: int | None = None) -> dict[str, float]:
    """``{"accuracy": ...}`` over pairs whose reference is not ``ignore``; empty dict when there are none."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    pairs = [(p, r) for p, r in zip(predictions, references, strict=True) if r != ignore]
    if not pairs:
        return {}
    return {"accuracy": sum(p == r for p, r in pairs) / len(pairs)}


def _chars(text: str) -> list[str]:
    """Characters with whitespace runs collapsed to one space (so spacing differences are one edit at most)."""
    return list(" ".join(text.split()))


def text_scores(
    hypotheses: Sequence[Sequence[Hashable] | str], references: Sequence[Sequence[Hashable] | str]
) -> dict[str, float]:
    """``{"wer", "cer"}`` when hypotheses and references are strings, ``{"ter"}`` (token error rate) for id lists.

    Empty dict when the references hold nothing to score."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} predictions but {len(references)} references")
    if not references:
        return {}
    if all(isinstance(x, str) for x in (*hypotheses, *references)):
        hyp_text, ref_text = [str(h) for h in hypotheses], [str(r) for r in references]
        scores = {
            "wer": error_rate([h.split() for h in hyp_text], [r.split() for r in ref_text]),
            "cer": error_rate([_chars(h) for h in hyp_text], [_chars(r) for r in ref_text]),
        }
    else:
        scores = {"ter": error_rate([list(h) for h in hypotheses], [list(r) for r in references])}
    return {k: v for k, v in scores.items() if v == v}  # drop nan (no reference items)

"""Corpus-level metrics over parallel lists of references and hypotheses (pure functions, no model code).

Every rate and score is returned in percent: WER/CER as edit percentages (may exceed 100 when the
hypotheses insert a lot), BLEU and chrF on sacrebleu's 0-100 scale, accuracies and recalls as 0-100.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import jiwer
import sacrebleu

from mtspeech.evaluate.text import normalise_text


@dataclass(frozen=True)
class ErrorCounts:
    """Aligned edit counts of a corpus; ``rate`` = (S + D + I) / (S + D + H) in percent, NaN without reference units."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def reference_units(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def rate(self) -> float:
        errors = self.substitutions + self.deletions + self.insertions
        return 100.0 * errors / self.reference_units if self.reference_units else math.nan


def _check_lengths(hypotheses: Sequence, references: Sequence) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def word_errors(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> ErrorCounts:
    """Word-level edit counts with jiwer (corpus level: counts are summed over utterances, so long utterances
    weigh more, as in every ASR benchmark). Empty references are allowed: their words are insertions."""
    _check_lengths(hypotheses, references)
    refs, hyps = _prepared(references, hypotheses, normalise)
    if not refs:
        return ErrorCounts(0, 0, 0, 0)
    out = jiwer.process_words(refs, hyps)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, out.hits)


def character_errors(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> ErrorCounts:
    """Character-level edit counts with jiwer; spaces between words count as characters (jiwer's convention)."""
    _check_lengths(hypotheses, references)
    refs, hyps = _prepared(references, hypotheses, normalise)
    if not refs:
        return ErrorCounts(0, 0, 0, 0)
    out = jiwer.process_characters(refs, hyps)
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, out.hits)


def _prepared(references: Sequence[str], hypotheses: Sequence[str], normalise: bool) -> tuple[list[str], list[str]]:
    clean = normalise_text if normalise else (lambda t: " ".join((t or "").split()))
    return [clean(r) for r in references], [clean(h) for h in hypotheses]


def wer(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> float:
    """Word error rate in percent (see :func:`word_errors`)."""
    return word_errors(references, hypotheses, normalise=normalise).rate


def cer(references: Sequence[str], hypotheses: Sequence[str], *, normalise: bool = True) -> float:
    """Character error rate in percent (see :func:`character_errors`)."""
    return character_errors(references, hypotheses, normalise=normalise).rate


def bleu(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults: 13a tokenisation, 4-grams, brevity penalty, no lowercasing)."""
    _check_lengths(hypotheses, references)
    if not references:
        return math.nan
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, beta = 2)."""
    _check_lengths(hypotheses, references)
    if not references:
        return math.nan
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def accuracy(references: Sequence[Hashable], predictions: Sequence[Hashable | None]) -> float:
    """Share of exact matches in percent (a missing prediction is wrong); NaN for no references."""
    _check_lengths(predictions, references)
    if not references:
        return math.nan
    return 100.0 * sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def recall_per_class(references: Sequence[Hashable], predictions: Sequence[Hashable | None]) -> dict[Hashable, float]:
    """Recall (percent) of every class that occurs in the references."""
    _check_lengths(predictions, references)
    totals = Counter(references)
    correct = Counter(r for p, r in zip(predictions, references, strict=True) if p == r)
    return {label: 100.0 * correct[label] / total for label, total in totals.items()}


def unweighted_average_recall(references: Sequence[Hashable], predictions: Sequence[Hashable | None]) -> float:
    """UAR: the mean of per-class recalls over classes present in the references (each class weighs the same,
    so a model that always answers the majority class scores 100 / number of classes)."""
    recalls = recall_per_class(references, predictions)
    return sum(recalls.values()) / len(recalls) if recalls else math.nan


@dataclass(frozen=True)
class ConfusionMatrix:
    """``counts[i][j]`` = references of ``labels[i]`` predicted as ``labels[j]``; a missing prediction is the
    label ``"<none>"`` (kept last)."""

    labels: list[str]
    counts: list[list[int]]

    def to_dict(self) -> dict:
        return {"labels": self.labels, "counts": self.counts}

    @staticmethod
    def from_dict(data: dict) -> ConfusionMatrix:
        return ConfusionMatrix(list(data["labels"]), [list(map(int, row)) for row in data["counts"]])

    def top(self, n: int) -> ConfusionMatrix:
        """The ``n`` most frequent reference labels (rows and columns), for readable plots of large label sets."""
        if len(self.labels) <= n:
            return self
        keep = sorted(range(len(self.labels)), key=lambda i: (-sum(self.counts[i]), self.labels[i]))[:n]
        keep.sort()
        return ConfusionMatrix([self.labels[i] for i in keep], [[self.counts[i][j] for j in keep] for i in keep])


MISSING = "<none>"


def confusion_matrix(
    references: Sequence[str], predictions: Sequence[str | None], labels: Sequence[str] | None = None
) -> ConfusionMatrix:
    """Counts over ``labels`` (default: sorted union of references and predictions)."""
    _check_lengths(predictions, references)
    preds = [MISSING if p is None else str(p) for p in predictions]
    found = sorted(set(map(str, references)) | (set(preds) - {MISSING}))
    order = list(labels) if labels is not None else found
    order += [label for label in found if label not in order]
    if MISSING in preds:
        order.append(MISSING)
    index = {label: i for i, label in enumerate(order)}
    counts = [[0] * len(order) for _ in order]
    for ref, pred in zip(references, preds, strict=True):
        counts[index[str(ref)]][index[pred]] += 1
    return ConfusionMatrix(order, counts)

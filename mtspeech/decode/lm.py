"""A token n-gram language model for shallow fusion: interpolated Kneser-Ney over the tokenizer's text pieces.

With the demo's character tokenizer it is a character n-gram model; with SentencePiece, a piece n-gram model. It
is estimated in seconds from the training transcripts (the text the CTC head learned to spell) and scores a
prefix one token at a time, which is what CTC prefix beam search asks of it (``score``), plus the end of a
sentence when a whole hypothesis is rescored (``sentence_score``).

Why our own: the field's estimator (KenLM's ``lmplz``) is a C++ binary that pip cannot install, and ``nltk.lm``
recomputes every probability through nested Python counters on each call; this one precomputes the
interpolation weights once and memoises each context's distribution, so a beam step costs a few dict lookups.

Estimation (Chen and Goodman, 1998, interpolated Kneser-Ney with one discount per order, ``D = n1 / (n1 + 2 n2)``):
the highest order uses counts, the lower orders continuation counts (how many distinct tokens precede an
n-gram), and each order hands the mass it discounted to the next lower one, down to a uniform distribution over
the vocabulary. Every context therefore gives a proper distribution over the tokens plus end-of-sentence.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mtspeech.errors import UserError

LM_FORMAT = "mtspeech-token-ngram-lm"
_CACHE_CONTEXTS = 200_000  # memoised contexts before the cache starts over


@dataclass
class _Order:
    """One order's statistics: history -> {token: discounted numerator}, history -> (denominator, back-off
    weight). Numerators are grouped by history so scoring looks a token up in a small dict per order instead of
    building and hashing an n-gram tuple per order."""

    numerators: dict[tuple[int, ...], dict[int, float]] = field(default_factory=dict)
    contexts: dict[tuple[int, ...], tuple[float, float]] = field(default_factory=dict)

    def grams(self) -> list[tuple[tuple[int, ...], float]]:
        return [((*history, token), value) for history, row in self.numerators.items() for token, value in row.items()]

    def add(self, gram: tuple[int, ...], numerator: float) -> None:
        self.numerators.setdefault(gram[:-1], {})[gram[-1]] = numerator


class TokenNgramLM:
    """Interpolated Kneser-Ney n-gram model over token ids ``1 .. vocab_size - 1`` (0, CTC's blank, is never a
    token); see the module docstring. Build with :meth:`fit`, save with :meth:`to_dict`."""

    def __init__(self, order: int, vocab_size: int, orders: list[_Order], metadata: dict[str, Any] | None = None):
        self.order = order
        self.vocab_size = vocab_size
        self.bos = vocab_size  # sentence start and end: ids just past the text pieces
        self.eos = vocab_size + 1
        self._orders = orders  # index k: n-grams of length k + 1
        self._uniform = -math.log(vocab_size)  # tokens 1 .. V-1 plus end of sentence
        # context -> {token: log-probability}, and the context's back-off chain (see _probability)
        self._cache: dict[tuple[int, ...], dict[int, float]] = {}
        self._chains: dict[tuple[int, ...], list[tuple[dict[int, float], float]]] = {}
        self.metadata = dict(metadata or {})

    # --- estimation -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, sentences: Iterable[Sequence[int]], vocab_size: int, order: int = 8) -> TokenNgramLM:
        """Estimate from token-id sentences (text pieces, ids in ``1 .. vocab_size - 1``)."""
        if order < 1:
            raise UserError(f"language model order must be >= 1, got {order}")
        bos, eos = vocab_size, vocab_size + 1
        counts: list[Counter[tuple[int, ...]]] = [Counter() for _ in range(order)]
        total = 0
        for sentence in sentences:
            bad = [t for t in sentence if not 0 < t < vocab_size]
            if bad:
                raise UserError(f"language model sentences hold token id {bad[0]} outside 1..{vocab_size - 1}")
            padded = [bos] * (order - 1) + list(sentence) + [eos]
            for end in range(order - 1, len(padded)):
                counts[-1][tuple(padded[end - order + 1 : end + 1])] += 1
            total += 1
        if total == 0:
            raise UserError("no transcripts to estimate the language model from")
        # Lower orders: continuation counts, the number of distinct tokens seen before each n-gram (the sentence
        # start counts as one). An n-gram that itself begins with the sentence start has only padding before it:
        # it keeps its own count (as KenLM does).
        for k in range(order - 2, -1, -1):
            for gram in counts[k + 1]:
                suffix = gram[1:]
                counts[k][suffix] += counts[k + 1][gram] if suffix[0] == bos else 1
        orders = [cls._estimate_order(c) for c in counts]
        return cls(order, vocab_size, orders, {"sentences": total, "ngrams": sum(len(c) for c in counts)})

    @staticmethod
    def _estimate_order(counts: Counter[tuple[int, ...]]) -> _Order:
        singles = sum(1 for c in counts.values() if c == 1)
        doubles = sum(1 for c in counts.values() if c == 2)
        discount = singles / (singles + 2 * doubles) if singles + doubles > 0 else 0.5
        totals: defaultdict[tuple[int, ...], float] = defaultdict(float)
        kinds: Counter[tuple[int, ...]] = Counter()
        for gram, count in counts.items():
            totals[gram[:-1]] += count
            kinds[gram[:-1]] += 1
        stats = _Order()
        for gram, count in counts.items():
            stats.add(gram, max(count - discount, 0.0) / totals[gram[:-1]])
        for context, denominator in totals.items():
            stats.contexts[context] = (denominator, discount * kinds[context] / denominator)
        return stats

    # --- scoring ----------------------------------------------------------------------------------
    def context_of(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """The last ``order - 1`` tokens of a prefix, padded with sentence starts."""
        width = self.order - 1
        if width == 0:
            return ()
        tail = tuple(tokens[-width:])
        return (self.bos,) * (width - len(tail)) + tail

    def score(self, context: tuple[int, ...], token: int) -> float:
        """``log P(token | context)`` (natural log); ``token`` may be :attr:`eos`."""
        distribution = self._cache.get(context)
        if distribution is None:
            if len(self._cache) >= _CACHE_CONTEXTS:  # a long-running server must not grow without bound
                self._cache.clear()
                self._chains.clear()
            distribution = self._cache[context] = {}
        value = distribution.get(token)
        if value is None:
            value = distribution[token] = math.log(self._probability(context, token))
        return value

    def _chain(self, context: tuple[int, ...]) -> list[tuple[dict[int, float], float]]:
        """The orders whose history (the context's last ``k`` tokens) was seen, lowest first: per order the
        history's numerators and back-off weight. An unseen history passes the lower orders' estimate on
        unchanged, so it has no entry."""
        chain = self._chains.get(context)
        if chain is None:
            chain = []
            for k, stats in enumerate(self._orders):
                history = context[len(context) - k :] if k else ()
                seen = stats.contexts.get(history)
                if seen is not None:
                    chain.append((stats.numerators.get(history, {}), seen[1]))
            self._chains[context] = chain
        return chain

    def _probability(self, context: tuple[int, ...], token: int) -> float:
        # From unigrams up: each order adds its discounted estimate to what it leaves for the lower orders.
        probability = math.exp(self._uniform)
        for numerators, backoff in self._chain(context):
            probability = numerators.get(token, 0.0) + backoff * probability
        return probability

    def sentence_score(self, tokens: Sequence[int]) -> float:
        """``log P(tokens, end of sentence)``: every token given its context, then the end."""
        total, history = 0.0, list(tokens)
        for i, token in enumerate(history):
            total += self.score(self.context_of(history[:i]), token)
        return total + self.score(self.context_of(history), self.eos)

    def tuned_fusion(self) -> dict[str, float]:
        """The decoding options ``mtspeech lm`` tuned for this LM (``lm_weight`` 0 when it was never tuned)."""
        weight, bonus = self.metadata.get("weight", 0.0), self.metadata.get("bonus", 0.0)
        return {"lm_weight": float(weight), "lm_bonus": float(bonus)}

    # --- storage ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers (``torch.load(weights_only=True)`` reads them back)."""
        orders = []
        for stats in self._orders:
            grams, numerators = zip(*stats.grams(), strict=True) if stats.numerators else ((), ())
            contexts = list(stats.contexts)
            orders.append(
                {
                    "grams": torch.tensor(grams, dtype=torch.int32).reshape(len(grams), -1),
                    "numerators": torch.tensor(numerators, dtype=torch.float64),
                    "contexts": torch.tensor(contexts, dtype=torch.int32).reshape(len(contexts), -1),
                    "context_stats": torch.tensor([stats.contexts[c] for c in contexts], dtype=torch.float64),
                }
            )
        return {
            "format": LM_FORMAT,
            "order": self.order,
            "vocab_size": self.vocab_size,
            "orders": orders,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Any) -> TokenNgramLM:
        if not isinstance(data, dict) or data.get("format") != LM_FORMAT:
            raise UserError(f"not a token n-gram language model (expected format {LM_FORMAT!r})")
        orders = []
        for entry in data["orders"]:
            stats = _Order()
            for gram, numerator in zip(entry["grams"].tolist(), entry["numerators"].tolist(), strict=True):
                stats.add(tuple(gram), numerator)
            contexts = [tuple(c) for c in entry["contexts"].tolist()]
            stats.contexts = {c: (d, b) for c, (d, b) in zip(contexts, entry["context_stats"].tolist(), strict=True)}
            orders.append(stats)
        return cls(int(data["order"]), int(data["vocab_size"]), orders, dict(data.get("metadata") or {}))

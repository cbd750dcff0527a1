"""Test doubles for the decoding tests: a tiny vocabulary layout, deterministic fake decoders (step functions
and their teacher-forced twins) and brute-force references for CTC."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mtspeech.decode.grammar import VocabLayout

# blank 0, text 1..4, <|sot|> 5, <|eot|> 6, <|en|> 7, <|transcribe|> 8, intents 9 10, timestamps 11..20 (0.04 s)
BLANK, SOT, EOT, LANG, TASK = 0, 5, 6, 7, 8
TEXT = (1, 2, 3, 4)
INTENTS = (9, 10)
TS_BEGIN, VOCAB = 11, 21
PROMPT = [SOT, LANG, TASK]
LAYOUT = VocabLayout(
    vocab_size=VOCAB, text_end=5, eot_id=EOT, intent_ids=INTENTS, timestamp_begin=TS_BEGIN, unk_id=None
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Import into a test module: tiny tensors gain nothing from intra-op threads, and on a shared CPU they only
    add contention (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class MarkovDecoder:
    """A fake decoder: next-token logits = ``table[last token]`` + the mean of the valid memory frames (so each
    utterance has its own distribution). ``step`` gives the last position, ``forward`` every position."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.double()
        self.calls = 0

    @classmethod
    def random(cls, seed: int, scale: float = 2.0) -> MarkovDecoder:
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randn(VOCAB, VOCAB, generator=g, dtype=torch.float64) * scale)

    def _bias(self, memory: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        weights = valid.double() / valid.sum(dim=1, keepdim=True).clamp_min(1)
        return torch.einsum("nt,ntv->nv", weights, memory.double())

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        logits = self.table[tokens] + self._bias(memory, valid)[:, None, :]
        return logits.log_softmax(dim=-1)

    def step(self, tokens: torch.Tensor, memory: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.forward(tokens, memory, valid)[:, -1]


def memory_for(lengths: list[int], seed: int = 0, scale: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Random memory ``(B, T, VOCAB)`` (the fake decoders read it as a logit bias) and its valid mask."""
    g = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    memory = torch.randn(len(lengths), frames, VOCAB, generator=g, dtype=torch.float64) * scale
    valid = torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]
    return memory, valid


def collapse(path: tuple[int, ...], blank: int = BLANK) -> tuple[int, ...]:
    out, previous = [], None
    for symbol in path:
        if symbol != blank and symbol != previous:
            out.append(symbol)
        previous = symbol
    return tuple(out)


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def ctc_sequence_log_probs(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Every label sequence's log-probability, summed over all of its alignments (enumerates all V^T paths)."""
    frames, vocab = log_probs.shape
    values = log_probs.double().tolist()
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        score = sum(values[t][s] for t, s in enumerate(path))
        key = collapse(path)
        totals[key] = _log_add(totals.get(key, -math.inf), score)
    return totals


def ctc_prefix_log_prob(totals: dict[tuple[int, ...], float], prefix: tuple[int, ...]) -> float:
    """log P(the CTC output starts with ``prefix``)."""
    result = -math.inf
    for sequence, score in totals.items():
        if sequence[: len(prefix)] == prefix:
            result = _log_add(result, score)
    return result


def random_log_probs(frames: int, vocab: int, seed: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(frames, vocab, generator=g, dtype=torch.float64) * scale).log_softmax(dim=-1)

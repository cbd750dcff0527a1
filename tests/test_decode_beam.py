"""Attention beam search with fake decoders: exhaustive search, end-of-sentence handling, guards, grammar, batching
and the KV-cached step function."""

from __future__ import annotations

import itertools

import pytest
import torch
from decode_fakes import (
    EOT,
    INTENTS,
    LAYOUT,
    PROMPT,
    TEXT,
    TS_BEGIN,
    VOCAB,
    MarkovDecoder,
    memory_for,
    one_thread,  # noqa: F401  (autouse fixture)
)

from mtspeech.decode.beam import beam_search, max_new_tokens
from mtspeech.decode.grammar import AnswerGrammar
from mtspeech.decode.incremental import CachedDecoderStep
from mtspeech.decode.options import DecodingOptions
from mtspeech.decode.result import length_normalised
from mtspeech.model.decoder import TransformerDecoder
from mtspeech.serve.serving_model import FusedProjectionAttention, serving_copy

TRANSCRIBE = AnswerGrammar(LAYOUT, "transcribe")


def _options(**changes) -> DecodingOptions:
    return DecodingOptions(**{"beam_size": 4, "max_repeats": 0, **changes})


def _sequence_score(decoder: MarkovDecoder, memory, valid, answer: list[int]) -> float:
    tokens = torch.tensor([[*PROMPT, *answer]])
    logp = decoder.forward(tokens, memory, valid)[0]
    targets = [*answer, EOT]
    return float(sum(logp[len(PROMPT) - 1 + i, t] for i, t in enumerate(targets)))


@pytest.mark.parametrize("seed", range(4))
def test_exhaustive_beam_finds_the_best_normalised_answer(seed: int) -> None:
    decoder = MarkovDecoder.random(seed)
    memory, valid = memory_for([3], seed=seed)  # max_length_ratio 1 -> answers of at most 3 tokens
    # A beam wider than every step's candidate list (at most 16 prefixes x 5 tokens) prunes nothing: all 85
    # answers of <= 3 text tokens finish, so the search is exhaustive.
    options = _options(beam_size=128)
    found = beam_search(decoder.step, memory, valid, [PROMPT], TRANSCRIBE, options)[0]
    answers = [list(a) for n in range(4) for a in itertools.product(TEXT, repeat=n)]
    scores = {tuple(a): _sequence_score(decoder, memory, valid, a) for a in answers}
    best = max(answers, key=lambda a: length_normalised(scores[tuple(a)], len(a) + 1, None))
    assert found[0].tokens == best
    assert found[0].score == pytest.approx(scores[tuple(best)])
    assert {tuple(h.tokens) for h in found} == set(scores)  # every answer finished, exactly once


def test_finished_hypotheses_are_kept_while_the_beam_goes_on() -> None:
    table = torch.full((VOCAB, VOCAB), -9.0)
    table[PROMPT[-1], EOT], table[PROMPT[-1], 1] = 2.0, 1.9  # stop now (p ~ .5) or say 1 ...
    table[1, 2] = 8.0  # ... which is surely followed by 2 ...
    table[2, EOT] = 8.0  # ... and then by the end: a better answer per token
    decoder = MarkovDecoder(table)
    memory, valid = memory_for([10], scale=0.0)
    found = beam_search(decoder.step, memory, valid, [PROMPT], TRANSCRIBE, _options(beam_size=2))[0]
    assert found[0].tokens == [1, 2]
    assert [] in [h.tokens for h in found]  # the early finish was kept, ranked below
    assert all(h.finish == "eot" for h in found)


def _looping_decoder() -> MarkovDecoder:
    """Always says token 1 (p ~ 0.88); <|eot|> is the runner-up."""
    table = torch.zeros(VOCAB, VOCAB)
    table[:, 1], table[:, EOT] = 5.0, 1.0
    return MarkovDecoder(table)


def test_repetition_guard_stops_a_decoder_stuck_on_one_token() -> None:
    decoder = _looping_decoder()
    memory, valid = memory_for([40], scale=0.0)
    loose = _options(max_repeats=0, beam_size=1)
    unguarded = beam_search(decoder.step, memory, valid, [PROMPT], TRANSCRIBE, loose)[0][0]
    assert unguarded.tokens == [1] * 40 and unguarded.finish == "length"  # only the max-length guard ended it
    for beam_size in (1, 4):
        guarded = _options(max_repeats=3, beam_size=beam_size)
        best = beam_search(decoder.step, memory, valid, [PROMPT], TRANSCRIBE, guarded)[0][0]
        assert best.tokens == [1, 1, 1] and best.finish == "eot"


def test_ngram_guard_never_repeats_an_ngram() -> None:
    decoder = _looping_decoder()
    memory, valid = memory_for([12], scale=0.0)
    options = _options(no_repeat_ngram_size=2, beam_size=2)
    for hypothesis in beam_search(decoder.step, memory, valid, [PROMPT], TRANSCRIBE, options)[0]:
        bigrams = list(zip(hypothesis.tokens, hypothesis.tokens[1:], strict=False))
        assert len(bigrams) == len(set(bigrams))


def test_max_length_guard_follows_the_encoder_length_and_the_cap() -> None:
    table = torch.zeros(VOCAB, VOCAB)
    table[:, EOT] = -30.0  # never wants to stop
    decoder = MarkovDecoder(table)
    memory, valid = memory_for([10, 20], scale=0.0)
    options = _options(max_length_ratio=0.3, max_tokens=5)
    found = beam_search(decoder.step, memory, valid, [PROMPT, PROMPT], TRANSCRIBE, options)
    assert [max_new_tokens(n, options) for n in (10, 20)] == [3, 5]
    assert [len(f[0].tokens) for f in found] == [3, 5]
    assert all(h.finish == "length" for f in found for h in f)


def test_slu_answers_end_with_exactly_one_intent() -> None:
    table = torch.zeros(VOCAB, VOCAB)
    table[:, EOT] = 6.0  # would stop at once, but an SLU answer needs its intent first
    decoder = MarkovDecoder(table)
    memory, valid = memory_for([8, 8], seed=1)
    grammar = AnswerGrammar(LAYOUT, "slu")
    for hypotheses in beam_search(decoder.step, memory, valid, [PROMPT, PROMPT], grammar, _options()):
        for h in hypotheses:  # even where the max-length guard ended it, the answer closes with its intent
            assert h.tokens and h.tokens[-1] in INTENTS
            assert not set(h.tokens[:-1]) & set(INTENTS)


def test_the_length_guard_still_closes_slu_answers_with_an_intent() -> None:
    table = torch.zeros(VOCAB, VOCAB)
    table[:, 3] = 4.0  # text is always far likelier than an intent: the search only ends at the length limit
    decoder = MarkovDecoder(table)
    memory, valid = memory_for([6], scale=0.0)
    found = beam_search(decoder.step, memory, valid, [PROMPT], AnswerGrammar(LAYOUT, "slu"), _options())[0]
    for h in found:
        assert h.finish == "length" and len(h.tokens) == 7 and h.tokens[-1] in INTENTS


@pytest.mark.parametrize("seed", range(5))
def test_timestamped_answers_are_well_formed_segments(seed: int) -> None:
    decoder = MarkovDecoder.random(seed, scale=3.0)
    frames = 5  # the audio ends at 0.20 s: timestamp id TS_BEGIN + 5
    memory, valid = memory_for([frames], seed=seed)
    grammar = AnswerGrammar(LAYOUT, "transcribe", timestamps=True)
    options = _options(max_length_ratio=4.0, beam_size=3)
    for h in beam_search(decoder.step, memory, valid, [PROMPT], grammar, options)[0]:
        tokens = h.tokens
        opened_last = sum(map(LAYOUT.is_timestamp, tokens)) % 2 == 1 and LAYOUT.is_timestamp(tokens[-1])
        if h.finish == "length" and opened_last:
            tokens = tokens[:-1]  # the guard may end an answer right after a segment opened (no text, dropped)
        times = [(i, t) for i, t in enumerate(tokens) if LAYOUT.is_timestamp(t)]
        assert len(times) % 2 == 0 and (not tokens or LAYOUT.is_timestamp(tokens[0]))
        for (i, opened), (j, closed) in zip(times[::2], times[1::2], strict=True):
            assert closed > opened and j > i + 1  # a segment has text and ends after it starts
            assert all(LAYOUT.is_text(t) for t in tokens[i + 1 : j])
        values = [t for _, t in times]
        assert values == sorted(values) and all(t <= TS_BEGIN + frames + 1 for t in values)


def test_batched_search_equals_one_utterance_at_a_time() -> None:
    decoder = MarkovDecoder.random(7)
    lengths = [4, 9, 6]
    memory, valid = memory_for(lengths, seed=3)
    options = _options(beam_size=3)
    batched = beam_search(decoder.step, memory, valid, [PROMPT] * 3, TRANSCRIBE, options)
    for row, length in enumerate(lengths):
        alone = beam_search(
            decoder.step, memory[row : row + 1, :length], valid[row : row + 1, :length], [PROMPT], TRANSCRIBE, options
        )[0]
        assert [(h.tokens, round(h.score, 9)) for h in alone] == [(h.tokens, round(h.score, 9)) for h in batched[row]]


def _tiny_decoder() -> TransformerDecoder:
    torch.manual_seed(0)
    decoder = TransformerDecoder(VOCAB, d_model=16, num_layers=2, num_heads=2, ffn_dim=32, dropout=0.0)
    return decoder.eval()


@pytest.mark.parametrize("served", [False, True])
def test_cached_step_matches_the_full_decoder_pass(served: bool) -> None:
    decoder = _tiny_decoder()
    if served:  # the serving copy's fused projections, both for the full pass and for the cached steps
        decoder = serving_copy(decoder)
        assert type(decoder.layers[0].cross_attn) is FusedProjectionAttention
    memory = torch.randn(3, 7, 16)
    valid = torch.arange(7)[None, :] < torch.tensor([7, 4, 5])[:, None]
    cached = CachedDecoderStep(decoder)
    tokens = torch.tensor([PROMPT] * 3)
    with torch.no_grad():
        for step in range(4):
            full = decoder(tokens, memory, valid)[:, -1].log_softmax(dim=-1)
            torch.testing.assert_close(cached(tokens, memory, valid), full, rtol=1e-5, atol=1e-5)
            rows = torch.tensor([2, 0, 0]) if step % 2 == 0 else torch.tensor([1, 2, 0])  # reorder like a beam
            cached.select(rows)
            tokens, memory, valid = tokens[rows], memory[rows], valid[rows]
            tokens = torch.cat((tokens, torch.tensor([[1], [2], [3]])), dim=1)


def test_cached_step_shares_one_utterances_memory_among_its_beams() -> None:
    decoder = _tiny_decoder()
    memory, valid = torch.randn(1, 7, 16), torch.ones(1, 7, dtype=torch.bool)
    cached = CachedDecoderStep(decoder)
    tokens = torch.tensor([PROMPT])
    with torch.no_grad():
        cached(tokens, memory, valid)
        rows = torch.tensor([0, 0, 0])  # one utterance's beam: three hypotheses from its single row
        cached.select(rows)
        tokens = torch.cat((tokens[rows], torch.tensor([[1], [2], [3]])), dim=1)
        for _ in range(3):
            beams = memory.expand(tokens.size(0), -1, -1)
            full = decoder(tokens, beams, valid.expand(tokens.size(0), -1))[:, -1].log_softmax(dim=-1)
            torch.testing.assert_close(cached(tokens, beams, valid.expand(tokens.size(0), -1)), full)
            rows = torch.tensor([2, 2, 0])
            cached.select(rows)
            tokens = torch.cat((tokens[rows], torch.tensor([[4], [5], [6]])), dim=1)
    assert cached.cross_kv[0][0].size(0) == 1  # the memory's keys and values were never copied per hypothesis


def test_beam_search_gives_the_same_answers_with_and_without_the_cache() -> None:
    decoder = _tiny_decoder()
    memory = torch.randn(2, 9, 16)
    valid = torch.arange(9)[None, :] < torch.tensor([9, 6])[:, None]

    def plain(tokens, mem, mask):
        return decoder(tokens, mem, mask)[:, -1].log_softmax(dim=-1)

    options = _options(beam_size=3)
    with torch.no_grad():
        expected = beam_search(plain, memory, valid, [PROMPT] * 2, TRANSCRIBE, options)
        found = beam_search(CachedDecoderStep(decoder), memory, valid, [PROMPT] * 2, TRANSCRIBE, options)
    for a, b in zip(expected, found, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


def test_inputs_are_checked() -> None:
    decoder = MarkovDecoder.random(0)
    memory, valid = memory_for([3, 3])
    with pytest.raises(ValueError, match="same length"):
        beam_search(decoder.step, memory, valid, [PROMPT, PROMPT[:2]], TRANSCRIBE, _options())
    with pytest.raises(ValueError, match="CTCPrefixScorer"):
        beam_search(decoder.step, memory, valid, [PROMPT] * 2, TRANSCRIBE, _options(), ctc_weight=0.5)

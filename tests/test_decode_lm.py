"""The token n-gram LM (interpolated Kneser-Ney) and its shallow fusion into CTC prefix beam search."""

from __future__ import annotations

import math

import pytest
import torch
from decode_fakes import ctc_sequence_log_probs, random_log_probs

from mtspeech.decode.ctc import LmFusion, ctc_prefix_beam_search
from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.options import DecodingOptions
from mtspeech.decode.rescoring import attention_rescoring
from mtspeech.decode.result import Hypothesis
from mtspeech.errors import UserError

VOCAB = 6  # ids 1..5 are tokens, 0 is CTC's blank
SENTENCES = [[1, 2, 3], [1, 2, 3, 4], [2, 3, 4], [1, 2, 5], [5, 5, 1]]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_gives_a_distribution_over_tokens_and_sentence_end(order: int) -> None:
    lm = TokenNgramLM.fit(SENTENCES, vocab_size=VOCAB, order=order)
    outcomes = [*range(1, VOCAB), lm.eos]
    for history in ([], [1], [1, 2], [4, 4, 4], [5, 1, 2, 3]):  # seen, unseen and padded contexts
        context = lm.context_of(history)
        total = sum(math.exp(lm.score(context, token)) for token in outcomes)
        assert total == pytest.approx(1.0, abs=1e-9), (order, history)


def test_seen_continuations_beat_unseen_ones_and_sentences_score_as_a_sum() -> None:
    lm = TokenNgramLM.fit(SENTENCES, vocab_size=VOCAB, order=3)
    after_one_two = lm.context_of([1, 2])
    assert lm.score(after_one_two, 3) > lm.score(after_one_two, 5) > lm.score(after_one_two, 4)
    assert lm.sentence_score([1, 2, 3]) > lm.sentence_score([3, 2, 1])
    by_hand = sum(lm.score(lm.context_of([1, 2, 3][:i]), t) for i, t in enumerate([1, 2, 3]))
    assert lm.sentence_score([1, 2, 3]) == pytest.approx(by_hand + lm.score(lm.context_of([1, 2, 3]), lm.eos))


def test_lower_orders_count_distinct_predecessors_not_occurrences() -> None:
    # Token 1 follows only the sentence start (3 times), token 3 only token 2 (once): one distinct predecessor
    # each, so after an unseen context (the unigram level) they are equally likely, however often 1 was said.
    lm = TokenNgramLM.fit([[1, 2], [1, 2], [1, 2], [4, 2, 3]], vocab_size=VOCAB, order=2)
    unseen = (5,)
    assert lm.score(unseen, 1) == pytest.approx(lm.score(unseen, 3))
    assert lm.score(unseen, 2) > lm.score(unseen, 1)  # 2 follows 1 and 4: two predecessors


def test_saved_lm_scores_like_the_original() -> None:
    lm = TokenNgramLM.fit(SENTENCES, vocab_size=VOCAB, order=4)
    again = TokenNgramLM.from_dict(lm.to_dict())
    for sentence in ([1, 2, 3], [4], [5, 5, 5, 5], []):
        assert again.sentence_score(sentence) == pytest.approx(lm.sentence_score(sentence), abs=1e-12)
    with pytest.raises(UserError, match="not a token n-gram language model"):
        TokenNgramLM.from_dict({"format": "something else"})


def test_bad_training_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="outside 1..5"):
        TokenNgramLM.fit([[1, 9]], vocab_size=VOCAB)
    with pytest.raises(UserError, match="no transcripts"):
        TokenNgramLM.fit([], vocab_size=VOCAB)


def _ambiguous_frames() -> torch.Tensor:
    """Three frames: token 1, then 3 or 4 at nearly even odds (4 slightly ahead), then blank."""
    probs = torch.full((1, 3, VOCAB), 1e-4)
    probs[0, 0, 1] = 0.99
    probs[0, 1, 4], probs[0, 1, 3] = 0.50, 0.49
    probs[0, 2, 0] = 0.99
    return (probs / probs.sum(-1, keepdim=True)).log()


@pytest.mark.parametrize("seed", range(8))
def test_wide_fused_beam_ranks_every_sequence_by_its_exact_fused_score(seed: int) -> None:
    # 2 labels, <= 5 frames: at most 63 label sequences, so beam 64 prunes nothing and the fused search must
    # return every sequence with log P_ctc (summed over alignments) + weight * log P_lm (with the sentence end)
    # + bonus * length, best first.
    frames, vocab = 1 + seed % 5, 3
    log_probs = random_log_probs(frames, vocab, seed)
    lm = TokenNgramLM.fit([[1, 2], [2, 2, 1], [1]], vocab_size=vocab, order=2 + seed % 2)
    fusion = LmFusion(lm, weight=0.4 + 0.1 * seed, bonus=0.3 * (seed % 3))
    found = ctc_prefix_beam_search(log_probs[None], torch.tensor([frames]), beam_size=64, fusion=fusion)[0]
    totals = ctc_sequence_log_probs(log_probs)
    assert {tuple(h.tokens) for h in found} == set(totals)
    for hypothesis in found:
        tokens = tuple(hypothesis.tokens)
        lm_score = lm.sentence_score(tokens)
        assert hypothesis.ctc_score == pytest.approx(totals[tokens], abs=1e-9)
        assert hypothesis.lm_score == pytest.approx(lm_score, abs=1e-9)
        assert hypothesis.score == pytest.approx(fusion.ranked_score(totals[tokens], lm_score, len(tokens)), abs=1e-9)
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)


def _textbook_prefix_beam(log_probs: torch.Tensor, beam_size: int, fusion: LmFusion | None) -> list[tuple]:
    """Prefix beam search as the papers write it: every prefix extended by every token at every frame, prefixes
    ranked by their fused score; no pruning, no blank skipping, prefixes as tuples."""

    def add(a: float, b: float) -> float:
        return max(a, b) + math.log1p(math.exp(-abs(a - b))) if max(a, b) > -math.inf else -math.inf

    def rank(prefix: tuple, probs: list[float]) -> float:
        acoustic = add(*probs)
        if fusion is None:
            return acoustic
        lm_logp = sum(fusion.lm.score(fusion.lm.context_of(prefix[:i]), t) for i, t in enumerate(prefix))
        return fusion.ranked_score(acoustic, lm_logp, len(prefix))

    beam = {(): [0.0, -math.inf]}
    for frame in log_probs.tolist():
        grown: dict[tuple, list[float]] = {}
        for prefix, (p_blank, p_label) in beam.items():
            for token, logp in enumerate(frame):
                if token == 0:
                    entry = grown.setdefault(prefix, [-math.inf, -math.inf])
                    entry[0] = add(entry[0], add(p_blank, p_label) + logp)
                elif prefix and token == prefix[-1]:
                    entry = grown.setdefault(prefix + (token,), [-math.inf, -math.inf])
                    entry[1] = add(entry[1], p_blank + logp)
                    same = grown.setdefault(prefix, [-math.inf, -math.inf])
                    same[1] = add(same[1], p_label + logp)
                else:
                    entry = grown.setdefault(prefix + (token,), [-math.inf, -math.inf])
                    entry[1] = add(entry[1], add(p_blank, p_label) + logp)
        beam = dict(sorted(grown.items(), key=lambda item: rank(*item), reverse=True)[:beam_size])
    return [(prefix, add(*probs)) for prefix, probs in beam.items()]


@pytest.mark.parametrize("seed", range(24))
def test_narrow_fused_beam_keeps_what_the_textbook_search_keeps(seed: int) -> None:
    # The search skips extensions that cannot reach the beam; with 1-4 prefixes kept out of hundreds possible it
    # must still end with the same prefixes and CTC scores as the search that extends everything.
    frames, vocab, beam_size = 6 + seed % 7, 4 + seed % 2, 1 + seed % 4
    log_probs = random_log_probs(frames, vocab, seed, scale=3.0)
    lm = TokenNgramLM.fit([[1, 2, 3], [2, 2, 1], [3, 1], [1, 3, 3, 2]], vocab_size=vocab, order=3)
    fusion = None if seed % 3 == 0 else LmFusion(lm, weight=0.3 * (seed % 3), bonus=0.5 * (seed % 4))
    expected = _textbook_prefix_beam(log_probs, beam_size, fusion)
    found = ctc_prefix_beam_search(log_probs[None], torch.tensor([frames]), beam_size=beam_size, fusion=fusion)[0]
    assert {tuple(h.tokens) for h in found} == {prefix for prefix, _ in expected}
    by_prefix = dict(expected)
    for hypothesis in found:
        assert hypothesis.ctc_score == pytest.approx(by_prefix[tuple(hypothesis.tokens)], abs=1e-9)


def test_fusion_lets_the_lm_decide_between_near_equal_acoustic_choices() -> None:
    log_probs, lengths = _ambiguous_frames(), torch.tensor([3])
    plain = ctc_prefix_beam_search(log_probs, lengths, beam_size=4)[0]
    assert plain[0].tokens == [1, 4] and plain[0].lm_score is None
    lm = TokenNgramLM.fit([[1, 3]] * 5 + [[2, 4]], vocab_size=VOCAB, order=2)
    fused = ctc_prefix_beam_search(log_probs, lengths, beam_size=4, fusion=LmFusion(lm, weight=0.5))[0]
    assert fused[0].tokens == [1, 3]
    best = fused[0]
    assert best.lm_score == pytest.approx(lm.sentence_score([1, 3]))
    assert best.score == pytest.approx(best.ctc_score + 0.5 * best.lm_score)
    unchanged = ctc_prefix_beam_search(log_probs, lengths, beam_size=4, fusion=LmFusion(lm, weight=0.0))[0]
    assert [h.tokens for h in unchanged] == [h.tokens for h in plain]


def test_length_bonus_moves_the_ranking_towards_longer_answers() -> None:
    hypotheses = [
        Hypothesis(tokens=[1], score=-1.0, ctc_score=-1.0, lm_score=-2.0),
        Hypothesis(tokens=[1, 2, 3], score=-1.5, ctc_score=-1.5, lm_score=-4.0),
    ]

    def flat(tokens: torch.Tensor, memory: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return torch.full((*tokens.shape, VOCAB + 1), -math.log(VOCAB + 1))

    memory, valid = torch.zeros(1, 3, 4), torch.ones(1, 3, dtype=torch.bool)
    ranked = attention_rescoring(flat, memory, valid, [[VOCAB]], [hypotheses], 1.0, VOCAB, lm_weight=0.5)[0]
    assert ranked[0].tokens == [1]
    ranked = attention_rescoring(flat, memory, valid, [[VOCAB]], [hypotheses], 1.0, VOCAB, 0.5, lm_bonus=1.0)[0]
    assert ranked[0].tokens == [1, 2, 3] and ranked[0].lm_score == -4.0


def test_lm_options_are_checked_by_name() -> None:
    with pytest.raises(UserError, match="lm_weight"):
        DecodingOptions(mode="attention_beam", lm_weight=0.5)
    with pytest.raises(UserError, match="lm_weight must be in"):
        DecodingOptions(mode="ctc_prefix_beam", lm_weight=-1.0)
    assert DecodingOptions(mode="attention_rescoring", lm_weight=0.5, lm_bonus=1.0).lm_weight == 0.5
    lm = TokenNgramLM.fit(SENTENCES, vocab_size=VOCAB, order=2)
    with pytest.raises(ValueError, match="weight must be >= 0"):  # the search's pruning relies on it
        LmFusion(lm, weight=-0.5)

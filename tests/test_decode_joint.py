"""Joint CTC/attention decoding and attention rescoring against brute force and the pure modes."""

from __future__ import annotations

import itertools

import pytest
import torch
from decode_fakes import (
    EOT,
    LAYOUT,
    PROMPT,
    TEXT,
    TS_BEGIN,
    MarkovDecoder,
    ctc_prefix_log_prob,
    ctc_sequence_log_probs,
    memory_for,
    one_thread,  # noqa: F401  (autouse fixture)
    random_log_probs,
)

from mtspeech.decode.beam import beam_search
from mtspeech.decode.ctc import ctc_prefix_beam_search
from mtspeech.decode.grammar import AnswerGrammar, VocabLayout
from mtspeech.decode.joint import CTCPrefixScorer
from mtspeech.decode.options import DecodingOptions
from mtspeech.decode.rescoring import attention_rescoring, attention_scores
from mtspeech.decode.result import Hypothesis

TRANSCRIBE = AnswerGrammar(LAYOUT, "transcribe")
# For the brute-force tests: blank 0, labels 1 2, <|eot|> 3 (CTC enumeration is V^T paths, so keep V at 3).
SMALL = VocabLayout(vocab_size=4, text_end=3, eot_id=3, unk_id=None)


def _joint(**changes) -> DecodingOptions:
    return DecodingOptions(**{"mode": "joint_ctc_attention", "max_repeats": 0, "length_penalty": 0.0, **changes})


def _scores_of(scorer: CTCPrefixScorer, prefix: tuple[int, ...], candidates: list[int]) -> list[float]:
    """Prefix scores of ``prefix + c`` for each candidate, walking the scorer token by token."""
    state = scorer.initial_state(torch.tensor([0]))
    for token in prefix:
        scores, forward = scorer.score(state, torch.tensor([[token]]))
        state = scorer.select(state, forward, scores, torch.tensor([0]), torch.tensor([0]), torch.tensor([token]))
    return scorer.score(state, torch.tensor([candidates]))[0][0].tolist()


@pytest.mark.parametrize("seed", range(6))
def test_prefix_scores_equal_brute_force_prefix_probabilities(seed: int) -> None:
    frames = 2 + seed % 3
    log_probs = random_log_probs(frames, 3, seed)
    totals = ctc_sequence_log_probs(log_probs)
    scorer = CTCPrefixScorer(log_probs[None], torch.tensor([frames]), eot_id=3)
    for length in range(3):
        for prefix in itertools.product((1, 2), repeat=length):
            extend, end = _scores_of(scorer, prefix, [1, 2]), _scores_of(scorer, prefix, [3])[0]
            for label, score in zip((1, 2), extend, strict=True):
                assert score == pytest.approx(ctc_prefix_log_prob(totals, (*prefix, label)), abs=1e-9)
            assert end == pytest.approx(totals.get(prefix, float("-inf")), abs=1e-9)  # <|eot|>: exactly prefix


def test_padded_frames_do_not_change_prefix_scores() -> None:
    log_probs = random_log_probs(4, 3, seed=5)
    padded = torch.cat((log_probs, random_log_probs(3, 3, seed=6)))  # 3 junk frames beyond the length
    alone = CTCPrefixScorer(log_probs[None], torch.tensor([4]), eot_id=3)
    batched = CTCPrefixScorer(padded[None], torch.tensor([4]), eot_id=3)
    for prefix in [(), (1,), (2, 1), (1, 1)]:
        assert _scores_of(alone, prefix, [1, 2, 3]) == pytest.approx(_scores_of(batched, prefix, [1, 2, 3]))


def test_timestamps_are_transparent_to_ctc() -> None:
    log_probs = random_log_probs(5, 3, seed=2)
    scorer = CTCPrefixScorer(log_probs[None], torch.tensor([5]), eot_id=3)
    stamp = 7  # any id >= the CTC vocabulary other than <|eot|>
    assert _scores_of(scorer, (1, stamp), [2, 3]) == pytest.approx(_scores_of(scorer, (1,), [2, 3]))
    assert _scores_of(scorer, (stamp,), [1]) == pytest.approx(_scores_of(scorer, (), [1]))
    assert _scores_of(scorer, (1,), [stamp]) == pytest.approx(_scores_of(scorer, (), [1]))  # its parent's score


@pytest.mark.parametrize("seed", range(8))
def test_joint_with_lambda_one_is_pure_ctc(seed: int) -> None:
    frames = 1 + seed % 5
    log_probs = random_log_probs(frames, 3, seed)
    totals = ctc_sequence_log_probs(log_probs)
    scorer = CTCPrefixScorer(log_probs[None], torch.tensor([frames]), eot_id=3)
    valid = torch.ones(1, frames, dtype=torch.bool)
    options = _joint(beam_size=64, pre_beam_size=4)
    grammar = AnswerGrammar(SMALL, "transcribe")
    found = beam_search(None, None, valid, [[9]], grammar, options, ctc=scorer, ctc_weight=1.0)[0]
    prefix_beam = ctc_prefix_beam_search(log_probs[None], torch.tensor([frames]), beam_size=64)[0][0]
    assert tuple(found[0].tokens) == max(totals, key=totals.get) == tuple(prefix_beam.tokens)
    assert found[0].score == pytest.approx(prefix_beam.score, abs=1e-9)
    for hypothesis in found:  # every finished answer is scored with its exact CTC probability
        assert hypothesis.score == pytest.approx(totals[tuple(hypothesis.tokens)], abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_joint_with_lambda_zero_is_pure_attention(seed: int) -> None:
    decoder = MarkovDecoder.random(seed)
    memory, valid = memory_for([6, 9], seed=seed)
    ctc = torch.stack([random_log_probs(9, 5, seed + s) for s in (10, 11)])
    scorer = CTCPrefixScorer(ctc, torch.tensor([6, 9]), eot_id=EOT)
    options = _joint(beam_size=3, length_penalty=None)
    pure = beam_search(decoder.step, memory, valid, [PROMPT] * 2, TRANSCRIBE, options)
    joint = beam_search(decoder.step, memory, valid, [PROMPT] * 2, TRANSCRIBE, options, ctc=scorer, ctc_weight=0.0)
    for a, b in zip(pure, joint, strict=True):
        assert [(h.tokens, h.score) for h in a] == [(h.tokens, h.score) for h in b]


@pytest.mark.parametrize("weight", [0.3, 0.7])
def test_exhaustive_joint_search_maximises_the_weighted_score(weight: float) -> None:
    frames = 4
    log_probs = random_log_probs(frames, 3, seed=int(weight * 10))
    totals = ctc_sequence_log_probs(log_probs)
    decoder = MarkovDecoder.random(3)
    memory, valid = memory_for([frames], seed=1)
    prompt = [9]

    def step(tokens, mem, mask):  # the fake decoder over SMALL's 4 ids
        return decoder.table[tokens[:, -1], :4].log_softmax(dim=-1)

    def att(answer: tuple[int, ...]) -> float:
        """log P_att(answer + <|eot|>), one decoder step per scored token."""
        sequence = [*prompt, *answer, 3]
        steps = range(len(prompt), len(sequence))
        return sum(float(step(torch.tensor([sequence[:i]]), None, None)[0, sequence[i]]) for i in steps)

    scorer = CTCPrefixScorer(log_probs[None], torch.tensor([frames]), eot_id=3)
    options = _joint(beam_size=64, pre_beam_size=4)
    found = beam_search(
        step, memory, valid, [prompt], AnswerGrammar(SMALL, "transcribe"), options, ctc=scorer, ctc_weight=weight
    )[0]
    combined = {y: weight * p + (1 - weight) * att(y) for y, p in totals.items()}
    best = max(combined, key=combined.get)
    assert tuple(found[0].tokens) == best
    assert found[0].score == pytest.approx(combined[best], abs=1e-6)
    assert found[0].ctc_score == pytest.approx(totals[best], abs=1e-9)


def test_joint_decoding_keeps_timestamps_and_ctc_in_step() -> None:
    decoder = MarkovDecoder.random(4)
    memory, valid = memory_for([6], seed=2)
    ctc = random_log_probs(6, 5, seed=3)[None]
    scorer = CTCPrefixScorer(ctc, torch.tensor([6]), eot_id=EOT)
    grammar = AnswerGrammar(LAYOUT, "transcribe", timestamps=True)
    found = beam_search(
        decoder.step, memory, valid, [PROMPT], grammar, _joint(beam_size=4), ctc=scorer, ctc_weight=0.5
    )[0]
    totals_scorer = CTCPrefixScorer(ctc, torch.tensor([6]), eot_id=EOT)
    for h in found:
        if h.finish != "eot":
            continue
        text = tuple(t for t in h.tokens if t < TS_BEGIN)
        assert h.ctc_score == pytest.approx(_scores_of(totals_scorer, text, [EOT])[0], abs=1e-9)


# --- attention rescoring ------------------------------------------------------------------------------
def test_attention_scores_equal_step_by_step_sums() -> None:
    decoder = MarkovDecoder.random(1)
    memory, valid = memory_for([5], seed=1)
    answers = [[1, 2, 3], [], [4]]
    scores = attention_scores(decoder.forward, memory, valid, PROMPT, answers, EOT)
    for answer, score in zip(answers, scores.tolist(), strict=True):
        expected = 0.0
        for i, token in enumerate([*answer, EOT]):
            expected += float(decoder.step(torch.tensor([[*PROMPT, *answer[:i]]]), memory, valid)[0, token])
        assert score == pytest.approx(expected)


def test_rescoring_picks_the_decoders_best_among_the_nbest() -> None:
    decoder = MarkovDecoder.random(2)
    memory, valid = memory_for([5, 5], seed=2)
    nbest = [
        [
            Hypothesis([1, 2], -1.0, ctc_score=-1.0),
            Hypothesis([3], -1.5, ctc_score=-1.5),
            Hypothesis([], -4.0, ctc_score=-4.0),
        ],
        [Hypothesis([4, 4], -0.5, ctc_score=-0.5), Hypothesis([2, 1], -0.9, ctc_score=-0.9)],
    ]
    att_only = attention_rescoring(decoder.forward, memory, valid, [PROMPT] * 2, nbest, 0.0, EOT)
    ctc_only = attention_rescoring(decoder.forward, memory, valid, [PROMPT] * 2, nbest, 1.0, EOT)
    mixed = attention_rescoring(decoder.forward, memory, valid, [PROMPT] * 2, nbest, 0.4, EOT)
    for row, hypotheses in enumerate(nbest):
        att = attention_scores(
            decoder.forward, memory[row : row + 1], valid[row : row + 1], PROMPT, [h.tokens for h in hypotheses], EOT
        ).tolist()
        assert att_only[row][0].tokens == hypotheses[max(range(len(att)), key=att.__getitem__)].tokens
        assert [h.tokens for h in ctc_only[row]] == [h.tokens for h in hypotheses]  # CTC order kept
        expected = {tuple(h.tokens): 0.4 * h.ctc_score + 0.6 * a for h, a in zip(hypotheses, att, strict=True)}
        assert tuple(mixed[row][0].tokens) == max(expected, key=expected.get)
        assert mixed[row][0].score == pytest.approx(max(expected.values()))
        assert {tuple(h.tokens) for h in mixed[row]} == set(expected)  # rescoring never invents an answer


def test_every_decoder_id_can_be_a_candidate() -> None:
    # ids past the CTC vocabulary (timestamps, the last id) are transparent, never an index error
    scorer = CTCPrefixScorer(random_log_probs(3, 5, 0)[None], torch.tensor([3]), eot_id=EOT)
    state = scorer.initial_state(torch.tensor([0]))
    scores, _ = scorer.score(state, torch.tensor([[*TEXT, EOT, TS_BEGIN, 20]]))
    assert torch.isfinite(scores).all()
    assert scores[0, -2:].tolist() == [0.0, 0.0]  # the empty prefix has probability 1

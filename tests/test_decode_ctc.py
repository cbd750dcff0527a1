"""CTC greedy and prefix beam search against brute force over every alignment."""

from __future__ import annotations

import math

import pytest
import torch
from decode_fakes import (
    ctc_sequence_log_probs,
    one_thread,  # noqa: F401  (autouse fixture)
    random_log_probs,
)

from mtspeech.decode.ctc import ctc_greedy_search, ctc_prefix_beam_search


@pytest.mark.parametrize("seed", range(12))
def test_wide_prefix_beam_finds_the_most_probable_label_sequence(seed: int) -> None:
    frames, vocab = 1 + seed % 5, 3
    log_probs = random_log_probs(frames, vocab, seed)
    totals = ctc_sequence_log_probs(log_probs)
    best = max(totals, key=totals.get)
    # 2 labels, <= 5 frames: at most 63 prefixes, so beam 64 prunes nothing and the search is exact.
    nbest = ctc_prefix_beam_search(log_probs[None], torch.tensor([frames]), beam_size=64)[0]
    assert tuple(nbest[0].tokens) == best
    assert nbest[0].score == pytest.approx(totals[best], abs=1e-9)
    # Every returned sequence carries its exact total probability, and every possible sequence is returned.
    assert {tuple(h.tokens) for h in nbest} == set(totals)
    for hypothesis in nbest:
        assert hypothesis.score == pytest.approx(totals[tuple(hypothesis.tokens)], abs=1e-9)
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)


def test_prefix_beam_differs_from_best_path_where_alignments_add_up() -> None:
    # Best path is "blank blank" (0.4 * 0.4 = 0.16) but label 1 has 0.3*0.3 + 0.3*0.4 + 0.4*0.3 = 0.33 in total.
    probs = torch.tensor([[0.4, 0.3, 0.3], [0.4, 0.3, 0.3]], dtype=torch.float64)
    log_probs = probs.log()[None]
    lengths = torch.tensor([2])
    assert ctc_greedy_search(log_probs, lengths)[0].tokens == []
    best = ctc_prefix_beam_search(log_probs, lengths, beam_size=8)[0][0]
    assert best.tokens in ([1], [2])
    assert math.exp(best.score) == pytest.approx(0.33)


def test_greedy_collapses_repeats_and_drops_blanks() -> None:
    path = [0, 3, 3, 0, 3, 1, 1, 0, 2]
    log_probs = torch.full((1, len(path), 4), -10.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    hypothesis = ctc_greedy_search(log_probs, torch.tensor([len(path)]))[0]
    assert hypothesis.tokens == [3, 3, 1, 2]
    assert hypothesis.score == pytest.approx(0.0)


def test_padding_frames_are_ignored_in_a_batch() -> None:
    first, second = random_log_probs(4, 3, seed=1), random_log_probs(6, 3, seed=2)
    batch = torch.full((2, 6, 3), math.log(1 / 3), dtype=torch.float64)
    batch[0, :4], batch[1] = first, second
    lengths = torch.tensor([4, 6])
    for row, single in enumerate((first, second)):
        alone = ctc_prefix_beam_search(single[None], torch.tensor([single.size(0)]), beam_size=8)[0]
        batched = ctc_prefix_beam_search(batch, lengths, beam_size=8)[row]
        assert [(h.tokens, round(h.score, 9)) for h in alone] == [(h.tokens, round(h.score, 9)) for h in batched]
        assert (
            ctc_greedy_search(single[None], torch.tensor([single.size(0)]))[0] == ctc_greedy_search(batch, lengths)[row]
        )


def _peaky(frames: int, vocab: int, seed: int, floor: float) -> torch.Tensor:
    """Each frame puts more than ``floor`` on one random symbol, the rest spread at random."""
    g = torch.Generator().manual_seed(seed)
    top = torch.randint(0, vocab, (frames,), generator=g)
    peak = floor + (1 - floor) * 0.9 * torch.rand(frames, generator=g, dtype=torch.float64)
    rest = torch.rand(frames, vocab, generator=g, dtype=torch.float64)
    rest[torch.arange(frames), top] = 0
    rest = rest / rest.sum(dim=1, keepdim=True) * (1 - peak)[:, None]
    rest[torch.arange(frames), top] = peak
    return rest.log()


@pytest.mark.parametrize("seed", range(20))
def test_greedy_equals_beam_one_when_every_frame_peaks_above_one_over_root_two(seed: int) -> None:
    log_probs = _peaky(frames=12, vocab=4, seed=seed, floor=1 / math.sqrt(2) + 1e-3)[None]
    lengths = torch.tensor([12])
    greedy = ctc_greedy_search(log_probs, lengths)[0]
    beam_one = ctc_prefix_beam_search(log_probs, lengths, beam_size=1)[0][0]
    assert greedy.tokens == beam_one.tokens


def test_greedy_and_beam_one_can_differ_below_that_condition() -> None:
    # l, blank, l at 0.6 each: greedy says "l l", but the prefix "l" keeps 0.288 against 0.216 for "l l".
    probs = torch.tensor([[0.4, 0.6], [0.6, 0.4], [0.4, 0.6]], dtype=torch.float64)
    log_probs, lengths = probs.log()[None], torch.tensor([3])
    assert ctc_greedy_search(log_probs, lengths)[0].tokens == [1, 1]
    assert ctc_prefix_beam_search(log_probs, lengths, beam_size=1)[0][0].tokens == [1]


def test_per_frame_token_pruning_keeps_the_answer_on_peaky_input() -> None:
    log_probs = _peaky(frames=30, vocab=50, seed=3, floor=0.8)[None]
    lengths = torch.tensor([30])
    full = ctc_prefix_beam_search(log_probs, lengths, beam_size=4)[0][0]
    pruned = ctc_prefix_beam_search(log_probs, lengths, beam_size=4, token_topk=3)[0][0]
    assert pruned.tokens == full.tokens
    assert pruned.score <= full.score + 1e-12  # pruning only removes alignments


def test_zero_length_input_gives_the_empty_answer() -> None:
    hypotheses = ctc_prefix_beam_search(torch.zeros(1, 3, 4), torch.tensor([0]), beam_size=3)[0]
    assert [h.tokens for h in hypotheses] == [[]]
    assert ctc_greedy_search(torch.zeros(1, 3, 4), torch.tensor([0]))[0].tokens == []


def _mostly_blank(frames: int, vocab: int, seed: int) -> torch.Tensor:
    """A trained model's shape: two thirds of the frames put 0.9995 on blank, the others are random."""
    log_probs = random_log_probs(frames, vocab, seed)
    sure = torch.arange(frames) % 3 != 1
    probs = torch.full((vocab,), 0.0005 / (vocab - 1), dtype=torch.float64)
    probs[0] = 0.9995
    log_probs[sure] = probs.log()
    return log_probs


@pytest.mark.parametrize("seed", range(8))
def test_blank_skipping_keeps_the_answers_and_their_scores_within_the_skipped_mass(seed: int) -> None:
    log_probs = _mostly_blank(frames=15, vocab=4, seed=seed)[None]
    lengths = torch.tensor([15])
    exact = ctc_prefix_beam_search(log_probs, lengths, beam_size=8)[0]
    skipped = ctc_prefix_beam_search(log_probs, lengths, beam_size=8, blank_skip=0.999)[0]
    assert skipped[0].tokens == exact[0].tokens
    exact_scores = {tuple(h.tokens): h.score for h in exact}
    for hypothesis in skipped[:3]:
        # Skipping drops only alignments that put a label on a skipped frame: < 0.0005 per frame, 10 frames.
        assert (
            exact_scores[tuple(hypothesis.tokens)] - 0.006 < hypothesis.score <= exact_scores[tuple(hypothesis.tokens)]
        )


def test_blank_skipping_folds_runs_and_leaves_repeats_after_them_new_labels() -> None:
    # label 1, then a run of sure blanks, then label 1 again: "1 1" (a repeat separated by blanks).
    probs = torch.full((6, 3), 0.0001, dtype=torch.float64)
    probs[[1, 2, 3, 4], 0] = 0.9998
    probs[[0, 5], 1] = 0.9998
    log_probs, lengths = probs.log()[None], torch.tensor([6])
    best = ctc_prefix_beam_search(log_probs, lengths, beam_size=4, blank_skip=0.999)[0][0]
    assert best.tokens == [1, 1]
    with pytest.raises(ValueError, match="blank_skip"):
        ctc_prefix_beam_search(log_probs, lengths, beam_size=4, blank_skip=1.5)

"""Attention rescoring (WeNet's two-pass mode): CTC prefix beam search proposes an n-best list, the decoder scores
each candidate with one teacher-forced pass, and the best ``lambda * ctc + (1 - lambda) * attention`` wins.

The decoder sees whole candidates, so this costs one batched decoder call per utterance instead of one per
output token, and it can never produce a word CTC did not propose: a cheap way to use the decoder's language
knowledge while keeping CTC's alignment discipline (no loops, no hallucinated tails).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mtspeech.decode.result import Hypothesis

# forward(tokens (N, U), memory (N, T, D), memory_valid (N, T)) -> log-probs of every next token (N, U, V)
SequenceFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def attention_scores(
    forward: SequenceFn,
    memory: torch.Tensor,
    memory_valid: torch.Tensor,
    prompt: Sequence[int],
    answers: Sequence[Sequence[int]],
    eot_id: int,
    pad_id: int = 0,
) -> torch.Tensor:
    """``log P_att(answer + <|eot|> | prompt, audio)`` for each answer of one utterance, ``(N,)`` float64.

    ``memory`` ``(1, T, D)`` / ``memory_valid`` ``(1, T)`` are that utterance's encoder output. Answers are right-
    padded; a causal decoder never lets padding reach earlier positions, and padded targets are not summed."""
    if not answers:
        return torch.zeros(0, dtype=torch.float64)
    device = memory.device
    longest = max(len(a) for a in answers)
    inputs = torch.full((len(answers), len(prompt) + longest), pad_id, dtype=torch.long, device=device)
    targets = torch.full((len(answers), len(prompt) + longest), -1, dtype=torch.long, device=device)
    for row, answer in enumerate(answers):
        sequence = [*prompt, *answer]
        inputs[row, : len(sequence)] = torch.tensor(sequence, device=device)
        # the output at position i predicts token i + 1: answer tokens, then <|eot|> after the last one
        scored = [*answer, eot_id]
        targets[row, len(prompt) - 1 : len(prompt) - 1 + len(scored)] = torch.tensor(scored, device=device)
    count = len(answers)
    logp = forward(inputs, memory.expand(count, -1, -1), memory_valid.expand(count, -1)).double()
    picked = logp.gather(-1, targets.clamp_min(0)[..., None]).squeeze(-1)
    return picked.masked_fill(targets < 0, 0.0).sum(dim=-1)


def attention_rescoring(
    forward: SequenceFn,
    memory: torch.Tensor,
    memory_valid: torch.Tensor,
    prompts: Sequence[Sequence[int]],
    nbest: Sequence[Sequence[Hypothesis]],
    ctc_weight: float,
    eot_id: int,
    lm_weight: float = 0.0,
    lm_bonus: float = 0.0,
) -> list[list[Hypothesis]]:
    """Rescore each utterance's CTC n-best (``ctc_score`` set, as prefix beam search returns them) after its
    prompt (``prompts``: one per utterance); returns them re-ranked best first, with
    ``score = ctc_weight * ctc + (1 - ctc_weight) * attention`` (raw sums, as WeNet: both cover the same tokens),
    plus ``lm_weight * lm_score + lm_bonus * length`` for hypotheses an n-gram LM scored during the search."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    results = []
    for row, hypotheses in enumerate(nbest):
        answers = [h.tokens for h in hypotheses]
        att = attention_scores(
            forward, memory[row : row + 1], memory_valid[row : row + 1], prompts[row], answers, eot_id
        )
        rescored = []
        for hypothesis, att_score in zip(hypotheses, att.tolist(), strict=True):
            ctc_score = hypothesis.ctc_score if hypothesis.ctc_score is not None else hypothesis.score
            score = _mix(ctc_score, att_score, ctc_weight)
            if hypothesis.lm_score is not None:
                score += lm_weight * hypothesis.lm_score + lm_bonus * len(hypothesis.tokens)
            rescored.append(
                Hypothesis(
                    tokens=list(hypothesis.tokens),
                    score=score,
                    att_score=att_score,
                    ctc_score=ctc_score,
                    finish=hypothesis.finish,
                    lm_score=hypothesis.lm_score,
                )
            )
        results.append(sorted(rescored, key=lambda h: h.score, reverse=True))
    return results


def _mix(ctc_score: float, att_score: float, ctc_weight: float) -> float:
    """``lambda * ctc + (1 - lambda) * att`` where a zero weight really drops its term (even an infinite one)."""
    if ctc_weight == 0.0:
        return att_score
    if ctc_weight == 1.0:
        return ctc_score
    return ctc_weight * ctc_score + (1.0 - ctc_weight) * att_score

"""Attention beam search over a decoder step function, optionally joint with CTC prefix scores.

The loop, top to bottom, once per decoder step:

1. the grammar (:mod:`~mtspeech.decode.grammar`) and the repetition guards say which tokens each live
   hypothesis may take; a hypothesis at its length limit may only close (the max-length guard): ``<|eot|>``,
   or first the intent of an SLU answer / the closing timestamp of an open segment;
2. the decoder scores the next token of every live hypothesis in one batched call;
3. with CTC (``ctc_weight > 0``): the ``pre_beam_size`` most plausible tokens per hypothesis get exact CTC prefix
   scores and the ranking score becomes ``lambda * ctc + (1 - lambda) * attention``;
4. per utterance, candidates are taken best first: ``<|eot|>`` moves a hypothesis to the finished list (the beam
   goes on), anything else fills the next beam until it holds ``beam_size`` hypotheses;
5. an utterance is done when ``beam_size * patience`` hypotheses have finished (or none is left); its rows leave
   the batch, so short utterances stop costing decoder time.

The answer is the finished hypothesis with the best length-normalised score (``length_penalty``). Hypotheses are
batched over utterances *and* beams: one decoder call per step for the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from mtspeech.decode.grammar import AnswerGrammar
from mtspeech.decode.joint import CTCPrefixScorer
from mtspeech.decode.options import DecodingOptions
from mtspeech.decode.repetition import repetition_bans
from mtspeech.decode.result import Hypothesis, length_normalised

# step(tokens (N, U), memory (N, T, D), memory_valid (N, T)) -> log-probs of the next token (N, V). A stateful
# step function (mtspeech.decode.incremental.CachedDecoderStep) may also have select(rows): after each step the
# search passes the parent row of every hypothesis that goes on.
StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def max_new_tokens(num_frames: int, options: DecodingOptions) -> int:
    """The max-length guard: answer tokens allowed for ``num_frames`` encoder frames."""
    return min(options.max_tokens, max(1, math.ceil(options.max_length_ratio * num_frames)))


def _utterance_groups(utt: list[int]) -> list[tuple[int, int, int]]:
    """``(utterance, first row, end row)`` of each run of rows (rows are kept grouped by utterance)."""
    groups, start = [], 0
    for row in range(1, len(utt) + 1):
        if row == len(utt) or utt[row] != utt[start]:
            groups.append((utt[start], start, row))
            start = row
    return groups


def beam_search(
    step: StepFn | None,
    memory: torch.Tensor | None,
    memory_valid: torch.Tensor,
    prompts: Sequence[Sequence[int]],
    grammar: AnswerGrammar,
    options: DecodingOptions,
    ctc: CTCPrefixScorer | None = None,
    ctc_weight: float = 0.0,
    frame_shift: float = 0.04,
) -> list[list[Hypothesis]]:
    """Finished hypotheses per utterance, best (length-normalised) first.

    ``memory`` ``(B, T, D)`` / ``memory_valid`` ``(B, T)``: encoder output and its valid frames. ``prompts``: one
    per utterance, all of one length (group utterances by prompt length; rotary positions make a prompt's
    absolute offset irrelevant, but the step function takes no padding mask). ``ctc_weight`` is lambda: 0 is
    pure attention (no CTC needed), 1 pure CTC prefix scoring (no decoder call at all)."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if ctc_weight > 0 and ctc is None:
        raise ValueError("ctc_weight > 0 needs a CTCPrefixScorer")
    if ctc_weight < 1 and (step is None or memory is None):
        raise ValueError("ctc_weight < 1 needs the decoder step function and the encoder memory")
    if len({len(p) for p in prompts}) > 1:
        raise ValueError("all prompts of one beam_search call must have the same length")
    layout = grammar.layout
    batch, device = len(prompts), memory_valid.device
    frames = memory_valid.sum(dim=1).tolist()
    limit = [max_new_tokens(int(n), options) for n in frames]
    last_timestamp = [layout.last_timestamp_id(n * frame_shift) for n in frames] if grammar.timestamps else None
    beam, max_finished = options.beam_size, max(1, round(options.beam_size * options.patience))
    use_decoder, use_ctc = ctc_weight < 1.0, ctc_weight > 0.0

    # Live hypotheses ("rows"), grouped by utterance: answer tokens, attention log-prob, CTC state.
    utt = torch.arange(batch, device=device)
    answers: list[list[int]] = [[] for _ in range(batch)]
    att = torch.zeros(batch, dtype=torch.float64, device=device)
    ctc_state = ctc.initial_state(utt) if use_ctc and ctc is not None else None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]

    while answers:
        rows, utt_list = len(answers), utt.tolist()
        # 1. what each hypothesis may say next
        ends = [last_timestamp[u] for u in utt_list] if last_timestamp is not None else None
        allowed = grammar.allowed(answers, ends).to(device)
        at_limit = [len(a) >= limit[u] for a, u in zip(answers, utt_list, strict=True)]
        for row, answer in enumerate(answers):
            if at_limit[row]:
                allowed[row] = grammar.finishing(answer, None if ends is None else ends[row]).to(device)
                continue
            bans = repetition_bans(answer, options.max_repeats, options.max_repeat_period, options.no_repeat_ngram_size)
            if bans:
                allowed[row, list(bans)] = False
        # 2. the decoder's next-token log-probs
        if use_decoder:
            assert step is not None and memory is not None
            tokens = torch.tensor([[*prompts[u], *a] for a, u in zip(answers, utt_list, strict=True)], device=device)
            step_logp = step(tokens, memory[utt], memory_valid[utt]).double()
        else:
            step_logp = torch.zeros(rows, layout.vocab_size, dtype=torch.float64, device=device)
        # 3. candidates and their ranking scores
        if use_ctc:
            assert ctc is not None and ctc_state is not None
            proxy = ctc.proxy(utt, layout.vocab_size).double()
            proxy = proxy if not use_decoder else (1 - ctc_weight) * step_logp + ctc_weight * proxy
            size = min(options.candidates_per_hypothesis, layout.vocab_size)
            candidates = proxy.masked_fill(~allowed, -torch.inf).topk(size, dim=-1).indices  # (N, C)
            ctc_prefix, ctc_forward = ctc.score(ctc_state, candidates)
            att_next = att[:, None] + step_logp.gather(1, candidates)
            ranked = ctc_prefix if not use_decoder else (1 - ctc_weight) * att_next + ctc_weight * ctc_prefix
            ranked = ranked.masked_fill(~allowed.gather(1, candidates), -torch.inf)
        else:
            candidates = torch.arange(layout.vocab_size, device=device).expand(rows, -1)
            att_next = att[:, None] + step_logp
            ranked = att_next.masked_fill(~allowed, -torch.inf)
        # 4. per utterance: finish on <|eot|>, otherwise fill the next beam
        width = candidates.size(1)
        keep_rows: list[int] = []
        keep_cols: list[int] = []
        for u, lo, hi in _utterance_groups(utt_list):
            flat = ranked[lo:hi].flatten()
            top_scores, top_index = flat.topk(min(flat.numel(), 2 * beam))
            top_tokens = candidates[lo:hi].flatten()[top_index].tolist()
            chosen: list[tuple[int, int]] = []
            for score, index, token in zip(top_scores.tolist(), top_index.tolist(), top_tokens, strict=True):
                if score == -math.inf:
                    break
                row, col = lo + index // width, index % width
                if token == layout.eot_id:
                    if len(finished[u]) < max_finished:
                        finished[u].append(
                            Hypothesis(
                                tokens=list(answers[row]),
                                score=score,
                                att_score=float(att_next[row, col]) if use_decoder else None,
                                ctc_score=float(ctc_prefix[row, col]) if use_ctc else None,
                                finish="length" if at_limit[row] else "eot",
                            )
                        )
                    continue
                chosen.append((row, col))
                if len(chosen) == beam:
                    break
            # 5. done once enough hypotheses have finished
            if len(finished[u]) < max_finished:
                keep_rows += [r for r, _ in chosen]
                keep_cols += [c for _, c in chosen]
        if not keep_rows:
            break
        rows_t = torch.tensor(keep_rows, device=device)
        cols_t = torch.tensor(keep_cols, device=device)
        new_tokens = candidates[rows_t, cols_t]
        answers = [[*answers[r], t] for r, t in zip(keep_rows, new_tokens.tolist(), strict=True)]
        att = att_next[rows_t, cols_t]
        select = getattr(step, "select", None)
        if use_decoder and select is not None:
            select(rows_t)  # a stateful step function (KV cache) keeps the rows that go on
        if use_ctc:
            assert ctc is not None and ctc_state is not None
            ctc_state = ctc.select(ctc_state, ctc_forward, ctc_prefix, rows_t, cols_t, new_tokens)
        utt = utt[rows_t]

    results = []
    for hypotheses in finished:
        ranked_final = sorted(
            hypotheses, key=lambda h: length_normalised(h.score, h.num_scored, options.length_penalty), reverse=True
        )
        results.append(ranked_final or [Hypothesis(tokens=[], score=-math.inf, finish="empty")])
    return results

"""Word and segment times from a CTC forced alignment of the answer, and per-token confidence.

``ctc_forced_align`` is a Viterbi pass over the CTC topology (blank, label, blank, label, ... blank) written in
torch: torchaudio (which has ``forced_align``) is not available here, and ``ctc_loss`` only gives the sum over
alignments, not the best one. Each token then owns the frames where the best path sits on it; a word spans its
pieces (a piece starting with SentencePiece's "▁" begins a word), and words separated by a pause of at least
``segment_gap`` seconds start a new segment.

Encoder frame ``j`` covers ``lead + [j, j + 1) * frame_shift`` seconds (40 ms with x4 subsampling): one
encoder frame shift around the centre of its receptive field, the placement VAD targets, VAD answers and VAD
scoring use too (``encoder_frame_times``; ``lead`` is 15 ms for x4 subsampling of 10 ms frames). A word's time is
exact to one frame; every time is clipped to the audio, and times never go backwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mtspeech.decode.result import Segment, Word


@dataclass
class TokenSpan:
    token: int
    start: int  # first frame (inclusive)
    end: int  # last frame + 1
    posterior: float  # highest CTC posterior of the token over its frames


def ctc_forced_align(log_probs: torch.Tensor, tokens: Sequence[int], blank: int = 0) -> list[TokenSpan] | None:
    """Best CTC path of ``tokens`` through ``log_probs`` ``(T, V)``; None when they cannot fit (each token needs
    a frame, and a repeated token a blank frame in between). The frame loop runs on NumPy arrays: its steps are
    tiny (three choices per state), so per-operation overhead dominates, and NumPy's is a fraction of torch's."""
    frames = log_probs.size(0)
    if not tokens:
        return []
    if frames == 0:
        return None
    labels = np.asarray(tokens, dtype=np.int64)
    states = np.full(2 * len(tokens) + 1, blank, dtype=np.int64)
    states[1::2] = labels
    num_states = states.size
    # A label state may be entered from two states back (skipping the blank) unless it repeats that label.
    cannot_skip = np.ones(num_states, dtype=bool)
    cannot_skip[3::2] = labels[1:] == labels[:-1]
    emit = log_probs.detach().to("cpu", torch.float64).numpy()[:, states]  # (T, S)
    options = np.full((3, num_states), -np.inf)  # rows: stay, advance one state, skip a blank
    columns = np.arange(num_states)
    score = np.full(num_states, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((frames, num_states), dtype=np.int64)
    for t in range(1, frames):
        options[0] = score
        options[1, 1:] = score[:-1]
        options[2, 2:] = score[:-2]
        options[2, cannot_skip] = -np.inf
        choice = options.argmax(axis=0)
        back[t] = choice
        score = options[choice, columns] + emit[t]
    finals = score[-2:]
    if not np.isfinite(finals.max()):
        return None
    state = num_states - 2 + int(finals.argmax())
    path = [0] * frames
    back_rows = back.tolist()
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= back_rows[t][state]
    spans: list[TokenSpan] = []
    for t, state in enumerate(path):
        if state % 2 == 0:
            continue
        index = state // 2
        if len(spans) == index:
            spans.append(TokenSpan(tokens[index], t, t + 1, 0.0))
        spans[index].end = t + 1
        spans[index].posterior = max(spans[index].posterior, math.exp(emit[t, state]))
    return spans


def group_words(
    spans: Sequence[TokenSpan],
    word_starts: Sequence[bool],
    detokenize: Callable[[list[int]], str],
    frame_shift: float,
    offset: float = 0.0,
    duration: float | None = None,
    lead: float = 0.0,
) -> list[Word]:
    """Words from aligned pieces: times in seconds (frame ``j`` starts at ``offset + lead + j * frame_shift``,
    clipped to ``[offset, offset + duration]``), confidence = mean posterior of the word's pieces."""
    groups: list[list[TokenSpan]] = []
    for span, starts in zip(spans, word_starts, strict=True):
        if starts or not groups:
            groups.append([])
        groups[-1].append(span)
    end_limit = math.inf if duration is None else offset + duration
    words: list[Word] = []
    previous_end = offset
    for pieces in groups:
        text = detokenize([p.token for p in pieces]).strip()
        if not text:
            continue
        start = min(max(offset + lead + pieces[0].start * frame_shift, previous_end), end_limit)
        end = min(max(offset + lead + pieces[-1].end * frame_shift, start), end_limit)
        confidence = sum(p.posterior for p in pieces) / len(pieces)
        words.append(Word(word=text, start=round(start, 3), end=round(end, 3), confidence=round(confidence, 4)))
        previous_end = end
    return words


def group_segments(words: Sequence[Word], segment_gap: float) -> list[Segment]:
    """Consecutive words as segments, split where the pause between two words is ``>= segment_gap`` seconds."""
    segments: list[Segment] = []
    for word in words:
        if not segments or word.start - segments[-1].end >= segment_gap:
            segments.append(Segment(start=word.start, end=word.end, text=word.word, words=[word]))
        else:
            segment = segments[-1]
            segment.words.append(word)
            segment.end = word.end
            segment.text += " " + word.word
    return segments


def mean_token_posterior(spans: Sequence[TokenSpan]) -> float:
    return sum(s.posterior for s in spans) / len(spans) if spans else 0.0

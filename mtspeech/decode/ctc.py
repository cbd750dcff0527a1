"""CTC decoding: greedy (best path) and prefix beam search (best label sequence, summed over alignments).

Both take log-probabilities ``(B, T, V)`` (log-softmax output of the CTC head) and valid frame counts ``(B,)``.

Greedy picks the most likely symbol per frame, collapses repeats and drops blanks: the best *path*, batched over
utterances in two tensor ops. Prefix beam search (Hannun et al. 2014, log space) tracks, per label prefix, the
probability of all alignments ending in blank (``pb``) and in the prefix's last label (``pnb``); this is what
makes it sum over alignments instead of taking the best one. It keeps ``beam_size`` prefixes per frame and, when
``token_topk`` is set, extends them only with each frame's ``token_topk`` most likely labels (plus blank).

Blank skipping (``blank_skip``, a probability): a confident CTC model puts nearly all its mass on blank for most
frames. Such a frame can only move every prefix's mass into its blank-ended part (the labels it could add or
continue carry less than ``1 - blank_skip`` of it), so a run of them is applied as one multiplication instead
of a beam step per frame; the ranking of the prefixes does not change across the run.

Greedy equals prefix beam search with beam 1 when every frame's most likely symbol has probability above
``1/sqrt(2)`` (about 0.707): then the single surviving prefix always follows the greedy path. Below that they can
differ: frames ``l``, blank, ``l`` at 0.6 each (the rest on the other symbol) give greedy ``l l`` but beam-1
``l``, because the prefix ``l`` keeps more mass than ``l l``. ``tests/test_decode_ctc.py`` checks both sides.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import torch

from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.result import Hypothesis

NEG_INF = -math.inf


def log_add(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` on Python floats (the inner loop of prefix beam search runs on floats: faster
    than tiny tensors)."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[Hypothesis]:
    """Best path per utterance: argmax per frame, repeats collapsed, blanks dropped.

    ``score`` is the best path's log-probability (the sum of the per-frame maxima)."""
    best_logp, best = log_probs.max(dim=-1)  # (B, T)
    results = []
    for row in range(log_probs.size(0)):
        length = int(lengths[row])
        path = best[row, :length]
        keep = path != blank
        if length > 1:
            keep[1:] &= path[1:] != path[:-1]  # a label repeated on consecutive frames is one label
        results.append(
            Hypothesis(tokens=path[keep].tolist(), score=float(best_logp[row, :length].sum()), finish="frames")
        )
    return results


# One step of the search: a frame's blank log-prob and its candidate labels ``{token: log-prob}``, or (a float)
# the summed blank log-prob of a run of skipped blank frames.
Step = tuple[float, dict[int, float]] | float


def _frame_candidates(
    log_probs: torch.Tensor, lengths: torch.Tensor, token_topk: int | None, blank: int, blank_skip: float | None
) -> list[list[Step]]:
    """Per utterance, the search steps: each frame's blank log-prob and its ``token_topk`` best labels (blank
    left out if it is among them), with runs of frames whose blank probability is ``>= blank_skip`` folded into
    one float. The top-k runs only over the frames that are searched (a confident model's frames are mostly
    skipped blanks); the search itself runs on Python floats."""
    values = log_probs.detach()
    blank_logp = values[..., blank].double()
    threshold = math.log(blank_skip) if blank_skip is not None else math.inf
    out = []
    for row, n in enumerate(lengths.tolist()):
        searched = blank_logp[row, :n] < threshold
        kept = values[row, :n][searched].double()  # (K, V)
        if token_topk is None or token_topk >= kept.size(-1):
            top_logp, top_ids = kept, torch.arange(kept.size(-1)).expand_as(kept)
        else:
            top_logp, top_ids = kept.topk(token_topk, dim=-1)
        candidates = zip(top_ids.tolist(), top_logp.tolist(), strict=True)
        steps: list[Step] = []
        for blank_value, is_searched in zip(blank_logp[row, :n].tolist(), searched.tolist(), strict=True):
            if not is_searched:
                if steps and isinstance(steps[-1], float):
                    steps[-1] += blank_value
                else:
                    steps.append(blank_value)
                continue
            ids, logps = next(candidates)
            steps.append((blank_value, {t: logp for t, logp in zip(ids, logps, strict=True) if t != blank}))
        out.append(steps)
    return out


@dataclass(frozen=True)
class LmFusion:
    """Shallow fusion of a token n-gram LM into prefix beam search: prefixes are ranked by
    ``log P_ctc + weight * log P_lm + bonus * length`` (the bonus offsets the LM's pull towards short answers)."""

    lm: TokenNgramLM
    weight: float
    bonus: float = 0.0

    def __post_init__(self) -> None:
        if self.weight < 0:  # the search's pruning bounds the LM term by 0, which needs a weight >= 0
            raise ValueError(f"LM fusion weight must be >= 0, got {self.weight}")

    def ranked_score(self, acoustic: float, lm_logp: float, length: int) -> float:
        return acoustic + self.weight * lm_logp + self.bonus * length


class _PrefixTrie:
    """The label prefixes of one search as node ids: ``(parent, token) -> node``. The search's dicts then hash a
    small int instead of a tuple as long as the prefix (Python re-hashes a tuple on every lookup), and what a
    prefix's LM score needs (its log-probability, its last ``order - 1`` tokens) is worked out once, when the
    node is made, and kept as one ranking offset ``weight * log P_lm + bonus * length``."""

    def __init__(self, fusion: LmFusion | None) -> None:
        self.fusion = fusion
        self.parent, self.last, self.length = [-1], [-1], [0]
        self.lm_logp, self.offset = [0.0], [0.0]
        width = fusion.lm.order - 1 if fusion is not None else 0
        self.context: list[tuple[int, ...]] = [(fusion.lm.bos,) * width if fusion is not None else ()]
        self._children: dict[tuple[int, int], int] = {}  # (node, token) -> node

    def child(self, node: int, token: int) -> int:
        key = (node, token)
        found = self._children.get(key)
        if found is not None:
            return found
        found = self._children[key] = len(self.parent)
        self.parent.append(node)
        self.last.append(token)
        self.length.append(self.length[node] + 1)
        fusion = self.fusion
        if fusion is None:
            self.lm_logp.append(0.0)
            self.offset.append(0.0)
            self.context.append(())
        else:
            logp = self.lm_logp[node] + fusion.lm.score(self.context[node], token)
            self.lm_logp.append(logp)
            self.offset.append(fusion.ranked_score(0.0, logp, self.length[found]))
            context = self.context[node]
            self.context.append((*context[1:], token) if context else ())
        return found

    def tokens(self, node: int) -> tuple[int, ...]:
        out = []
        while node > 0:
            out.append(self.last[node])
            node = self.parent[node]
        return tuple(reversed(out))


def _prefix_beam_one(
    steps: list[Step], beam_size: int, blank: int, fusion: LmFusion | None = None
) -> list[tuple[tuple[int, ...], float, float | None]]:
    """Prefix beam search over one utterance's steps; returns ``(prefix, CTC log-prob, LM log-prob or None)``,
    best first.

    Each frame first carries every beam prefix over (blank, or its last label again), then extends them. The
    carried prefixes' scores only grow as the frame goes on, so the ``beam_size``-th best of them is a floor the
    new beam will clear. A new prefix's fused score is its one extension's mass plus the parent's ranking offset,
    ``lm_bonus`` and ``lm_weight`` times the LM's score of the token; one below the floor is skipped before its
    trie node is made (first against the LM's best case, probability 1, which needs no lookup). That prunes
    nothing the full search would keep."""
    trie = _PrefixTrie(fusion)
    parent, last, offset = trie.parent, trie.last, trie.offset
    growth, lm_score, weight = (0.0, None, 0.0) if fusion is None else (fusion.bonus, fusion.lm.score, fusion.weight)
    # node -> [log P(prefix, path ends in blank), log P(prefix, path ends in its last label)]
    beam: dict[int, list[float]] = {0: [0.0, NEG_INF]}
    for step in steps:
        if isinstance(step, float):  # skipped blank frames: all mass moves to the blank-ended part
            beam = {node: [log_add(*probs) + step, NEG_INF] for node, probs in beam.items()}
            continue
        blank_logp, labels = step
        grown: dict[int, list[float]] = {}
        for node, (p_blank, p_label) in beam.items():
            again = labels.get(last[node])  # the last label again without a blank: the same prefix
            grown[node] = [log_add(p_blank, p_label) + blank_logp, NEG_INF if again is None else p_label + again]
        floor = NEG_INF
        # Tokens that extend a beam prefix into another beam prefix: that one takes the mass whatever its rank.
        in_beam: dict[int, set[int]] = {}
        if len(grown) >= beam_size:
            carried = (log_add(*probs) + offset[node] for node, probs in grown.items())
            floor = heapq.nlargest(beam_size, carried)[-1] - 1e-9  # margin: offsets are rounded differently
            for node in beam:
                if node:
                    in_beam.setdefault(parent[node], set()).add(last[node])
        for node, (p_blank, p_label) in beam.items():
            total = log_add(p_blank, p_label)
            reach, kept, context = offset[node] + growth, in_beam.get(node, ()), trie.context[node]
            for token, logp in labels.items():
                # A repeat is a new label only after a blank; otherwise it extended the last label's run above.
                mass = (p_blank if token == last[node] else total) + logp
                if floor > NEG_INF and token not in kept:
                    best = mass + reach  # the child's fused score if the LM gave the token probability 1
                    if best < floor or (lm_score is not None and best + weight * lm_score(context, token) < floor):
                        continue
                entry = grown.setdefault(trie.child(node, token), [NEG_INF, NEG_INF])
                entry[1] = log_add(entry[1], mass)
        scored = [(log_add(*probs), node, probs) for node, probs in grown.items()]
        # heapq.nlargest is sorted(..., reverse=True)[:n], ties kept in insertion order, without sorting it all.
        ranked = heapq.nlargest(beam_size, scored, key=lambda item: item[0] + offset[item[1]])
        # A repeat right after its own label has no blank-ended mass yet: such prefixes can stay impossible.
        beam = {node: probs for total, node, probs in ranked if total > NEG_INF}
    if fusion is None:
        return [(trie.tokens(node), log_add(*probs), None) for node, probs in beam.items()]
    lm = fusion.lm
    finished = [  # the LM also scores the end of the sentence
        (trie.tokens(node), log_add(*probs), trie.lm_logp[node] + lm.score(trie.context[node], lm.eos))
        for node, probs in beam.items()
    ]
    return sorted(finished, key=lambda item: fusion.ranked_score(item[1], item[2], len(item[0])), reverse=True)


def ctc_prefix_beam_search(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beam_size: int,
    token_topk: int | None = None,
    blank: int = 0,
    blank_skip: float | None = None,
    fusion: LmFusion | None = None,
) -> list[list[Hypothesis]]:
    """The ``beam_size`` best label sequences per utterance, best first; ``ctc_score`` = log of their probability
    summed over all alignments (exact when the beam is wide enough to keep every prefix and ``blank_skip`` is
    None). ``score`` is the same, or with ``fusion`` the fused score the hypotheses are ranked by (``lm_score``:
    the LM's log-probability of the tokens and the sentence end)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if blank_skip is not None and not 0.0 < blank_skip <= 1.0:
        raise ValueError(f"blank_skip must be a probability in (0, 1] or None, got {blank_skip}")
    results = []
    for steps in _frame_candidates(log_probs, lengths, token_topk, blank, blank_skip):
        hypotheses = []
        for prefix, acoustic, lm_score in _prefix_beam_one(steps, beam_size, blank, fusion):
            score = acoustic
            if fusion is not None and lm_score is not None:
                score = fusion.ranked_score(acoustic, lm_score, len(prefix))
            hypotheses.append(
                Hypothesis(tokens=list(prefix), score=score, ctc_score=acoustic, finish="frames", lm_score=lm_score)
            )
        results.append(hypotheses)
    return results

"""CTC prefix scores for label-synchronous (decoder-step) beam search: joint CTC/attention decoding.

At each decoder step every hypothesis ``g`` proposes candidate tokens ``c``; the CTC prefix score of ``h = g + c``
is ``log P_ctc(h ...)``, the probability that the CTC output *starts* with ``h`` (Watanabe et al. 2017, "Hybrid
CTC/attention architecture", Algorithm 2; ESPnet's ``CTCPrefixScore``). For ``<|eot|>`` it is the probability
that the output *is* ``g``. Joint search ranks by ``lambda * ctc_prefix + (1 - lambda) * attention``.

Forward variables per hypothesis, over frames ``t``: ``r_n[t]`` / ``r_b[t]`` = log-probability that frames
``0..t`` spell ``g`` ending in its last label / in blank. With ``phi[t] = r_b[t] (+) r_n[t]`` (``r_n`` left out
when ``c`` repeats ``g``'s last label, which needs a blank in between) the recursion

    r_n(h)[t] = (r_n(h)[t-1] (+) phi[t-1]) + x_t(c)        r_b(h)[t] = (r_b(h)[t-1] (+) r_n(h)[t-1]) + x_t(blank)

is linear in the probability domain, so it is computed for all frames at once with cumulative sums and
``torch.logcumsumexp`` (float64) instead of a Python loop over frames; everything is vectorised over
hypotheses x candidates. Padded frames get ``log p(blank) = 0`` and a huge negative score for every label, so
utterances of different lengths share one tensor and ``r_b`` at the last frame holds the full probability.

Decoder tokens the CTC head never emits (timestamps) are *transparent*: they keep the CTC state and score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD_LOGP = -1.0e10  # "impossible" on padded frames: finite so that cumulative sums stay free of inf - inf
FLOOR_LOGP = -1.0e4  # real log-probs are floored here for the same reason (exp(-1e4) is 0 in any float)
IMPOSSIBLE = PAD_LOGP / 2  # below this a score went through a padded frame (real ones stay above -1e4 per frame)


@dataclass
class CTCState:
    """Prefix state of ``N`` hypotheses: forward variables ``(T, 2, N)`` (0: label, 1: blank), the prefix
    score ``(N,)``, the last CTC label (``-1`` for none) and which utterance each hypothesis belongs to."""

    r: torch.Tensor
    score: torch.Tensor
    last: torch.Tensor
    utt: torch.Tensor


class CTCPrefixScorer:
    """CTC prefix scores of candidate extensions for a batch of utterances (see the module docstring)."""

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, eot_id: int, blank: int = 0) -> None:
        """``log_probs``: ``(B, T, V_ctc)`` CTC log-softmax; ids ``>= V_ctc`` other than ``eot_id`` are transparent."""
        batch, frames, vocab = log_probs.shape
        x = log_probs.detach().double().clamp_min(FLOOR_LOGP)
        padded = torch.arange(frames, device=x.device)[None, :] >= lengths.to(x.device)[:, None]  # (B, T)
        x = x.masked_fill(padded[..., None], PAD_LOGP)
        x[..., blank] = x[..., blank].masked_fill(padded, 0.0)
        self.x = x.transpose(0, 1).contiguous()  # (T, B, V_ctc)
        self.ctc_vocab = vocab
        self.eot_id = eot_id
        self.blank = blank
        # Pre-beam proxy: how plausible each label is anywhere in the utterance.
        self.best_frame_logp = log_probs.detach().float().masked_fill(padded[..., None], -torch.inf).amax(dim=1)

    def initial_state(self, utt: torch.Tensor) -> CTCState:
        """The empty prefix for utterances ``utt`` ``(N,)``: all frames blank so far."""
        blank_cum = self.x[:, utt, self.blank].cumsum(dim=0)  # (T, N)
        r = torch.stack((torch.full_like(blank_cum, -torch.inf), blank_cum), dim=1)
        zeros = torch.zeros(len(utt), dtype=torch.float64, device=self.x.device)
        return CTCState(r=r, score=zeros, last=torch.full_like(utt, -1), utt=utt)

    def proxy(self, utt: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """``(N, vocab_size)`` cheap per-token plausibility used to pick candidates before exact scoring: the
        best frame log-prob of each label; 0 for ``<|eot|>`` and transparent tokens."""
        out = torch.zeros(len(utt), vocab_size, device=self.best_frame_logp.device)
        out[:, : self.ctc_vocab] = self.best_frame_logp[utt]
        out[:, self.blank] = -torch.inf  # the decoder never emits the blank
        return out

    def score(self, state: CTCState, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix scores ``(N, C)`` of ``candidates`` ``(N, C)`` and their forward variables ``(T, 2, N, C)``."""
        labels = candidates.clamp(max=self.ctc_vocab - 1)
        x_c = self.x[:, state.utt[:, None], labels]  # (T, N, C)
        x_blank = self.x[:, state.utt, self.blank][..., None]  # (T, N, 1)
        r_label, r_blank = state.r[:, 0, :, None], state.r[:, 1, :, None]  # (T, N, 1)
        repeat = (candidates == state.last[:, None])[None]  # (1, N, C)
        phi = torch.logaddexp(r_blank, r_label.masked_fill(repeat, -torch.inf))  # (T, N, C)
        empty = state.last < 0  # no CTC label yet (transparent tokens keep it so)
        start = torch.where(empty, 0.0, -torch.inf).to(x_c)[None, :, None].expand(1, *x_c.shape[1:])
        # Entry terms: h's last label starts at frame 0 (only from the empty prefix) or at t >= 1 after phi[t-1].
        entry = torch.cat((start, phi[:-1]), dim=0)  # (T, N, C), in units "before x_t(c)"
        cum_label = x_c.cumsum(dim=0)
        r_n = cum_label + torch.logcumsumexp(entry - _shifted(cum_label), dim=0)
        cum_blank = x_blank.cumsum(dim=0)
        r_b = cum_blank + _shifted_logcumsumexp(r_n - cum_blank)
        prefix = torch.logsumexp(entry + x_c, dim=0)  # (N, C)
        forward = torch.stack((r_n, r_b), dim=1)
        # <|eot|>: the output is exactly g. Transparent tokens: g's state and score unchanged.
        final = torch.logaddexp(state.r[-1, 0], state.r[-1, 1])[:, None].expand_as(prefix)
        is_eot = candidates == self.eot_id
        transparent = (candidates >= self.ctc_vocab) & ~is_eot
        prefix = torch.where(is_eot, final, prefix)
        prefix = torch.where(transparent, state.score[:, None].expand_as(prefix), prefix)
        forward = torch.where(transparent[None, None], state.r[:, :, :, None], forward)
        prefix = prefix.masked_fill(prefix < IMPOSSIBLE, -torch.inf)  # it needed a padded frame: cannot happen
        return prefix, forward

    def select(
        self,
        state: CTCState,
        forward: torch.Tensor,
        prefix: torch.Tensor,
        rows: torch.Tensor,
        columns: torch.Tensor,
        tokens: torch.Tensor,
    ) -> CTCState:
        """The state of the chosen extensions: parent hypothesis ``rows``, candidate ``columns``, token ids."""
        transparent = tokens >= self.ctc_vocab
        return CTCState(
            r=forward[:, :, rows, columns],
            score=prefix[rows, columns],
            last=torch.where(transparent, state.last[rows], tokens),
            utt=state.utt[rows],
        )


def _shifted(values: torch.Tensor) -> torch.Tensor:
    """``values[t - 1]`` along dim 0, with 0 at ``t = 0`` (a cumulative sum before frame ``t``)."""
    return torch.cat((torch.zeros_like(values[:1]), values[:-1]), dim=0)


def _shifted_logcumsumexp(values: torch.Tensor) -> torch.Tensor:
    """``logsumexp(values[:t])`` along dim 0 (``-inf`` at ``t = 0``)."""
    out = torch.logcumsumexp(values, dim=0)
    return torch.cat((torch.full_like(out[:1], -torch.inf), out[:-1]), dim=0)

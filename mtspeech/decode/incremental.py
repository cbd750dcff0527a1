"""A decoder step function with a key/value cache, for beam search over
:class:`~mtspeech.model.decoder.TransformerDecoder`.

The plain step function re-runs the whole prefix at every step, projects the encoder memory to keys and values
in every layer again, and computes output logits for every position although only the last is used. This one
computes the memory's cross-attention keys/values once, keeps every layer's self-attention keys/values, and
runs only the newest token through the layers: per step O(layers * d_model * (d_model + T)) instead of
O(layers * d_model * U * (d_model + T) + U * d_model * vocab) (bench/decode.py measures the difference).

It reuses the decoder's own modules and repeats :meth:`TransformerDecoder.forward` in eval mode (no dropout);
``tests/test_decode_beam.py`` checks that both give the same log-probs. The cache is only trusted when the
tokens it is asked about extend the cached ones (after :meth:`select` picked the surviving beams); anything
else starts over from the full prefix, so a misuse costs time, never correctness. Left-padded prefixes (prompts
of different lengths in one batch, as greedy decoding batches them) pass ``token_valid`` on the first call; the
padded keys stay masked for every later step.

The memory's keys/values stay one per memory row as the first call gave them (one per utterance in a beam search):
each hypothesis row only records which memory row it reads. Why: re-indexing them for the surviving beams copied
every layer's keys and values at every step, a cost that grows with the audio's length; a beam of one utterance
now reads them as a view (``expand``), and only hypotheses of several utterances gather them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mtspeech.model.attention import causal_mask, ensure_attendable
from mtspeech.model.decoder import TransformerDecoder


class CachedDecoderStep:
    """``step(tokens, memory, memory_valid[, token_valid]) -> (N, V)`` log-probs of the next token, with a KV
    cache; call :meth:`select` with the parent row of each surviving hypothesis after every step (beam_search
    does). ``token_valid`` ``(N, U)`` marks left padding of the first prefix (later tokens are all valid)."""

    def __init__(self, decoder: TransformerDecoder) -> None:
        self.decoder = decoder
        self.tokens: torch.Tensor | None = None  # (N, U) tokens whose keys/values are cached
        self.self_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.cross_kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # per memory row, (M, heads, T, head_dim)
        self.memory_mask: torch.Tensor | None = None  # per memory row, (M, 1, 1, T)
        self.memory_rows: torch.Tensor | None = None  # (N,) the memory row each cached hypothesis reads
        self.rows_in_order = True  # memory_rows is 0, 1, .. (no gather needed)
        self.key_valid: torch.Tensor | None = None  # (N, U) cached keys that are not left padding; None: all

    def __call__(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        memory_valid: torch.Tensor,
        token_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cached = self.tokens
        extends = (
            cached is not None
            and tokens.size(0) == cached.size(0)
            and tokens.size(1) == cached.size(1) + 1
            and torch.equal(tokens[:, :-1], cached)
        )
        if not extends:
            self._fill_cross(memory, memory_valid)
            self.self_kv = []
            self.key_valid = token_valid
            hidden = self._run(tokens, start=0)
        else:
            if self.key_valid is not None:
                self.key_valid = torch.cat([self.key_valid, torch.ones_like(self.key_valid[:, :1])], dim=1)
            hidden = self._run(tokens[:, -1:], start=cached.size(1))
        self.tokens = tokens
        last = self.decoder.final_norm(hidden[:, -1])
        return self.decoder.output(last).float().log_softmax(dim=-1)

    def select(self, rows: torch.Tensor) -> None:
        """Keep the cache rows of the hypotheses that go on (``rows``: parent row of each, in the new order)."""
        if self.tokens is None:
            return
        self.tokens = self.tokens[rows]
        self.self_kv = [(k[rows], v[rows]) for k, v in self.self_kv]
        assert self.memory_rows is not None and self.memory_mask is not None
        self.memory_rows = self.memory_rows[rows]
        in_order = torch.arange(self.memory_mask.size(0), device=rows.device)
        self.rows_in_order = self.memory_rows.numel() == in_order.numel() and torch.equal(self.memory_rows, in_order)
        if self.key_valid is not None:
            self.key_valid = self.key_valid[rows]

    def _fill_cross(self, memory: torch.Tensor, memory_valid: torch.Tensor) -> None:
        self.cross_kv = []
        for layer in self.decoder.layers:
            attn = layer.cross_attn
            self.cross_kv.append(attn.project_kv(memory))
        self.memory_mask = memory_valid[:, None, None, :]
        self.memory_rows = torch.arange(memory.size(0), device=memory.device)
        self.rows_in_order = True

    def _per_row(self, per_memory: torch.Tensor) -> torch.Tensor:
        """``per_memory`` (one entry per memory row) for each cached hypothesis: a view where they all read one."""
        rows = self.memory_rows
        assert rows is not None
        if self.rows_in_order:
            return per_memory
        if per_memory.size(0) == 1:
            return per_memory.expand(rows.numel(), *per_memory.shape[1:])
        return per_memory[rows]

    def _run(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Hidden states of ``tokens`` at positions ``start ..``, extending (or creating) the self-attention cache."""
        decoder = self.decoder
        x = decoder.embed(tokens)
        mask = causal_mask(tokens.size(1), tokens.device)[None, None] if start == 0 else None
        if self.key_valid is not None:  # as TransformerDecoder.forward masks left padding
            keys = self.key_valid[:, None, None, :]
            mask = ensure_attendable(mask & keys) if mask is not None else keys
        assert self.memory_mask is not None
        memory_mask = self._per_row(self.memory_mask)
        new_cache = []
        for index, layer in enumerate(decoder.layers):
            attn = layer.self_attn
            h = layer.self_norm(x)
            q, k, v = attn.project_qkv(h)
            if attn.rotary is not None:
                q, k = attn.rotary(q, offset=start), attn.rotary(k, offset=start)
            if start > 0:
                past_k, past_v = self.self_kv[index]
                k, v = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)
            new_cache.append((k, v))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + attn.out(context.transpose(1, 2).flatten(2))
            cross = layer.cross_attn
            q = cross.project_q(layer.cross_norm(x))
            memory_k, memory_v = (self._per_row(t) for t in self.cross_kv[index])
            context = F.scaled_dot_product_attention(q, memory_k, memory_v, attn_mask=memory_mask)
            x = x + cross.out(context.transpose(1, 2).flatten(2))
            x = x + layer.ff(x)
        self.self_kv = new_cache
        return x

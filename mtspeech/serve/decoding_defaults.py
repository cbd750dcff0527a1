"""The service's decoding defaults: how ``asr`` decodes unless the command line says otherwise."""

from __future__ import annotations

from typing import Any

import torch

from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.options import DecodingOptions
from mtspeech.errors import UserError


def default_decoding(model: torch.nn.Module, lm: TokenNgramLM | None = None) -> DecodingOptions:
    """The service's default: CTC prefix beam search with CTC-aligned word times when the model has a CTC head
    (its cost is small beside the encoder's, so every other answer stays nearly free), else the attention decoder.
    ``attention_rescoring`` (WeNet's default) is one ``--decode-mode`` away when accuracy matters more. A model
    file with an n-gram LM (``mtspeech lm``) fuses it into the CTC search at the weight tuned for it."""
    if "asr_ctc" in model.tasks:
        fusion = lm.tuned_fusion() if lm is not None else {}
        return DecodingOptions(mode="ctc_prefix_beam", beam_size=4, word_timestamps=True, **fusion)
    return DecodingOptions(mode="attention_beam", beam_size=4)


def decoding_options(
    model: torch.nn.Module,
    mode: str | None = None,
    beam_size: int | None = None,
    max_tokens: int | None = None,
    lm: TokenNgramLM | None = None,
    lm_weight: float | None = None,
) -> DecodingOptions:
    """:func:`default_decoding` with the command-line overrides applied (None keeps the default); ``lm_weight``
    replaces the LM's tuned weight (0: no LM) and needs a model file with an LM when above 0."""
    options = default_decoding(model, lm)
    changes: dict[str, Any] = {}
    if lm_weight is not None:
        if lm_weight > 0 and lm is None:
            raise UserError("--lm-weight needs a model file with an n-gram LM (add one: mtspeech lm -m M -d DATA)")
        changes["lm_weight"] = lm_weight
    if mode is not None:
        changes["mode"] = mode
        if mode not in ("ctc_prefix_beam", "attention_rescoring") and lm_weight is None:
            changes.update(lm_weight=0.0, lm_bonus=0.0)  # only the CTC prefix search fuses the tuned LM
    if beam_size is not None:
        changes.update(beam_size=beam_size, nbest=beam_size)
    if max_tokens is not None:
        changes["max_tokens"] = max_tokens
    return DecodingOptions.from_dict({**options.__dict__, **changes})

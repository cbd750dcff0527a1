"""Give a packaged model an n-gram LM: estimate it on a split's transcripts, tune its fusion weight and length
bonus on another split (CER of the model's own decoding), and write the model file with the LM inside.

The encoder runs once per tuning utterance; every grid point only repeats the search on the stored encoder
output, so a grid of a dozen points costs a dozen CTC searches, not a dozen encoder passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtspeech.data.features import load_waveform, pad_waveforms
from mtspeech.data.targets import utterance_view
from mtspeech.decode.decoding import ModelDecoder, eval_mode
from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.options import DecodingOptions
from mtspeech.errors import UserError
from mtspeech.evaluate.text import normalise_text
from mtspeech.model.package import LoadedModel, save_model
from mtspeech.tasks.metrics import text_scores


@dataclass
class TuningPoint:
    weight: float
    bonus: float
    cer: float
    wer: float


def transcripts(cuts: Any) -> list[str]:
    """Every non-empty transcript of ``cuts`` (a cut with several supervisions gives them joined)."""
    texts = []
    for cut in cuts:
        text = utterance_view(cut).transcript
        if text and text.strip():
            texts.append(text)
    return texts


def fit_lm(texts: Sequence[str], tokenizer: Any, order: int) -> TokenNgramLM:
    """The token n-gram LM of ``texts`` in the tokenizer's text pieces."""
    sentences = [ids for ids in (tokenizer.encode(t) for t in texts) if ids]
    return TokenNgramLM.fit(sentences, vocab_size=tokenizer.sp_size, order=order)


def _encode(loaded: LoadedModel, cuts: Sequence[Any], batch_duration: float) -> list[tuple[Any, ...]]:
    """``(enc, enc_lens, normalised references)`` per batch of ``cuts`` (longest first)."""
    from mtspeech.evaluate.predict import make_batches

    model = loaded.model
    encoded = []
    with eval_mode(model), torch.no_grad():
        for batch in make_batches(cuts, batch_duration):
            padded, lengths = pad_waveforms([load_waveform(cut) for cut in batch])
            features, feature_lens = model.features_from_audio(padded, lengths)
            enc, enc_lens = model.encode(features, feature_lens)
            references = [normalise_text(utterance_view(cut).transcript) for cut in batch]
            encoded.append((enc, enc_lens, references))
    return encoded


def tune_fusion(
    loaded: LoadedModel,
    lm: TokenNgramLM,
    cuts: Sequence[Any],
    base: DecodingOptions,
    weights: Sequence[float],
    bonuses: Sequence[float],
    batch_duration: float = 60.0,
    progress: Callable[[TuningPoint], None] | None = None,
) -> list[TuningPoint]:
    """CER and WER of ``base`` decoding on ``cuts`` (with transcripts) at every (weight, bonus); weight 0 is the
    search without the LM (its bonus is then meaningless, so it is measured once)."""
    labelled = [cut for cut in cuts if (utterance_view(cut).transcript or "").strip()]
    if not labelled:
        raise UserError("no transcribed utterances to tune the LM weight on")
    decoder = ModelDecoder(loaded.model, loaded.tokenizer, loaded.vocabs, lm)
    encoded = _encode(loaded, labelled, batch_duration)
    grid = [(0.0, 0.0)] + [(w, b) for w in weights if w > 0 for b in bonuses]
    points = []
    for weight, bonus in grid:
        options = base.replace(lm_weight=weight, lm_bonus=bonus if weight > 0 else 0.0)
        hypotheses, references = [], []
        with eval_mode(loaded.model), torch.no_grad():
            for enc, enc_lens, refs in encoded:
                hypotheses += [normalise_text(r.text) for r in decoder.decode_encoded(enc, enc_lens, options)]
                references += refs
        scores = text_scores(hypotheses, references)
        point = TuningPoint(weight, bonus, round(100 * scores["cer"], 2), round(100 * scores["wer"], 2))
        points.append(point)
        if progress is not None:
            progress(point)
    return points


def best_point(points: Sequence[TuningPoint]) -> TuningPoint:
    """Lowest CER; ties go to the smaller weight (less LM, less risk on other text)."""
    return min(points, key=lambda p: (p.cer, p.weight, abs(p.bonus)))


def write_with_lm(loaded: LoadedModel, lm: TokenNgramLM, out: Path) -> Path:
    """The model file of ``loaded`` with ``lm`` inside, written atomically to ``out``."""
    metadata = dict(loaded.metadata)
    metadata["lm"] = {k: v for k, v in lm.metadata.items() if isinstance(v, int | float | str | list | dict)}
    metadata["lm"]["written"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return save_model(out, loaded.model, loaded.tokenizer, loaded.vocabs, metadata, lm=lm)

"""Decoding benchmark: real-time factor of every decoding mode on CPU, relative to CTC greedy in the same run.

    python bench/decode.py                                   # "small" model, random init, noise input
    python bench/decode.py --model model.mtspeech --cuts DIR/cuts_test.jsonl.gz --utterances 20

Figures, one key per mode (ctc_greedy, ctc_prefix_beam, attention_beam, attention_rescoring, joint_ctc_attention):
  * ``rtf``: decoding seconds / audio seconds, the encoder pass included (lower is faster; < 1 is faster than
    real time); ``search_rtf``: the same without the encoder pass (the search alone);
  * ``relative_to_ctc_greedy``: the mode's seconds / CTC greedy's seconds in this run;
  * ``tokens_per_utterance`` and ``finish`` counts (eot / length / frames): how long the answers were.
With ``--model`` of a file that carries an n-gram LM (``mtspeech lm``), ``ctc_prefix_beam+lm`` and
``attention_rescoring+lm`` time the same searches with the LM fused at its tuned weight and bonus.
``kv_cache``: attention beam search with the plain step function (whole prefix re-run every step) against the
cached one (:mod:`mtspeech.decode.incremental`), same answers required.

A randomly initialised decoder never says ``<|eot|>``: every attention mode then runs to the max-length guard,
so ``--max-length-ratio`` defaults to 0.2 tokens per 40 ms frame (5 tokens/s, a typical subword rate of speech)
without ``--model``, to time answers of realistic length. Torch runs on ``--threads`` threads (default 1: figures
stay comparable on a shared machine). Writes bench/results/decode.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``mtspeech`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import write_results  # noqa: E402

SAMPLE_RATE = 16000


def random_small_model() -> tuple[Any, Any]:
    """The "small" preset (Conformer encoder + CTC + decoder), random weights, a tokenizer trained on the SLURP text
    shipped with mtspeech (1000 text pieces)."""
    from mtspeech.data.synth.text_slurp import load_slurp_sentences
    from mtspeech.data.tokenizer import train_tokenizer
    from mtspeech.model.config import ModelConfig
    from mtspeech.model.model import MultiTaskModel

    sentences = load_slurp_sentences().sentences
    tokenizer = train_tokenizer([s.text for s in sentences], vocab_size=1000, languages=["en"])
    config = ModelConfig.from_dict(
        {
            "encoder": {"preset": "small"},
            "tasks": {
                "asr_ctc": {"vocab_size": tokenizer.vocab_size},
                "decoder": {"vocab_size": tokenizer.vocab_size, "sot_id": tokenizer.sot_id, "eot_id": tokenizer.eot_id},
            },
        }
    )
    torch.manual_seed(0)
    return MultiTaskModel(config).eval(), tokenizer


def load_audio(args: argparse.Namespace) -> list[torch.Tensor]:
    """``--utterances`` waveforms: from ``--cuts`` (a Lhotse manifest) or noise of ``--seconds`` each."""
    if args.cuts:
        from lhotse import CutSet

        from mtspeech.data.features import load_waveform

        cuts = CutSet.from_file(args.cuts)
        return [torch.from_numpy(load_waveform(cut)).float() for cut in list(cuts)[: args.utterances]]
    g = torch.Generator().manual_seed(0)
    samples = int(args.seconds * SAMPLE_RATE)
    return [0.1 * torch.randn(samples, generator=g) for _ in range(args.utterances)]


def batches(decoder: Any, waves: list[torch.Tensor], size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Log-mel batches (features are computed once, outside the timed region)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(waves), size):
            group = waves[i : i + size]
            padded = torch.nn.utils.rnn.pad_sequence(group, batch_first=True)
            lengths = torch.tensor([w.numel() for w in group])
            out.append(decoder.model.features_from_audio(padded, lengths))
    return out


def timed_round_robin(jobs: dict[str, Any], repeats: int) -> dict[str, tuple[float, Any]]:
    """Fastest wall-clock seconds of each job over ``repeats`` rounds (one warm-up round first) and its result.

    Rounds run every job once in turn, so a load change on a shared machine hits all jobs alike instead of
    skewing the ones that happened to run during it; the fastest run is the least disturbed one (as timeit)."""
    results = {name: job() for name, job in jobs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            results[name] = job()
            seconds[name].append(time.perf_counter() - start)
    return {name: (min(seconds[name]), results[name]) for name in jobs}


def kv_cache_figures(decoder: Any, feature_batches: list, options: Any, repeats: int) -> dict[str, Any]:
    from mtspeech.decode.beam import beam_search
    from mtspeech.decode.grammar import AnswerGrammar
    from mtspeech.decode.incremental import CachedDecoderStep

    grammar = AnswerGrammar(decoder.layout, "transcribe")
    encoded = []
    with torch.no_grad():
        for features, lens in feature_batches:
            enc, enc_lens = decoder.model.encode(features, lens)
            valid = torch.arange(enc.size(1))[None, :] < enc_lens[:, None]
            encoded.append((enc, valid, [decoder.tokenizer.prompt("transcribe", "en")] * enc.size(0)))

    def run(cached: bool) -> list:
        found = []
        with torch.no_grad():
            for enc, valid, prompts in encoded:
                step = CachedDecoderStep(decoder.model.tasks["decoder"].head) if cached else decoder.step
                found += [f[0].tokens for f in beam_search(step, enc, valid, prompts, grammar, options)]
        return found

    timings = timed_round_robin({"plain": lambda: run(False), "cached": lambda: run(True)}, repeats)
    (plain_seconds, plain), (cached_seconds, cached) = timings["plain"], timings["cached"]
    return {
        "uncached_seconds": round(plain_seconds, 4),
        "cached_seconds": round(cached_seconds, 4),
        "speedup": round(plain_seconds / cached_seconds, 2),
        "same_answers": plain == cached,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a packaged model file (default: small preset, random init)")
    parser.add_argument("--cuts", type=Path, help="Lhotse cut manifest to take audio from (default: noise)")
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each noise utterance")
    parser.add_argument("--batch", type=int, default=1, help="utterances per decode call")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--ctc-weight", type=float, default=0.3)
    parser.add_argument("--max-length-ratio", type=float, default=None)
    parser.add_argument("--language", default="en")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (the fastest per mode is reported)")
    parser.add_argument("--results-name", default="decode", help="writes bench/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mtspeech.decode import MODES, DecodingOptions, ModelDecoder

    if args.model:
        from mtspeech.model.package import load_model

        decoder = ModelDecoder.from_loaded(load_model(args.model))
        ratio = args.max_length_ratio or DecodingOptions().max_length_ratio
    else:
        model, tokenizer = random_small_model()
        decoder = ModelDecoder(model, tokenizer)
        ratio = args.max_length_ratio or 0.2
    waves = load_audio(args)
    audio_seconds = sum(w.numel() for w in waves) / SAMPLE_RATE
    feature_batches = batches(decoder, waves, args.batch)

    def encode_all() -> None:
        with torch.no_grad():
            for features, lens in feature_batches:
                decoder.model.encode(features, lens)

    # A model file with an n-gram LM (mtspeech lm) also times the two modes that fuse it, at its tuned values.
    lm = decoder.lm.metadata if decoder.lm is not None else None
    fused = {f"{mode}+lm": mode for mode in ("ctc_prefix_beam", "attention_rescoring")} if lm else {}
    modes = [*MODES, *fused]

    def decode_all(name: str) -> list:
        mode = fused.get(name, name)
        lm_values = {"lm_weight": lm["weight"], "lm_bonus": lm["bonus"]} if name in fused and lm else {}
        options = DecodingOptions(
            mode=mode,
            language=args.language,
            beam_size=args.beam,
            ctc_weight=args.ctc_weight,
            max_length_ratio=ratio,
            **lm_values,
        )
        return [r for features, lens in feature_batches for r in decoder.decode(features, lens, options)]

    jobs = {"encoder": encode_all, **{mode: (lambda mode=mode: decode_all(mode)) for mode in modes}}
    timings = timed_round_robin(jobs, args.repeats)
    encoder_seconds = timings["encoder"][0]
    figures: dict[str, Any] = {}
    for mode in modes:
        seconds, results = timings[mode]
        figures[mode] = {
            "seconds": round(seconds, 4),
            "rtf": round(seconds / audio_seconds, 4),
            "search_rtf": round(max(seconds - encoder_seconds, 0.0) / audio_seconds, 4),
            "tokens_per_utterance": round(sum(len(r.tokens) for r in results) / len(results), 1),
            "finish": dict(Counter(r.finish for r in results)),
        }
    for mode in modes:
        figures[mode]["relative_to_ctc_greedy"] = round(figures[mode]["seconds"] / figures["ctc_greedy"]["seconds"], 2)
    kv_options = DecodingOptions(language=args.language, beam_size=args.beam, max_length_ratio=ratio)
    figures["kv_cache"] = kv_cache_figures(decoder, feature_batches, kv_options, args.repeats)
    figures["settings"] = {
        "model": str(args.model) if args.model else "small preset, random init",
        "audio": str(args.cuts) if args.cuts else f"noise, {args.seconds} s per utterance",
        "utterances": len(waves),
        "audio_seconds": round(audio_seconds, 2),
        "batch": args.batch,
        "beam_size": args.beam,
        "ctc_weight": args.ctc_weight,
        "max_length_ratio": ratio,
        "encoder_seconds": round(encoder_seconds, 4),
        "repeats": args.repeats,
    }
    if lm:
        figures["settings"]["lm"] = {"weight": lm["weight"], "bonus": lm["bonus"], "order": decoder.lm.order}
    path = write_results(args.results_name, figures, "python bench/decode.py " + " ".join(sys.argv[1:]))
    print(f"{'mode':<26}{'rtf':>8}{'search_rtf':>12}{'x greedy':>10}{'tokens':>8}")
    for mode in modes:
        row = figures[mode]
        print(
            f"{mode:<26}{row['rtf']:>8.3f}{row['search_rtf']:>12.3f}{row['relative_to_ctc_greedy']:>10.2f}"
            f"{row['tokens_per_utterance']:>8.1f}"
        )
    print(f"kv cache: {figures['kv_cache']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()

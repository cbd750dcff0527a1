"""Serving benchmark: what one encoder pass for every answer buys, on the CPU.

    python bench/serve.py                               # random "small" model, synthetic tiny corpus (made if absent)
    python bench/serve.py --model RUN/model.pt --corpus data/synth-small

Request audio: the corpus' test split (``mtspeech corpus synth --size tiny`` makes one in a minute). Figures:

* ``http``: p50/p95 latency and throughput of ``POST /v1/analyze`` against a real ``mtspeech serve`` (answer cache
  off) at 1, 4 and 16 concurrent clients, with dynamic batching (up to 16 per pass, ``--max-wait-ms 10``) and
  without (``--max-batch-size 1``);
* ``multitask_vs_asr_only``: every default task vs ASR alone on the same model (goal <= 1.2x);
* ``multitask_vs_single_models``: five tasks (asr, language, intent, emotion, vad) from one model vs five
  same-architecture single-task models, one request each (goal <= 0.35x of their summed latency);
* ``cascade``: the classic pipeline, ASR model -> text intent classifier -> text sentiment classifier (trained on
  the corpus text), against the multi-task answer of the same three questions; accuracies on the test split;
* ``int8``: dynamic int8 quantisation vs fp32: speed (goal >= 1.5x) and how much the answers change; encoder-only
  speedups by batch shape (``int8_encoder_by_batch``) and by preset, and whole requests of a random "base" model
  (``int8_request_base_preset``, the first 6 files).

In-process figures run torch on ``--threads`` threads (default 1, comparable on a shared machine); the server
runs with its own default. Writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench``, ``tests`` helpers and ``mtspeech`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import write_results  # noqa: E402
from bench.serve_models import cascade_classifiers, load, random_model, single_task_models  # noqa: E402

CLIENTS = (1, 4, 16)
FIVE_TASKS = ("asr", "language", "intent", "emotion", "vad")


def compare_ms(variants: dict[str, Callable[[np.ndarray], Any]], waves: Sequence[np.ndarray], repeats: int):
    """For each variant, the sum over the test files of its best time per file; the variants run interleaved
    (file by file, round by round) so a burst of load from elsewhere hits them alike."""
    totals = dict.fromkeys(variants, 0.0)
    for wave in waves:
        for fn in variants.values():
            fn(wave)  # warm-up
        best = {name: float("inf") for name in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                started = time.perf_counter()
                fn(wave)
                best[name] = min(best[name], (time.perf_counter() - started) * 1000)
        for name in variants:
            totals[name] += best[name]
    return {name: round(total, 2) for name, total in totals.items()}


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else float("nan")


# --- in-process comparisons -------------------------------------------------------------------------------
def multitask_vs_asr(analyzer: Any, waves: list[np.ndarray], repeats: int) -> dict[str, Any]:
    times = compare_ms(
        {
            "all": lambda w: analyzer.analyze([w], analyzer.default_tasks),
            "asr": lambda w: analyzer.analyze([w], ["asr"]),
        },
        waves,
        repeats,
    )
    everything, asr_only = times["all"], times["asr"]
    return {
        "tasks": list(analyzer.default_tasks),
        "all_tasks_ms": everything,
        "asr_only_ms": asr_only,
        "ratio": ratio(everything, asr_only),
        "goal": "<= 1.2",
    }


def multitask_vs_singles(analyzer: Any, singles: dict[str, Any], waves: list[np.ndarray], repeats: int) -> dict:
    tasks = [t for t in FIVE_TASKS if t in analyzer.tasks]
    variants = {"one": lambda w: analyzer.analyze([w], tasks)}
    variants |= {t: (lambda w, t=t: singles[t].analyze([w], [t])) for t in tasks}
    times = compare_ms(variants, waves, repeats)
    one = times.pop("one")
    per_model = times
    summed = round(sum(per_model.values()), 2)
    return {"tasks": tasks, "one_model_ms": one, "single_models_ms": per_model, "single_models_sum_ms": summed,
            "ratio": ratio(one, summed), "goal": "<= 0.35"}  # fmt: skip


def cascade(analyzer: Any, asr_model: Any, classifiers: dict[str, Any], cuts: list, waves: list, repeats: int) -> dict:
    def pipeline(wave: np.ndarray) -> tuple[str, str]:
        text = asr_model.analyze([wave], ["asr"])[0]["asr"]["text"]
        return classifiers["intent"].predict([text])[0], classifiers["sentiment"].predict([text])[0]

    tasks = [t for t in ("asr", "intent", "emotion") if t in analyzer.tasks]
    times = compare_ms({"cascade": pipeline, "multi": lambda w: analyzer.analyze([w], tasks)}, waves, repeats)
    cascade_ms, multi_ms = times["cascade"], times["multi"]
    figures: dict[str, Any] = {"cascade_ms": cascade_ms, "multitask_ms": multi_ms, "ratio": ratio(multi_ms, cascade_ms)}
    figures |= {k: classifiers[k] for k in ("train_seconds", "train_sentences")}
    references = [(cut.supervisions[0].custom or {}) for cut in cuts]
    intent_rows = [i for i, ref in enumerate(references) if ref.get("intent")]
    if intent_rows and "intent" in analyzer.tasks:
        # The cascade's ASR here is the given model's own (when trained: the fair comparison of the two designs).
        hyps = [analyzer.analyze([waves[i]], ["asr", "intent"])[0] for i in intent_rows]
        cascade_hyps = classifiers["intent"].predict([h["asr"]["text"] for h in hyps])
        gold = [references[i]["intent"] for i in intent_rows]
        figures["intent_accuracy"] = {
            "multitask_head": round(
                float(np.mean([h["intent"]["label"] == g for h, g in zip(hyps, gold, strict=True)])), 3
            ),
            "cascade_on_same_transcripts": round(
                float(np.mean([c == g for c, g in zip(cascade_hyps, gold, strict=True)])), 3
            ),
            "utterances": len(gold),
        }
    return figures


def int8_requests(fp32: Any, int8: Any, waves: list, repeats: int) -> tuple[dict[str, float], list, list]:
    """Every default task, one request per clip, fp32 against int8: the timings and both analyzers' answers."""
    tasks = fp32.default_tasks
    times = compare_ms(
        {"fp32": lambda w: fp32.analyze([w], tasks), "int8": lambda w: int8.analyze([w], tasks)}, waves, repeats
    )
    return times, [fp32.analyze([w], tasks)[0] for w in waves], [int8.analyze([w], tasks)[0] for w in waves]


def int8_vs_fp32(fp32: Any, int8: Any, cuts: list, waves: list, repeats: int) -> dict[str, Any]:
    import jiwer

    tasks = fp32.default_tasks
    times, a, b = int8_requests(fp32, int8, waves, repeats)
    fp32_ms, int8_ms = times["fp32"], times["int8"]
    batch = [torch.from_numpy(w) for w in waves[:4]]
    padded = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)
    lengths = torch.tensor([len(w) for w in batch])
    with torch.inference_mode():
        features = fp32.model.features_from_audio(padded, lengths)
        encoder = compare_ms(
            {"fp32": lambda _: fp32.model.encode(*features), "int8": lambda _: int8.model.encode(*features)},
            [waves[0]],
            3 * repeats,
        )
    # The same requests grouped four at a time, as dynamic batching does under concurrent load.
    groups = [waves[i : i + 4] for i in range(0, len(waves), 4)]
    batched = compare_ms(
        {"fp32": lambda g: fp32.analyze(list(g), tasks), "int8": lambda g: int8.analyze(list(g), tasks)},
        groups,
        repeats,
    )
    stages = {"fp32": stage_ms(a), "int8": stage_ms(b)}
    labels = [t for t in tasks if isinstance(a[0].get(t), dict) and "label" in a[0][t]]
    agreement = {
        t: round(float(np.mean([x[t]["label"] == y[t]["label"] for x, y in zip(a, b, strict=True)])), 3) for t in labels
    }
    figures: dict[str, Any] = {
        "fp32_ms": fp32_ms,
        "int8_ms": int8_ms,
        "speedup": ratio(fp32_ms, int8_ms),
        "encoder_ms_batch_of_4": encoder,
        "encoder_speedup": ratio(encoder["fp32"], encoder["int8"]),
        "requests_in_batches_of_4_ms": batched,
        "requests_in_batches_of_4_speedup": ratio(batched["fp32"], batched["int8"]),
        "stages_ms_one_run": stages,
        "goal": ">= 1.5",
        "label_agreement": agreement,
    }
    if "asr" in tasks:
        texts_a, texts_b = [x["asr"]["text"] or "-" for x in a], [y["asr"]["text"] or "-" for y in b]
        figures["transcript_wer_int8_vs_fp32"] = round(jiwer.wer(texts_a, texts_b), 4)
        refs = [" ".join(s.text for s in cut.supervisions if s.text) for cut in cuts]
        if all(refs):
            figures["wer_vs_reference"] = {
                "fp32": round(jiwer.wer(refs, texts_a), 4),
                "int8": round(jiwer.wer(refs, texts_b), 4),
            }
    return figures


def stage_ms(answers: list[dict[str, Any]]) -> dict[str, float]:
    """Where a request's time goes (front end, encoder, each task's head and decoding), summed over answers."""
    totals: dict[str, float] = {}
    for answer in answers:
        for stage, ms in answer.get("timings_ms", {}).items():
            totals[stage] = totals.get(stage, 0.0) + ms
    return {stage: round(ms, 1) for stage, ms in totals.items()}


def int8_encoder_by_batch(fp32: torch.nn.Module, int8: torch.nn.Module, repeats: int) -> dict[str, Any]:
    """Encoder-only int8 speedup of the served model for the batch shapes a busy service sees (random
    features): int8 matrix products gain more the more rows they get."""
    out = {}
    for batch, seconds in ((1, 3.0), (4, 4.0), (8, 6.0)):
        frames = int(seconds * 100)
        features, lengths = torch.randn(batch, frames, 80), torch.full((batch,), frames)
        with torch.inference_mode():
            times = compare_ms(
                {
                    "fp32": lambda _, f=features, n=lengths: fp32.encode(f, n),
                    "int8": lambda _, f=features, n=lengths: int8.encode(f, n),
                },
                [np.zeros(1)],
                repeats,
            )
        out[f"{batch}x{seconds:g}s"] = {**times, "speedup": ratio(times["fp32"], times["int8"])}
        print("int8 batch", batch, seconds, out[f"{batch}x{seconds:g}s"], flush=True)
    return out


def int8_encoder_by_preset(seconds: float, repeats: int) -> dict[str, Any]:
    """Encoder-only int8 speedup per preset (random weights, one ``seconds``-long input): the bigger the
    feed-forward layers, the larger the share of int8 Linear work beside the float subsampling convolutions."""
    from mtspeech.model.config import ModelConfig
    from mtspeech.model.model import MultiTaskModel
    from mtspeech.serve.quantize import quantize_model

    frames = int(seconds * 100)
    features, lengths = torch.randn(1, frames, 80), torch.tensor([frames])
    out = {}
    for preset in ("tiny", "small", "base"):
        config = ModelConfig.from_dict({"encoder": {"preset": preset}, "tasks": {"asr_ctc": {"vocab_size": 500}}})
        fp32 = MultiTaskModel(config).eval()
        int8 = quantize_model(fp32, "int8")
        with torch.inference_mode():
            times = compare_ms(
                {
                    "fp32": lambda _, m=fp32: m.encode(features, lengths),
                    "int8": lambda _, m=int8: m.encode(features, lengths),
                },
                [np.zeros(1)],
                repeats,
            )
        out[preset] = {**times, "speedup": ratio(times["fp32"], times["int8"])}
        print("int8", preset, out[preset], flush=True)
    return {"audio_seconds": seconds, **out}


def int8_request_base(cuts: Any, waves: list[np.ndarray], work: Path, repeats: int) -> dict[str, Any]:
    """Whole requests (front end, encoder, every task's answer) of a random "base"-preset model, fp32 vs int8: the
    size a CPU deployment would serve, where the int8 Linear layers carry most of the request's work."""
    from mtspeech.serve.inference import ModelAnalyzer, decoding_options

    path = random_model(cuts, work / "base", preset="base")
    loaded = load(path)
    decoding = decoding_options(loaded.model).replace(max_length_ratio=0.2)  # random decoder: see main()
    fp32 = ModelAnalyzer(loaded, decoding, name=path.name)
    int8 = ModelAnalyzer(load(path), decoding, name=path.name, quantize="int8")
    times, a, b = int8_requests(fp32, int8, waves, repeats)
    figures = {
        "utterances": len(waves),
        **times,
        "speedup": ratio(times["fp32"], times["int8"]),
        "stages_ms_one_run": {"fp32": stage_ms(a), "int8": stage_ms(b)},
        "goal": ">= 1.5",
    }
    print("int8 base request", figures, flush=True)
    return figures


# --- HTTP ----------------------------------------------------------------------------------------------------
async def _clients(url: str, bodies: list[bytes], clients: int, per_client: int) -> tuple[list[float], float]:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=600.0, limits=httpx.Limits(max_connections=clients)) as http:
        latencies: list[float] = []

        async def client(index: int) -> None:
            for k in range(per_client):
                body = bodies[(index * per_client + k) % len(bodies)]
                started = time.perf_counter()
                response = await http.post("/v1/analyze", content=body, headers={"content-type": "audio/wav"})
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return latencies, time.perf_counter() - started


def http_figures(model: Path, bodies: list[bytes], per_client: int, extra: list[str]) -> dict[str, Any]:
    """Both servers run side by side (an idle one costs nothing) and every client count is measured on one
    right after the other, so load from elsewhere on the machine hits both configurations alike."""
    import contextlib

    from tests.serve_server import running_server

    configs = {
        "batching": ["--max-batch-size", "16", "--max-wait-ms", "10"],
        "no_batching": ["--max-batch-size", "1", "--max-wait-ms", "0"],
    }
    figures: dict[str, Any] = {name: {} for name in configs}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                running_server(model, "--cache-size", "0", "--log-level", "warning", *options, *extra)
            )
            for name, options in configs.items()
        }
        for server in servers.values():
            asyncio.run(_clients(server.url, bodies[:2], 1, 2))  # warm-up
        for clients in CLIENTS:
            for name, server in servers.items():
                each = max(per_client, -(-24 // clients))  # at least 24 requests per level for stable percentiles
                latencies, seconds = asyncio.run(_clients(server.url, bodies, clients, each))
                figures[name][f"{clients}_clients"] = {
                    "requests": len(latencies),
                    "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                    "p95_ms": round(float(np.percentile(latencies, 95)), 1),
                    "throughput_rps": round(len(latencies) / seconds, 2),
                }
                print(name, clients, figures[name][f"{clients}_clients"], flush=True)
    return figures


# --- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model file (default: random 'small' model with every task)")
    parser.add_argument("--corpus", type=Path, help="corpus directory (default: synthesise a tiny one)")
    parser.add_argument("--utterances", type=int, default=12, help="test-split files used as request audio")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per file (the best one counts)")
    parser.add_argument("--per-client", type=int, default=6, help="sequential requests per HTTP client")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the in-process figures")
    parser.add_argument("--decode-mode", help="ASR decoding mode (default: the service's default)")
    parser.add_argument("--skip-http", action="store_true", help="only the in-process figures")
    parser.add_argument(
        "--results-name", default="serve", help="writes bench/results/NAME.json (e.g. serve-trained for --model)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lhotse import CutSet

    from mtspeech.data.corpus import manifest_path
    from mtspeech.data.features import load_waveform
    from mtspeech.serve.inference import ModelAnalyzer, decoding_options

    work = Path(tempfile.mkdtemp(prefix="mtspeech-bench-serve-"))
    corpus = args.corpus
    if corpus is None:
        from mtspeech.data.synth.build import synthesize

        corpus = synthesize(work / "corpus", size="tiny", show_progress=False)
    cuts = list(CutSet.from_file(manifest_path(corpus, "cuts", "test")))[: args.utterances]
    waves = [load_waveform(cut) for cut in cuts]
    model_path = args.model or random_model(CutSet.from_file(manifest_path(corpus, "cuts", "train")), work)
    trained = args.model is not None

    loaded = load(model_path)
    decoding = decoding_options(loaded.model, args.decode_mode, lm=loaded.lm)  # the service's default decoding
    if not trained:  # a random decoder never ends: bound answers at a speech-like 5 tokens/s (see bench/decode.py)
        decoding = decoding.replace(max_length_ratio=0.2)
    analyzer = ModelAnalyzer(loaded, decoding, name=model_path.name)
    int8 = ModelAnalyzer(load(model_path), decoding, name=model_path.name, quantize="int8")
    asr_tasks = [t for t in ("asr_ctc", "decoder") if t in loaded.model.tasks]
    if decoding.mode in ("ctc_greedy", "ctc_prefix_beam"):
        asr_tasks = ["asr_ctc"]
    singles = {}
    for task, path in single_task_models(loaded, work, asr_tasks).items():
        single = load(path)
        single.lm = loaded.lm if task == "asr" else None  # a separate ASR model would use the same LM
        singles[task] = ModelAnalyzer(single, decoding if task == "asr" else None, name=path.name)
    classifiers = cascade_classifiers(CutSet.from_file(manifest_path(corpus, "cuts", "train")), loaded.tokenizer)
    figures: dict[str, Any] = {
        "settings": {
            "model": str(model_path) if trained else "random 'small' preset, every task",
            "encoder": loaded.model.config.encoder.preset,
            "decoding": decoding.mode,
            "lm_weight": decoding.lm_weight,
            "corpus": str(corpus),
            "utterances": len(waves),
            "audio_seconds": round(sum(len(w) for w in waves) / 16000, 2),
            "repeats": args.repeats,
            "timing": "per file the best of --repeats runs, compared variants interleaved; summed over the files",
            "threads": args.threads,
        }
    }
    figures["multitask_vs_asr_only"] = multitask_vs_asr(analyzer, waves, args.repeats)
    print("multitask vs asr", figures["multitask_vs_asr_only"], flush=True)
    figures["multitask_vs_single_models"] = multitask_vs_singles(analyzer, singles, waves, args.repeats)
    print("multitask vs singles", figures["multitask_vs_single_models"], flush=True)
    figures["cascade"] = cascade(analyzer, singles["asr"], classifiers, cuts, waves, args.repeats)
    print("cascade", figures["cascade"], flush=True)
    figures["int8"] = int8_vs_fp32(analyzer, int8, cuts, waves, args.repeats)
    print("int8", figures["int8"], flush=True)
    figures["int8_encoder_by_batch"] = int8_encoder_by_batch(analyzer.model, int8.model, 3 * args.repeats)
    figures["int8_encoder_by_preset"] = int8_encoder_by_preset(5.0, 3 * args.repeats)
    train_cuts = CutSet.from_file(manifest_path(corpus, "cuts", "train"))
    figures["int8_request_base_preset"] = int8_request_base(train_cuts, waves[:6], work, args.repeats)
    if not args.skip_http:
        import soundfile as sf

        bodies = []
        for wave in waves:
            buffer = io.BytesIO()
            sf.write(buffer, wave, 16000, format="WAV")
            bodies.append(buffer.getvalue())
        extra = ["--decode-mode", decoding.mode] if args.decode_mode else []
        figures["http"] = http_figures(model_path, bodies, args.per_client, extra)
    command = "python bench/serve.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"wrote {write_results(args.results_name, figures, command.strip())}")


if __name__ == "__main__":
    main()

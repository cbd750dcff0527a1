"""Serving benchmark: what one encoder pass for every answer buys, on the CPU.

    python bench/serve.py                               # random "small" model, synthetic tiny corpus (made if absent)
    python bench/serve.py --model RUN/model.pt --corpus data/synth-small

Request audio: the corpus' test split (``mtspeech corpus synth --size tiny`` makes one in a minute). Figures:

* ``http``: p50/p95 latency and throughput of ``POST /v1/analyze`` against a real ``mtspeech serve`` (answer cache
  off) at 1, 4 and 16 concurrent clients, with dynamic batching (up to 16 per pass, ``--max-wait-ms 10``) and
  without (``--max-batch-size 1``);
* ``multitask_vs_asr_only``: every default task vs ASR alone on the same model (goal <= 1.2x; the median of
  ``--multitask-runs`` runs, every run's ratio in ``ratio_runs``), and every task with the pooled classifier heads
  run one by one instead of fused (``pooled_heads_unfused``);
* ``multitask_vs_single_models``: five tasks (asr, language, intent, emotion, vad) from one model vs five
  same-architecture single-task models, one request each (goal <= 0.35x of their summed latency);
* ``cascade``: the classic pipeline, ASR model -> text intent classifier -> text sentiment classifier (trained on
  the corpus text), against the multi-task answer of the same three questions; accuracies on the test split;
* ``int8``: dynamic int8 quantisation vs fp32: speed (goal >= 1.5x) and how much the answers change; encoder-only
  speedups by batch shape (``int8_encoder_by_batch``) and by preset, whole requests of a random "base" model
  (``int8_request_base_preset``, the first 6 files), the encoder gain per quantised engine (``int8_engines``:
  what ``--int8-engine auto`` chooses from on this CPU) and the subsampling's by channel count
  (``int8_subsampling_by_channels``: where running its wide convolution as a patch Linear pays), one Linear layer
  by rows and size (``int8_linear_by_size``: where int8 pays for a call at all) and translation (a beam search of
  one-row decoder steps) when the model has a decoder;
* ``convolution_module_by_layout``: the Conformer convolution module as the model computes it against the serving
  copy's channels-last one (float and int8, 144 and 256 wide).

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
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench``, ``tests`` helpers and ``mtspeech`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.common import write_results  # noqa: E402
from bench.serve_int8 import (  # noqa: E402
    every_call_in_int8,
    int8_encoder_by_batch,
    int8_encoder_by_preset,
    int8_engines,
    int8_linear_by_size,
    int8_request_base,
    int8_subsampling_by_channels,
    int8_vs_fp32,
)
from bench.serve_layout import convolution_module_by_layout  # noqa: E402
from bench.serve_models import cascade_classifiers, load, random_model, single_task_models  # noqa: E402
from bench.timing import compare_ms, ratio  # noqa: E402

CLIENTS = (1, 4, 16)
FIVE_TASKS = ("asr", "language", "intent", "emotion", "vad")


# --- in-process comparisons -------------------------------------------------------------------------------
def multitask_vs_asr(
    analyzer: Any, unfused: Any, waves: list[np.ndarray], repeats: int, runs: int = 1
) -> dict[str, Any]:
    """Every default task vs ASR alone; also every task with the pooled heads run one by one (``unfused``). With
    ``runs`` > 1 the whole comparison is repeated: the figures are the median run's, ``ratio_runs`` every run's."""
    found = []
    for _ in range(runs):
        times = compare_ms(
            {
                "all": lambda w: analyzer.analyze([w], analyzer.default_tasks),
                "asr": lambda w: analyzer.analyze([w], ["asr"]),
                "all_unfused": lambda w: unfused.analyze([w], analyzer.default_tasks),
            },
            waves,
            repeats,
        )
        found.append((ratio(times["all"], times["asr"]), times))
    found.sort(key=lambda run: run[0])
    median, times = found[len(found) // 2]
    everything, asr_only = times["all"], times["asr"]
    return {
        "tasks": list(analyzer.default_tasks),
        "all_tasks_ms": everything,
        "asr_only_ms": asr_only,
        "ratio": median,
        "goal": "<= 1.2",
        "ratio_runs": [run[0] for run in found],
        "pooled_heads_unfused": {
            "all_tasks_ms": times["all_unfused"],
            "ratio": ratio(times["all_unfused"], asr_only),
            "ratio_runs": sorted(ratio(t["all_unfused"], t["asr"]) for _, t in found),
        },
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
        "--multitask-runs", type=int, default=3, help="repeats of the every-task vs ASR comparison (median reported)"
    )
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
    int8_every = ModelAnalyzer(load(model_path), decoding, name=model_path.name, quantize="int8")
    every_call_in_int8(int8_every.model)
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
            "int8_engine": int8.quantize_engine,
        }
    }
    unfused = ModelAnalyzer(load(model_path), decoding, name=model_path.name, fuse_heads=False)
    figures["multitask_vs_asr_only"] = multitask_vs_asr(analyzer, unfused, waves, args.repeats, args.multitask_runs)
    print("multitask vs asr", figures["multitask_vs_asr_only"], flush=True)
    figures["multitask_vs_single_models"] = multitask_vs_singles(analyzer, singles, waves, args.repeats)
    print("multitask vs singles", figures["multitask_vs_single_models"], flush=True)
    figures["cascade"] = cascade(analyzer, singles["asr"], classifiers, cuts, waves, args.repeats)
    print("cascade", figures["cascade"], flush=True)
    figures["int8"] = int8_vs_fp32(analyzer, int8, cuts, waves, args.repeats, int8_every)
    print("int8", figures["int8"], flush=True)
    figures["int8_encoder_by_batch"] = int8_encoder_by_batch(analyzer.model, int8.model, 3 * args.repeats)
    figures["int8_encoder_by_preset"] = int8_encoder_by_preset(5.0, 3 * args.repeats)
    figures["int8_engines"] = int8_engines(load(model_path).model.eval(), 3 * args.repeats)
    figures["int8_subsampling_by_channels"] = int8_subsampling_by_channels(3 * args.repeats)
    figures["int8_linear_by_size"] = int8_linear_by_size(3 * args.repeats)
    figures["convolution_module_by_layout"] = convolution_module_by_layout(10 * args.repeats)
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

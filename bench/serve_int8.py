"""The int8 figures of ``bench/serve.py``: dynamic int8 quantisation against fp32 (and against int8 on every call,
without the float fallback for small products) for whole requests of the served model and of a random "base"
model and for translation; the encoder alone by batch shape, by preset and by quantised engine; the subsampling by
channel count and one Linear layer by size; and how much the answers change."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.serve_models import load, random_model
from bench.timing import compare_ms, ratio


def int8_requests(
    fp32: Any, int8: Any, waves: list, repeats: int, others: dict[str, Any] | None = None
) -> tuple[dict[str, float], list, list]:
    """Every default task, one request per clip, fp32 against int8 (and ``others``, timed alongside): the timings
    and the fp32 and int8 analyzers' answers."""
    tasks = fp32.default_tasks
    analyzers = {"fp32": fp32, "int8": int8} | (others or {})
    times = compare_ms({k: (lambda w, a=a: a.analyze([w], tasks)) for k, a in analyzers.items()}, waves, repeats)
    return times, [fp32.analyze([w], tasks)[0] for w in waves], [int8.analyze([w], tasks)[0] for w in waves]


def every_call_in_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Make every ``Int8Linear`` of ``model`` run all its calls in int8 (in place): int8 as it was before the
    float fallback for small products, for comparison."""
    from mtspeech.serve.quantize import Int8Linear

    for module in model.modules():
        if isinstance(module, Int8Linear):
            module.min_int8_rows = 0.0
    return model


def int8_vs_fp32(
    fp32: Any, int8: Any, cuts: list, waves: list, repeats: int, int8_every_call: Any = None
) -> dict[str, Any]:
    import jiwer

    from mtspeech.serve.quantize import weight_bytes

    tasks = fp32.default_tasks
    every_call = {"int8_every_call": int8_every_call} if int8_every_call else {}
    times, a, b = int8_requests(fp32, int8, waves, repeats, every_call)
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
    if "translation" in fp32.tasks:  # a beam search of one-row decoder steps: the calls int8 does not pay for
        target = fp32.translation_targets[0]
        analyzers = {"fp32": fp32, "int8": int8} | every_call
        translation = compare_ms(
            {k: (lambda w, a=a: a.analyze([w], ["translation"], [target])) for k, a in analyzers.items()},
            waves[:8],
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
        **(
            {"every_call_ms": times["int8_every_call"], "every_call_speedup": ratio(fp32_ms, times["int8_every_call"])}
            if every_call
            else {}
        ),
        "encoder_ms_batch_of_4": encoder,
        "encoder_speedup": ratio(encoder["fp32"], encoder["int8"]),
        "requests_in_batches_of_4_ms": batched,
        "requests_in_batches_of_4_speedup": ratio(batched["fp32"], batched["int8"]),
        "stages_ms_one_run": stages,
        "goal": ">= 1.5",
        "label_agreement": agreement,
        "weights_mb": {
            "fp32": round(weight_bytes(fp32.model) / 2**20, 1),
            "int8": round(weight_bytes(int8.model) / 2**20, 1),
        },
    }
    if "translation" in fp32.tasks:
        speedups = {k: ratio(translation["fp32"], ms) for k, ms in translation.items() if k != "fp32"}
        figures["translation_8_files_ms"] = {**translation, "speedup": speedups}
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


def random_preset_model(preset: str) -> torch.nn.Module:
    """A random model of ``preset`` with a CTC head only, as training leaves it (serve it through ``serving_copy``
    or ``quantize_model``, which both start from the model's own layers)."""
    from mtspeech.model.config import ModelConfig
    from mtspeech.model.model import MultiTaskModel

    config = ModelConfig.from_dict({"encoder": {"preset": preset}, "tasks": {"asr_ctc": {"vocab_size": 500}}})
    return MultiTaskModel(config).eval()


def serving_pair(model: torch.nn.Module, engine: str = "auto") -> tuple[torch.nn.Module, torch.nn.Module]:
    """``model`` as float serving and as int8 serving run it."""
    from mtspeech.serve.quantize import quantize_model
    from mtspeech.serve.serving_model import serving_copy

    return serving_copy(model), quantize_model(model, "int8", engine=engine)


def int8_encoder_by_preset(seconds: float, repeats: int) -> dict[str, Any]:
    """Encoder-only int8 speedup per preset (random weights, one ``seconds``-long input): the bigger the
    feed-forward layers, the larger the share of int8 Linear work beside the float convolutions. The float model
    is the serving copy float serving runs."""
    frames = int(seconds * 100)
    features, lengths = torch.randn(1, frames, 80), torch.tensor([frames])
    out = {}
    for preset in ("tiny", "small", "base"):
        fp32, int8 = serving_pair(random_preset_model(preset))
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


def int8_engines(served: torch.nn.Module, repeats: int) -> dict[str, Any]:
    """Encoder-only int8 speedup with weights packed for each x86 engine (FBGEMM, oneDNN), for the served model
    (as loaded, before any serving rewrite) and a random "base" model, at one 3-second input and a batch of four
    4-second ones (random features)."""
    from mtspeech.serve.quantize import available_engines, has_amx, quantize_model, resolve_engine
    from mtspeech.serve.serving_model import serving_copy

    engines = [e for e in ("fbgemm", "onednn") if e in available_engines()]
    out: dict[str, Any] = {"cpu_has_amx": has_amx(), "auto_engine": resolve_engine("auto")}
    for name, model in (("served", served), ("base", random_preset_model("base"))):
        variants = {"fp32": serving_copy(model)} | {e: quantize_model(model, "int8", engine=e) for e in engines}
        for batch, seconds in ((1, 3.0), (4, 4.0)):
            frames = int(seconds * 100)
            features, lengths = torch.randn(batch, frames, 80), torch.full((batch,), frames)
            with torch.inference_mode():
                times = compare_ms(
                    {k: (lambda _, m=m, f=features, n=lengths: m.encode(f, n)) for k, m in variants.items()},
                    [np.zeros(1)],
                    repeats,
                )
            speedups = {e: ratio(times["fp32"], times[e]) for e in engines}
            out[f"{name} {batch}x{seconds:g}s"] = {**times, "speedup": speedups}
            print("int8 engines", name, batch, seconds, out[f"{name} {batch}x{seconds:g}s"], flush=True)
    return out


def int8_linear_by_size(repeats: int) -> dict[str, Any]:
    """One Linear layer, fp32 against its always-int8 twin (auto engine), in microseconds a call, by rows and
    size: where :data:`~mtspeech.serve.quantize.MIN_INT8_MACS` (the float/int8 switch of ``Int8Linear``) comes from."""
    from mtspeech.serve.quantize import Int8Linear, quantized_engine, resolve_engine

    engine = resolve_engine("auto")
    calls = 50  # per timing: one call of a small layer is too short to time on its own
    out: dict[str, Any] = {"engine": engine, "unit": "microseconds per call"}
    for inputs, outputs in ((144, 144), (144, 576), (256, 2048)):
        linear = torch.nn.Linear(inputs, outputs).eval()
        with quantized_engine(engine), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            int8 = Int8Linear(linear).int8_linear
        for rows in (1, 16, 64, 128, 256, 512):
            x = torch.randn(rows, inputs)
            with torch.inference_mode():
                times = compare_ms(
                    {
                        "fp32": lambda _, x=x, m=linear: [m(x) for _ in range(calls)],
                        "int8": lambda _, x=x, m=int8: [m(x) for _ in range(calls)],
                    },
                    [np.zeros(1)],
                    repeats,
                )
            us = {k: round(v * 1000 / calls, 1) for k, v in times.items()}
            out[f"{rows}x{inputs}x{outputs}"] = {
                **us,
                "macs": rows * inputs * outputs,
                "speedup": ratio(us["fp32"], us["int8"]),
            }
        print(
            "int8 linear",
            inputs,
            outputs,
            {k: v for k, v in out.items() if k.endswith(f"x{inputs}x{outputs}")},
            flush=True,
        )
    return out


def int8_subsampling_by_channels(repeats: int) -> dict[str, Any]:
    """The x4 convolutional subsampling alone (random weights, one 4-second input) by channel count: the model's
    module (``fp32``) against float serving's channels-last one (:class:`~mtspeech.serve.serving_model.
    ChannelsLastSubsampling`), and int8 with the later convolution in float or as a patch Linear: where each
    rewrite pays."""
    from mtspeech.model.encoder import Conv2dSubsampling
    from mtspeech.serve.quantize import quantized_engine, resolve_engine
    from mtspeech.serve.serving_model import ChannelsLastSubsampling

    engine = resolve_engine("auto")
    features, lengths = torch.randn(1, 400, 80), torch.tensor([400])
    out: dict[str, Any] = {"engine": engine}
    for channels in (64, 96, 128, 256):
        float_module = Conv2dSubsampling(80, 256 if channels > 144 else 144, 0.0, channels, 4).eval()
        with quantized_engine(engine), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            variants = {
                "fp32": float_module,
                "fp32_channels_last": ChannelsLastSubsampling(float_module).eval(),
                "int8_conv_in_float": torch.ao.quantization.quantize_dynamic(
                    ChannelsLastSubsampling(float_module).eval(), {torch.nn.Linear}, dtype=torch.qint8
                ),
                "int8_patch_linear": torch.ao.quantization.quantize_dynamic(
                    ChannelsLastSubsampling(float_module, patch_channels=0).eval(), {torch.nn.Linear}, dtype=torch.qint8
                ),
            }
        with torch.inference_mode():
            times = compare_ms(
                {k: (lambda _, m=m: m(features, lengths)) for k, m in variants.items()}, [np.zeros(1)], repeats
            )
        out[str(channels)] = {
            **times,
            "channels_last_gain": ratio(times["fp32"], times["fp32_channels_last"]),
            "patch_gain": ratio(times["int8_conv_in_float"], times["int8_patch_linear"]),
        }
        print("int8 subsampling", channels, out[str(channels)], flush=True)
    return out


def int8_request_base(cuts: Any, waves: list[np.ndarray], work: Path, repeats: int) -> dict[str, Any]:
    """Whole requests (front end, encoder, every task's answer) of a random "base"-preset model, fp32 vs int8: the
    size a CPU deployment would serve, where the int8 Linear layers carry most of the request's work."""
    from mtspeech.serve.inference import ModelAnalyzer, decoding_options

    path = random_model(cuts, work / "base", preset="base")
    loaded = load(path)
    decoding = decoding_options(loaded.model).replace(max_length_ratio=0.2)  # random decoder: see main()
    fp32 = ModelAnalyzer(loaded, decoding, name=path.name)
    int8 = ModelAnalyzer(load(path), decoding, name=path.name, quantize="int8")
    every_call = ModelAnalyzer(load(path), decoding, name=path.name, quantize="int8")
    every_call_in_int8(every_call.model)
    times, a, b = int8_requests(fp32, int8, waves, repeats, {"int8_every_call": every_call})
    figures = {
        "utterances": len(waves),
        **times,
        "speedup": ratio(times["fp32"], times["int8"]),
        "every_call_speedup": ratio(times["fp32"], times["int8_every_call"]),
        "stages_ms_one_run": {"fp32": stage_ms(a), "int8": stage_ms(b)},
        "goal": ">= 1.5",
    }
    print("int8 base request", figures, flush=True)
    return figures

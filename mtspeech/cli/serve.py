"""``mtspeech serve --model M``: the Unified Speech API (``POST /v1/analyze``, the page at ``/``, ``/metrics``).

uvicorn runs the FastAPI app with graceful shutdown: on SIGINT/SIGTERM it stops accepting connections, lets
in-flight requests finish (up to ``--graceful-timeout`` seconds), then the app drains its batch queue.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mtspeech.cli.common import console, user_errors
from mtspeech.errors import UserError


def parse_thresholds(values: list[str], tasks: tuple[str, ...]) -> dict[str, float]:
    """``["intent=0.6", "asr=0.4"]`` -> ``{"intent": 0.6, "asr": 0.4}``; each task must be one the model answers."""
    thresholds: dict[str, float] = {}
    for value in values:
        task, sep, number = value.partition("=")
        task = task.strip()
        if not sep or not task:
            raise UserError(f"--threshold {value!r}: expected TASK=VALUE, e.g. intent=0.6")
        if task not in tasks:
            raise UserError(f"--threshold {value!r}: unknown task {task!r}; this model answers: {', '.join(tasks)}")
        try:
            threshold = float(number)
        except ValueError:
            raise UserError(f"--threshold {value!r}: {number!r} is not a number") from None
        if not 0.0 <= threshold <= 1.0:
            raise UserError(f"--threshold {value!r}: a confidence threshold must be in [0, 1]")
        thresholds[task] = threshold
    return thresholds


@user_errors
def serve_cmd(
    model: Path = typer.Option(..., "--model", "-m", help="Model file (written by training / save_model)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    max_batch_size: int = typer.Option(
        8, "--max-batch-size", min=1, help="Requests per forward pass at most; 1: no batching."
    ),
    max_wait_ms: float = typer.Option(
        10.0, "--max-wait-ms", min=0.0, help="How long a request waits for batch-mates (queued ones always join)."
    ),
    cache_size: int = typer.Option(256, "--cache-size", min=0, help="Answers kept (LRU, by audio hash); 0: off."),
    quantize: str | None = typer.Option(None, "--quantize", help="int8: dynamic int8 Linear layers (CPU)."),
    int8_engine: str | None = typer.Option(
        None,
        "--int8-engine",
        help="Kernels of --quantize int8 (default auto: oneDNN on AMX CPUs); x86, fbgemm, onednn.",
    ),
    threshold: list[str] = typer.Option(
        [], "--threshold", help="TASK=VALUE: answers below this confidence get needs_review (repeatable)."
    ),
    fallback_model: Path | None = typer.Option(
        None, "--fallback-model", help="Second model that re-answers the tasks below their --threshold."
    ),
    max_bytes: int = typer.Option(25 * 1024 * 1024, "--max-bytes", min=1, help="Largest upload accepted."),
    max_seconds: float = typer.Option(120.0, "--max-seconds", min=0.1, help="Longest audio accepted."),
    decode_mode: str | None = typer.Option(None, "--decode-mode", help="ASR decoding mode (default: per model)."),
    beam_size: int | None = typer.Option(None, "--beam-size", min=1, help="Beam size of every search."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="Answer tokens at most."),
    lm_weight: float | None = typer.Option(
        None, "--lm-weight", min=0.0, help="N-gram LM weight in the CTC search (default: as tuned; 0: off)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1 ..."),
    graceful_timeout: float = typer.Option(30.0, "--graceful-timeout", help="Seconds to finish requests on exit."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve one model behind the Unified Speech API: one encoder pass answers every task of a request."""
    import uvicorn

    from mtspeech.serve.app import ServeConfig, create_app
    from mtspeech.serve.audio import AudioLimits
    from mtspeech.serve.inference import load_analyzer

    decoding = {"mode": decode_mode, "beam_size": beam_size, "max_tokens": max_tokens, "lm_weight": lm_weight}
    analyzer = load_analyzer(model, quantize=quantize, int8_engine=int8_engine, device=device, **decoding)
    fallback = None
    if fallback_model is not None:
        fallback = load_analyzer(fallback_model, quantize=quantize, int8_engine=int8_engine, device=device, **decoding)
    config = ServeConfig(
        limits=AudioLimits(max_bytes=max_bytes, max_seconds=max_seconds),
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        cache_size=cache_size,
        thresholds=parse_thresholds(threshold, analyzer.tasks),
    )
    app = create_app(analyzer, config, fallback=fallback)
    console.print(
        f"serving {analyzer.name} ({analyzer.version}; tasks: {', '.join(analyzer.tasks)}) on http://{host}:{port}",
        highlight=False,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout)

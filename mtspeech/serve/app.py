"""The Unified Speech API: ``POST /v1/analyze`` runs the encoder once and answers every requested task.

The app is built around an :class:`Analyzer` (the same inference path as ``mtspeech analyze``); the web layer
adds what a service needs: upload handling with limits, dynamic batching across concurrent requests, an
answer cache, low-confidence flags or a fallback model, Prometheus metrics and a page for people.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from mtspeech.errors import UserError
from mtspeech.serve.audio import AudioError, AudioLimits, decode_audio
from mtspeech.serve.batching import BatcherClosed, DynamicBatcher
from mtspeech.serve.cache import AnswerCache, cache_key

logger = logging.getLogger(__name__)


class Analyzer(Protocol):
    """What the service needs from a model: one call answers several tasks for a batch of 16 kHz waveforms.

    An analyzer may also have ``translation_targets`` (language codes): ``translate_to`` outside it is a 422."""

    name: str
    version: str
    tasks: tuple[str, ...]  # every task this analyzer can answer
    default_tasks: tuple[str, ...]  # answered when the request names none

    def analyze(
        self, waves: Sequence[np.ndarray], tasks: Sequence[str], translate_to: Sequence[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """One answer dict per wave: task -> its answer (each with a ``confidence``), plus ``timings_ms``."""
        ...


@dataclass
class ServeConfig:
    limits: AudioLimits = field(default_factory=AudioLimits)
    max_batch_size: int = 8  # 1 disables dynamic batching (each request runs alone)
    max_wait_ms: float = 10.0  # extra wait for batch-mates; requests queued behind a running batch always join
    cache_size: int = 256
    thresholds: dict[str, float] = field(default_factory=dict)  # task -> minimum confidence before "needs_review"


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mtspeech_requests", "Requests by endpoint and status", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mtspeech_request_seconds",
            "Analyze latency (s)",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "mtspeech_batch_size", "Requests per forward pass", registry=self.registry, buckets=(1, 2, 4, 8, 16, 32)
        )
        self.cache = Counter("mtspeech_cache", "Answer cache lookups", ["result"], registry=self.registry)
        self.review = Counter(
            "mtspeech_needs_review", "Answers below their confidence threshold", ["task"], registry=self.registry
        )
        self.stage = Histogram(
            "mtspeech_stage_seconds",
            "Time per forward pass spent in each stage (features, encoder, each task)",
            ["stage"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.queue = Gauge("mtspeech_queue_depth", "Requests waiting for a forward pass", registry=self.registry)
        self.fallback = Counter(
            "mtspeech_fallback_answers", "Task answers replaced by the fallback model", ["task"], registry=self.registry
        )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def create_app(analyzer: Analyzer, config: ServeConfig | None = None, fallback: Analyzer | None = None) -> FastAPI:
    """The FastAPI app; ``fallback`` (optional) answers the tasks whose confidence is below its threshold."""
    config = config or ServeConfig()
    metrics = _Metrics()
    cache = AnswerCache(config.cache_size)

    def run_batch(items: Sequence[tuple[np.ndarray, tuple[str, ...], str | None]]) -> list[dict[str, Any] | Exception]:
        # One forward pass for the union of the tasks asked in this batch; each caller gets its own tasks back.
        union = [t for t in analyzer.tasks if any(t in tasks for _, tasks, _ in items)]
        try:
            answers = analyzer.analyze([wave for wave, _, _ in items], union, [target for _, _, target in items])
        except Exception as err:
            if len(items) == 1:
                return [err]
            # One bad item must not fail its batch-mates: answer each alone, so only it gets the error.
            return [result for item in items for result in run_batch([item])]
        for stage, ms in answers[0].get("timings_ms", {}).items():
            metrics.stage.labels(stage).observe(ms / 1000)
        out: list[dict[str, Any] | Exception] = []
        for answer, (_, tasks, _) in zip(answers, items, strict=True):
            out.append({**_only(answer, tasks), "batch_size": len(items)})
        return out

    batcher = DynamicBatcher(run_batch, config.max_batch_size, config.max_wait_ms, metrics.batch_size.observe)
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        state["ready"] = True
        yield
        state["ready"] = False
        await batcher.stop()  # graceful: queued and running requests are answered first

    app = FastAPI(
        title="mtspeech Unified Speech API",
        version=analyzer.version,
        description="One encoder pass, every answer: transcript, language, intent and slots, translation, emotion, "
        "voice activity.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.cache, app.state.metrics = batcher, cache, metrics
    metrics.queue.set_function(batcher.queue_depth)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own 4xx (unknown path, wrong method, malformed multipart) in the API's error shape.
        return _error(exc.status_code, str(exc.detail))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("mtspeech.serve").joinpath("static/index.html").read_text())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = state["ready"]
        body = {"ready": ready, "model": analyzer.name, "version": analyzer.version, "tasks": list(analyzer.tasks)}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/analyze", summary="Analyze one audio file (raw body or multipart field 'file')")
    async def analyze(request: Request, tasks: str | None = None, translate_to: str | None = None) -> JSONResponse:
        """``tasks``: comma-separated (default: the model's default tasks); ``translate_to``: fr, de, es..."""
        started = time.perf_counter()
        try:
            wanted = _parse_tasks(tasks, analyzer, translate_to)
            data, content_type = await _read_upload(request, config.limits.max_bytes)
            key = cache_key(data, wanted, translate_to or "")
            answer = cache.get(key)
            metrics.cache.labels("hit" if answer is not None else "miss").inc()
            if answer is None:
                audio = await asyncio.to_thread(decode_audio, data, content_type, config.limits)
                answer = await batcher.submit((audio.samples, wanted, translate_to))
                answer = await _review(
                    answer, audio.samples, wanted, translate_to, config.thresholds, fallback, metrics
                )
                answer["audio"] = {
                    "duration": round(audio.duration, 3),
                    "sample_rate": audio.source_rate,
                    "channels": audio.source_channels,
                }
                cache.put(key, answer)
                cached = False
            else:
                cached = True
        except AudioError as err:
            metrics.requests.labels("analyze", str(err.status)).inc()
            return _error(err.status, err.message)
        except StarletteHTTPException as err:  # malformed multipart and the like
            metrics.requests.labels("analyze", str(err.status_code)).inc()
            return _error(err.status_code, str(err.detail))
        except BatcherClosed as err:
            metrics.requests.labels("analyze", "503").inc()
            return _error(503, str(err))
        except UserError as err:  # the model refused this input (e.g. too short for its encoder)
            metrics.requests.labels("analyze", "422").inc()
            return _error(422, str(err))
        except Exception:
            logger.exception("analyze failed")
            metrics.requests.labels("analyze", "500").inc()
            return _error(500, "internal error while analysing the audio; the server log has the details")
        elapsed = time.perf_counter() - started
        metrics.requests.labels("analyze", "200").inc()
        metrics.latency.observe(elapsed)
        body = {**answer, "model": {"name": analyzer.name, "version": analyzer.version}, "cached": cached}
        body["timings_ms"] = {**answer.get("timings_ms", {}), "total": round(elapsed * 1000, 2)}
        return JSONResponse(body)

    return app


def _parse_tasks(tasks: str | None, analyzer: Analyzer, translate_to: str | None) -> tuple[str, ...]:
    if not tasks:
        wanted = tuple(analyzer.default_tasks)
    else:
        wanted = tuple(dict.fromkeys(t.strip() for t in tasks.split(",") if t.strip()))
    if translate_to and "translation" not in wanted:
        wanted = (*wanted, "translation")
    if "translation" in wanted and not translate_to:
        raise AudioError(422, "the translation task needs a target language: add translate_to=fr (or de, es, ...)")
    targets = getattr(analyzer, "translation_targets", None)
    if translate_to and "translation" in analyzer.tasks and targets is not None and translate_to not in targets:
        raise AudioError(422, f"unknown translate_to {translate_to!r}; this model translates to: {', '.join(targets)}")
    unknown = [t for t in wanted if t not in analyzer.tasks]
    if unknown or not wanted:
        raise AudioError(
            422, f"unknown task(s) {unknown or [tasks]} in 'tasks'; this model answers: {', '.join(analyzer.tasks)}"
        )
    return wanted


async def _read_upload(request: Request, max_bytes: int) -> tuple[bytes, str | None]:
    """The audio bytes and their declared type, from a multipart field ``file`` or the raw body.

    The body is read with a cap whatever the client declares (chunked uploads have no Content-Length), so an
    oversized upload costs at most ``max_bytes`` of memory before its 413."""
    declared = request.headers.get("content-length")
    overhead = 64 * 1024  # multipart boundaries and part headers
    if declared and declared.isdigit() and int(declared) > max_bytes + overhead:
        raise AudioError(413, f"the request is {declared} bytes; the audio limit is {max_bytes} bytes")
    content_type = request.headers.get("content-type", "")
    multipart = content_type.startswith("multipart/form-data")
    cap = max_bytes + overhead if multipart else max_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise AudioError(413, f"the audio is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not multipart:
        return body, content_type or None
    form = await _replayed(request, body).form(max_files=1, max_fields=8)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise AudioError(422, "multipart request without a file field named 'file'")
    data = await upload.read(max_bytes + 1)
    return data, upload.content_type or "application/octet-stream"


def _replayed(request: Request, body: bytes) -> Request:
    """A request whose body stream replays ``body`` (already read, size-checked) for Starlette's form parser."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _only(answer: dict[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """Keep the requested tasks' answers (and the shared fields) of a batch answer computed for a task union."""
    keep = {"timings_ms", "batch_size"}
    return {k: v for k, v in answer.items() if k in tasks or k in keep}


async def _review(
    answer: dict[str, Any],
    wave: np.ndarray,
    tasks: Sequence[str],
    translate_to: str | None,
    thresholds: dict[str, float],
    fallback: Analyzer | None,
    metrics: _Metrics,
) -> dict[str, Any]:
    """Flag answers below their task's confidence threshold; with a fallback model, ask it for those tasks."""
    low = [
        t
        for t in tasks
        if isinstance(answer.get(t), dict) and t in thresholds and answer[t].get("confidence", 1.0) < thresholds[t]
    ]
    for task in low:
        metrics.review.labels(task).inc()
        answer[task]["needs_review"] = True
    if low and fallback is not None:
        usable = [t for t in low if t in fallback.tasks]
        if usable:
            (second,) = await asyncio.to_thread(fallback.analyze, [wave], usable, [translate_to])
            for task in usable:
                metrics.fallback.labels(task).inc()
                answer[task] = {
                    **second[task],
                    "source": f"fallback:{fallback.name}",
                    "primary_confidence": answer[task].get("confidence"),
                    "needs_review": second[task].get("confidence", 1.0) < thresholds[task],
                }
    return answer

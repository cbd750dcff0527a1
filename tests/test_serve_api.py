"""The Unified Speech API on a real (tiny, random) model: endpoints, answers, batching, cache, bad input, review."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess

import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from serve_fixtures import (
    assert_same_answer,
    comparable,
    fast_analyzer,
    model_file,  # noqa: F401  (session fixture)
    voice_like,
    wav_bytes,
)

from mtspeech.serve.app import ServeConfig, create_app
from mtspeech.serve.audio import AudioLimits

PAGE_KEYS = {  # what static/index.html reads from each answer
    "asr": {"text", "words", "confidence"},
    "language": {"label", "probabilities", "confidence"},
    "intent": {"label", "confidence"},
    "slots": {"spans", "confidence"},
    "emotion": {"label", "probabilities", "confidence"},
    "vad": {"segments", "confidence"},
}


@pytest.fixture(scope="module")
def analyzer(model_file):  # noqa: F811
    return fast_analyzer(model_file)


@pytest.fixture(scope="module")
def client(analyzer):
    config = ServeConfig(limits=AudioLimits(max_bytes=400_000, max_seconds=6.0), max_wait_ms=5)
    with TestClient(create_app(analyzer, config)) as test_client:
        yield test_client


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_health_ready_docs_page_and_metrics(client, analyzer) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["tasks"] == list(analyzer.tasks) and ready.json()["version"] == "test-0"
    assert "swagger" in client.get("/docs").text.lower()
    assert "/v1/analyze" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and 'id="transcript"' in page.text
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in ("mtspeech_queue_depth", "mtspeech_batch_size", "mtspeech_cache_total", "mtspeech_stage_seconds"):
        assert f"# TYPE {name}" in metrics.text


def test_analyze_answers_every_default_task_in_the_page_format(client, analyzer) -> None:
    seconds = 1.3
    response = client.post(
        "/v1/analyze", content=wav_bytes(voice_like(seconds, 11)), headers={"content-type": "audio/wav"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(analyzer.default_tasks) <= set(answer) and "translation" not in answer
    for task, keys in PAGE_KEYS.items():
        assert keys <= set(answer[task]), (task, answer[task])
        assert 0.0 <= answer[task]["confidence"] <= 1.0
    assert abs(sum(answer["language"]["probabilities"].values()) - 1.0) < 1e-3
    assert answer["language"]["label"] == max(
        answer["language"]["probabilities"], key=answer["language"]["probabilities"].get
    )
    assert answer["audio"] == {"duration": seconds, "sample_rate": 16000, "channels": 1}
    for word in answer["asr"]["words"]:
        assert 0.0 <= word["start"] <= word["end"] <= seconds
    starts = [w["start"] for w in answer["asr"]["words"]]
    assert starts == sorted(starts)
    for segment in answer["vad"]["segments"]:
        assert 0.0 <= segment["start"] < segment["end"] <= seconds
    assert {"features", "encoder", "asr", "total"} <= set(answer["timings_ms"])
    assert answer["model"]["version"] == "test-0" and answer["cached"] is False


def test_multipart_upload_equals_raw_body_and_task_selection(client) -> None:
    data = wav_bytes(voice_like(1.1, 12))
    raw = client.post("/v1/analyze", content=data, headers={"content-type": "audio/wav"}).json()
    multipart = client.post("/v1/analyze", files={"file": ("clip.wav", data, "audio/wav")}).json()
    assert_same_answer(comparable(multipart), comparable(raw))
    some = client.post("/v1/analyze?tasks=intent,emotion", content=data).json()
    assert set(comparable(some)) == {"intent", "emotion"}
    assert_same_answer(some["intent"], raw["intent"])


def test_translation_needs_a_known_target(client) -> None:
    data = wav_bytes(voice_like(0.9, 13))
    answer = client.post("/v1/analyze?tasks=asr&translate_to=fr", content=data).json()
    assert answer["translation"]["target"] == "fr" and isinstance(answer["translation"]["text"], str)
    assert set(comparable(answer)) == {"asr", "translation"}
    missing = client.post("/v1/analyze?tasks=translation", content=data)
    assert missing.status_code == 422 and "translate_to" in missing.json()["error"]
    unknown = client.post("/v1/analyze?translate_to=xx", content=data)
    assert unknown.status_code == 422 and "'xx'" in unknown.json()["error"]


def _float_wav_with_nan() -> bytes:
    samples = voice_like(0.5, 3)
    samples[100] = np.nan
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="WAV", subtype="FLOAT")
    return buf.getvalue()


BAD_INPUTS = [
    ("empty", b"", "audio/wav", 422, "empty"),
    ("text", b"hello, not audio", "text/plain", 415, "content type"),
    ("json", b'{"a": 1}', "application/json", 415, "content type"),
    ("garbage", b"\x00\x01garbage" * 20, "application/octet-stream", 415, "not a recognised audio"),
    ("broken wav", b"RIFF\x00\x00\x00\x00WAVEfmt broken", "audio/wav", 422, "could not be decoded"),
    ("truncated flac", wav_bytes(voice_like(1.0, 4), fmt="FLAC")[:300], "audio/flac", 422, "decod"),
    ("too many bytes", wav_bytes(voice_like(13.0, 5)), "audio/wav", 413, "bytes"),
    ("too many seconds", wav_bytes(voice_like(7.0, 6, rate=8000), rate=8000), "audio/wav", 413, "lasts 7.0 s"),
    ("too short", wav_bytes(voice_like(0.05, 7)), "audio/wav", 422, "at least 0.1 s"),
    ("nan samples", _float_wav_with_nan(), "audio/wav", 422, "NaN"),
]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_audio_gets_its_status_and_message(client, data: bytes, content_type: str, status: int, words: str) -> None:
    response = client.post("/v1/analyze", content=data, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["status"] == status and words in response.json()["error"]


def test_bad_requests_are_4xx_never_500(client) -> None:
    data = wav_bytes(voice_like(0.8, 8))
    unknown = client.post("/v1/analyze?tasks=asr,telepathy", content=data)
    assert unknown.status_code == 422 and "telepathy" in unknown.json()["error"] and "asr" in unknown.json()["error"]
    no_file = client.post("/v1/analyze", files={"audio": ("a.wav", data, "audio/wav")})
    assert no_file.status_code == 422 and "'file'" in no_file.json()["error"]
    malformed = client.post(
        "/v1/analyze", content=b"--xyz\r\nnot a part", headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert 400 <= malformed.status_code < 500, malformed.text
    assert client.get("/v1/analyze").status_code == 405
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_repeated_file_is_a_cache_hit_shown_in_metrics(client) -> None:
    before = _metric(client.get("/metrics").text, "mtspeech_cache_total", '{result="hit"}')
    data = wav_bytes(voice_like(1.2, 21))
    first = client.post("/v1/analyze", content=data).json()
    second = client.post("/v1/analyze", content=data).json()
    assert first["cached"] is False and second["cached"] is True
    assert_same_answer(comparable(second), comparable(first), tol=0.0)
    after = _metric(client.get("/metrics").text, "mtspeech_cache_total", '{result="hit"}')
    assert after == before + 1
    other_tasks = client.post("/v1/analyze?tasks=asr", content=data).json()
    assert other_tasks["cached"] is False  # the key includes the tasks


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(analyzer) -> None:
    files = [wav_bytes(voice_like(0.7 + 0.15 * i, 100 + i)) for i in range(6)]
    # Expected answers from the same 16-bit samples the server decodes (a random model has near-ties that the
    # WAV rounding alone can flip).
    decoded = [sf.read(io.BytesIO(f), dtype="float32")[0] for f in files]
    expected = [comparable(analyzer.analyze([wave], analyzer.default_tasks)[0]) for wave in decoded]
    for i in range(len(expected)):  # the test can only catch mix-ups if the answers differ
        for j in range(i):
            assert expected[i]["vad"] != expected[j]["vad"] or expected[i]["asr"]["text"] != expected[j]["asr"]["text"]
    app = create_app(analyzer, ServeConfig(max_batch_size=8, max_wait_ms=200, cache_size=0))

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                responses = await asyncio.gather(*(http.post("/v1/analyze", content=f) for f in files))
                metrics = (await http.get("/metrics")).text
        return responses, metrics

    responses, metrics = asyncio.run(main())
    answers = [r.json() for r in responses]
    assert all(r.status_code == 200 for r in responses)
    assert max(a["batch_size"] for a in answers) > 1
    for got, want in zip(answers, expected, strict=True):
        assert_same_answer(comparable(got), want)
    assert _metric(metrics, "mtspeech_batch_size_count") < len(files)


class _Failing:
    """Wraps an analyzer; fails any batch holding a wave of exactly ``bad_length`` samples."""

    def __init__(self, inner, bad_length: int) -> None:
        self.inner, self.bad_length = inner, bad_length
        self.name, self.version, self.tasks, self.default_tasks = (
            inner.name,
            inner.version,
            inner.tasks,
            inner.default_tasks,
        )

    def analyze(self, waves, tasks, translate_to=None):
        if any(len(w) == self.bad_length for w in waves):
            raise RuntimeError("boom")
        return self.inner.analyze(waves, tasks, translate_to)


def test_one_failing_item_does_not_fail_its_batch(analyzer) -> None:
    good, bad = voice_like(0.8, 31), voice_like(0.9, 32)
    app = create_app(_Failing(analyzer, len(bad)), ServeConfig(max_wait_ms=200, cache_size=0))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as http,
        ):
            return await asyncio.gather(
                http.post("/v1/analyze", content=wav_bytes(good)), http.post("/v1/analyze", content=wav_bytes(bad))
            )

    ok, failed = asyncio.run(main())
    assert ok.status_code == 200 and "asr" in ok.json()
    assert failed.status_code == 500 and "internal error" in failed.json()["error"]


def test_low_confidence_is_flagged_and_answered_by_the_fallback(model_file, analyzer, tmp_path) -> None:  # noqa: F811
    from serve_fixtures import build_model_file

    fallback = fast_analyzer(build_model_file(tmp_path / "fallback.pt", seed=7), name="fallback")
    data, wave = wav_bytes(voice_like(1.0, 41)), voice_like(1.0, 41)
    thresholds = {"intent": 1.01, "emotion": 0.0}  # intent is always below, emotion never
    flagged = create_app(analyzer, ServeConfig(thresholds=thresholds))
    with TestClient(flagged) as http:
        answer = http.post("/v1/analyze?tasks=intent,emotion", content=data).json()
        metrics = http.get("/metrics").text
    assert answer["intent"]["needs_review"] is True and "needs_review" not in answer["emotion"]
    assert _metric(metrics, "mtspeech_needs_review_total", '{task="intent"}') == 1
    with TestClient(create_app(analyzer, ServeConfig(thresholds=thresholds), fallback=fallback)) as http:
        answer = http.post("/v1/analyze?tasks=intent,emotion", content=data).json()
    (second,) = fallback.analyze([wave], ["intent"])
    assert answer["intent"]["source"] == "fallback:fallback"
    assert answer["intent"]["label"] == second["intent"]["label"]
    assert abs(answer["intent"]["confidence"] - second["intent"]["confidence"]) < 2e-3
    assert "source" not in answer["emotion"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_browser_recording_in_webm_opus_is_accepted(client, tmp_path) -> None:
    """What the page's Record button sends: MediaRecorder's WebM/Opus, labelled video/webm by some browsers."""
    wav = tmp_path / "rec.wav"
    wav.write_bytes(wav_bytes(voice_like(1.5, 91, rate=48000), rate=48000))
    webm = tmp_path / "rec.webm"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), "-c:a", "libopus", str(webm)], check=True)
    response = client.post(
        "/v1/analyze?tasks=asr,vad", files={"file": ("recording.webm", webm.read_bytes(), "video/webm")}
    )
    assert response.status_code == 200, response.text
    assert abs(response.json()["audio"]["duration"] - 1.5) < 0.05

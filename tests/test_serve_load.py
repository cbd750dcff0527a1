"""Load test: 200 mixed requests sent concurrently to a real ``mtspeech serve`` (uvicorn) on loopback.

Valid uploads (WAV/FLAC, raw body and multipart) must get exactly the answer the model gives each file alone;
every bad one (corrupt, empty, too many bytes, too many seconds, wrong type) its 4xx; the server must stay
alive and answer after the burst, its memory must stay bounded, and SIGTERM must stop it cleanly."""

from __future__ import annotations

import asyncio
import random
import re
import signal

import httpx
import pytest
from serve_fixtures import (
    FAST,
    assert_same_answer,
    comparable,
    fast_analyzer,
    model_file,  # noqa: F401  (session fixture)
    voice_like,
    wav_bytes,
)
from serve_server import rss_bytes, running_server

MAX_BYTES, MAX_SECONDS = 200_000, 5.0
RSS_GROWTH_LIMIT = 300 * 2**20


def _requests(rng: random.Random) -> tuple[list[dict], list[bytes]]:
    """200 request specs: 80 valid (16 distinct clips, 5 times each), 120 bad ones of six kinds."""
    clips = [voice_like(0.6 + 0.05 * i, 200 + i) for i in range(16)]
    encoded = [wav_bytes(c, fmt="FLAC" if i % 3 == 0 else "WAV") for i, c in enumerate(clips)]
    specs: list[dict] = []
    for i in range(80):
        clip = i % 16
        specs.append(
            {"kind": "valid", "clip": clip, "data": encoded[clip], "type": "audio/wav", "multipart": i % 4 == 0}
        )
    noise = bytes(rng.getrandbits(8) for _ in range(3000))
    bad = [
        ("corrupt", lambda i: b"RIFF\x10\x00\x00\x00WAVEfmt " + noise[: 50 + i], "audio/wav", 422),
        ("random", lambda i: b"GARBAGE" + noise[i:], "application/octet-stream", 415),
        ("empty", lambda i: b"", "audio/wav", 422),
        ("bytes", lambda i: wav_bytes(voice_like(7.0 + i % 3, 9)), "audio/wav", 413),  # ~220-290 kB > 200 kB
        ("seconds", lambda i: wav_bytes(voice_like(6.0, 10, rate=8000), rate=8000), "audio/wav", 413),
        ("type", lambda i: b"<html>not audio</html>", "text/html" if i % 2 else "image/png", 415),
    ]
    for i in range(120):
        kind, make, content_type, status = bad[i % len(bad)]
        specs.append({"kind": kind, "data": make(i), "type": content_type, "status": status, "multipart": i % 5 == 0})
    rng.shuffle(specs)
    return specs, clips


async def _send(url: str, specs: list[dict]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=300.0, limits=limits) as client:

        async def one(spec: dict) -> httpx.Response:
            if spec["multipart"]:
                return await client.post("/v1/analyze", files={"file": ("upload", spec["data"], spec["type"])})
            return await client.post("/v1/analyze", content=spec["data"], headers={"content-type": spec["type"]})

        return await asyncio.gather(*(one(s) for s in specs))


def test_200_mixed_concurrent_requests(model_file, tmp_path) -> None:  # noqa: F811
    specs, clips = _requests(random.Random(0))
    analyzer = fast_analyzer(model_file)
    expected = [comparable(analyzer.analyze([clip], analyzer.default_tasks)[0]) for clip in clips]
    options = ["--beam-size", str(FAST["beam_size"]), "--max-tokens", str(FAST["max_tokens"])]
    options += ["--max-bytes", str(MAX_BYTES), "--max-seconds", str(MAX_SECONDS), "--max-wait-ms", "20"]
    with running_server(model_file, *options, "--log-level", "warning", log=tmp_path / "server.log") as server:
        warm = httpx.post(f"{server.url}/v1/analyze", content=wav_bytes(voice_like(1.0, 1)), timeout=120)
        assert warm.status_code == 200
        rss_before = rss_bytes(server.process.pid)
        responses = asyncio.run(_send(server.url, specs))
        for spec, response in zip(specs, responses, strict=True):
            if spec["kind"] == "valid":
                assert response.status_code == 200, response.text
                assert_same_answer(comparable(response.json()), expected[spec["clip"]])
            else:
                assert response.status_code == spec["status"], (spec["kind"], response.status_code, response.text)
                assert response.json()["error"]
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        after = httpx.post(f"{server.url}/v1/analyze", content=wav_bytes(clips[3]), timeout=120)
        assert after.status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'mtspeech_requests_total{endpoint="analyze",status="500"}' not in metrics
        assert rss_bytes(server.process.pid) - rss_before < RSS_GROWTH_LIMIT
        assert server.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def _batches_started(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(r"^mtspeech_batch_size_count ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_sigterm_lets_in_flight_requests_finish(model_file, tmp_path) -> None:  # noqa: F811
    clips = [wav_bytes(voice_like(1.0 + 0.1 * i, 300 + i)) for i in range(4)]
    options = ["--beam-size", "2", "--max-tokens", "8", "--max-wait-ms", "50", "--cache-size", "0"]
    with running_server(model_file, *options, "--log-level", "warning", log=tmp_path / "server.log") as server:

        async def main() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=server.url, timeout=300.0) as client:
                before = _batches_started(server.url)
                url = "/v1/analyze?translate_to=fr"  # the slowest answers: in flight when the signal arrives
                pending = [asyncio.create_task(client.post(url, content=clip)) for clip in clips]
                while _batches_started(server.url) == before:  # a forward pass has begun
                    await asyncio.sleep(0.01)
                server.process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*pending)

        responses = asyncio.run(main())
        assert [r.status_code for r in responses] == [200] * len(clips)
        assert all(r.json()["translation"]["target"] == "fr" for r in responses)
        assert server.process.wait(60) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz")

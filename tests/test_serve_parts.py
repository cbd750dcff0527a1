"""Audio decoding limits, dynamic batching and the answer cache of the service (no model needed)."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from mtspeech.serve.audio import AudioError, AudioLimits, decode_audio, sniff_format
from mtspeech.serve.batching import DynamicBatcher
from mtspeech.serve.cache import AnswerCache, cache_key


def _encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_decodes_any_rate_and_channels_to_16k_mono(fmt: str) -> None:
    data = _encode(_tone(0.5, 44100, channels=2), 44100, fmt)
    audio = decode_audio(data, "application/octet-stream")
    assert audio.source_rate == 44100 and audio.source_channels == 2
    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert abs(audio.duration - 0.5) < 0.01
    # The tone survives resampling: its energy stays near the original's (0.3 amplitude sine -> rms 0.212).
    assert abs(float(np.sqrt(np.mean(audio.samples[1000:-1000] ** 2))) - 0.212) < 0.02


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_mp3_through_ffmpeg_or_libsndfile(tmp_path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, _tone(0.6, 22050), 22050)
    mp3 = tmp_path / "a.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(mp3)], check=True)
    data = mp3.read_bytes()
    assert sniff_format(data) == "mp3"
    audio = decode_audio(data, "audio/mpeg")
    assert 0.55 < audio.duration < 0.75


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"),
    [
        (b"", "audio/wav", 422, "empty"),
        (b"hello world, not audio", "text/plain", 415, "content type"),
        (b"\x00\x01garbage" * 10, "application/octet-stream", 415, "not a recognised audio"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt broken", "audio/wav", 422, "could not be decoded"),
    ],
)
def test_bad_input_gets_its_status(data: bytes, content_type: str, status: int, words: str) -> None:
    with pytest.raises(AudioError) as err:
        decode_audio(data, content_type)
    assert err.value.status == status
    assert words in err.value.message


def test_limits_on_bytes_and_seconds() -> None:
    data = _encode(_tone(2.0, 16000), 16000, "WAV")
    with pytest.raises(AudioError) as err:
        decode_audio(data, "audio/wav", AudioLimits(max_bytes=1000))
    assert err.value.status == 413 and "bytes" in err.value.message
    with pytest.raises(AudioError) as err:
        decode_audio(data, "audio/wav", AudioLimits(max_seconds=1.0))
    assert err.value.status == 413 and "lasts 2.0 s" in err.value.message


def test_zero_length_wav_is_422() -> None:
    data = _encode(np.zeros(0, dtype=np.float32), 16000, "WAV")
    with pytest.raises(AudioError) as err:
        decode_audio(data, "audio/wav")
    assert err.value.status == 422


def test_batcher_groups_concurrent_items_and_returns_each_its_own() -> None:
    seen_sizes: list[int] = []

    def run(items):
        seen_sizes.append(len(items))
        return [ValueError(f"bad {x}") if x == 13 else x * 10 for x in items]

    async def main():
        batcher = DynamicBatcher(run, max_batch_size=8, max_wait_ms=50)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)), return_exceptions=True)
        await batcher.stop()
        return results

    results = asyncio.run(main())
    for i, result in enumerate(results):
        if i == 13:
            assert isinstance(result, ValueError) and "bad 13" in str(result)
        else:
            assert result == i * 10
    assert max(seen_sizes) == 8 and sum(seen_sizes) == 20 and len(seen_sizes) < 20


def test_batcher_without_waiting_runs_alone() -> None:
    async def main():
        batcher = DynamicBatcher(lambda items: [len(items)] * len(items), max_batch_size=4, max_wait_ms=0)
        return [await batcher.submit(i) for i in range(3)]

    assert asyncio.run(main()) == [1, 1, 1]


def test_cache_is_lru_and_keyed_by_audio_and_tasks() -> None:
    cache = AnswerCache(capacity=2)
    a, b, c = cache_key(b"a", ["lid", "asr"]), cache_key(b"b", ["asr"]), cache_key(b"c", ["asr"])
    assert a == cache_key(b"a", ["asr", "lid"]) and a != cache_key(b"a", ["asr"])
    cache.put(a, 1)
    cache.put(b, 2)
    assert cache.get(a) == 1  # a becomes most recent
    cache.put(c, 3)  # evicts b
    assert cache.get(b) is None and cache.get(c) == 3
    assert (cache.hits, cache.misses) == (2, 1)


def test_batcher_batches_what_queued_behind_a_running_batch_without_waiting() -> None:
    import threading
    import time

    sizes: list[int] = []
    running = threading.Event()

    def run(items):
        sizes.append(len(items))
        running.set()
        time.sleep(0.2)  # the first batch is busy while the others arrive
        return list(items)

    async def main():
        batcher = DynamicBatcher(run, max_batch_size=8, max_wait_ms=0)
        await batcher.start()
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.to_thread(running.wait)
        results = await asyncio.gather(first, *(batcher.submit(i) for i in range(1, 6)))
        await batcher.stop()
        return results

    assert asyncio.run(main()) == [0, 1, 2, 3, 4, 5]
    assert sizes == [1, 5]

"""A tiny randomly initialised real model file (every task), test audio and helpers for the serving tests.

The model is built exactly as the trainer builds one (a SentencePiece tokenizer trained on a few sentences,
label vocabularies, ``resolve_model_config``) and written with ``save_model``, so the service and
``mtspeech analyze`` are tested on the real loading and inference path, only without training."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mtspeech.data.labels import LabelVocab, bio_tags_for
from mtspeech.data.schema import ACCENTS, EMOTIONS, GENDERS, LANGUAGES
from mtspeech.data.tokenizer import train_tokenizer
from mtspeech.model.config import ModelConfig
from mtspeech.model.model import MultiTaskModel, resolve_model_config
from mtspeech.model.package import save_model

SENTENCES = [
    "wake me up at eight o'clock",
    "set an alarm for seven in the morning",
    "what is the weather like in paris tomorrow",
    "play some jazz music in the kitchen",
    "quel temps fait il a paris",
    "wie wird das wetter morgen in berlin",
    "pon musica en la cocina",
    "che tempo fa domani a roma",
]
INTENTS = ["alarm_set", "weather_query", "play_music"]
ALL_TASKS = ("asr_ctc", "decoder", "intent", "lid", "emotion", "speaker", "gender", "accent", "slots", "vad")
SAMPLE_RATE = 16000

_built: dict[tuple, Path] = {}


def build_model_file(
    path: Path,
    tasks: tuple[str, ...] = ALL_TASKS,
    seed: int = 0,
    max_new_tokens: int = 12,
    task_options: dict[str, dict] | None = None,
) -> Path:
    """Train a tokenizer on :data:`SENTENCES`, build a tiny random model with ``tasks`` (``task_options`` added
    to their options) and save it."""
    tokenizer = train_tokenizer(SENTENCES, vocab_size=300, languages=LANGUAGES, intents=INTENTS)
    vocabs = {
        "intent": LabelVocab("intent", INTENTS),
        "lid": LabelVocab("lid", list(LANGUAGES)),
        "emotion": LabelVocab("emotion", list(EMOTIONS)),
        "speaker": LabelVocab("speaker", ["f1", "f2", "m1", "m2"]),
        "gender": LabelVocab("gender", list(GENDERS)),
        "accent": LabelVocab("accent", list(ACCENTS)),
        "slot": LabelVocab("slot", bio_tags_for(["time", "place_name"])),
    }
    options: dict[str, dict] = {name: {} if name == "intent_text" else {"dropout": 0.0} for name in tasks}
    if "decoder" in options:
        options["decoder"]["max_new_tokens"] = max_new_tokens
    for name, extra in (task_options or {}).items():
        options[name].update(extra)
    config = ModelConfig.from_dict({"encoder": {"preset": "tiny", "dropout": 0.0}, "tasks": options})
    torch.manual_seed(seed)
    model = MultiTaskModel(resolve_model_config(config, tokenizer, vocabs)).eval()
    return save_model(path, model, tokenizer, vocabs, {"version": f"test-{seed}", "tasks": list(tasks)})


def cached_model_file(directory: Path, tasks: tuple[str, ...] = ALL_TASKS, seed: int = 0) -> Path:
    """:func:`build_model_file` once per test process and argument set."""
    key = (tasks, seed)
    if key not in _built:
        _built[key] = build_model_file(directory / f"model-{seed}-{len(tasks)}.pt", tasks, seed)
    return _built[key]


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_model_file(tmp_path_factory.getbasetemp())


def voice_like(seconds: float, seed: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A distinct, speech-like test signal: a pitch-modulated harmonic buzz in syllable bursts, then silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 110 + 60 * rng.random() + 20 * np.sin(2 * np.pi * (1 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    buzz = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = (np.sin(2 * np.pi * (3 + 2 * rng.random()) * t) > -0.2).astype(float)
    syllables[int(0.8 * len(t)) :] = 0.0  # a silent tail for the VAD segments
    wave = 0.2 * buzz * syllables + 0.003 * rng.standard_normal(len(t))
    return wave.astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


def write_wav(path: Path, seconds: float, seed: int) -> Path:
    sf.write(path, voice_like(seconds, seed), SAMPLE_RATE)
    return path


FAST = {"beam_size": 2, "max_tokens": 8}  # small searches: random decoders would otherwise run to the length cap


def fast_analyzer(path: Path, **options):
    """The analyzer every serving test uses: the real inference path with short searches."""
    from mtspeech.serve.inference import load_analyzer

    return load_analyzer(path, **FAST, **options)


def comparable(answer: dict) -> dict:
    """An answer without what legitimately differs between two runs (timings, batching, cache, model info)."""
    drop = {"timings_ms", "batch_size", "cached", "model", "audio", "file"}
    return {k: v for k, v in answer.items() if k not in drop}


def assert_same_answer(got, expected, tol: float = 2e-3, where: str = "answer") -> None:
    """Equal labels, texts and structure; probabilities and times equal within ``tol`` (batched and unbatched
    forward passes round differently in the last float bits)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{where}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            assert_same_answer(got[key], expected[key], tol, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: {got!r} != {expected!r}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_same_answer(g, e, tol, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(got, int | float) and abs(got - expected) <= tol, f"{where}: {got} != {expected}"
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"

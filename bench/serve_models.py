"""Models for the serving benchmark: the multi-task model under test, same-architecture single-task models, and
the cascade baseline's text classifiers (intent and sentiment over tokenizer ids).

The cascade's text classifier is a bag of token embeddings + a linear layer (fastText-style), written here in a
few lines because it only has to be a cheap, honest baseline: train it on the corpus transcripts in seconds."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtspeech.data.labels import LabelVocab
from mtspeech.data.tokenizer import Tokenizer
from mtspeech.model.config import ModelConfig
from mtspeech.model.model import MultiTaskModel, resolve_model_config
from mtspeech.model.package import LoadedModel, load_model, save_model

ALL_TASKS = ("asr_ctc", "decoder", "intent", "lid", "emotion", "speaker", "gender", "accent", "slots", "vad")
# The five tasks of the "one model vs five models" comparison: service task -> the model tasks it needs alone.
SINGLE_TASKS: dict[str, tuple[str, ...]] = {
    "asr": ("asr_ctc",),
    "language": ("lid",),
    "intent": ("intent",),
    "emotion": ("emotion",),
    "vad": ("vad",),
}


def random_model(cuts: Any, directory: Path, preset: str = "small") -> Path:
    """A randomly initialised model with every task the corpus has labels for, tokenizer and vocabularies built
    from ``cuts`` as training would; saved to ``directory/multitask.pt``."""
    from mtspeech.data.labels import build_label_vocabs
    from mtspeech.data.tokenizer import train_tokenizer_from_cuts

    cuts = list(cuts)
    tokenizer = train_tokenizer_from_cuts(cuts, vocab_size=1000)
    vocabs = {name: vocab for name, vocab in build_label_vocabs(cuts).items() if len(vocab) > 0}
    tasks = [t for t in ALL_TASKS if t not in ("intent", "speaker", "gender", "accent") or len(vocabs.get(t, [])) > 1]
    return _build(tasks, preset, tokenizer, vocabs, directory / "multitask.pt", seed=0)


def _build(
    tasks: Sequence[str],
    encoder: dict[str, Any] | str,
    tokenizer: Tokenizer,
    vocabs: dict[str, LabelVocab],
    path: Path,
    seed: int,
) -> Path:
    encoder_config = {"preset": encoder} if isinstance(encoder, str) else encoder
    config = ModelConfig.from_dict({"encoder": encoder_config, "tasks": {t: {} for t in tasks}})
    torch.manual_seed(seed)
    model = MultiTaskModel(resolve_model_config(config, tokenizer, vocabs)).eval()
    return save_model(path, model, tokenizer, vocabs, {"version": f"bench random {'+'.join(tasks)}"})


def single_task_models(loaded: LoadedModel, directory: Path, asr_tasks: Sequence[str]) -> dict[str, Path]:
    """One model per task of :data:`SINGLE_TASKS`, each the same encoder as ``loaded`` with that task's head only
    (random weights: only their speed is measured). ``asr_tasks``: what the ASR decoding mode needs."""
    encoder = loaded.model.config.encoder.model_dump()
    paths = {}
    for index, (service_task, tasks) in enumerate(SINGLE_TASKS.items()):
        needed = tuple(asr_tasks) if service_task == "asr" else tasks
        path = directory / f"single-{service_task}.pt"
        paths[service_task] = _build(needed, encoder, loaded.tokenizer, loaded.vocabs, path, seed=index + 1)
    return paths


class BagOfTokens(nn.Module):
    """Mean of token embeddings -> linear: a fastText-like text classifier."""

    def __init__(self, vocab_size: int, num_classes: int, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean")
        self.out = nn.Linear(dim, num_classes)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(ids, offsets))


@dataclass
class TextClassifier:
    model: BagOfTokens
    labels: list[str]
    tokenizer: Tokenizer

    def predict(self, texts: Sequence[str]) -> list[str]:
        ids, offsets = _pack([self.tokenizer.encode(t) or [self.tokenizer.unk_id] for t in texts])
        with torch.inference_mode():
            return [self.labels[i] for i in self.model(ids, offsets).argmax(-1).tolist()]


def _pack(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    offsets = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()[:-1]], dtype=torch.long)
    return torch.tensor([i for r in rows for i in r], dtype=torch.long), offsets


def train_text_classifier(
    texts: Sequence[str], labels: Sequence[str], tokenizer: Tokenizer, epochs: int = 60, seed: int = 0
) -> tuple[TextClassifier, float]:
    """Full-batch Adam on (text, label) pairs; returns the classifier and its training seconds."""
    started = time.perf_counter()
    names = sorted(set(labels))
    torch.manual_seed(seed)
    model = BagOfTokens(tokenizer.vocab_size, max(len(names), 2))
    ids, offsets = _pack([tokenizer.encode(t) or [tokenizer.unk_id] for t in texts])
    targets = torch.tensor([names.index(label) for label in labels])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(ids, offsets), targets)
        loss.backward()
        optimizer.step()
    return TextClassifier(model.eval(), names, tokenizer), time.perf_counter() - started


def cascade_classifiers(cuts: Any, tokenizer: Tokenizer) -> dict[str, Any]:
    """Intent and sentiment (emotion words) classifiers trained on the corpus' transcripts."""
    intent_pairs, emotion_pairs = [], []
    for cut in cuts:
        for sup in cut.supervisions:
            custom = sup.custom or {}
            if sup.text and custom.get("intent"):
                intent_pairs.append((sup.text, custom["intent"]))
            if sup.text and custom.get("emotion"):
                emotion_pairs.append((sup.text, custom["emotion"]))
    intent, intent_seconds = train_text_classifier(*zip(*intent_pairs, strict=True), tokenizer)
    sentiment, sentiment_seconds = train_text_classifier(*zip(*emotion_pairs, strict=True), tokenizer)
    return {
        "intent": intent,
        "sentiment": sentiment,
        "train_seconds": round(intent_seconds + sentiment_seconds, 2),
        "train_sentences": {"intent": len(intent_pairs), "sentiment": len(emotion_pairs)},
    }


def load(path: Path) -> LoadedModel:
    return load_model(path)

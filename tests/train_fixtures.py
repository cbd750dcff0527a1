"""A tiny on-disk corpus and training config for the trainer tests (CPU, seconds per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pipeline_fixtures import make_fixture_cuts

from mtspeech.data.corpus import manifest_path
from mtspeech.train.config_file import deep_merge


def make_train_corpus(directory: Path) -> Path:
    """The eight pipeline fixture cuts (every label kind, and missing labels) as both train and valid split."""
    cuts = make_fixture_cuts(directory / "audio")
    for split in ("train", "valid"):
        path = manifest_path(directory, "cuts", split)
        path.parent.mkdir(parents=True, exist_ok=True)
        cuts.to_file(path)
    return directory


def tiny_train_config(corpus: Path, output_dir: Path, max_duration: float = 12.0, **overrides: Any) -> dict[str, Any]:
    """A config dict for a few-step run of a tiny model with five tasks; ``overrides`` deep-merge into it.

    ``max_duration`` (seconds per batch) must be at least the longest cut of ``corpus``."""
    config: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": 6,
        "log_every": 1,
        "valid_every": 3,
        "checkpoint_every": 3,
        "keep_last_k": 2,
        "progress_bar": False,
        "seed": 3,
        "data": {
            "corpora": [{"path": str(corpus)}],
            "max_duration": max_duration,
            "num_buckets": 2,
            "valid_max_cuts": 4,
        },
        "tokenizer": {"vocab_size": 300},
        "model": {
            "encoder": {"preset": "tiny", "num_blocks": 1},
            "tasks": {"asr_ctc": {}, "decoder": {"max_new_tokens": 8}, "intent": {}, "lid": {}, "vad": {}},
        },
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "balancer": {"telemetry_every": 2},
    }
    return deep_merge(config, overrides)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path

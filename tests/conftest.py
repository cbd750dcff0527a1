"""Fixtures shared by the test files: the tiny synthetic corpus, spoken once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_SEED = 0

# pytest-xdist runs two workers on a two-core machine: more intra-op threads per worker only adds contention
# (tiny-tensor tests ran ~20x slower with two threads each under load).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mtspeech corpus synth --size tiny --seed 0`` (72 utterances, every task's labels in every split).

    Needs espeak-ng (scripts/setup.sh installs it); the corpus directory is shared, so do not modify it."""
    from mtspeech.data.synth.build import synthesize

    out = tmp_path_factory.mktemp("synth-tiny")
    return synthesize(out, size="tiny", seed=TINY_SEED, num_jobs=2, show_progress=False)

"""A packaged model: ONE file that holds everything needed to run the model on audio.

Contents (a ``torch.save`` dict, read back with ``weights_only=True``: a model file is data, never code)::

    format        "mtspeech-model"          tells a model file from a training checkpoint or a foreign file
    version       1                         layout version of this dict
    mtspeech      "0.1.0"                   the library version that wrote it (informational)
    config        ModelConfig as a JSON-able dict (every data-dependent size already filled in)
    tokenizer     Tokenizer.to_bytes()      SentencePiece model + special-token layout
    vocabs        task -> LabelVocab.to_dict()
    state_dict    the weights (front-end CMVN statistics included)
    metadata      JSON-able dict chosen by the writer (training step, metrics, corpus names, ...)

The file is written to a temporary name in the target directory and renamed over the target, so a crash never
leaves a half-written model where a complete one was expected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mtspeech.data.labels import LabelVocab, vocabs_from_dict, vocabs_to_dict
from mtspeech.data.tokenizer import Tokenizer
from mtspeech.decode.lm import TokenNgramLM
from mtspeech.errors import UserError
from mtspeech.model.config import ModelConfig
from mtspeech.model.model import MultiTaskModel

MODEL_FORMAT = "mtspeech-model"
MODEL_VERSION = 1
_WRITTEN_BY = "written by `mtspeech train` (RUN/model.pt) or save_model"
_REQUIRED_KEYS = ("config", "tokenizer", "vocabs", "state_dict", "metadata")


@dataclass
class LoadedModel:
    """What :func:`load_model` returns; the model is in eval mode."""

    model: MultiTaskModel
    tokenizer: Tokenizer
    vocabs: dict[str, LabelVocab]
    metadata: dict[str, Any] = field(default_factory=dict)
    lm: TokenNgramLM | None = None  # the n-gram LM for shallow fusion, when `mtspeech lm` added one

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def save_model(
    path: str | Path,
    model: MultiTaskModel,
    tokenizer: Tokenizer,
    vocabs: Mapping[str, LabelVocab],
    metadata: Mapping[str, Any] | None = None,
    lm: TokenNgramLM | None = None,
) -> Path:
    """Write ``model`` with its tokenizer, label vocabularies, ``metadata`` (JSON-able) and optionally an n-gram
    LM to ``path`` atomically."""
    from mtspeech import __version__
    from mtspeech.train.checkpoint import atomic_torch_save

    metadata = dict(metadata or {})
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model metadata must be JSON-serialisable (dicts, lists, numbers, text): {err}") from None
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "mtspeech": __version__,
        "config": model.config.model_dump(mode="json"),
        "tokenizer": tokenizer.to_bytes(),
        "vocabs": vocabs_to_dict(vocabs),
        # clone(): tied weights would otherwise be saved as views of one storage; plain tensors load anywhere
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    if lm is not None:
        payload["lm"] = lm.to_dict()
    return atomic_torch_save(payload, path)


def _read_payload(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    if not path.exists():
        raise UserError("model file not found", path=path)
    if not path.is_file():
        raise UserError(f"expected a model file ({_WRITTEN_BY}), got a directory", path=path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"cannot read the model file (truncated, corrupted or not a torch file): {reason[:200]}; "
            f"expected an {MODEL_FORMAT!r} file {_WRITTEN_BY}",
            path=path,
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != MODEL_FORMAT:
        is_checkpoint = found == "mtspeech-train-checkpoint"
        hint = " (a training checkpoint; the run's model file is RUN/model.pt)" if is_checkpoint else ""
        raise UserError(
            f"not an mtspeech model file: format is {found!r}{hint}; expected {MODEL_FORMAT!r} {_WRITTEN_BY}",
            path=path,
        )
    if payload.get("version") != MODEL_VERSION:
        raise UserError(
            f"model file version {payload.get('version')!r}; this mtspeech reads version {MODEL_VERSION}", path=path
        )
    missing = [key for key in _REQUIRED_KEYS if key not in payload]
    if missing:
        raise UserError(f"model file lacks {', '.join(missing)} (damaged or written by other software)", path=path)
    return payload


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Read a file written by :func:`save_model`; any problem with it is a UserError naming ``path``."""
    path = Path(path)
    payload = _read_payload(path, map_location)
    config = ModelConfig.from_dict(payload["config"], source=path)
    try:
        tokenizer = Tokenizer.from_bytes(payload["tokenizer"])
        vocabs = vocabs_from_dict(payload["vocabs"])
    except (ValueError, TypeError, AttributeError, UserError) as err:
        raise UserError(f"model file holds an unreadable tokenizer or label vocabulary: {err}", path=path) from None
    model = MultiTaskModel(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()
        raise UserError(
            f"model weights do not match the model config stored with them: {' '.join(first[:3])[:400]}", path=path
        ) from None
    model.to(map_location).eval()
    metadata = payload["metadata"] if isinstance(payload["metadata"], dict) else {}
    lm = None
    if payload.get("lm") is not None:
        try:
            lm = TokenNgramLM.from_dict(payload["lm"])
        except (KeyError, TypeError, ValueError, AttributeError, UserError) as err:
            raise UserError(f"model file holds an unreadable n-gram language model: {err}", path=path) from None
    return LoadedModel(model, tokenizer, vocabs, metadata, lm)

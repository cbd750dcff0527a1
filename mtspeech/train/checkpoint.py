"""Training checkpoints: atomic writes, keep-last-k rotation, a separate best checkpoint, and safe loading.

A checkpoint is one ``torch.save`` file holding everything a run needs to continue exactly where it stopped
(model, optimizer, scheduler, scaler, EMA, balancer, curriculum, data position, RNG states; see
:mod:`mtspeech.train.state`). It is written to a temporary file, fsynced and renamed over the target, so a run
killed mid-write leaves the previous checkpoint intact. Loading uses ``weights_only=True``: a checkpoint is data,
never code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from mtspeech.errors import UserError

CHECKPOINT_FORMAT = "mtspeech-train-checkpoint"
CHECKPOINT_VERSION = 1
BEST_NAME = "best.pt"
_STEP_FILE = re.compile(r"^step-(\d+)\.pt$")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); silently skipped where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same directory, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_directory(path.parent)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint; a missing, corrupted or foreign file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint file not found", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read checkpoint (corrupted or not a torch file): {reason[:200]}", path=path) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(
            "not an mtspeech training checkpoint (a packaged model or a foreign file?); "
            "--resume needs a step-*.pt or best.pt written by `mtspeech train`",
            path=path,
        )
    version = state.get("version")
    if version != CHECKPOINT_VERSION:
        raise UserError(f"checkpoint version {version!r}; this mtspeech reads {CHECKPOINT_VERSION}", path=path)
    return state


class CheckpointManager:
    """``DIR/step-00001000.pt`` files (the newest ``keep_last_k`` kept) and ``DIR/best.pt``."""

    def __init__(self, directory: str | Path, keep_last_k: int = 3) -> None:
        if keep_last_k < 1:
            raise ValueError(f"keep_last_k must be >= 1, got {keep_last_k}")
        self.directory = Path(directory)
        self.keep_last_k = keep_last_k

    def step_path(self, step: int) -> Path:
        return self.directory / f"step-{step:08d}.pt"

    @property
    def best_path(self) -> Path:
        return self.directory / BEST_NAME

    def step_checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every step checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _STEP_FILE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> Path | None:
        checkpoints = self.step_checkpoints()
        return checkpoints[-1][1] if checkpoints else None

    def save(self, state: dict[str, Any], step: int) -> Path:
        """Write the checkpoint of ``step`` and delete step checkpoints beyond the newest ``keep_last_k``."""
        path = atomic_torch_save(stamp(state), self.step_path(step))
        for _, old in self.step_checkpoints()[: -self.keep_last_k]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        return atomic_torch_save(stamp(state), self.best_path)


def stamp(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the format marker and version that :func:`load_checkpoint` checks."""
    return {**state, "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION}

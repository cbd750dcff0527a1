"""Run logs: one JSON object per line (``train.jsonl``) plus TensorBoard scalars, written by rank 0 only.

Each record has ``step``, ``kind`` (``train`` / ``valid`` / ``event``) and flat scalar keys such as
``loss/intent``, ``weight/intent``, ``lr``, ``intent/accuracy``. On resume the log is cut back to the
checkpoint's step, so steps that were logged after the last checkpoint and are now re-run appear once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOG_NAME = "train.jsonl"


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``train.jsonl`` (a torn last line, from a killed run, is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; keep the file parseable by strict readers
    return value


class RunLog:
    """Append-only JSONL log + optional TensorBoard writer. Create only on rank 0."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / LOG_NAME
        if resume_step is not None:
            kept = [r for r in read_log(self.path) if int(r.get("step", 0)) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the tensorboard package is optional at run time
                logger.warning("tensorboard is not installed; writing only %s", LOG_NAME)
            else:
                purge = None if resume_step is None else resume_step + 1
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        record = {"step": int(step), "kind": kind, "time": round(time.time(), 3)}
        record.update({k: _json_value(v) for k, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

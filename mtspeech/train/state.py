"""What a checkpoint holds, how a run is restored from one, and how the final model file is exported.

A checkpoint captures *all* state that decides what happens next: weights, optimizer moments, LR schedule,
fp16 loss scale, EMA, balancer and curriculum state, every rank's data position and RNG states, the latest
validation metrics (the curriculum reads them) and the logging window. Restoring it makes the continued run
produce the same batches and the same losses as one that was never interrupted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mtspeech.errors import UserError
from mtspeech.model.model import MultiTaskModel
from mtspeech.model.package import save_model
from mtspeech.train.build import Run
from mtspeech.train.checkpoint import load_checkpoint
from mtspeech.train.config import config_to_dict
from mtspeech.train.distributed import gather_objects
from mtspeech.train.rng import capture_rng_state, restore_rng_state

MODEL_FILE = "model.pt"
# Config sections that must not change between a checkpoint and its resumption (the weights, data order or
# balancer state would not fit); anything else (budget, cadence, logging) may be changed on resume.
FROZEN_KEYS = ("seed", "model", "tokenizer", "data.corpora", "balancer.name", "distributed.strategy")


@dataclass
class Progress:
    """Loop counters that travel with a checkpoint."""

    step: int = 0
    elapsed_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)  # latest validation metrics
    best_value: float | None = None
    best_step: int | None = None
    log_window: dict[str, Any] = field(default_factory=dict)


# --- model and optimizer state (plain or FSDP-sharded) -----------------------------------------------------
def model_state(run: Run) -> dict[str, torch.Tensor]:
    if run.fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(run.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}


def optimizer_state(run: Run) -> dict[str, Any]:
    if run.fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(run.model, run.optimizer, options=options)
    return run.optimizer.state_dict()


def _load_model_and_optimizer(run: Run, state: dict[str, Any], path: Path) -> None:
    try:
        if run.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True)
            set_model_state_dict(run.model, state["model"], options=options)
            set_optimizer_state_dict(run.model, run.optimizer, state["optimizer"], options=options)
        else:
            run.model.load_state_dict(state["model"], strict=True)
            run.optimizer.load_state_dict(state["optimizer"])
        if run.balancer_optimizer is not None:
            run.balancer_optimizer.load_state_dict(state["balancer_optimizer"])
    except (RuntimeError, KeyError, ValueError) as err:
        first = " ".join(str(err).strip().splitlines()[:2])[:300]
        raise UserError(f"checkpoint does not fit this model/optimizer: {first}", path=path) from None


# --- save ---------------------------------------------------------------------------------------------------
def checkpoint_state(run: Run, progress: Progress) -> dict[str, Any] | None:
    """The full checkpoint dict on rank 0 (None on other ranks). Collective: every rank must call it."""
    per_rank = gather_objects({"data": run.stream.state_dict(), "rng": capture_rng_state()}, run.env)
    weights = model_state(run)
    optimizer = optimizer_state(run)
    if not run.env.is_main:
        return None
    return {
        "step": progress.step,
        "progress": asdict(progress),
        "world_size": run.env.world_size,
        "config": config_to_dict(run.config),
        "model_config": run.model.config.model_dump(mode="json"),
        "model": weights,
        "optimizer": optimizer,
        "balancer_optimizer": run.balancer_optimizer.state_dict() if run.balancer_optimizer else None,
        "schedulers": [s.state_dict() for s in run.schedulers],
        "scaler": run.scaler.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "balancer": run.balancer.state_dict(),
        "curriculum": run.curriculum.state_dict(),
        "data": [part["data"] for part in per_rank],
        "rng": [part["rng"] for part in per_rank],
    }


# --- restore --------------------------------------------------------------------------------------------------
def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def check_compatible(run: Run, state: dict[str, Any], path: Path) -> None:
    """A UserError naming every frozen config key that differs from the checkpoint's."""
    saved, current = state.get("config", {}), config_to_dict(run.config)
    changed = [key for key in FROZEN_KEYS if _lookup(saved, key) != _lookup(current, key)]
    if state.get("model_config") != run.model.config.model_dump(mode="json") and "model" not in changed:
        changed.append("model (sizes filled from the tokenizer/vocabularies)")
    if changed:
        raise UserError(
            f"the config differs from the checkpoint's in {', '.join(changed)}; a run can only be resumed with "
            "the same model, data and balancer (start a new output_dir to change them)",
            path=path,
        )
    if state.get("world_size") != run.env.world_size:
        raise UserError(
            f"checkpoint was written by {state.get('world_size')} process(es), this run has {run.env.world_size}; "
            "resume with the same number so every rank continues its own data shard",
            path=path,
        )


def restore(run: Run, path: Path) -> Progress:
    """Load ``path`` into every component of ``run`` (all ranks read the file) and return the loop counters."""
    state = load_checkpoint(path)
    check_compatible(run, state, path)
    _load_model_and_optimizer(run, state, path)
    for scheduler, scheduler_state in zip(run.schedulers, state["schedulers"], strict=True):
        scheduler.load_state_dict(scheduler_state)
    run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None:
        if state.get("ema") is None:
            raise UserError("optim.ema is enabled but the checkpoint was trained without an EMA", path=path)
        run.ema.load_state_dict(state["ema"])
    run.balancer.load_state_dict(state["balancer"])
    run.curriculum.load_state_dict(state["curriculum"])
    run.stream.load_state_dict(state["data"][run.env.rank])
    restore_rng_state(state["rng"][run.env.rank])
    return Progress(**state["progress"])


# --- export ---------------------------------------------------------------------------------------------------
def export_model(
    run: Run, progress: Progress, weights: dict[str, torch.Tensor], source: str, stopped_by: str = "max_steps"
) -> Path:
    """Write ``RUN/model.pt`` (config + tokenizer + vocabularies + ``weights``) with training metadata;
    ``stopped_by`` says which budget ended the run (``max_steps`` or ``max_minutes``)."""
    model = MultiTaskModel(run.model.config)
    model.load_state_dict(weights, strict=True)
    metadata = {
        "trained_steps": progress.step,
        "stopped_by": stopped_by,
        "train_seconds": round(progress.elapsed_seconds, 1),  # wall time of the loop, validation included
        "weights": source,
        "best_metric": run.config.best_metric,
        "best_value": progress.best_value,
        "best_step": progress.best_step,
        "valid_metrics": progress.metrics,
        "corpora": [str(c.path) for c in run.config.data.corpora],
        "balancer": run.config.balancer.name,
        "train_config": config_to_dict(run.config),
    }
    return save_model(run.run_dir / MODEL_FILE, model, run.tokenizer, run.vocabs, metadata)


def export_weights(run: Run, progress: Progress) -> tuple[dict[str, torch.Tensor], str] | None:
    """The weights to export (collective under FSDP): the best checkpoint's when ``export: best`` and one
    exists, else the current ones; the EMA average whenever EMA is on. None on ranks other than 0."""
    current = model_state(run)
    if not run.env.is_main:
        return None
    if run.config.export == "best" and run.checkpoints.best_path.is_file():
        best = load_checkpoint(run.checkpoints.best_path)
        if best.get("ema") is not None:
            return _with_ema(best["model"], best["ema"]), f"best (step {best['step']}, EMA)"
        return best["model"], f"best (step {best['step']})"
    if run.ema is not None:
        return _with_ema(current, run.ema.state_dict()), f"final (step {progress.step}, EMA)"
    return current, f"final (step {progress.step})"


def _with_ema(weights: dict[str, torch.Tensor], ema: dict[str, Any]) -> dict[str, torch.Tensor]:
    merged = dict(weights)
    for key, value in ema["shadow"].items():
        merged[key] = value.to(weights[key].dtype)
    return merged

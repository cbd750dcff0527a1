"""The training loop: micro-batches -> balanced backward -> (all-reduce) -> clip -> step, with validation,
checkpoints, logs and plots on a fixed cadence.

One optimizer step::

    multipliers = curriculum.multipliers(step, latest valid metrics)       # 0 = task off, ramps in (0, 1)
    for each of accumulation_steps micro-batches:
        out = model(batch, active tasks)                                     # ONE encoder pass
        warming-up heads (curriculum head_start_step): own backward on the detached encoder output
        balancer.backward({t: multiplier_t * loss_t}, shared_repr=out.enc, loss_scale=fp16 scale / accumulation)
    balancer.before_step()                                                   # e.g. PCGrad projects here
    average .grad over ranks (data parallel)  ->  unscale (fp16)  ->  clip  ->  optimizer.step()
    scheduler.step(); ema.update(); model.set_progress(step / max_steps)

SIGTERM/SIGINT (a scheduler pre-empting the job, Ctrl-C) finish the current step, write a checkpoint and stop;
``mtspeech train CONFIG --resume`` continues from there.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtspeech.errors import UserError
from mtspeech.train.build import Run, build_run, describe
from mtspeech.train.config import TrainConfig
from mtspeech.train.distributed import (
    all_reduce_max,
    all_reduce_sum,
    average_buffers,
    average_gradients,
    shutdown_distributed,
)
from mtspeech.train.optim import clip_gradients
from mtspeech.train.plots import write_plots
from mtspeech.train.progress import TrainProgressBar
from mtspeech.train.rng import isolated_rng
from mtspeech.train.run_log import RunLog, read_log
from mtspeech.train.state import Progress, checkpoint_state, export_model, export_weights, restore
from mtspeech.train.telemetry import plot_telemetry, write_record
from mtspeech.train.validation import validate

TELEMETRY_LOG = "telemetry.jsonl"


@dataclass
class TrainResult:
    steps: int
    stopped_by: str  # "max_steps" | "max_minutes" | "signal"
    model_path: Path | None
    metrics: dict[str, float]
    run_dir: Path


class LossWindow:
    """Sums of per-task losses over the steps since the last log line (saved in checkpoints for exact logs)."""

    def __init__(self, tasks: list[str], state: dict[str, Any] | None = None) -> None:
        self.tasks = tasks
        self.sums = dict.fromkeys(tasks, 0.0)
        self.counts = dict.fromkeys(tasks, 0)
        if state:
            self.sums.update(state["sums"])
            self.counts.update(state["counts"])

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for task, loss in losses.items():
            self.sums[task] += float(loss.detach())
            self.counts[task] += 1

    def reduce(self, run: Run) -> dict[str, float]:
        """Mean per task over the window and all ranks (collective), then reset."""
        rows = [[self.sums[t] for t in self.tasks], [self.counts[t] for t in self.tasks]]
        values = torch.tensor(rows, dtype=torch.float64)
        values = all_reduce_sum(values, run.env).cpu()
        self.sums = dict.fromkeys(self.tasks, 0.0)
        self.counts = dict.fromkeys(self.tasks, 0)
        return {t: float(values[0, i] / values[1, i]) for i, t in enumerate(self.tasks) if values[1, i] > 0}

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    # A tie goes to the later step: the same score after more training (a metric still at its floor, e.g. CER
    # 100% early on, would otherwise pin "best" to the first validation).
    return value <= best if mode == "min" else value >= best


def _valid_record(metrics: dict[str, float]) -> dict[str, float]:
    """Validation metrics as log keys: ``loss`` -> ``loss/total``, ``TASK.loss`` -> ``loss/TASK``."""
    record = {}
    for key, value in metrics.items():
        if key == "loss":
            record["loss/total"] = value
        elif key.endswith(".loss"):
            record[f"loss/{key[: -len('.loss')]}"] = value
        else:
            record[key] = value
    return record


class Trainer:
    """Runs one training job (one process of it, under torchrun) from a validated :class:`TrainConfig`."""

    def __init__(self, config: TrainConfig, resume: bool = False) -> None:
        self.config = config
        self.resume = resume
        self._stop_signal = False

    # --- public ---------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        try:
            with ExitStack() as stack:
                self._install_signal_handlers(stack)
                return self._run()
        finally:
            shutdown_distributed()

    # --- setup ----------------------------------------------------------------------------------------------
    def _install_signal_handlers(self, stack: ExitStack) -> None:
        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_signal and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            self._stop_signal = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.signal(sig, request_stop)
            except ValueError:  # not the main thread (e.g. inside a test runner's worker thread)
                continue
            stack.callback(signal.signal, sig, previous)

    def _run(self) -> TrainResult:
        config = self.config
        run = build_run(config, self.resume)
        self.run_state = run
        progress = Progress()
        if self.resume:
            latest = run.checkpoints.latest()
            if latest is None:
                raise UserError("--resume: no step-*.pt checkpoint to resume from", path=run.checkpoints.directory)
            progress = restore(run, latest)
        log = None
        if run.env.is_main:
            log = RunLog(run.run_dir, config.tensorboard, resume_step=progress.step if self.resume else None)
            if self.resume:
                self._truncate_telemetry(run, progress.step)
        window = LossWindow(run.tasks, progress.log_window)
        if log is not None:
            log.write(progress.step, "event", {"event": "resume" if self.resume else "start", **_flat(describe(run))})
        bar = TrainProgressBar(config.max_steps, progress.step, enabled=config.progress_bar and run.env.is_main)
        stopped_by = "max_steps"
        weights: dict[str, float] = {}
        run.model.train()
        started = time.monotonic() - progress.elapsed_seconds
        try:
            with bar:
                while progress.step < config.max_steps:
                    step_start = time.monotonic()
                    multipliers, step_weights = self._train_step(run, progress, window)
                    weights.update(step_weights)
                    progress.step += 1
                    progress.elapsed_seconds = time.monotonic() - started
                    stop = self._stop_reason(run, progress)
                    last = stop is not None or progress.step >= config.max_steps
                    if progress.step % config.log_every == 0 or last:
                        losses = window.reduce(run)
                        if log is not None:
                            record = {f"loss/{t}": v for t, v in losses.items()}
                            record["loss/total"] = sum(losses.values()) if losses else float("nan")
                            record["lr"] = self._last_lr
                            record["grad_norm"] = self._last_grad_norm
                            record["epoch"] = run.stream.epoch
                            record["sec_per_step"] = time.monotonic() - step_start
                            record.update({f"weight/{t}": w for t, w in weights.items()})
                            record.update({f"multiplier/{t}": m for t, m in multipliers.items() if m < 1.0})
                            log.write(progress.step, "train", record)
                            bar.update(progress.step, record["loss/total"])
                    improved = False
                    if progress.step % config.valid_every == 0 or (last and stop != "signal"):
                        improved = self._validate(run, progress, log, bar)
                    checkpoint_due = progress.step % config.checkpoint_every == 0 or last
                    if checkpoint_due or improved:
                        progress.log_window = window.state_dict()
                        state = checkpoint_state(run, progress)  # collective: every rank takes part
                        if state is not None:
                            if checkpoint_due:
                                run.checkpoints.save(state, progress.step)
                            if improved:
                                run.checkpoints.save_best(state)
                        if log is not None and config.plots and checkpoint_due:
                            self._plots(run)
                    if stop is not None:
                        stopped_by = stop
                        break
                    bar.update(progress.step)
            model_path = None
            if stopped_by != "signal":
                exported = export_weights(run, progress)
                if exported is not None:
                    model_path = export_model(run, progress, *exported, stopped_by)
                    if log is not None:
                        event = {
                            "event": "export",
                            "path": str(model_path),
                            "weights": exported[1],
                            "stopped_by": stopped_by,
                        }
                        log.write(progress.step, "event", event)
        finally:
            run.stream.close()
            if log is not None:
                log.close()
        return TrainResult(progress.step, stopped_by, model_path, progress.metrics, run.run_dir)

    # --- one optimizer step ---------------------------------------------------------------------------------
    def _train_step(
        self, run: Run, progress: Progress, window: LossWindow
    ) -> tuple[dict[str, float], dict[str, float]]:
        """One optimizer step; returns the curriculum multipliers and the balancer's effective weights."""
        config = self.config
        run.model.set_progress(progress.step / config.max_steps)
        multipliers = run.curriculum.multipliers(progress.step, progress.metrics)
        # Warming-up heads train at full weight; their multiplier scales only what reaches the encoder.
        warm = run.curriculum.head_tasks(progress.step)
        active = [t for t in run.tasks if multipliers.get(t, 1.0) > 0.0 or t in warm]
        encoder_grad = {t: multipliers.get(t, 1.0) for t in warm}
        # Not yet moving the encoder; in the model's task order, so the losses are summed in the same order each run.
        heads_alone = [t for t in run.tasks if encoder_grad.get(t) == 0.0]
        accumulation = config.optim.accumulation_steps
        fp16 = run.scaler.is_enabled()
        weights: dict[str, float] = {}
        for _ in range(accumulation):
            batch = run.stream.next().to(run.env.device)
            if not active:
                continue
            with run.autocast():
                out = run.model(batch, tasks=active, encoder_grad=encoder_grad)
            window.add(out.raw_losses)
            losses = {t: loss if t in warm else loss * multipliers.get(t, 1.0) for t, loss in out.losses.items()}
            scale = float(run.scaler.scale(torch.ones((), device=run.env.device))) if fp16 else 1.0
            # Heads training alone touch no shared parameter: backpropagated apart, so no balancer (which
            # weighs gradients on the shared encoder) sees a task without one. build.py keeps FSDP out.
            alone = [losses.pop(t) for t in heads_alone if t in losses]
            if alone:
                (sum(alone[1:], alone[0]) * (scale / accumulation)).backward()
                weights.update({t: 1.0 for t in heads_alone if t in out.losses})
            if run.fsdp:
                anchor = _absent_heads_anchor(run, out, active)
                if not losses:  # nothing labelled here, but the other ranks' reduce-scatter needs our (zero) grads
                    (anchor * scale).backward()
                    continue
                first = next(iter(losses))
                losses[first] = losses[first] + anchor
            # Heads that mix encoder layers bypass the encoder output, so it is no single shared representation.
            shared = None if run.model.reads_layers else out.enc
            weights.update(run.balancer.backward(losses, shared_repr=shared, loss_scale=scale / accumulation))
        run.balancer.before_step()
        telemetry = run.balancer.pop_telemetry()
        if telemetry is not None and run.env.is_main:
            write_record(run.run_dir / TELEMETRY_LOG, telemetry)
        params = run.parameters()
        if run.fsdp:  # FSDP reduced the model's gradients in backward; the balancer's own are still local
            average_gradients(run.balancer.extra_parameters(), run.env)
        else:
            average_gradients(params, run.env)
        if fp16:
            for optimizer in run.optimizers:
                run.scaler.unscale_(optimizer)
        self._last_grad_norm = _clip(run, params, heads_alone, config.optim.grad_clip)
        for optimizer in run.optimizers:
            if fp16:
                run.scaler.step(optimizer)  # skipped when the unscaled gradients hold inf/nan
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if fp16:
            run.scaler.update()
        average_buffers(run.model, run.env)
        self._last_lr = float(run.optimizer.param_groups[0]["lr"])
        for scheduler in run.schedulers:
            scheduler.step()
        if run.ema is not None:
            run.ema.update(run.model)
        return multipliers, weights

    # --- cadence helpers ------------------------------------------------------------------------------------
    def _stop_reason(self, run: Run, progress: Progress) -> str | None:
        """Why to stop after this step, agreed by all ranks (one small all-reduce)."""
        budget = self.config.max_minutes
        over_budget = budget is not None and progress.elapsed_seconds >= budget * 60
        code = 2.0 if self._stop_signal else (1.0 if over_budget else 0.0)
        code = all_reduce_max(code, run.env)
        return {0.0: None, 1.0: "max_minutes", 2.0: "signal"}[code]

    def _validate(self, run: Run, progress: Progress, log: RunLog | None, bar: TrainProgressBar) -> bool:
        """Validate (every rank), log, and say whether the best metric improved (same answer on all ranks)."""
        if run.valid_loader is None:
            return False
        with isolated_rng(), ExitStack() as stack:
            if run.ema is not None:
                stack.enter_context(run.ema.applied(run.model))
            untrained = run.curriculum.untrained(progress.step)
            metrics = validate(
                run.model, run.valid_loader, run.tokenizer, run.env, run.autocast, untrained, self.config.valid_decode
            )
        progress.metrics = metrics
        key = self.config.best_metric
        value = metrics.get(key)
        improved = value is not None and _is_better(value, progress.best_value, self.config.resolved_best_mode())
        if improved:
            progress.best_value, progress.best_step = value, progress.step
        if log is not None:
            log.write(progress.step, "valid", _valid_record(metrics))
            bar.log_validation(progress.step, metrics, key, improved)
        return improved

    def _plots(self, run: Run) -> None:
        with isolated_rng():
            write_plots(read_log(run.run_dir / "train.jsonl"), run.run_dir / "plots")
            telemetry = run.run_dir / TELEMETRY_LOG
            if telemetry.is_file() and telemetry.stat().st_size > 0:
                plot_telemetry(telemetry, run.run_dir / "plots" / "telemetry")

    @staticmethod
    def _truncate_telemetry(run: Run, step: int) -> None:
        """Drop telemetry of steps after the checkpoint (they are re-run); records carry 0-based step indices."""
        path = run.run_dir / TELEMETRY_LOG
        if path.is_file():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines() if _telemetry_step(line) < step]
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _clip(run: Run, params: list[torch.nn.Parameter], heads_alone: list[str], max_norm: float | None) -> float:
    """Clip the gradients; the heads training alone are clipped on their own, so that a warming-up head's
    large gradients never shrink the encoder's update through the global norm. Returns the norm of the rest."""
    if not heads_alone:
        return clip_gradients(params, max_norm)
    alone = {id(p) for task in heads_alone for p in run.model.tasks[task].parameters()}
    clip_gradients([p for p in params if id(p) in alone], max_norm)
    return clip_gradients([p for p in params if id(p) not in alone], max_norm)


def _absent_heads_anchor(run: Run, out: Any, active: list[str]) -> torch.Tensor:
    """A zero connected to the encoder output and to the head of every active task this micro-batch lacks.

    FSDP reduce-scatters gradients inside backward and needs the same parameters to have gradients on every
    rank; a task whose labels are missing from one rank's batch would otherwise leave its head without one
    there. Adding zeros changes no value and no gradient, only which gradients exist."""
    anchor = out.enc.reshape(-1)[0] * 0.0
    for task in active:
        if task not in out.losses:
            anchor = anchor + run.model.tasks[task].empty_loss(out.enc).loss
    return anchor


def _telemetry_step(line: str) -> int:
    import json

    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # unreadable (torn) line: drop it


def _flat(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Run training to the end of its budget; see :class:`Trainer`."""
    return Trainer(config, resume).run()

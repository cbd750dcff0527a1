"""Assemble a training run from its config: process group, data, tokenizer, model, balancer, optimizer.

Everything the training loop touches is created here, in an order that makes every rank (and a resumed run)
build the same model: the seed is set before the weights are initialised, rank 0 writes the tokenizer and label
vocabularies before the other ranks read them, and rank 0's weights are broadcast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.data import DataLoader

from mtspeech.data.labels import LabelVocab
from mtspeech.data.tokenizer import Tokenizer
from mtspeech.errors import UserError
from mtspeech.model.model import MultiTaskModel, resolve_model_config
from mtspeech.train.balancers import Balancer, build_balancer
from mtspeech.train.checkpoint import CheckpointManager
from mtspeech.train.config import TrainConfig, config_to_dict
from mtspeech.train.curriculum import Curriculum
from mtspeech.train.data_setup import (
    TOKENIZER_DIR,
    VOCABS_FILE,
    BatchStream,
    build_collator,
    build_text_stream,
    build_train_loader,
    build_valid_loader,
    fit_cmvn,
    open_corpora,
    prepare_tokenizer,
    prepare_vocabs,
)
from mtspeech.train.distributed import DistEnv, apply_fsdp, barrier, broadcast_module, init_distributed
from mtspeech.train.optim import ModelEMA, build_balancer_optimizer, build_optimizer, build_scheduler
from mtspeech.train.rng import seed_everything

CHECKPOINT_DIR = "checkpoints"
RESOLVED_CONFIG = "config.yaml"
# Loss-weighting methods do one backward of a weighted sum, which FSDP's in-backward gradient reduction
# supports; GradNorm (per-task gradients of the last shared layer) and gradient methods (per-task gradients of
# every shared parameter) need unsharded, unreduced per-task gradients.
FSDP_BALANCERS = ("static", "loss_norm", "dwa", "uncertainty")


@dataclass
class Run:
    """Everything one training process works with."""

    config: TrainConfig
    env: DistEnv
    run_dir: Path
    checkpoints: CheckpointManager
    tokenizer: Tokenizer
    vocabs: dict[str, LabelVocab]
    model: MultiTaskModel
    tasks: list[str]
    stream: BatchStream
    valid_loader: DataLoader | None
    balancer: Balancer
    curriculum: Curriculum
    optimizer: torch.optim.Optimizer  # the model's parameters
    scheduler: torch.optim.lr_scheduler.LRScheduler
    balancer_optimizer: torch.optim.Optimizer | None  # the balancer's learned weights, if it has any
    balancer_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    autocast: Callable[[], contextlib.AbstractContextManager]
    fsdp: bool

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.optimizer, self.balancer_optimizer) if o is not None]

    @property
    def schedulers(self) -> list[torch.optim.lr_scheduler.LRScheduler]:
        return [s for s in (self.scheduler, self.balancer_scheduler) if s is not None]

    def parameters(self) -> list[torch.nn.Parameter]:
        """Everything the optimizers update (model and balancer parameters), each once."""
        seen: set[int] = set()
        params = []
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if id(p) not in seen:
                        seen.add(id(p))
                        params.append(p)
        return params


def autocast_factory(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A context-manager factory for the forward pass; fp32 is a no-op. fp16 needs CUDA (its GradScaler does)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise UserError("optim.precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("optim.precision bf16 is not supported by this GPU; use fp16 or fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def compile_encoder_blocks(model: MultiTaskModel) -> None:
    """``torch.compile`` each Conformer block in place (parameter names and checkpoints stay as they are).

    Regional rather than whole-model: every block runs the same code, so one compiled graph serves them all and
    the compile time does not grow with depth, while the heads (whose inputs change with the curriculum and the
    missing labels) stay eager; dynamic shapes, because bucketed batches vary in length and size. On the demo's
    CPU the gain is small (``python bench/train.py --sizes small,small-compile``); it is meant for GPUs.
    """
    import torch._functorch.config

    device = next(model.parameters()).device
    if device.type == "cpu" and not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")):
        raise UserError(
            "compile: true needs a C++ compiler for torch.compile on the CPU (g++ or clang++ on PATH, or CXX); "
            "install one (apt-get install g++) or set compile: false"
        )

    # The balancers' telemetry and gradient surgery backpropagate per task with retain_graph=True, which
    # compiled backward functions refuse while they donate (reuse) their saved buffers.
    torch._functorch.config.donated_buffer = False
    for block in model.encoder.blocks:
        block.compile(dynamic=True)


def _check_fresh_run_dir(run_dir: Path, manager: CheckpointManager) -> None:
    if manager.latest() is not None or manager.best_path.exists():
        raise UserError(
            "output_dir already holds checkpoints of an earlier run: pass --resume to continue it, "
            "or choose another output_dir",
            path=run_dir,
        )


def _write_resolved_config(run: Run) -> None:
    data = config_to_dict(run.config)
    data["model"] = run.model.config.model_dump(mode="json")
    path = run.run_dir / RESOLVED_CONFIG
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)


def build_run(config: TrainConfig, resume: bool) -> Run:
    """Create every component of a run (rank-aware); see the module docstring for the ordering."""
    env = init_distributed(config.device, config.distributed)
    run_dir = Path(config.output_dir)
    manager = CheckpointManager(run_dir / CHECKPOINT_DIR, config.keep_last_k)
    fsdp = config.distributed.strategy == "fsdp" and env.distributed
    autocast = autocast_factory(config.optim.precision, env.device)
    if fsdp and config.balancer.name not in FSDP_BALANCERS:
        raise UserError(
            f"distributed.strategy fsdp works with the loss-weighting balancers {', '.join(FSDP_BALANCERS)}; "
            f"balancer {config.balancer.name!r} needs per-task gradients of unsharded parameters: use strategy ddp"
        )
    if fsdp and config.optim.ema.enabled:
        raise UserError("optim.ema is not supported with distributed.strategy fsdp (the average would be sharded)")
    if fsdp and config.balancer.telemetry_every:
        raise UserError("gradient telemetry needs unsharded gradients: set balancer.telemetry_every: 0 with fsdp")
    warming = sorted(t for t, s in config.curriculum.tasks.items() if s.head_start_step is not None)
    if fsdp and warming:
        raise UserError(
            f"curriculum.tasks.{warming[0]}.head_start_step: a warming-up head takes a backward of its own, which "
            "FSDP's in-backward gradient reduction does not allow; use distributed.strategy ddp or drop the key"
        )

    if not resume:
        _check_fresh_run_dir(run_dir, manager)  # on every rank, so all of them stop with the same error
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            # Leftovers of a run that died before its first checkpoint would otherwise be reused silently.
            shutil.rmtree(run_dir / TOKENIZER_DIR, ignore_errors=True)
            (run_dir / VOCABS_FILE).unlink(missing_ok=True)
    barrier(env)

    corpora = open_corpora(config.data)
    if env.is_main:
        tokenizer = prepare_tokenizer(config, run_dir, corpora)
        vocabs = prepare_vocabs(config.model.tasks, run_dir, corpora)
    barrier(env)
    if not env.is_main:
        tokenizer = prepare_tokenizer(config, run_dir, corpora)
        vocabs = prepare_vocabs(config.model.tasks, run_dir, corpora)

    seed_everything(config.seed)  # identical initial weights on every rank
    model_config = resolve_model_config(config.model, tokenizer, vocabs)
    model = MultiTaskModel(model_config)
    if config.data.cmvn:
        fit_cmvn(corpora, model.frontend)
    model = model.to(env.device)
    tasks = model.task_names
    if fsdp:
        apply_fsdp(model, env)  # replaces the parameters by sharded ones: build the balancer after this
    else:
        broadcast_module(model, env)
    if config.compile:
        compile_encoder_blocks(model)
    if model.reads_layers and config.balancer.representation:
        mixing = [name for name, task in model.tasks.items() if task.reads_layers]
        raise UserError(
            f"balancer.representation: true combines gradients of the encoder output, but model.tasks "
            f"{', '.join(mixing)} read other encoder layers too (encoder_layers: mix); use one or the other"
        )
    balancer = build_balancer(config.balancer, model, tasks)
    balancer_params = balancer.extra_parameters()
    seed_everything(config.seed + env.rank)  # but independent dropout masks per rank

    collator = build_collator(config, tokenizer, vocabs, model.encoder.subsampling_factor, model.frontend)
    pin = env.device.type == "cuda"
    text = build_text_stream(config, model.tasks, tokenizer, vocabs, env.rank, env.world_size)
    loader = build_train_loader(config, corpora, collator, env.rank, env.world_size, pin_memory=pin)
    stream = BatchStream(loader, text)
    # FSDP runs collectives in every forward: all ranks must see the same number of validation batches, so
    # each validates everything; data parallel ranks validate their own shard.
    shard = (None, None) if not fsdp else (0, 1)
    if env.distributed and not fsdp:
        shard = (env.rank, env.world_size)
    valid_loader = build_valid_loader(config, corpora, collator, shard[0], shard[1], pin_memory=pin)

    optimizer = build_optimizer(model, config.optim)
    balancer_optimizer = build_balancer_optimizer(balancer_params, config.optim)
    scaler = torch.amp.GradScaler(env.device.type, enabled=config.optim.precision == "fp16")
    ema = ModelEMA(model, config.optim.ema) if config.optim.ema.enabled else None
    run = Run(
        config=config,
        env=env,
        run_dir=run_dir,
        checkpoints=manager,
        tokenizer=tokenizer,
        vocabs=vocabs,
        model=model,
        tasks=tasks,
        stream=stream,
        valid_loader=valid_loader,
        balancer=balancer,
        curriculum=Curriculum(config.curriculum, tasks),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config.optim, config.max_steps),
        balancer_optimizer=balancer_optimizer,
        balancer_scheduler=(
            build_scheduler(balancer_optimizer, config.optim, config.max_steps) if balancer_optimizer else None
        ),
        scaler=scaler,
        ema=ema,
        autocast=autocast,
        fsdp=fsdp,
    )
    if env.is_main:
        _write_resolved_config(run)
    return run


def describe(run: Run) -> dict[str, Any]:
    """A few facts about the run for the log's first record."""
    from mtspeech.model.model import count_parameters

    return {
        "world_size": run.env.world_size,
        "device": str(run.env.device),
        "tasks": run.tasks,
        "parameters": count_parameters(run.model) if not run.fsdp else None,
        "tokenizer_vocab": run.tokenizer.vocab_size,
        "precision": run.config.optim.precision,
        "strategy": "fsdp" if run.fsdp else ("ddp" if run.env.distributed else "single"),
    }

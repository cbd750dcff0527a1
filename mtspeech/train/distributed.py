"""Multi-process training plumbing: process group from torchrun's environment, gradient averaging, FSDP2.

Data parallelism does not use ``DistributedDataParallel``'s backward hooks: gradient-surgery balancers (PCGrad,
MGDA, ...) need every task's gradient *before* any averaging, and only produce the final ``.grad`` in
``before_step()``. So each rank runs its micro-batches locally and the trainer then averages every ``.grad`` in
one all-reduce over a flat buffer (:func:`average_gradients`), leaving identical gradients, hence identical
weights, on all ranks. FSDP2 (``fully_shard``) reduce-scatters gradients inside backward instead, which is only
compatible with balancers that do a single backward of a weighted loss sum.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mtspeech.errors import UserError
from mtspeech.train.config import DistributedConfig


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; explicit specs are checked."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UserError(f"device: expected auto, cpu, cuda or cuda:N, got {spec!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device: {spec!r} requested but CUDA is not available (this torch: {torch.__version__})")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    elif device.type != "cpu":
        raise UserError(f"device: only cpu and cuda are supported, got {spec!r}")
    return device


def init_distributed(device_spec: str, config: DistributedConfig) -> DistEnv:
    """Join the process group described by torchrun's env vars (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``PORT``); a plain ``python`` run is a world of one and starts no group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if world_size <= 1:
        return DistEnv(0, 1, 0, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = config.backend if config.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise UserError("distributed.backend: nccl needs CUDA devices; use gloo on CPU")
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            timeout=datetime.timedelta(minutes=config.timeout_minutes),
            device_id=device if device.type == "cuda" else None,
        )
    return DistEnv(rank, world_size, local_rank, device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


@torch.no_grad()
def broadcast_module(module: nn.Module, env: DistEnv) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if not env.distributed:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def average_buffers(module: nn.Module, env: DistEnv) -> None:
    """Average BatchNorm running statistics over ranks, so all ranks keep the same
    model: each rank's BatchNorm saw only its own batches. One all-reduce; no-op in a single process."""
    if not env.distributed:
        return
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    buffers = [b for m in norms for b in (m.running_mean, m.running_var) if b is not None and b.is_floating_point()]
    buffers = [b for b in buffers if not hasattr(b, "full_tensor")]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).float() for b in buffers])
    dist.all_reduce(flat)
    flat /= env.world_size
    offset = 0
    for b in buffers:
        b.copy_(flat[offset : offset + b.numel()].view_as(b).to(b.dtype))
        offset += b.numel()
    # A rank whose batch had a single labelled row skipped the update: agree on the largest count.
    counts = [m.num_batches_tracked for m in norms if m.num_batches_tracked is not None]
    if counts:
        stacked = torch.stack([c.reshape(()) for c in counts])
        dist.all_reduce(stacked, op=dist.ReduceOp.MAX)
        for c, value in zip(counts, stacked, strict=True):
            c.copy_(value)


@torch.no_grad()
def average_gradients(params: Sequence[nn.Parameter], env: DistEnv) -> None:
    """Average ``.grad`` over ranks with one all-reduce of a flat buffer.

    A parameter without a gradient on some rank (its task had no labelled rows there) counts as zero on that
    rank; one that has no gradient on *any* rank keeps ``grad = None`` so the optimizer skips it, as it would in
    a single process."""
    if not env.distributed or not params:
        return
    first = params[0]
    sizes = [p.numel() for p in params]
    flat = torch.zeros(sum(sizes) + len(params), dtype=torch.float32, device=first.device)
    offset = 0
    for i, (p, n) in enumerate(zip(params, sizes, strict=True)):
        if p.grad is not None:
            flat[offset : offset + n] = p.grad.reshape(-1).float()
            flat[sum(sizes) + i] = 1.0
        offset += n
    dist.all_reduce(flat)
    flat[: sum(sizes)] /= env.world_size
    offset = 0
    for i, (p, n) in enumerate(zip(params, sizes, strict=True)):
        if flat[sum(sizes) + i] > 0:
            value = flat[offset : offset + n].view_as(p).to(p.dtype)
            if p.grad is None:
                p.grad = value.clone()
            else:
                p.grad.copy_(value)
        offset += n


def all_reduce_max(value: float, env: DistEnv) -> float:
    """The largest ``value`` over ranks (stop flags: one rank's SIGTERM or budget stops everyone together)."""
    if not env.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        values = values.to(env.device)
        dist.all_reduce(values)
    return values


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj`` in rank order (on all ranks); ``[obj]`` in a single process."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def apply_fsdp(model: nn.Module, env: DistEnv) -> nn.Module:
    """Shard the model with FSDP2: each encoder block, then the root (everything else, task heads included).

    Task heads are not sharded on their own: tasks are called through ``loss``/``predict``, not ``forward``,
    and FSDP2 gathers a module's parameters only around its ``forward``; the root's gather covers them."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # pragma: no cover - torch < 2.6
        raise UserError(
            f"distributed.strategy fsdp needs torch.distributed.fsdp.fully_shard (this torch: {torch.__version__})"
        ) from None
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(env.device.type, (env.world_size,))
    blocks = getattr(getattr(model, "encoder", None), "blocks", None)
    for block in blocks or ():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model

"""Training throughput and peak memory: seconds of audio trained per wall-clock second, per encoder size.

Each size trains in its own process (so its peak memory is its own) through the project's real training step
(``Trainer._train_step``: the recipe's data pipeline, every task at full weight, the balancer, clipping, AdamW),
``--warmup`` steps untimed, then ``--steps`` timed ones. Audio seconds are the batches' feature frames times the
front end's frame shift. Peak memory: the training process' maximum resident set (CPU; the feature-extraction
worker is a separate process and not counted) or ``torch.cuda.max_memory_allocated`` (GPU). ``small`` (the demo,
no dropout) also times the same batches with the library's default dropout, alternating (:func:`dropout_cost`),
and the fused AdamW update against the default one (:func:`adamw_cost`);
``small-bf16`` is the demo under bf16 autocast, ``small-compile`` with ``compile: true`` (its compile time is
in ``warmup_seconds``, outside the timed steps). Writes bench/results/train.json.

``--task-costs`` adds, per size, what each task adds to a step (:func:`task_costs`: the same batch trained with
every task and with each task left out in turn), e.g. ``--sizes small --steps 12 --task-costs --results-name
train-task-costs``.

    python bench/train.py [--corpus work/corpus-small] [--sizes tiny,small-x4,small,small-bf16,small-compile]
        [--steps 40] [--device cpu] [--task-costs] [--results-name train]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "synth-small.yaml"
# size -> recipe overrides; "small" is the CPU demo's encoder as the recipe has it (x2 subsampling)
SIZES: dict[str, list[str]] = {
    "tiny": [
        "model.encoder.preset=tiny",
        "model.encoder.subsampling_factor=4",
        "model.encoder.subsampling_channels=null",
    ],
    "small-x4": ["model.encoder.subsampling_factor=4"],
    "small": [],
    "small-bf16": ["optim.precision=bf16"],  # autocast; matrix products gain on AVX512-BF16, attention loses
    "small-compile": ["compile=true"],  # torch.compile of each encoder block (inductor; compile time untimed)
    "base": [
        "model.encoder.preset=base",
        "model.encoder.subsampling_factor=4",
        "model.encoder.subsampling_channels=null",
    ],
}


def measure(size: str, corpus: str, steps: int, warmup: int, device: str, costs: bool = False) -> dict[str, Any]:
    """Train ``warmup + steps`` steps of ``size`` in this process; throughput and peak memory."""
    import torch

    from mtspeech.train.config import load_train_config
    from mtspeech.train.state import Progress
    from mtspeech.train.trainer import LossWindow, Trainer

    out_dir = tempfile.mkdtemp(prefix=f"bench-train-{size}-")
    overrides = [
        f"output_dir={out_dir}",
        f"data.corpora=[{{path: {corpus}}}]",
        f"device={device}",
        "curriculum.tasks={}",  # every task from the first step: the steady-state cost
        "max_steps=100000",
        "max_minutes=null",
        "progress_bar=false",
        "tensorboard=false",
        *SIZES[size],
    ]
    config = load_train_config(RECIPE, overrides)
    trainer = Trainer(config)
    from mtspeech.train.build import build_run

    run = build_run(config, resume=False)
    audio_seconds = [0.0]
    next_batch, frame_shift = run.stream.next, float(run.model.frontend.frame_shift)

    def counting_next() -> Any:
        batch = next_batch()
        audio_seconds[0] += float(batch.feature_lens.sum()) * frame_shift
        return batch

    run.stream.next = counting_next  # type: ignore[method-assign]
    progress, window = Progress(), LossWindow(run.tasks)
    run.model.train()
    warmup_started = time.perf_counter()
    for _ in range(warmup):
        trainer._train_step(run, progress, window)
        progress.step += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    warmup_wall = time.perf_counter() - warmup_started  # with compile=true, mostly compiling
    audio_seconds[0] = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        trainer._train_step(run, progress, window)
        progress.step += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    audio, peak_rss = audio_seconds[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    paired = dropout_cost(trainer, run, progress, window, steps) if size == "small" and device == "cpu" else None
    adamw = adamw_cost(run.model, steps) if size == "small" and device == "cpu" else None
    per_task = task_costs(trainer, run, progress, window, steps) if costs else None
    run.stream.close()
    parameters = sum(p.numel() for p in run.model.parameters())
    figures: dict[str, Any] = {
        "parameters": parameters,
        "subsampling_factor": run.model.encoder.subsampling_factor,
        "tasks": len(run.tasks),
        "steps": steps,
        "sec_per_step": round(wall / steps, 3),
        "warmup_seconds": round(warmup_wall, 1),
        "audio_seconds": round(audio, 1),
        "audio_seconds_per_second": round(audio / wall, 2),
        "peak_rss_mb": round(peak_rss, 1),
    }
    if device.startswith("cuda"):
        figures["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        figures["gpu"] = torch.cuda.get_device_name()
    if paired:
        figures["dropout_cost"] = paired
    if adamw:
        figures["adamw_step_ms"] = adamw
    if per_task:
        figures["task_costs"] = per_task
    return figures


def task_costs(trainer: Any, run: Any, progress: Any, window: Any, rounds: int) -> dict[str, Any]:
    """Milliseconds each task adds to a training step: every batch is trained with all tasks and once without
    each task (the curriculum multiplier set to 0: no head forward, no loss, no gradient from it), in alternating
    order, so batch sizes and machine noise fall on every variant alike. A task's marginal cost is the step time
    with all tasks minus the step time without it. Gradient telemetry is off meanwhile: its extra backward passes
    every ``telemetry_every`` steps would land on whichever variant's step it falls."""
    multipliers, next_batch, balancer_config = run.curriculum.multipliers, run.stream.next, run.balancer.config
    run.balancer.config = balancer_config.model_copy(update={"telemetry_every": 0})
    variants: list[str | None] = [None, *run.tasks]  # None: every task
    seconds = dict.fromkeys(variants, 0.0)
    for index in range(rounds):
        batch = next_batch()
        run.stream.next = lambda batch=batch: batch
        for left_out in variants if index % 2 == 0 else variants[::-1]:
            off = {left_out: 0.0} if left_out else {}
            run.curriculum.multipliers = lambda step, metrics=None, off=off: {**multipliers(step, metrics), **off}
            started = time.perf_counter()
            trainer._train_step(run, progress, window)
            seconds[left_out] += time.perf_counter() - started
            progress.step += 1
    run.curriculum.multipliers, run.stream.next, run.balancer.config = multipliers, next_batch, balancer_config
    every = 1000 * seconds[None] / rounds
    return {
        "rounds": rounds,
        "ms_per_step_all_tasks": round(every, 1),
        "marginal_ms": {task: round(every - 1000 * seconds[task] / rounds, 1) for task in run.tasks},
    }


def adamw_cost(model: Any, rounds: int) -> dict[str, float]:
    """Milliseconds of one AdamW update of the model's parameters: torch's fused kernel (what
    mtspeech.train.optim builds on CPU and GPU) against the default implementation, on copies of the parameters
    with random gradients."""
    import torch

    timings: dict[str, float] = {}
    for fused in (True, False):
        params = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.randn_like(p)
        optimizer = torch.optim.AdamW(params, lr=1e-3, fused=fused)
        optimizer.step()  # state allocation is not part of a steady-state step
        started = time.perf_counter()
        for _ in range(rounds):
            optimizer.step()
        timings["fused" if fused else "default"] = round(1000 * (time.perf_counter() - started) / rounds, 2)
    return timings


def dropout_cost(trainer: Any, run: Any, progress: Any, window: Any, rounds: int) -> dict[str, Any]:
    """Step time with the library's default dropout (0.1 in the encoder, CTC and decoder) against the demo
    recipe's 0, paired: every batch is trained once with each, in alternating order, so batch sizes and machine
    noise fall on both alike."""
    from torch import nn

    parts = (run.model.encoder, run.model.tasks["asr_ctc"], run.model.tasks["decoder"])
    dropouts = [m for part in parts for m in part.modules() if isinstance(m, nn.Dropout)]
    next_batch, seconds = run.stream.next, {0.0: 0.0, 0.1: 0.0}
    for index in range(rounds):
        batch = next_batch()
        run.stream.next = lambda batch=batch: batch
        for p in (0.0, 0.1) if index % 2 == 0 else (0.1, 0.0):
            for module in dropouts:
                module.p = p
            started = time.perf_counter()
            trainer._train_step(run, progress, window)
            seconds[p] += time.perf_counter() - started
            progress.step += 1
    return {
        "rounds": rounds,
        "dropout_modules": len(dropouts),
        "sec_per_step_dropout_0": round(seconds[0.0] / rounds, 3),
        "sec_per_step_dropout_0.1": round(seconds[0.1] / rounds, 3),
        "ratio": round(seconds[0.1] / seconds[0.0], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="work/corpus-small", help="a corpus directory (mtspeech corpus synth)")
    parser.add_argument(
        "--sizes",
        default="tiny,small-x4,small,small-bf16,small-compile",
        help=f"comma-separated, from {', '.join(SIZES)}",
    )
    parser.add_argument("--steps", type=int, default=40, help="timed steps per size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (allocator, caches)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--task-costs", action="store_true", help="also each task's marginal cost in a step")
    parser.add_argument("--results-name", default="train", help="writes bench/results/NAME.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one size in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.corpus, args.steps, args.warmup, args.device, args.task_costs)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"--sizes: unknown {unknown}; known: {', '.join(SIZES)}")
    if not (Path(args.corpus) / "corpus.json").exists():
        parser.error(f"--corpus: {args.corpus} is not a corpus directory (make one: mtspeech corpus synth --out DIR)")
    results = {}
    for size in sizes:
        command = [sys.executable, __file__, "--one", size, "--corpus", args.corpus, "--steps", str(args.steps)]
        command += ["--warmup", str(args.warmup), "--device", args.device]
        command += ["--task-costs"] if args.task_costs else []
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{size}: training failed:\n{done.stderr[-3000:]}")
        results[size] = json.loads(done.stdout.strip().splitlines()[-1])
        r = results[size]
        print(
            f"{size:>10}: {r['parameters'] / 1e6:.1f}M parameters, x{r['subsampling_factor']}, "
            f"{r['sec_per_step']} s/step, {r['audio_seconds_per_second']} s of audio per second, "
            f"peak RSS {r['peak_rss_mb']} MB",
            flush=True,
        )
        if "adamw_step_ms" in r:
            ms = r["adamw_step_ms"]
            print(f"{'':>10}  AdamW update: {ms['fused']} ms fused, {ms['default']} ms default", flush=True)
        if "dropout_cost" in r:
            cost = r["dropout_cost"]
            print(
                f"{'':>10}  same batches with dropout 0.1: {cost['sec_per_step_dropout_0.1']} s/step against "
                f"{cost['sec_per_step_dropout_0']} without ({cost['ratio']}x)",
                flush=True,
            )
        if "task_costs" in r:
            costs = sorted(r["task_costs"]["marginal_ms"].items(), key=lambda item: -item[1])
            print(f"{'':>10}  {r['task_costs']['ms_per_step_all_tasks']} ms a step with every task; each adds (ms):")
            print(f"{'':>10}  " + ", ".join(f"{task} {ms}" for task, ms in costs), flush=True)
    command = f"python bench/train.py --corpus {args.corpus} --sizes {','.join(sizes)} --steps {args.steps}"
    command += f" --warmup {args.warmup} --device {args.device}"
    command += (" --task-costs" if args.task_costs else "") + f" --results-name {args.results_name}"
    path = write_results(args.results_name, {"device": args.device, "sizes": results}, command)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Balancer benchmark: training-step time and peak memory of every balancing method relative to ``static``.

    python bench/balancing.py                         # CPU, small encoder, 5 tasks
    python bench/balancing.py --device cuda --batch 32 --frames 1000
    python bench/balancing.py --methods static pcgrad pcgrad_repr dwa --steps 5

One training step = forward (encoder once, every task's loss) + the balancer's backward + before_step +
AdamW step. Model: ``MultiTaskModel`` with the ``small`` encoder preset (~5.5M shared parameters) and the tasks
asr_ctc, intent, lid, emotion, vad on random but valid batches (every row labelled for every task, rows of
different lengths). ``pcgrad_repr`` / ``mgda_repr`` are the methods with ``representation: true``,
``gradnorm_every10`` is gradnorm with ``update_every: 10``;
``static_telemetry`` is static with gradient telemetry on every step (its cost is paid every ``telemetry_every``
steps in training).

Timing: every method gets its own balancer and optimizer on one shared model and the methods take turns, one
step each per round in a shuffled order, so a change in machine load affects them alike. "x static" is the
median over rounds of the step time divided by static's step time in the same round; step times are medians
over rounds after warm-up, with their interquartile range as a share of the median (machine noise). Memory: on CUDA
the peak of ``torch.cuda.max_memory_allocated`` over a few steps per method; on CPU the peak resident-set growth
during a few steps, in a fresh process per method (sampled every millisecond).

Goals: pcgrad (representation mode or full) <= 1.5x static; loss-weighting methods <= 1.05x static.
Writes bench/results/balancing.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``mtspeech`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results  # noqa: E402

TASKS = ("asr_ctc", "intent", "lid", "emotion", "vad")
NUM_CLASSES = {"intent": 18, "lid": 8, "emotion": 6}
VOCAB = 256
# bench name -> (balancer config)
METHODS: dict[str, dict[str, Any]] = {
    "static": {"name": "static"},
    "loss_norm": {"name": "loss_norm"},
    "dwa": {"name": "dwa"},
    "uncertainty": {"name": "uncertainty"},
    "gradnorm": {"name": "gradnorm"},
    "gradnorm_every10": {"name": "gradnorm", "update_every": 10},
    "pcgrad": {"name": "pcgrad"},
    "pcgrad_repr": {"name": "pcgrad", "representation": True},
    "mgda": {"name": "mgda"},
    "mgda_repr": {"name": "mgda", "representation": True},
    "cagrad": {"name": "cagrad"},
    "upgrad": {"name": "upgrad"},
    "imtlg": {"name": "imtlg"},
    "static_telemetry": {"name": "static", "telemetry_every": 1},
}
LOSS_WEIGHTING = ("loss_norm", "dwa", "uncertainty", "gradnorm", "gradnorm_every10")
PCGRAD_GOAL, LOSS_WEIGHTING_GOAL = 1.5, 1.05


def build_model(preset: str, device: str, seed: int = 0):
    import torch

    from mtspeech.model.config import ModelConfig
    from mtspeech.model.model import MultiTaskModel

    torch.manual_seed(seed)
    tasks: dict[str, Any] = {"asr_ctc": {"vocab_size": VOCAB}, "vad": {}}
    tasks.update({t: {"num_classes": n} for t, n in NUM_CLASSES.items()})
    config = ModelConfig.from_dict({"encoder": {"preset": preset}, "tasks": {t: tasks[t] for t in TASKS}})
    return MultiTaskModel(config).to(device)


def random_batch(batch_size: int, frames: int, device: str, seed: int = 0):
    """Every row labelled for every task; row lengths from 70 % to 100 % of ``frames``."""
    import torch

    from mtspeech.data.batch import IGNORE, Batch
    from mtspeech.model.encoder import subsampled_length

    g = torch.Generator().manual_seed(seed)
    lens = torch.linspace(int(0.7 * frames), frames, batch_size).long()
    features = (
        torch.randn(batch_size, frames, 80, generator=g) * (torch.arange(frames)[None, :] < lens[:, None])[..., None]
    )
    enc_lens = subsampled_length(lens)
    t_enc = int(subsampled_length(torch.tensor(frames)))
    target_lens = (enc_lens // 4).clamp(min=1)
    ctc = torch.zeros(batch_size, int(target_lens.max()), dtype=torch.long)
    for row, n in enumerate(target_lens.tolist()):
        ctc[row, :n] = torch.randint(1, VOCAB, (n,), generator=g)
    vad = torch.full((batch_size, t_enc), IGNORE, dtype=torch.long)
    for row, n in enumerate(enc_lens.tolist()):
        vad[row, :n] = (torch.arange(n) // 7) % 2
    batch = Batch(
        features=features,
        feature_lens=lens,
        ids=[f"utt{i}" for i in range(batch_size)],
        ctc_targets=ctc,
        ctc_target_lens=target_lens,
        ctc_mask=torch.ones(batch_size, dtype=torch.bool),
        decoder_input=torch.zeros(batch_size, 1, dtype=torch.long),
        decoder_target=torch.full((batch_size, 1), IGNORE, dtype=torch.long),
        decoder_task=[""] * batch_size,
        class_targets={t: torch.randint(0, n, (batch_size,), generator=g) for t, n in NUM_CLASSES.items()},
        vad_targets=vad,
    )
    return batch.to(device)


class Runner:
    """One method's balancer and optimizer on the shared model; :meth:`step` is one timed training step."""

    def __init__(self, model, method: str) -> None:
        import torch

        from mtspeech.train.balancers import BalancerConfig, build_balancer

        options = {"telemetry_every": 0, **METHODS[method]}
        self.model = model
        self.balancer = build_balancer(BalancerConfig(**options), model, list(TASKS))
        params = [*model.parameters(), *self.balancer.extra_parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step(self, batch) -> None:
        out = self.model(batch)
        self.balancer.backward(out.losses, shared_repr=out.enc)
        self.balancer.before_step()
        self.balancer.pop_telemetry()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_methods(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per step of every method, methods interleaved round by round."""
    model = build_model(args.preset, args.device)
    batch = random_batch(args.batch, args.frames, args.device)
    runners = {m: Runner(model, m) for m in args.methods}
    times: dict[str, list[float]] = {m: [] for m in args.methods}
    order = list(runners)
    shuffler = random.Random(0)
    for round_index in range(args.warmup + args.steps):
        shuffler.shuffle(order)  # no method always runs right after the same other one
        for method in order:
            runner = runners[method]
            synchronize(args.device)
            started = time.perf_counter()
            runner.step(batch)
            synchronize(args.device)
            if round_index >= args.warmup:
                times[method].append(time.perf_counter() - started)
        print(f"round {round_index + 1}/{args.warmup + args.steps}", file=sys.stderr, flush=True)
    return times


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


class PeakRss:
    """Peak resident-set growth inside the ``with`` block, sampled every millisecond by a thread (``ru_maxrss``
    would also count peaks from imports and model building)."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.base


def memory_of(method: str, args: argparse.Namespace) -> float:
    """Peak memory growth (MB) of a few training steps of one method."""
    import torch

    model = build_model(args.preset, args.device)
    batch = random_batch(args.batch, args.frames, args.device)
    runner = Runner(model, method)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.memory_steps):
            runner.step(batch)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with PeakRss() as rss:
        for _ in range(args.memory_steps):
            runner.step(batch)
    return rss.growth_mb


def memory_methods(args: argparse.Namespace) -> dict[str, float]:
    if args.device.startswith("cuda"):
        return {m: memory_of(m, args) for m in args.methods}
    peaks = {}
    for method in args.methods:  # a fresh process each: freed memory is not always returned to the system
        command = [sys.executable, __file__, "--memory-child", method, *child_args(args)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[method] = json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"]
        print(f"memory {method}: {peaks[method]:.0f} MB", file=sys.stderr, flush=True)
    return peaks


def child_args(args: argparse.Namespace) -> list[str]:
    return [
        "--preset", args.preset, "--device", args.device, "--batch", str(args.batch), "--frames", str(args.frames),
        "--memory-steps", str(args.memory_steps), "--threads", str(args.threads),
    ]  # fmt: skip


def report(args: argparse.Namespace, times: dict[str, list[float]], peaks: dict[str, float]) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    median = {m: statistics.median(t) for m, t in times.items()}
    spread = {}
    for m, t in times.items():
        quartiles = statistics.quantiles(t, n=4) if len(t) > 1 else [t[0]] * 3
        spread[m] = round((quartiles[2] - quartiles[0]) / median[m], 3)
    # Ratio to static within each round (same machine load), then the median over rounds.
    ratios = {
        m: round(statistics.median(a / b for a, b in zip(t, times["static"], strict=True)), 3) for m, t in times.items()
    }
    mem_ratios = {m: round(v / peaks["static"], 3) for m, v in peaks.items()} if peaks.get("static") else {}
    pcgrad_best = min(ratios[m] for m in ("pcgrad", "pcgrad_repr") if m in ratios) if "pcgrad" in ratios else None
    goals = {
        "pcgrad_le_1.5x": None if pcgrad_best is None else pcgrad_best <= PCGRAD_GOAL,
        "loss_weighting_le_1.05x": {m: ratios[m] <= LOSS_WEIGHTING_GOAL for m in LOSS_WEIGHTING if m in ratios},
    }
    table = Table(title=f"balancers on {args.device}: {args.preset} encoder, {len(TASKS)} tasks, batch {args.batch}")
    for column in ("method", "step ms (median)", "IQR / median", "x static", "peak mem MB", "mem x static"):
        table.add_column(column, justify="right" if column != "method" else "left")
    for m in args.methods:
        table.add_row(
            m,
            f"{1000 * median[m]:.1f}",
            f"{100 * spread[m]:.0f} %",
            f"{ratios[m]:.2f}",
            f"{peaks[m]:.0f}" if m in peaks else "-",
            f"{mem_ratios[m]:.2f}" if m in mem_ratios else "-",
        )
    Console(stderr=True).print(table)
    return {
        "ratios": ratios,
        "step_ms": {m: round(1000 * v, 2) for m, v in median.items()},
        "step_iqr_over_median": spread,
        "peak_mem_mb": {m: round(v, 1) for m, v in peaks.items()},
        "peak_mem_ratios": mem_ratios,
        "goals": goals,
        "setup": {
            "device": args.device,
            "preset": args.preset,
            "tasks": list(TASKS),
            "batch": args.batch,
            "frames": args.frames,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "methods": {m: METHODS[m] for m in args.methods},
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=400, help="feature frames of the longest row (10 ms each)")
    parser.add_argument("--steps", type=int, default=7, help="measured rounds")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if "static" not in args.methods:
        args.methods = ["static", *args.methods]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps({"peak_mb": memory_of(args.memory_child, args)}))
        return 0
    times = time_methods(args)
    peaks = {} if args.no_memory else memory_methods(args)
    figures = report(args, times, peaks)
    command = "python bench/balancing.py " + " ".join(sys.argv[1:] if argv is None else argv)
    path = write_results("balancing", figures, command.strip())
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

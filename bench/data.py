"""Data benchmark: synthesis speed of the small synthetic corpus and padding of bucketed vs random batches.

    python bench/data.py                      # synthesise size=small into a temp dir (minutes), then measure
    python bench/data.py --corpus DIR         # reuse a corpus (no synthesis figures)
    python bench/data.py --out DIR --jobs 8   # keep the synthesised corpus in DIR

Figures:
  * synthesis: utterances per second and "x real time" (seconds of audio written per wall-clock second), for the
    whole corpus (all splits) with ``--jobs`` worker processes;
  * padding: share of the feature frames of padded batches that are padding, over one epoch of the train split,
    for duration-bucketed batches (``make_train_sampler``, ``--max-duration`` s per batch) and for random batches
    of exactly the same sizes (same cuts, shuffled). Goal: bucketed <= 10 %.

Writes bench/results/data.json (with the machine description) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``mtspeech`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results  # noqa: E402

PADDING_GOAL = 0.10


def corpus_totals(corpus_dir: Path) -> dict[str, float]:
    """Recordings, utterances (supervisions) and seconds of audio over every split of a corpus."""
    from mtspeech.data.corpus import available_splits, load_cuts

    totals = {"recordings": 0, "utterances": 0, "audio_seconds": 0.0, "speech_seconds": 0.0}
    for split in available_splits(corpus_dir):
        for cut in load_cuts(corpus_dir, split):
            totals["recordings"] += 1
            totals["utterances"] += len(cut.supervisions)
            totals["audio_seconds"] += cut.duration
            totals["speech_seconds"] += sum(s.duration for s in cut.supervisions)
    return totals


def synthesis_figures(out_dir: Path, size: str, seed: int, num_jobs: int) -> dict[str, Any]:
    from mtspeech.data.synth.build import synthesize

    started = time.perf_counter()
    synthesize(out_dir, size=size, seed=seed, num_jobs=num_jobs, show_progress=sys.stderr.isatty())
    wall = time.perf_counter() - started
    totals = corpus_totals(out_dir)
    return {
        "size": size,
        "seed": seed,
        "num_jobs": num_jobs,
        "wall_seconds": round(wall, 2),
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in totals.items()},
        "utterances_per_second": round(totals["utterances"] / wall, 2),
        "x_real_time": round(totals["audio_seconds"] / wall, 2),
    }


def random_batches_like(batches: list[list[Any]], seed: int) -> list[list[Any]]:
    """The same cuts shuffled and cut into batches of the same sizes (what no bucketing would give)."""
    cuts = [cut for batch in batches for cut in batch]
    random.Random(seed).shuffle(cuts)
    out, start = [], 0
    for batch in batches:
        out.append(cuts[start : start + len(batch)])
        start += len(batch)
    return out


def padding_figures(corpus_dir: Path, max_duration: float, num_buckets: int, seed: int) -> dict[str, Any]:
    from mtspeech.data.corpus import load_cuts
    from mtspeech.data.sampling import make_train_sampler, padding_fraction

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lhotse warns about eager CutSets and the like; not what we measure
        sampler = make_train_sampler(
            load_cuts(corpus_dir, "train"), max_duration=max_duration, num_buckets=num_buckets, seed=seed
        )
        batches = [list(batch) for batch in sampler]
    if not batches:
        raise SystemExit(f"the train split of {corpus_dir} gives no batches at max_duration={max_duration}")
    bucketed = padding_fraction(batches)
    unbucketed = padding_fraction(random_batches_like(batches, seed))
    sizes = [len(b) for b in batches]
    return {
        "max_duration": max_duration,
        "num_buckets": num_buckets,
        "batches": len(batches),
        "cuts": sum(sizes),
        "mean_batch_size": round(sum(sizes) / len(sizes), 2),
        "mean_batch_seconds": round(sum(c.duration for b in batches for c in b) / len(batches), 2),
        "bucketed_padding": round(bucketed, 4),
        "random_padding": round(unbucketed, 4),
        "goal": PADDING_GOAL,
        "goal_met": bucketed <= PADDING_GOAL,
    }


def print_table(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mtspeech data benchmark")
    table.add_column("figure")
    table.add_column("value", justify="right")
    synth = figures.get("synthesis")
    if synth:
        table.add_row("synthesis", f"size={synth['size']}, {synth['num_jobs']} jobs, {synth['wall_seconds']:.0f} s")
        table.add_row("  utterances", f"{synth['utterances']} ({synth['recordings']} recordings)")
        table.add_row("  audio", f"{synth['audio_seconds'] / 3600:.2f} h")
        table.add_row("  utterances / s", f"{synth['utterances_per_second']:.1f}")
        table.add_row("  x real time", f"{synth['x_real_time']:.1f}")
    else:
        table.add_row("synthesis", "not measured (--corpus)")
    pad = figures["padding"]
    table.add_row("padding", f"train split, max_duration {pad['max_duration']:g} s, {pad['batches']} batches")
    table.add_row("  mean batch", f"{pad['mean_batch_size']:.1f} cuts, {pad['mean_batch_seconds']:.1f} s")
    verdict = "[green]meets[/]" if pad["goal_met"] else "[red]misses[/]"
    table.add_row("  bucketed", f"{pad['bucketed_padding']:.1%} ({verdict} goal <= {pad['goal']:.0%})")
    table.add_row("  random, same sizes", f"{pad['random_padding']:.1%}")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="reuse this corpus instead of synthesising one")
    parser.add_argument("--out", type=Path, help="synthesise into (and keep) this directory; default: a temp dir")
    parser.add_argument("--size", default="small", help="synthetic corpus size (default small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="synthesis worker processes")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds of audio per batch")
    parser.add_argument("--num-buckets", type=int, default=10)
    args = parser.parse_args(argv)
    if args.corpus is not None and args.out is not None:
        parser.error("--corpus and --out are exclusive")

    figures: dict[str, Any] = {"corpus": None, "synthesis": None}
    scratch = None
    try:
        if args.corpus is not None:
            corpus_dir = args.corpus
            if not corpus_dir.is_dir():
                parser.error(f"--corpus {corpus_dir} is not a directory")
        else:
            if args.out is None:
                scratch = Path(tempfile.mkdtemp(prefix="mtspeech-bench-data-"))
            corpus_dir = args.out or scratch / "corpus"
            figures["synthesis"] = synthesis_figures(corpus_dir, args.size, args.seed, args.jobs)
        figures["corpus"] = str(corpus_dir) if scratch is None else f"(temporary) size={args.size}"
        figures["padding"] = padding_figures(corpus_dir, args.max_duration, args.num_buckets, args.seed)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print_table(figures)
    command = " ".join(["python bench/data.py", *(argv if argv is not None else sys.argv[1:])])
    path = write_results("data", figures, command)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""What keeping freed memory for reuse (``mtspeech.serve.allocator.keep_freed_memory``) buys a serving process.

The same work runs in fresh processes with the allocator tuned and left at glibc's defaults, alternating
(``--rounds`` pairs; per figure the best of the rounds counts): every default task for 12 test clips one request at
a time and four at a time, fp32 and int8, and the encoder alone for batches of 4 x 4 s and 8 x 6 s. Prints the
speedups and each process' peak resident memory, writes bench/results/malloc.json.

    python bench/malloc.py --model work/runs/synth-small-text/model.pt --corpus work/corpus-small
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_results  # noqa: E402


def child(model: Path, corpus: Path, tuned: bool) -> dict[str, Any]:
    """One process' timings (ms, best of 3 per item, summed) with the allocator tuned or not."""
    import numpy as np
    import torch
    from lhotse import CutSet

    from mtspeech.data.corpus import manifest_path
    from mtspeech.data.features import load_waveform
    from mtspeech.serve.allocator import keep_freed_memory
    from mtspeech.serve.inference import load_analyzer

    applied = keep_freed_memory() if tuned else False
    torch.set_num_threads(1)
    waves = [load_waveform(c) for c in list(CutSet.from_file(manifest_path(corpus, "cuts", "test")))[:12]]
    groups = [waves[i : i + 4] for i in range(0, len(waves), 4)]

    def best_ms(fn: Any, items: list[Any]) -> float:
        total = 0.0
        for item in items:
            fn(item)
            times = []
            for _ in range(3):
                started = time.perf_counter()
                fn(item)
                times.append(time.perf_counter() - started)
            total += min(times)
        return round(total * 1000, 1)

    out: dict[str, Any] = {"applied": applied}
    for name, quantize in (("fp32", None), ("int8", "int8")):
        analyzer = load_analyzer(model, quantize=quantize)
        out[f"{name} requests one at a time"] = best_ms(lambda w, a=analyzer: a.analyze([w], a.default_tasks), waves)
        out[f"{name} requests four at a time"] = best_ms(
            lambda g, a=analyzer: a.analyze(list(g), a.default_tasks), groups
        )
        for batch, seconds in ((4, 4.0), (8, 6.0)):
            frames = int(seconds * 100)
            features, lengths = torch.randn(batch, frames, 80), torch.full((batch,), frames)
            with torch.inference_mode():
                out[f"{name} encoder {batch}x{seconds:g}s"] = best_ms(
                    lambda _, m=analyzer.model, f=features, n=lengths: m.encode(f, n), [np.zeros(1)] * 3
                )
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("work/runs/synth-small-text/model.pt"))
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus-small"))
    parser.add_argument("--rounds", type=int, default=2, help="process pairs (tuned, default), alternating")
    parser.add_argument("--child", choices=("tuned", "default"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.corpus, args.child == "tuned")))
        return
    runs: dict[str, list[dict[str, Any]]] = {"tuned": [], "default": []}
    for _ in range(args.rounds):
        for mode in runs:
            command = [sys.executable, __file__, "--model", str(args.model), "--corpus", str(args.corpus)]
            done = subprocess.run([*command, "--child", mode], capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(mode, runs[mode][-1], flush=True)
    timed = [k for k in runs["tuned"][0] if k not in ("applied", "peak_rss_mb")]
    best = {mode: {k: min(r[k] for r in rs) for k in timed} for mode, rs in runs.items()}
    figures: dict[str, Any] = {
        "model": str(args.model),
        "applied": runs["tuned"][0]["applied"],
        "unit": "ms, summed over the clips or batches, best of 3 per item and of the rounds",
        **{
            k: {
                "default": best["default"][k],
                "tuned": best["tuned"][k],
                "speedup": round(best["default"][k] / best["tuned"][k], 3),
            }
            for k in timed
        },  # fmt: skip
        "peak_rss_mb": {mode: max(r["peak_rss_mb"] for r in rs) for mode, rs in runs.items()},
    }
    for key in timed:
        print(f"{key}: {figures[key]}")
    command = "python bench/malloc.py " + " ".join(sys.argv[1:])
    print(f"wrote {write_results('malloc', figures, command.strip())}")


if __name__ == "__main__":
    main()

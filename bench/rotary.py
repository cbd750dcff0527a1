"""Rotary position embedding: the complex-product rotation of ``mtspeech.model.attention.RotaryEmbedding`` against
the real formulation it replaced (four products of strided even/odd slices, a difference, a sum and a stack).

Shapes: a serving request's encoder self-attention (1 x 4 heads x 225 frames), the slot tagger's (56 tokens), a
decoder search step (5 beams x 1 token) and a demo training batch (8 x 500 frames), forward only and forward +
backward; both rotations of q and k, as one attention layer does. Prints the speedups and the largest difference
between the two, writes bench/results/rotary.json.

    python bench/rotary.py
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import write_results  # noqa: E402
from mtspeech.model.attention import RotaryEmbedding  # noqa: E402

SHAPES = {
    "encoder request 1x4x225": (1, 4, 225, 36),
    "slot tagger 1x4x56": (1, 4, 56, 36),
    "decoder step 5x4x1": (5, 4, 1, 36),
    "training batch 8x4x500": (8, 4, 500, 36),
}


def real_slices(rotary: RotaryEmbedding, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The rotation as it was computed before: even and odd channels as strided slices."""
    positions = torch.arange(offset, offset + x.size(-2), device=x.device, dtype=torch.float32)
    angles = torch.outer(positions, rotary.inv_freq)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


def best_microseconds(fn: Callable[[], object], calls: int, repeats: int) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return round(best, 1)


def measure(rotary: RotaryEmbedding, shape: tuple[int, ...], repeats: int) -> dict[str, object]:
    """Both formulations on q and k of ``shape``: forward alone, forward + backward, and their largest difference."""
    q, k = torch.randn(shape), torch.randn(shape)
    calls = max(5, 20_000 // shape[0] // shape[2])
    variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "real_slices": lambda x: real_slices(rotary, x),
        "complex": rotary,
    }
    with torch.inference_mode():
        difference = max(float((rotary(x) - real_slices(rotary, x)).abs().max()) for x in (q, k))
        forward = {name: best_microseconds(lambda f=f: (f(q), f(k)), calls, repeats) for name, f in variants.items()}
    qg, kg = q.clone().requires_grad_(), k.clone().requires_grad_()
    backward = {
        name: best_microseconds(lambda f=f: (f(qg) * f(kg)).sum().backward(), calls, repeats)
        for name, f in variants.items()
    }
    return {
        "forward": {**forward, "speedup": round(forward["real_slices"] / forward["complex"], 2)},
        "forward_backward": {**backward, "speedup": round(backward["real_slices"] / backward["complex"], 2)},
        "max_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rotary = RotaryEmbedding(36)
    figures: dict[str, object] = {"unit": "microseconds for q and k", "threads": args.threads}
    for name, shape in SHAPES.items():
        figures[name] = measure(rotary, shape, args.repeats)
        print(name, figures[name], flush=True)
    command = "python bench/rotary.py " + " ".join(sys.argv[1:])
    print(f"wrote {write_results('rotary', figures, command.strip())}")


if __name__ == "__main__":
    main()

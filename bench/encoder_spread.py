"""Does the small encoder keep utterances apart while a classifier trains on it? (the why of two model defaults)

Trains the small encoder's width at 10 blocks (the depth at which the collapse was found) with one utterance
classifier (gender by default) for ``--steps`` Adam updates on batches of the synthetic corpus, once per variant,
then reports, after every Conformer block, the spread of the
time-pooled vectors across utterances (mean over dimensions of their std over a held-out batch set) and the
classifier's held-out accuracy. Variants: the Conformer paper's LayerNorm closing every block with a plain pooled
head (``paper``), one final norm (``final_norm``), and one final norm with BatchNorm on the pooled vector
(``default``, what the presets use). Writes bench/results/encoder-spread.json.

    python bench/encoder_spread.py [--corpus work/corpus-small] [--steps 100] [--task gender]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from mtspeech.train.build import build_run  # noqa: E402
from mtspeech.train.config import TrainConfig  # noqa: E402

VARIANTS = {
    "paper": {"encoder": {"block_norm": True}, "pool_norm": "none"},
    "final_norm": {"encoder": {"block_norm": False}, "pool_norm": "none"},
    "default": {"encoder": {"block_norm": False}, "pool_norm": "batch"},
}


def spread(x: torch.Tensor, lens: torch.Tensor) -> float:
    pooled = torch.stack([x[i, : lens[i]].mean(0) for i in range(x.size(0))])
    return float(pooled.std(0).mean())


def run_variant(name: str, corpus: str, task: str, steps: int, lr: float) -> dict:
    out_dir = Path(tempfile.mkdtemp(prefix=f"spread-{name}-"))
    variant = VARIANTS[name]
    raw = {
        "seed": 0,
        "output_dir": str(out_dir),
        "max_steps": steps,
        "data": {"corpora": [{"path": corpus}], "max_duration": 30, "num_workers": 0},
        "model": {
            "encoder": {"preset": "small", "num_blocks": 10, **variant["encoder"]},
            "tasks": {task: {"pool_norm": variant["pool_norm"], "dropout": 0.1}},
        },
    }
    try:
        run = build_run(TrainConfig.model_validate(raw), resume=False)
        model = run.model
        train = [run.stream.next() for _ in range(40)]
        held_out = [run.stream.next() for _ in range(8)]
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
        done = 0
        for batch in train * (steps // len(train) + 1):
            if done == steps:
                break
            if int((batch.class_targets[task] >= 0).sum()) == 0:
                continue
            model.train()
            loss = model(batch, tasks=[task]).losses[task]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
        model.eval()
        per_block: list[list[float]] = [[] for _ in range(len(model.encoder.blocks) + 1)]
        correct = total = 0
        with torch.no_grad():
            for batch in held_out:
                enc, lens, layers = model.encoder(batch.features, batch.feature_lens, keep_layers=True)
                for i, x in enumerate([*layers[1:], enc]):  # after each block, then the encoder output
                    per_block[i].append(spread(x, lens))
                labels = batch.class_targets[task]
                keep = labels >= 0
                predicted = torch.tensor(model.tasks[task].predict(enc, lens))
                correct += int((predicted[keep] == labels[keep]).sum())
                total += int(keep.sum())
        averaged = [round(sum(v) / len(v), 5) for v in per_block]
        return {
            "spread_after_block": averaged[:-1],
            "spread_encoder_output": averaged[-1],
            "held_out_accuracy": round(100 * correct / max(total, 1), 1),
            "held_out_rows": total,
        }
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="work/corpus-small")
    parser.add_argument("--task", default="gender")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {}
    for name in VARIANTS:
        torch.manual_seed(0)
        results[name] = run_variant(name, args.corpus, args.task, args.steps, args.lr)
        r = results[name]
        blocks = r["spread_after_block"]
        print(
            f"{name:>10}: spread after blocks 1/5/10 {blocks[0]:.4f} / {blocks[4]:.4f} / {blocks[-1]:.4f}, "
            f"encoder output {r['spread_encoder_output']:.4f}, "
            f"held-out {args.task} accuracy {r['held_out_accuracy']}% ({r['held_out_rows']} rows)"
        )
    command = f"python bench/encoder_spread.py --corpus {args.corpus} --task {args.task} --steps {args.steps}"
    figures = {"task": args.task, "steps": args.steps, "lr": args.lr, "variants": results}
    print("wrote", write_results("encoder-spread", figures, command))


if __name__ == "__main__":
    main()

"""How fast does CTC leave its blank plateau on the CPU? (the why of the small recipe's units, depth and batches)

Trains an ``asr_ctc``-only model of the small width for the same wall-clock budget per variant, through the
project's own pipeline (``build_run``: tokenizer, features, bucketing sampler), with AdamW at the recipe's
learning rate, warmup and cosine decay, then reports greedy CER on validation cuts and the CTC loss curve. The
variants change one thing at a time from the old recipe (SentencePiece unigram pieces, 10 blocks, 60 s batches)
to the current one (characters, 6 blocks, 20 s batches). Writes bench/results/ctc-probe.json.

    python bench/ctc_probe.py [--corpus work/corpus-small] [--minutes 3] [--variants old,char,...]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402

from mtspeech.evaluate.metrics import cer  # noqa: E402
from mtspeech.train.build import build_run  # noqa: E402
from mtspeech.train.config import TrainConfig  # noqa: E402

# name -> (tokenizer, encoder blocks, seconds of audio per batch, encoder subsampling factor)
VARIANTS: dict[str, tuple[dict[str, Any], int, float, int]] = {
    "old": ({"model_type": "unigram", "vocab_size": 600}, 10, 60.0, 4),
    "char": ({"model_type": "char"}, 10, 60.0, 4),
    "char_6_blocks": ({"model_type": "char"}, 6, 60.0, 4),
    "char_6_blocks_20s": ({"model_type": "char"}, 6, 20.0, 4),
    "unigram_6_blocks_20s": ({"model_type": "unigram", "vocab_size": 600}, 6, 20.0, 4),
    # Characters come at ~17 a second (up to 26 in fast emotional speech): at x4 (25 frames a second) CTC has
    # barely one frame per character plus the blanks between repeats; x2 gives it two.
    "char_6_blocks_20s_x2": ({"model_type": "char"}, 6, 20.0, 2),
}


def run_variant(name: str, corpus: str, minutes: float, lr: float, valid_cuts: int) -> dict[str, Any]:
    tokenizer, blocks, max_duration, factor = VARIANTS[name]
    out_dir = Path(tempfile.mkdtemp(prefix=f"ctc-probe-{name}-"))
    raw = {
        "seed": 0,
        "output_dir": str(out_dir),
        "max_steps": 100_000,
        "data": {
            "corpora": [{"path": corpus}],
            "max_duration": max_duration,
            "num_workers": 1,
            "valid_max_cuts": valid_cuts,
            "augment": {"spec_augment": False, "speed_perturb": False},
        },
        "tokenizer": tokenizer,
        "model": {
            "encoder": {"preset": "small", "num_blocks": blocks, "subsampling_factor": factor},
            "tasks": {"asr_ctc": {}},
        },
    }
    try:
        run = build_run(TrainConfig.model_validate(raw), resume=False)
        model, budget = run.model, minutes * 60
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=1e-3)
        warmup, losses, steps = 40, [], 0
        start = time.perf_counter()
        model.train()
        while (elapsed := time.perf_counter() - start) < budget:
            # Warmup, then cosine over the wall-clock budget (the recipe's schedule, stretched to the time).
            scale = min(1.0, (steps + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
            for group in optimizer.param_groups:
                group["lr"] = lr * scale
            loss = model(run.stream.next(), tasks=["asr_ctc"]).losses["asr_ctc"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            steps += 1
            if steps % 25 == 0:
                losses.append(round(loss.item(), 3))
        train_seconds = time.perf_counter() - start
        model.eval()
        hypotheses, references = [], []
        assert run.valid_loader is not None
        with torch.no_grad():
            for batch in run.valid_loader:
                enc, enc_lens = model.encode(batch.features, batch.feature_lens)
                for row, ids in enumerate(model.tasks["asr_ctc"].predict(enc, enc_lens)):
                    if bool(batch.ctc_mask[row]):
                        hypotheses.append(run.tokenizer.decode(ids))
                        references.append(
                            run.tokenizer.decode(batch.ctc_targets[row, : batch.ctc_target_lens[row]].tolist())
                        )
        run.stream.close()
        return {
            "tokenizer": tokenizer,
            "num_blocks": blocks,
            "subsampling_factor": factor,
            "max_duration": max_duration,
            "ctc_outputs": run.tokenizer.sp_size,
            "steps": steps,
            "train_seconds": round(train_seconds, 1),
            "valid_cer": round(cer(references, hypotheses), 2),
            "valid_rows": len(references),
            "loss_every_25_steps": losses,
            "example": {"reference": references[0], "hypothesis": hypotheses[0]},
        }
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="work/corpus-small")
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall-clock budget per variant")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--valid-cuts", type=int, default=150)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    torch.set_num_threads(2)
    results = {}
    for name in names:
        torch.manual_seed(0)
        r = results[name] = run_variant(name, args.corpus, args.minutes, args.lr, args.valid_cuts)
        print(
            f"{name:>22}: {r['steps']:5d} steps in {r['train_seconds']:.0f} s, valid CER {r['valid_cer']:6.2f}% "
            f"(CTC outputs {r['ctc_outputs']}); last losses {r['loss_every_25_steps'][-3:]}"
        )
    command = f"python bench/ctc_probe.py --corpus {args.corpus} --minutes {args.minutes} --variants {','.join(names)}"
    figures = {"minutes_per_variant": args.minutes, "lr": args.lr, "variants": results}
    print("wrote", write_results("ctc-probe", figures, command))


if __name__ == "__main__":
    main()

"""What text without audio adds to the transcript-reading intent head, measured apart from the encoder.

The ``intent_text`` head reads only the transcript and sends nothing into the encoder, so its training can be
replayed on its own: a fresh head of a trained model's configuration is trained for as many steps as the demo
recipe runs, on about as many spoken intent rows a step as the recipe's batches hold (their reference
transcripts, drawn in a new order each pass), plus 0, 4, 8 or 16 text-only rows a step from the corpus'
``manifests/texts_train.jsonl.gz`` (the train split's unspoken sentences), with the recipe's learning rate
and cosine schedule. Each head is then scored on the test utterances' reference transcripts and on the
trained model's own transcripts (``mtspeech evaluate``'s predictions.jsonl), the ones it answers from in
service. Every variant sees the same spoken rows in the same order; only the text rows differ.

    python bench/intent_text_rows.py --model work/runs/synth-small/model.pt
        --predictions work/runs/synth-small/eval/predictions.jsonl [--corpus work/corpus-small]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mtspeech.data.batch import IGNORE
from mtspeech.data.corpus import load_cuts, load_texts
from mtspeech.data.text_rows import TextRowStream
from mtspeech.model.package import load_model
from mtspeech.tasks.intent_text import TranscriptIntentTask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402


def spoken_rows(corpus: Path, split: str, tokenizer: Any, vocab: Any) -> list[tuple[list[int], int]]:
    rows = []
    for cut in load_cuts(corpus, split):
        for sup in cut.supervisions:
            label = vocab.index.get((sup.custom or {}).get("intent"))
            if sup.text and label is not None:
                rows.append((tokenizer.encode(sup.text), label))
    return rows


def train_head(
    task: TranscriptIntentTask,
    spoken: list[tuple[list[int], int]],
    text: TextRowStream | None,
    steps: int,
    spoken_per_step: int,
    lr: float,
    warmup: int,
) -> TranscriptIntentTask:
    torch.nn.init.zeros_(task.head["bag"].weight)
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)  # the trainer's
    generator = torch.Generator().manual_seed(0)
    order: list[int] = []
    for step in range(steps):
        scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        tokens, labels = [], []
        for _ in range(spoken_per_step):
            if not order:
                order = torch.randperm(len(spoken), generator=generator).tolist()
            row, label = spoken[order.pop()]
            tokens.append(row)
            labels.append(label)
        if text is not None:
            drawn = text.next()
            for row, label in zip(drawn.tokens, drawn.class_targets["intent"], strict=True):
                if label != IGNORE:
                    tokens.append(row)
                    labels.append(label)
        optimizer.zero_grad()
        F.cross_entropy(task.logits_of(tokens, torch.device("cpu")), torch.tensor(labels)).backward()
        optimizer.step()
    return task.eval()


def accuracy(task: TranscriptIntentTask, rows: list[tuple[list[int], int]]) -> float:
    with torch.no_grad():
        predicted = task.logits_of([r for r, _ in rows], torch.device("cpu")).argmax(-1).tolist()
    return round(100.0 * sum(p == label for p, (_, label) in zip(predicted, rows, strict=True)) / len(rows), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("work/runs/synth-small/model.pt"))
    parser.add_argument("--predictions", type=Path, default=Path("work/runs/synth-small/eval/predictions.jsonl"))
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus-small"))
    parser.add_argument("--steps", type=int, default=2700, help="training steps (the demo recipe's max_steps)")
    parser.add_argument(
        "--spoken-per-step",
        type=int,
        default=3,
        help="spoken intent rows a recipe batch holds (~2.6: 1,228 in 2.61 h of train, 20 s batches)",
    )
    parser.add_argument("--text-rows", default="0,4,8,16", help="text-only rows a step, per variant")
    parser.add_argument("--results-name", default="intent-text-rows")
    args = parser.parse_args()
    torch.manual_seed(0)
    loaded = load_model(args.model)
    if "intent_text" not in loaded.model.tasks:
        raise SystemExit(f"{args.model}: the model has no intent_text head")
    head = loaded.model.tasks["intent_text"]
    vocab, tokenizer = loaded.vocabs["intent"], loaded.tokenizer
    spoken = spoken_rows(args.corpus, "train", tokenizer, vocab)
    texts = load_texts(args.corpus, "train")
    if not texts:
        raise SystemExit(f"{args.corpus}: no text-only rows (regenerate it with mtspeech corpus synth)")
    test_gold = spoken_rows(args.corpus, "test", tokenizer, vocab)
    predictions = [json.loads(line) for line in args.predictions.read_text().splitlines() if line.strip()]
    test_model = [
        (tokenizer.encode(p["prediction"].get("text") or ""), vocab.index[p["reference"]["intent"]])
        for p in predictions
        if p["reference"].get("intent") in vocab.index
    ]
    variants: dict[str, Any] = {}
    for count in [int(c) for c in args.text_rows.split(",")]:
        stream = TextRowStream(texts, tokenizer, loaded.vocabs, ["intent"], count, seed=0) if count else None
        task = TranscriptIntentTask(head.config.model_copy(), loaded.model.config.encoder.d_model)
        lr, warmup = 2e-3, 40  # recipes/common/synth-small.yaml
        train_head(task, spoken, stream, args.steps, args.spoken_per_step, lr, warmup)
        variants[str(count)] = {"test_gold_transcripts": accuracy(task, test_gold)}
        variants[str(count)]["test_model_transcripts"] = accuracy(task, test_model)
        print(count, variants[str(count)], flush=True)
    figures = {
        "settings": {
            "model": str(args.model),
            "predictions": str(args.predictions),
            "corpus": str(args.corpus),
            "steps": args.steps,
            "spoken_rows_per_step": args.spoken_per_step,
            "head": head.config.model_dump(include={"buckets", "ngrams", "char_ngrams", "scale"}),
        },
        "spoken_train_rows": len(spoken),
        "text_only_rows_with_known_intent": len(TextRowStream(texts, tokenizer, loaded.vocabs, ["intent"], 1, 0)),
        "test_utterances": {"gold": len(test_gold), "model_transcripts": len(test_model)},
        "by_text_rows_per_step": variants,
    }
    command = "python " + " ".join(sys.argv)
    print(json.dumps(figures, indent=1))
    print("wrote", write_results(args.results_name, figures, command))


if __name__ == "__main__":
    main()

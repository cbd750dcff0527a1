"""How far text alone gets on the corpus' intents: the data-bound ceiling of the intent floor.

The small corpus speaks ~1,500 of the 2,033 shipped SLURP sentences (59 intents, ~20 training sentences each).
This benchmark trains a word classifier (a linear model over word unigrams and bigrams, the fastText recipe
without hashing; full-batch Adam, a few seconds on a CPU) and scores intent accuracy on the test utterances;
``*_char_ngrams`` figures add the character 3-5-grams inside each word (fastText's subwords, as the
``intent_text`` task's ``char_ngrams`` does):

* ``gold_text``: on the reference transcripts, trained on the corpus' train transcripts: what a perfect
  recogniser followed by a text classifier would reach with this much SLU data;
* ``gold_text_by_train_share``: the same with a quarter, half and all of the train transcripts (one fixed
  shuffle): how the ceiling moves with the amount of SLU data;
* ``model_transcripts`` (with ``--predictions``): on a model's own transcripts (``mtspeech evaluate``'s
  predictions.jsonl), trained on the gold train transcripts: the cascade an engineer would build on that model,
  beside ``model_intent_head``, the model's intent head on the same utterances.

    python bench/intent_ceiling.py [--corpus work/corpus-small]
        [--predictions work/runs/synth-small/eval/predictions.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtspeech.tasks.intent_text import word_char_ngrams

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402


def features(text: str, char_ngrams: bool = False) -> list[str]:
    words = text.lower().split()
    found = words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]
    if char_ngrams:  # as the intent_text task cuts them
        found += [f"#{g}" for w in words for g in word_char_ngrams(w, (3, 4, 5))]
    return found


class WordClassifier:
    """Linear softmax over the mean of word unigram/bigram (and optionally in-word character n-gram) embeddings
    (features seen once or more in training)."""

    def __init__(
        self, texts: Sequence[str], labels: Sequence[str], epochs: int = 300, seed: int = 0, char_ngrams: bool = False
    ) -> None:
        torch.manual_seed(seed)
        self.char_ngrams = char_ngrams
        self.names = sorted(set(labels))
        counts = Counter(f for t in texts for f in features(t, char_ngrams))
        self.vocab = {f: i for i, f in enumerate(sorted(counts))}
        self.bag = nn.EmbeddingBag(len(self.vocab) + 1, len(self.names), mode="mean")  # last row: unknown
        ids, offsets = self._pack(texts)
        targets = torch.tensor([self.names.index(label) for label in labels])
        optimizer = torch.optim.Adam(self.bag.parameters(), lr=0.1, weight_decay=1e-5)
        for _ in range(epochs):
            optimizer.zero_grad()
            nn.functional.cross_entropy(self.bag(ids, offsets), targets).backward()
            optimizer.step()

    def _pack(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        unknown = len(self.vocab)
        rows = [[self.vocab.get(f, unknown) for f in features(t, self.char_ngrams)] or [unknown] for t in texts]
        offsets = torch.tensor([0] + [len(r) for r in rows[:-1]]).cumsum(0)
        return torch.tensor([i for r in rows for i in r]), offsets

    @torch.no_grad()
    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.names[i] for i in self.bag(*self._pack(texts)).argmax(-1).tolist()]


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    return round(100.0 * sum(p == g for p, g in zip(predicted, gold, strict=True)) / max(len(gold), 1), 2)


def intent_pairs(corpus: Path, split: str) -> list[tuple[str, str]]:
    from mtspeech.data.corpus import load_cuts

    pairs = []
    for cut in load_cuts(corpus, split):
        for sup in cut.supervisions:
            intent = (sup.custom or {}).get("intent")
            if sup.text and intent:
                pairs.append((sup.text, intent))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("work/corpus-small"))
    parser.add_argument("--predictions", type=Path, help="predictions.jsonl of mtspeech evaluate on the test split")
    parser.add_argument("--results-name", default="intent-ceiling")
    args = parser.parse_args()

    train, valid, test = (intent_pairs(args.corpus, s) for s in ("train", "valid", "test"))
    if not train or not test:
        raise SystemExit(f"{args.corpus}: no intent-labelled utterances in train or test (mtspeech corpus synth)")
    classifier = WordClassifier(*zip(*train, strict=True))
    with_chars = WordClassifier(*zip(*train, strict=True), char_ngrams=True)
    majority = Counter(i for _, i in train).most_common(1)[0][0]
    figures: dict[str, Any] = {
        "settings": {
            "corpus": str(args.corpus),
            "classifier": "linear over word unigrams + bigrams, Adam, 300 epochs",
            "char_ngrams": "the same plus the character 3-, 4- and 5-grams inside each word, edges marked",
        },
        "train_utterances": len(train),
        "train_sentences": len({t for t, _ in train}),
        "intents": len({i for _, i in train}),
        "test_utterances": len(test),
        "majority_class": accuracy([majority] * len(test), [i for _, i in test]),
        "gold_text": {
            "valid": accuracy(classifier.predict([t for t, _ in valid]), [i for _, i in valid]),
            "test": accuracy(classifier.predict([t for t, _ in test]), [i for _, i in test]),
            "test_char_ngrams": accuracy(with_chars.predict([t for t, _ in test]), [i for _, i in test]),
        },
    }
    shuffled = [train[i] for i in torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()]
    by_share = {}
    for share in (0.25, 0.5, 1.0):
        subset = shuffled[: int(len(shuffled) * share)]
        partial = WordClassifier(*zip(*subset, strict=True))
        by_share[f"{share:g}"] = {
            "train_utterances": len(subset),
            "test": accuracy(partial.predict([t for t, _ in test]), [i for _, i in test]),
        }
    figures["gold_text_by_train_share"] = by_share
    if args.predictions:
        rows = [json.loads(line) for line in args.predictions.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r["reference"].get("intent")]
        gold = [r["reference"]["intent"] for r in rows]
        figures["model_transcripts"] = {
            "predictions": str(args.predictions),
            "utterances": len(rows),
            "cascade_on_model_transcripts": accuracy(classifier.predict([r["prediction"]["text"] for r in rows]), gold),
            "cascade_on_gold_transcripts": accuracy(classifier.predict([r["reference"]["text"] for r in rows]), gold),
            "cascade_char_ngrams_on_model_transcripts": accuracy(
                with_chars.predict([r["prediction"]["text"] for r in rows]), gold
            ),
            "cascade_char_ngrams_on_gold_transcripts": accuracy(
                with_chars.predict([r["reference"]["text"] for r in rows]), gold
            ),
            "model_intent_head": accuracy([r["prediction"].get("intent", "") for r in rows], gold),
        }
    command = "python " + " ".join(sys.argv)
    print(json.dumps(figures, indent=1))
    print("wrote", write_results(args.results_name, figures, command))


if __name__ == "__main__":
    main()

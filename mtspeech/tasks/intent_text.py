"""``intent_text``: the intent read from the transcript, by a linear classifier over hashed word (and character)
n-grams.

Design (fastText's): the transcript's tokens are cut into words at the pieces that begin one (SentencePiece's
"▁"), every word and every run of up to ``ngrams`` neighbouring words is hashed into one of ``buckets`` rows of an
embedding bag as wide as the intent vocabulary, and ``scale`` times the mean of the rows a transcript hits are its
logits (row 0 is hit by every transcript: the class prior). With ``char_ngrams`` (fastText's subwords) the
character n-grams inside each word, edges marked (``<wake>`` -> ``<wa``, ``wak``, ...), are hashed into the same
rows: a misrecognised word ("alarn" for "alarm") still shares most of its n-grams with the word the classifier
learned, which word features alone cannot see (bench/intent_ceiling.py measures both on a model's transcripts).

Training reads the reference transcript (``Batch.ctc_targets``: teacher forcing); at inference the transcript is
the ``asr_ctc`` greedy hypothesis (hence ``requires = ("asr_ctc",)``) or any token rows passed as ``tokens``.

Why beside the pooled ``intent`` head: with ~20 spoken examples per intent (the demo corpus) the pooled head
stays near chance in the CPU budget, while a word classifier on the same model's transcripts gets over a third
of the intents right, close to half with character n-grams (bench/intent_ceiling.py). It sends no gradient into
the encoder, so the other tasks lose nothing. Why ``scale``: Adam moves each parameter by about the learning
rate per step whatever its gradient, so at a shared schedule's 2e-3 a word would need thousands of updates to
reach logits of a few units; scaling the output is the same as a ``scale`` times larger learning rate for this
head alone (its gradient is scaled back down before the optimizer sees it, so gradient clipping is not thrown
off).

Loss: cross-entropy over the rows with an intent and a transcript. Prediction: the intent id. Score: accuracy.
When a model has both heads, the service and ``mtspeech evaluate`` answer intents with this one, reading the
transcript their ASR answer shows (the search result, not the greedy path), as they do for ``slots``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.errors import UserError
from mtspeech.tasks.base import Task, TaskConfig, TaskLoss, register_task, rows_with
from mtspeech.tasks.metrics import accuracy

INTENT_VOCAB = "intent"
_FNV_OFFSET, _FNV_PRIME, _MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


class IntentTextConfig(TaskConfig):
    num_classes: int | None = Field(None, ge=2, description="intents in the 'intent' vocabulary (filled from it)")
    vocab_size: int | None = Field(None, ge=2, description="tokenizer.sp_size: text pieces (filled in)")
    word_start_ids: list[int] | None = Field(
        None, description="text pieces that begin a word (SentencePiece '▁' pieces; filled from the tokenizer)"
    )
    buckets: int = Field(1 << 15, ge=16, description="hash buckets for word n-grams (rows of the embedding bag)")
    ngrams: int = Field(2, ge=1, le=4, description="word n-gram orders 1..ngrams")
    char_ngrams: list[int] = Field(
        default_factory=list,
        description="character n-gram orders inside words, e.g. [3, 4, 5] (fastText subwords); empty: words only",
    )
    piece_texts: list[str] | None = Field(
        None, description="text of every text piece (SentencePiece pieces; filled from the tokenizer)"
    )
    text_only_rows: int = Field(
        0,
        ge=0,
        description="text-only rows (sentences no recording speaks: the corpus' manifests/texts_train.jsonl.gz) "
        "trained on beside each batch's spoken rows; 0: spoken transcripts only",
    )
    scale: float = Field(100.0, gt=0.0, description="logit scale: an effective learning-rate multiplier (docstring)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("char_ngrams")
    @classmethod
    def _orders(cls, orders: list[int]) -> list[int]:
        if any(not 2 <= n <= 8 for n in orders) or len(set(orders)) != len(orders):
            raise ValueError(f"char_ngrams must be distinct orders from 2 to 8, e.g. [3, 4, 5]; got {orders}")
        return sorted(orders)


def stable_hash(values: Sequence[int]) -> int:
    """64-bit FNV-1a over a sequence of ints: the same bucket on every run and machine (Python's ``hash`` of
    a str is salted per process)."""
    h = _FNV_OFFSET
    for value in values:
        for byte in int(value).to_bytes(4, "little", signed=True):
            h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def split_words(tokens: Sequence[int], word_starts: set[int]) -> list[tuple[int, ...]]:
    """Piece ids cut into words: a new word begins at every piece in ``word_starts``."""
    words: list[tuple[int, ...]] = []
    current: list[int] = []
    for token in tokens:
        if token in word_starts and current:
            words.append(tuple(current))
            current = []
        current.append(int(token))
    if current:
        words.append(tuple(current))
    return words


def word_ngram_buckets(tokens: Sequence[int], word_starts: set[int], ngrams: int, buckets: int) -> list[int]:
    """Bucket ids of a transcript's word n-grams (orders 1..ngrams), plus bucket 0, which every row hits."""
    return ngram_buckets(split_words(tokens, word_starts), ngrams, buckets)


def ngram_buckets(words: Sequence[tuple[int, ...]], ngrams: int, buckets: int) -> list[int]:
    """:func:`word_ngram_buckets` of a transcript already cut into words."""
    found = [0]
    for order in range(1, ngrams + 1):
        for i in range(len(words) - order + 1):
            flat = [order]
            for word in words[i : i + order]:
                flat.extend((*word, -1))  # -1 separates words: ("ab", "c") and ("a", "bc") differ
            found.append(1 + stable_hash(flat) % (buckets - 1))
    return found


def word_char_ngrams(word: str, orders: Sequence[int]) -> list[str]:
    """The character n-grams inside one word, its edges marked: ``wake``, (3,) -> ``<wa``, ``wak``, ``ake``, ``ke>``."""
    marked = f"<{word}>"
    return [marked[i : i + order] for order in orders for i in range(len(marked) - order + 1)]


def char_ngram_buckets(words: Sequence[str], orders: Sequence[int], buckets: int) -> list[int]:
    """Bucket ids of the character n-grams inside each word (:func:`word_char_ngrams`).

    Hashed with zlib's CRC-32 of the UTF-8 n-gram: as stable across processes as :func:`stable_hash`, and C rather
    than a Python loop, which matters for the ~150 n-grams of a sentence every training step hashes per SLU row."""
    return [1 + zlib.crc32(g.encode()) % (buckets - 1) for word in words for g in word_char_ngrams(word, orders)]


@register_task
class TranscriptIntentTask(Task):
    name = "intent_text"
    config_class = IntentTextConfig
    config: IntentTextConfig
    requires = ("asr_ctc",)
    label_vocab = INTENT_VOCAB

    def __init__(self, config: IntentTextConfig, d_model: int) -> None:
        super().__init__(config, d_model)
        bag = nn.EmbeddingBag(config.buckets, self.require("num_classes"), mode="mean")
        nn.init.zeros_(bag.weight)  # uniform over intents until a word says otherwise
        # The gradient that reaches the optimizer is divided by ``scale`` again: Adam's update does not change
        # (it is invariant to the gradient's scale) but the global gradient-norm clipping, shared with the
        # encoder, no longer sees this head's gradient ``scale`` times too large and shrinks everyone's step.
        bag.weight.register_hook(lambda grad: grad / config.scale)
        self.head = nn.ModuleDict({"bag": bag})
        self._word_starts = set(self.require("word_start_ids"))
        self._piece_texts = self.require("piece_texts") if config.char_ngrams else []  # a word = its pieces joined
        if config.char_ngrams and len(self._piece_texts) != self.require("vocab_size"):
            raise UserError(
                f"intent_text: piece_texts has {len(self._piece_texts)} entries but vocab_size is {config.vocab_size}"
            )

    @classmethod
    def key(cls) -> str:
        """The ``Batch.class_targets`` key (the pooled ``intent`` head's)."""
        return INTENT_VOCAB

    @classmethod
    def sizes_from_data(cls, tokenizer: Any, vocabs: Mapping[str, Any]) -> dict[str, Any]:
        vocab = vocabs.get(INTENT_VOCAB)
        if vocab is None:
            raise UserError("task 'intent_text' needs the 'intent' label vocabulary, but the data has no intents")
        starts = [i for i, starts in enumerate(tokenizer.word_starts(range(tokenizer.sp_size))) if starts]
        # Decoded, so without SentencePiece's word-start mark ("▁wake" -> "wake"); the blank and unknown have no text.
        # A character tokenizer's lone "▁" piece decodes to " ", so there a word reads " wake" and its first n-grams
        # are "< w", "< wa": the same in training and inference, one edge n-gram more per order than "<wa" words.
        pieces = ["" if i == tokenizer.unk_id else tokenizer.decode([i]) for i in range(tokenizer.sp_size)]
        return {
            "num_classes": max(len(vocab), 2),
            "vocab_size": tokenizer.sp_size,
            "word_start_ids": starts,
            "piece_texts": pieces,
        }

    def target(self, batch: Batch) -> torch.Tensor | None:
        labels = batch.class_targets.get(INTENT_VOCAB)
        if labels is None or not bool(((labels != IGNORE) & (batch.ctc_target_lens > 0)).any()):
            return None
        return labels

    def logits_of(self, tokens: Sequence[Sequence[int]], device: torch.device) -> torch.Tensor:
        """``(len(tokens), num_classes)`` logits for rows of text-piece ids."""
        rows = [self.buckets_of(row) for row in tokens]
        flat = torch.tensor([b for row in rows for b in row], dtype=torch.long, device=device)
        offsets = torch.tensor([0, *[len(row) for row in rows[:-1]]], dtype=torch.long, device=device).cumsum(0)
        return self.config.scale * self.head["bag"](flat, offsets)

    def buckets_of(self, tokens: Sequence[int]) -> list[int]:
        """The embedding-bag rows one transcript hits: bucket 0, its word n-grams and (if enabled) char n-grams."""
        config = self.config
        words = split_words(tokens, self._word_starts)
        found = ngram_buckets(words, config.ngrams, config.buckets)
        if config.char_ngrams:
            texts = ["".join(self._piece_texts[t] for t in word) for word in words]
            found += char_ngram_buckets(texts, config.char_ngrams, config.buckets)
        return found

    def text_only_rows(self) -> int:
        return self.config.text_only_rows

    def loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, batch: Batch) -> TaskLoss:
        tokens: list[list[int]] = []
        targets: list[int] = []
        labels = self.target(batch)
        if labels is not None:
            rows = rows_with((labels != IGNORE) & (batch.ctc_target_lens > 0)).tolist()
            tokens = [batch.ctc_targets[r, : int(batch.ctc_target_lens[r])].tolist() for r in rows]
            targets = labels[rows].tolist()
        if batch.text_rows is not None and self.training:  # sentences without audio (mtspeech.data.text_rows)
            for row, label in zip(
                batch.text_rows.tokens, batch.text_rows.class_targets.get(INTENT_VOCAB, []), strict=True
            ):
                if label != IGNORE:
                    tokens.append(row)
                    targets.append(label)
        if not tokens:
            return self.empty_loss(enc)
        logits = self.logits_of(tokens, enc.device).float()
        target = torch.tensor(targets, dtype=torch.long, device=enc.device)
        loss = F.cross_entropy(logits, target, label_smoothing=self.config.label_smoothing)
        # Tied to the encoder output with a zero gradient, like every task's loss, so that balancers and the
        # gradient telemetry find a (zero) encoder gradient for this task too.
        return TaskLoss(loss + enc.reshape(-1)[0] * 0.0, len(tokens))

    def _tokens(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: Any) -> list[list[int]]:
        rows = self.transcript_tokens(enc, enc_lens, tokens)
        vocab_size = self.require("vocab_size")
        if any(not 0 <= t < vocab_size for row in rows for t in row):
            raise UserError(f"intent_text: token ids must be text pieces in [0, {vocab_size})")
        return rows

    @torch.no_grad()
    def probabilities(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: Any = None) -> torch.Tensor:
        """``(B, num_classes)`` intent probabilities of each row's transcript (default: the asr_ctc greedy one)."""
        return self.logits_of(self._tokens(enc, enc_lens, tokens), enc.device).float().softmax(dim=-1)

    @torch.no_grad()
    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor, **options: Any) -> list[int]:
        """The most probable intent id per row; option ``tokens``: one text-piece id list per row."""
        self.check_options(options, ("tokens",))
        return self.probabilities(enc, enc_lens, options.get("tokens")).argmax(dim=-1).tolist()

    def score(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Accuracy over the rows whose reference is not IGNORE."""
        return accuracy([int(p) for p in predictions], [int(r) for r in references], ignore=IGNORE)

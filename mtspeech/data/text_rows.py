"""Text-only training rows: sentences without audio, for the heads that read nothing but the transcript.

A corpus may carry sentences that no recording speaks (``manifests/texts_<split>.jsonl.gz``, see
:mod:`mtspeech.data.corpus`; the synthesiser writes the unspoken sentences of its train split there). A head that
reads only the transcript, such as ``intent_text``, learns from such a row exactly as from a spoken one, and the
encoder never sees it. Speech is the scarce part of an SLU corpus: text with intents is far cheaper to come by.

:class:`TextRowStream` hands out a fixed number of rows per training batch, reshuffled on every pass over them,
from a position it saves and restores, so a resumed run draws exactly the rows an uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mtspeech.data.batch import IGNORE
from mtspeech.data.corpus import TextRow
from mtspeech.data.labels import LabelVocab
from mtspeech.data.schema import INTENT

# Label vocabularies a sentence's words carry, and where a text row keeps each (a task reading only the
# transcript that wants another label adds it here).
TEXT_LABELS = {"intent": lambda row: row.custom.get(INTENT)}


@dataclass(frozen=True)
class TextBatch:
    """Text-only rows beside one training batch (``Batch.text_rows``)."""

    tokens: list[list[int]]  # text-piece ids per row, as the tokenizer encodes a transcript (Batch.ctc_targets)
    class_targets: dict[str, list[int]]  # label vocabulary -> id per row, IGNORE where the row has none


class TextRowStream:
    """Endless draws of ``rows_per_batch`` text rows, each pass over them in a new seeded order.

    Only rows with at least one label in ``label_keys`` (and a known one: a label the spoken data never had is
    dropped, as the vocabularies come from the spoken data) and a non-empty encoding are kept. With several
    processes each rank draws from its own share of the rows."""

    def __init__(
        self,
        rows: Sequence[TextRow],
        tokenizer: Any,
        vocabs: Mapping[str, LabelVocab],
        label_keys: Sequence[str],
        rows_per_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        unknown = [key for key in label_keys if key not in TEXT_LABELS or key not in vocabs]
        if unknown:
            raise ValueError(f"text rows carry no {unknown} labels (text labels: {list(TEXT_LABELS)}, given vocabs)")
        if rows_per_batch < 1:
            raise ValueError(f"rows_per_batch must be >= 1, got {rows_per_batch}")
        self.label_keys = tuple(label_keys)
        self.rows_per_batch = rows_per_batch
        self.seed = seed
        self.rows: list[tuple[list[int], dict[str, int]]] = []
        for row in rows[rank::world_size]:
            labels = {}
            for key in self.label_keys:
                label = TEXT_LABELS[key](row)
                labels[key] = vocabs[key].index.get(str(label), IGNORE) if label is not None else IGNORE
            tokens = tokenizer.encode(row.text)
            if tokens and any(label != IGNORE for label in labels.values()):
                self.rows.append((tokens, labels))
        self.drawn = 0
        self._order: list[int] = []
        self._order_pass = -1

    def __len__(self) -> int:
        return len(self.rows)

    def next(self) -> TextBatch:
        if not self.rows:
            raise ValueError("no text row has a label the stream was asked for")
        picked = []
        for _ in range(self.rows_per_batch):
            this_pass, position = divmod(self.drawn, len(self.rows))
            if this_pass != self._order_pass:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + this_pass)
                self._order = torch.randperm(len(self.rows), generator=generator).tolist()
                self._order_pass = this_pass
            picked.append(self.rows[self._order[position]])
            self.drawn += 1
        return TextBatch(
            tokens=[list(tokens) for tokens, _ in picked],
            class_targets={key: [labels[key] for _, labels in picked] for key in self.label_keys},
        )

    def state_dict(self) -> dict[str, int]:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.drawn = int(state["drawn"])

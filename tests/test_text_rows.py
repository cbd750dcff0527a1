"""Text-only training rows: the stream's draws, their labels and their exact resumption."""

from __future__ import annotations

import pytest

from mtspeech.data.corpus import TextRow
from mtspeech.data.labels import LabelVocab
from mtspeech.data.text_rows import TextRowStream


class WordTokenizer:
    """One id per distinct word (enough for the stream, which only encodes)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [self.ids.setdefault(word, len(self.ids) + 1) for word in text.split()]


VOCABS = {"intent": LabelVocab("intent", ["alarm_set", "weather_query"]), "lid": LabelVocab("lid", ["en", "fr"])}

ROWS = [
    TextRow(f"s{i}", "en", f"sentence number {i}", {"intent": ["alarm_set", "weather_query"][i % 2]}) for i in range(10)
] + [
    TextRow("no-intent", "fr", "bonjour tout le monde"),  # no intent: not an intent row
    TextRow("unknown", "en", "play some jazz", {"intent": "play_music"}),  # an intent the spoken data never had
]


TOKENIZER = WordTokenizer()  # shared, so that the same sentence has the same ids in every stream


def stream(**options) -> TextRowStream:
    settings = {"label_keys": ["intent"], "rows_per_batch": 3, "seed": 5} | options
    return TextRowStream(ROWS, TOKENIZER, VOCABS, **settings)


def test_every_row_comes_once_a_pass_in_a_new_order_each_pass() -> None:
    texts = stream(rows_per_batch=5)
    assert len(texts) == 10  # the row without an intent and the one with an unknown intent are dropped
    passes = []
    for _ in range(3):
        drawn = [texts.next(), texts.next()]
        passes.append([tuple(row) for batch in drawn for row in batch.tokens])
        for batch in drawn:
            assert len(batch.tokens) == 5 and set(batch.class_targets["intent"]) <= {0, 1}
    assert all(len(set(p)) == 10 for p in passes)
    assert passes[0] != passes[1] and sorted(passes[0]) == sorted(passes[1])
    tokenizer = WordTokenizer()
    batch = TextRowStream(ROWS, tokenizer, VOCABS, ["intent"], rows_per_batch=10, seed=5).next()
    words = {i: word for word, i in tokenizer.ids.items()}
    for tokens, label in zip(batch.tokens, batch.class_targets["intent"], strict=True):
        assert label == int(words[tokens[-1]]) % 2  # "sentence number 7" is a weather_query (id 1)


def test_a_restored_stream_draws_what_the_uninterrupted_one_would() -> None:
    straight = stream()
    expected = [straight.next() for _ in range(9)]
    first = stream()
    for _ in range(4):
        first.next()
    resumed = stream()
    resumed.load_state_dict(first.state_dict())
    assert [resumed.next() for _ in range(5)] == expected[4:]


def test_ranks_draw_disjoint_shares() -> None:
    shares = [stream(rank=r, world_size=2, rows_per_batch=5) for r in (0, 1)]
    drawn = [{tuple(t) for t in s.next().tokens} for s in shares]
    assert len(drawn[0]) == len(drawn[1]) == 5 and not drawn[0] & drawn[1]


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="carry no"):
        stream(label_keys=["lid"])  # a vocabulary the data has, but not a label text rows carry
    with pytest.raises(ValueError, match="rows_per_batch"):
        stream(rows_per_batch=0)

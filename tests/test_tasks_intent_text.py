"""The transcript-reading intent head: word n-gram hashing, learning from reference transcripts, reading the
CTC hypothesis at inference, and answering intents in place of the pooled head."""

from __future__ import annotations

import pytest
import torch
from model_fixtures import NUM_CLASSES, VOCAB, random_batch, single_thread, task_options, tiny_config

from mtspeech.data.batch import IGNORE
from mtspeech.errors import UserError
from mtspeech.model.encoder import subsampled_length
from mtspeech.model.model import MultiTaskModel
from mtspeech.tasks.asr_ctc import AsrCtcConfig, AsrCtcTask
from mtspeech.tasks.intent_text import (
    IntentTextConfig,
    TranscriptIntentTask,
    char_ngram_buckets,
    stable_hash,
    word_char_ngrams,
    word_ngram_buckets,
)

__all__ = ["single_thread"]  # autouse fixture
D_MODEL = 32
STARTS = {1, 2, 3}  # pieces that begin a word, as in model_fixtures.task_options


def build(**options) -> TranscriptIntentTask:
    task = TranscriptIntentTask(IntentTextConfig(**{**task_options("intent_text"), **options}), D_MODEL)
    task.attach({"asr_ctc": AsrCtcTask(AsrCtcConfig(vocab_size=VOCAB, dropout=0.0), D_MODEL)})
    return task


def test_words_are_cut_at_word_start_pieces_and_hashed_stably() -> None:
    # "1 7 8 | 2 9 | 3" : three words; unigrams, bigrams and the always-on bucket 0
    buckets = word_ngram_buckets([1, 7, 8, 2, 9, 3], STARTS, ngrams=2, buckets=1024)
    assert buckets[0] == 0 and len(buckets) == 1 + 3 + 2
    assert buckets == word_ngram_buckets([1, 7, 8, 2, 9, 3], STARTS, ngrams=2, buckets=1024)
    assert all(0 < b < 1024 for b in buckets[1:])
    # The same pieces cut into other words are other features; word order matters for bigrams.
    one_word, two_words = [1, 7, 8, 9], [1, 7, 2, 8, 9]
    assert word_ngram_buckets(one_word, STARTS, 1, 1 << 20) != word_ngram_buckets(two_words, STARTS, 1, 1 << 20)
    assert set(word_ngram_buckets([1, 7, 2, 8], STARTS, 2, 1 << 20)) != set(
        word_ngram_buckets([2, 8, 1, 7], STARTS, 2, 1 << 20)
    )
    # Pinned: a saved model's buckets must mean the same words in every later process and release.
    assert stable_hash([1, 2, 3]) == 0xFD1F0F4381EB0395
    assert word_ngram_buckets([], STARTS, 2, 64) == [0]


def test_character_ngrams_inside_words_are_hashed_stably_and_survive_a_misspelling() -> None:
    assert word_char_ngrams("wake", (3, 5)) == ["<wa", "wak", "ake", "ke>", "<wake", "wake>"]
    # "<ab>": 3-grams "<ab", "ab>", one 4-gram "<ab>"
    assert len(char_ngram_buckets(["ab"], (3, 4), 1 << 20)) == 3
    assert char_ngram_buckets(["ab"], (5,), 64) == []  # shorter than the order: nothing
    # Pinned (zlib's CRC-32): a saved model's char-n-gram rows must mean the same n-grams in every later process.
    assert char_ngram_buckets(["wake"], (3,), 1 << 20)[0] == 1 + 0x88FB7B19 % ((1 << 20) - 1)  # "<wa"
    right, wrong = (set(char_ngram_buckets([w], (3, 4, 5), 1 << 20)) for w in ("alarm", "alarn"))
    assert len(right & wrong) >= len(right) // 2 and right != wrong  # word features would share nothing


def test_char_ngrams_read_the_text_of_the_pieces_of_each_word() -> None:
    pieces = ["", "wa", "me", "up"] + ["ke" if i == 4 else f"x{i}" for i in range(4, VOCAB)]  # decoded piece texts
    task = build(char_ngrams=[4, 3], piece_texts=pieces)
    assert task.config.char_ngrams == [3, 4]
    words_only = build()
    # "wa ke | me": words "wake" and "me"; the extra rows are exactly the char n-grams of those two words
    extra = task.buckets_of([1, 4, 2])[len(words_only.buckets_of([1, 4, 2])) :]
    assert extra == char_ngram_buckets(["wake", "me"], (3, 4), task.config.buckets)
    assert task.buckets_of([1, 4, 2])[: -len(extra)] == words_only.buckets_of([1, 4, 2])
    with pytest.raises(UserError, match="piece_texts"):
        build(char_ngrams=[3])
    with pytest.raises(UserError, match="piece_texts has 3 entries"):
        build(char_ngrams=[3], piece_texts=pieces[:3])
    with pytest.raises(ValueError, match="char_ngrams must be distinct orders"):
        IntentTextConfig(char_ngrams=[1, 3])


def test_it_learns_intents_from_reference_transcripts_and_reads_the_ctc_hypothesis_at_inference() -> None:
    torch.manual_seed(0)
    task = build().train()
    optimizer = torch.optim.Adam(task.parameters(), lr=2e-3)
    batch = random_batch(batch_size=8, seed=4)
    enc = torch.randn(batch.size, int(subsampled_length(batch.feature_lens).max()), D_MODEL)
    enc_lens = subsampled_length(batch.feature_lens)
    labels = batch.class_targets["intent"]
    first = task.loss(enc, enc_lens, batch).loss.item()
    for _ in range(60):
        optimizer.zero_grad()
        result = task.loss(enc, enc_lens, batch)
        result.loss.backward()
        optimizer.step()
    assert result.num_items == 8 and result.loss.item() < first / 4
    references = [batch.ctc_targets[r, : int(batch.ctc_target_lens[r])].tolist() for r in range(batch.size)]
    assert task.predict(enc, enc_lens, tokens=references) == labels.tolist()
    # Without tokens it reads the asr_ctc greedy hypothesis of the same encoder output.
    hypotheses = task._peers["asr_ctc"].predict(enc, enc_lens)
    assert task.predict(enc, enc_lens) == task.predict(enc, enc_lens, tokens=hypotheses)
    probs = task.probabilities(enc, enc_lens, tokens=references)
    assert probs.shape == (8, NUM_CLASSES["intent"]) and torch.allclose(probs.sum(-1), torch.ones(8))


def test_rows_without_a_transcript_or_an_intent_teach_nothing() -> None:
    task = build().train()
    batch = random_batch(batch_size=4, unlabelled_rows=(1, 3))
    enc_lens = subsampled_length(batch.feature_lens)
    enc = torch.randn(4, int(enc_lens.max()), D_MODEL, requires_grad=True)
    result = task.loss(enc, enc_lens, batch)
    assert result.num_items == 2
    result.loss.backward()
    assert enc.grad is not None and torch.count_nonzero(enc.grad) == 0  # never a gradient into the encoder
    batch.class_targets["intent"][:] = IGNORE
    assert task.target(batch) is None


def test_text_only_rows_train_beside_the_spoken_ones_and_only_in_training() -> None:
    from mtspeech.data.text_rows import TextBatch

    task = build().train()
    batch = random_batch(batch_size=4, seed=2)
    enc_lens = subsampled_length(batch.feature_lens)
    enc = torch.randn(4, int(enc_lens.max()), D_MODEL, requires_grad=True)
    spoken = task.loss(enc, enc_lens, batch)
    rows = [[1, 5, 6], [2, 7], [3, 8, 9, 4]]
    batch.text_rows = TextBatch(tokens=rows, class_targets={"intent": [0, IGNORE, 2]})
    both = task.loss(enc, enc_lens, batch)
    assert (spoken.num_items, both.num_items) == (4, 6)  # the unlabelled text row teaches nothing
    # The loss is the mean over spoken and text rows alike.
    logits = task.logits_of(
        [*(batch.ctc_targets[r, : int(batch.ctc_target_lens[r])].tolist() for r in range(4)), rows[0], rows[2]],
        enc.device,
    )
    targets = torch.tensor([*batch.class_targets["intent"].tolist(), 0, 2])
    assert both.loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-5)
    both.loss.backward()
    assert torch.count_nonzero(enc.grad) == 0
    batch.class_targets["intent"][:] = IGNORE  # text rows alone still train the head
    assert task.loss(enc, enc_lens, batch).num_items == 2
    assert task.eval().loss(enc, enc_lens, batch).num_items == 0  # validation scores spoken rows only
    assert build(text_only_rows=8).text_only_rows() == 8 and build().text_only_rows() == 0


def test_bad_inputs_are_user_errors() -> None:
    task = build()
    enc, enc_lens = torch.randn(2, 5, D_MODEL), torch.tensor([5, 4])
    with pytest.raises(UserError, match="text pieces"):
        task.predict(enc, enc_lens, tokens=[[1, 2], [VOCAB + 5]])
    with pytest.raises(UserError, match="token rows"):
        task.predict(enc, enc_lens, tokens=[[1, 2]])
    with pytest.raises(UserError, match="unknown option"):
        task.predict(enc, enc_lens, beam=3)
    lonely = TranscriptIntentTask(IntentTextConfig(**task_options("intent_text")), D_MODEL)
    with pytest.raises(UserError, match="asr_ctc"):
        lonely.predict(enc, enc_lens)
    with pytest.raises(UserError, match="word_start_ids"):
        TranscriptIntentTask(IntentTextConfig(num_classes=4, vocab_size=VOCAB), D_MODEL)


def test_a_model_without_asr_ctc_cannot_have_it() -> None:
    with pytest.raises(UserError, match="asr_ctc"):
        MultiTaskModel(tiny_config(("intent_text",)))


def test_the_logit_scale_does_not_inflate_the_gradient_seen_by_clipping() -> None:
    batch = random_batch(batch_size=4, seed=2)
    enc_lens = subsampled_length(batch.feature_lens)
    enc = torch.randn(4, int(enc_lens.max()), D_MODEL)
    norms = []
    for scale in (1.0, 100.0):
        task = build(scale=scale).train()
        task.loss(enc, enc_lens, batch).loss.backward()
        norms.append(task.head["bag"].weight.grad.norm().item())
    # At zero weights the logits are zero whatever the scale: the same loss, and the same gradient norm.
    assert norms[1] == pytest.approx(norms[0], rel=1e-5) and norms[0] > 0

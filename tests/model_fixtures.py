"""Hand-built random batches and a tiny model config for the model and task tests (no audio, no tokenizer)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.model.config import ModelConfig
from mtspeech.model.encoder import subsampled_length

VOCAB = 40
SOT, EOT, LANG, TRANSCRIBE, NOTIMESTAMPS = 35, 36, 37, 38, 39
NUM_CLASSES = {"intent": 4, "lid": 3, "emotion": 4, "speaker": 5, "accent": 3, "gender": 2}
NUM_TAGS = 5  # O, B-a, I-a, B-b, I-b
ALL_TASKS = ("asr_ctc", "decoder", "intent", "lid", "emotion", "speaker", "gender", "accent", "slots", "vad")


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny models run faster on one thread (and far faster on a busy machine); restored afterwards.
    Import it into a test module to apply it there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def task_options(name: str) -> dict[str, Any]:
    """Explicit sizes (what resolve_model_config would fill from a tokenizer and vocabularies), no dropout."""
    if name == "asr_ctc":
        return {"vocab_size": VOCAB, "dropout": 0.0}
    if name == "decoder":
        return {"vocab_size": VOCAB, "sot_id": SOT, "eot_id": EOT, "dropout": 0.0, "label_smoothing": 0.0}
    if name == "slots":
        return {"vocab_size": VOCAB, "num_tags": NUM_TAGS, "dropout": 0.0}
    if name == "vad":
        return {"dropout": 0.0}
    if name == "intent_text":  # pieces 1-3 begin words
        return {"num_classes": NUM_CLASSES["intent"], "vocab_size": VOCAB, "word_start_ids": [1, 2, 3]}
    return {"num_classes": NUM_CLASSES[name], "dropout": 0.0}


def tiny_config(tasks: tuple[str, ...] = ALL_TASKS, **overrides: Any) -> ModelConfig:
    data: dict[str, Any] = {
        "encoder": {"preset": "tiny", "dropout": 0.0},
        "tasks": {name: task_options(name) for name in tasks},
    }
    for name, options in overrides.items():
        data["tasks"][name] = {**data["tasks"][name], **options}
    return ModelConfig.from_dict(data)


def random_batch(
    batch_size: int = 4,
    max_frames: int = 80,
    seed: int = 0,
    unlabelled_rows: tuple[int, ...] = (),
) -> Batch:
    """A batch with every label on every row except those in ``unlabelled_rows`` (masked for every task).

    Row lengths differ (the last row is the longest) so padding is exercised."""
    g = torch.Generator().manual_seed(seed)
    step = max_frames // (4 * max(batch_size - 1, 1))  # the shortest row keeps 3/4 of the frames
    feature_lens = torch.tensor([max_frames - step * (batch_size - 1 - i) for i in range(batch_size)])
    features = torch.randn(batch_size, max_frames, 80, generator=g)
    features *= (torch.arange(max_frames)[None, :] < feature_lens[:, None]).unsqueeze(-1)
    enc_lens = subsampled_length(feature_lens)
    t_enc = int(subsampled_length(torch.tensor(max_frames)))

    ctc_rows, dec_in, dec_tgt, slot_rows = [], [], [], []
    for row in range(batch_size):
        labelled = row not in unlabelled_rows
        length = int(torch.randint(3, 7, (1,), generator=g)) if labelled else 0
        tokens = torch.randint(1, SOT, (length,), generator=g).tolist()
        ctc_rows.append(tokens)
        slot_rows.append(torch.randint(0, NUM_TAGS, (length,), generator=g).tolist())
        prompt = [SOT, LANG, TRANSCRIBE, NOTIMESTAMPS] if labelled else []
        dec_in.append(prompt + tokens)
        dec_tgt.append([IGNORE] * 3 + tokens + [EOT] if labelled else [])

    def pad(rows: list[list[int]], value: int, width: int | None = None) -> torch.Tensor:
        width = width or max(1, *(len(r) for r in rows))
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    ctc_targets = pad(ctc_rows, 0)
    class_targets = {}
    for name, n in NUM_CLASSES.items():
        labels = torch.randint(0, n, (batch_size,), generator=g)
        labels[list(unlabelled_rows)] = IGNORE
        class_targets[name] = labels
    vad = torch.full((batch_size, t_enc), IGNORE, dtype=torch.long)
    for row in range(batch_size):
        if row not in unlabelled_rows:
            n = int(enc_lens[row])
            # Runs of speech (1) and pause (0) of 2-5 encoder frames; speech frames are louder, as in real audio.
            runs = torch.randint(2, 6, (n,), generator=g).tolist()
            speech = torch.cat([torch.full((r,), i % 2) for i, r in enumerate(runs)])[:n]
            vad[row, :n] = speech
            loud = speech.repeat_interleave(4)[: int(feature_lens[row])]
            features[row, : loud.numel()] += 2.0 * loud[:, None]
    return Batch(
        features=features,
        feature_lens=feature_lens,
        ids=[f"utt{row}" for row in range(batch_size)],
        ctc_targets=ctc_targets,
        ctc_target_lens=torch.tensor([len(r) for r in ctc_rows]),
        ctc_mask=torch.tensor([bool(r) for r in ctc_rows]),
        decoder_input=pad(dec_in, 0),
        decoder_target=pad(dec_tgt, IGNORE),
        decoder_task=["" if row in unlabelled_rows else "transcribe" for row in range(batch_size)],
        class_targets=class_targets,
        vad_targets=vad,
        slot_targets=pad(slot_rows, IGNORE, ctc_targets.size(1)),
    )


def select_rows(batch: Batch, rows: list[int]) -> Batch:
    """The sub-batch of ``rows`` (every tensor indexed on dim 0; lists picked), widths unchanged."""
    index = torch.tensor(rows)
    picked: dict[str, Any] = {}
    for name, value in vars(batch).items():
        if isinstance(value, torch.Tensor):
            picked[name] = value[index]
        elif isinstance(value, dict):
            picked[name] = {k: v[index] for k, v in value.items()}
        elif isinstance(value, list):
            picked[name] = [value[i] for i in rows]
        else:  # not per row (text_rows: sentences beside the batch)
            picked[name] = value
    return Batch(**picked)

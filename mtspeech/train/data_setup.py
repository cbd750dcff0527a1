"""From the ``data``/``tokenizer`` config to batches: corpora, tokenizer, label vocabularies, loaders.

The tokenizer and label vocabularies are built once from the training cuts of all corpora and saved in the run
directory (``tokenizer/``, ``vocabs.json``); a resumed run, and every rank of a multi-process run, reads them from
there, so ids never shift between processes or restarts.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhotse import CutSet
from lhotse.lazy import LazyIteratorChain
from torch.utils.data import DataLoader

from mtspeech.data.batch import Batch
from mtspeech.data.collate import MultiTaskCollator
from mtspeech.data.corpus import load_cuts, load_texts
from mtspeech.data.dataset import make_dataloader
from mtspeech.data.features import LogMelFrontend, compute_global_cmvn
from mtspeech.data.labels import (
    CLASS_TASKS,
    SLOT_TASK,
    LabelVocab,
    build_label_vocabs,
    vocabs_from_dict,
    vocabs_to_dict,
)
from mtspeech.data.sampling import corpus_size, resume_state_dict
from mtspeech.data.text_rows import TextRowStream
from mtspeech.data.tokenizer import Tokenizer, train_tokenizer_from_cuts
from mtspeech.errors import UserError
from mtspeech.train.config import DataConfig, TrainConfig

TOKENIZER_DIR = "tokenizer"
VOCABS_FILE = "vocabs.json"
CMVN_CUTS_PER_CORPUS = 400  # enough for stable per-bin statistics, a few seconds on a CPU


@dataclass
class Corpora:
    """Training and validation cuts per corpus label, and the (weighted) sizes used for mixing."""

    train: dict[str, CutSet]
    valid: dict[str, CutSet]
    sizes: dict[str, float]

    def all_train_cuts(self) -> CutSet:
        parts = list(self.train.values())
        return parts[0] if len(parts) == 1 else CutSet(LazyIteratorChain(*parts))


def open_corpora(config: DataConfig, need_sizes: bool = True) -> Corpora:
    """Open every corpus's splits lazily (a missing directory or split is a UserError naming it)."""
    train: dict[str, CutSet] = {}
    valid: dict[str, CutSet] = {}
    sizes: dict[str, float] = {}
    for corpus in config.corpora:
        if not corpus.path.is_dir():
            raise UserError("corpus directory not found (data.corpora[].path)", path=corpus.path)
        train[corpus.label] = load_cuts(corpus.path, corpus.train_split)
        if corpus.valid_split is not None:
            cuts = load_cuts(corpus.path, corpus.valid_split)
            if config.valid_max_cuts is not None:
                cuts = cuts.subset(first=config.valid_max_cuts)
            valid[corpus.label] = cuts
        if need_sizes and len(config.corpora) > 1:
            sizes[corpus.label] = corpus_size(train[corpus.label], config.size_unit) * corpus.weight
    return Corpora(train, valid, sizes)


def prepare_tokenizer(config: TrainConfig, run_dir: Path, corpora: Corpora) -> Tokenizer:
    """The run's tokenizer: ``RUN/tokenizer`` if present (resume), else ``tokenizer.path``, else trained."""
    saved = run_dir / TOKENIZER_DIR
    if saved.is_dir():
        return Tokenizer.load(saved)
    if config.tokenizer.path is not None:
        tokenizer = Tokenizer.load(config.tokenizer.path)
    else:
        tokenizer = train_tokenizer_from_cuts(
            corpora.all_train_cuts(),
            vocab_size=config.tokenizer.vocab_size,
            model_type=config.tokenizer.model_type,
            seed=config.seed,
        )
    tokenizer.save(saved)
    return tokenizer


def vocab_names(tasks: Mapping[str, Any]) -> list[str]:
    """Label vocabularies the enabled tasks need: one per class task, plus slot tags for a slot task."""
    from mtspeech.tasks.base import TASKS

    names = []
    for name in tasks:
        declared = getattr(TASKS.get(name), "label_vocab", None)
        if declared:
            names.append(declared)
        elif name in CLASS_TASKS:
            names.append(name)
        elif name.startswith(SLOT_TASK):
            names.append(SLOT_TASK)
    return list(dict.fromkeys(names))


def prepare_vocabs(tasks: Mapping[str, Any], run_dir: Path, corpora: Corpora) -> dict[str, LabelVocab]:
    """The run's label vocabularies: ``RUN/vocabs.json`` if present (resume), else built from the train cuts."""
    path = run_dir / VOCABS_FILE
    if path.is_file():
        try:
            return vocabs_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, ValueError) as err:
            raise UserError(f"cannot read label vocabularies: {err}", path=path) from None
    names = vocab_names(tasks)
    vocabs = build_label_vocabs(corpora.all_train_cuts(), names) if names else {}
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(vocabs_to_dict(vocabs), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return vocabs


def fit_cmvn(corpora: Corpora, frontend: LogMelFrontend, cuts_per_corpus: int = CMVN_CUTS_PER_CORPUS) -> None:
    """Global per-bin mean/std of the log-mel features, stored in ``frontend`` (the model's: it ships with it).

    Raw log-mels sit around -6 with a std of 5; normalised inputs let the small CPU recipe leave the CTC blank
    plateau and the classifiers' chance level much sooner. Deterministic (the first cuts of every corpus), so a
    resumed run and every rank compute the same statistics."""
    cuts = [cut for part in corpora.train.values() for cut in part.subset(first=cuts_per_corpus)]
    probe = LogMelFrontend(num_mel_bins=frontend.num_mel_bins)  # on the CPU, wherever the model lives
    mean, std = compute_global_cmvn(cuts, probe, max_cuts=len(cuts), apply=False)
    frontend.set_cmvn(mean.float(), std.float())


def build_collator(
    config: TrainConfig,
    tokenizer: Tokenizer,
    vocabs: Mapping[str, LabelVocab],
    subsampling_factor: int,
    frontend: LogMelFrontend | None = None,
) -> MultiTaskCollator:
    """``frontend``: the model's front end (copied to the CPU for the loader workers), so training features are
    exactly what the saved model computes when it serves."""
    data = config.data
    decoder_tasks = tuple(data.decoder_tasks) if "decoder" in config.model.tasks else ()
    return MultiTaskCollator(
        tokenizer,
        vocabs,
        copy.deepcopy(frontend).cpu() if frontend is not None else LogMelFrontend(),
        subsampling_factor=subsampling_factor,
        decoder_tasks=decoder_tasks,
        task_weights=data.decoder_task_weights,
        timestamp_prob=data.timestamp_prob,
        seed=config.seed,
    )


def build_train_loader(
    config: TrainConfig,
    corpora: Corpora,
    collator: MultiTaskCollator,
    rank: int,
    world_size: int,
    pin_memory: bool = False,
) -> DataLoader:
    data = config.data
    return make_dataloader(
        corpora.train,
        collator,
        train=True,
        max_duration=data.max_duration,
        augment=data.augment.to_augment_config(),
        num_workers=data.num_workers,
        seed=config.seed,
        world_size=world_size,
        rank=rank,
        temperature=data.temperature,
        num_buckets=data.num_buckets,
        sizes=corpora.sizes or None,
        size_unit=data.size_unit,
        min_duration=data.min_duration,
        max_cut_duration=data.max_cut_duration,
        buffer_size=data.buffer_size,
        num_cuts_for_bins_estimate=min(data.buffer_size, 10000),
        pin_memory=pin_memory,
    )


def build_valid_loader(
    config: TrainConfig,
    corpora: Corpora,
    collator: MultiTaskCollator,
    rank: int | None,
    world_size: int | None,
    pin_memory: bool = False,
) -> DataLoader | None:
    if not corpora.valid:
        return None
    data = config.data
    # Validation never re-draws per-epoch choices: its own collator copy stays at epoch 0.
    with warnings.catch_warnings():  # valid_max_cuts makes small eager CutSets, which Lhotse warns about
        warnings.filterwarnings("ignore", message="You are using DynamicCutSampler with an eagerly read CutSet")
        return make_dataloader(
            corpora.valid,
            copy.copy(collator),
            train=False,
            max_duration=data.valid_max_duration or data.max_duration,
            num_workers=data.num_workers,
            world_size=world_size,
            rank=rank,
            pin_memory=pin_memory,
        )


def build_text_stream(
    config: TrainConfig,
    tasks: Mapping[str, Any],
    tokenizer: Tokenizer,
    vocabs: Mapping[str, LabelVocab],
    rank: int,
    world_size: int,
) -> TextRowStream | None:
    """The text-only rows the tasks ask for (``Task.text_only_rows``), from every training corpus's text rows of
    its train split; None when no task asks. A task asking of corpora without text rows is a UserError."""
    wanting = {name: task for name, task in tasks.items() if task.text_only_rows()}
    if not wanting:
        return None
    rows = [row for corpus in config.data.corpora for row in load_texts(corpus.path, corpus.train_split)]
    names = ", ".join(f"model.tasks.{name}.text_only_rows" for name in wanting)
    if not rows:
        raise UserError(
            f"{names}: the training corpora have no text-only rows (manifests/texts_<train split>.jsonl.gz, which "
            "mtspeech corpus synth writes); set it to 0 or add the file"
        )
    keys = sorted({task.label_vocab for task in wanting.values() if task.label_vocab})
    stream = TextRowStream(
        rows,
        tokenizer,
        vocabs,
        keys,
        max(task.text_only_rows() for task in wanting.values()),
        seed=config.seed,
        rank=rank,
        world_size=world_size,
    )
    if not len(stream):
        raise UserError(
            f"{names}: none of the {len(rows):,} text-only rows has a {'/'.join(keys)} label the data knows"
        )
    return stream


class BatchStream:
    """Endless training batches from a loader: rolls over epochs of a finite corpus and knows its position.

    ``state_dict()`` records the epoch and how many batches of it were *trained on* (not how far the prefetching
    DataLoader has read), so ``load_state_dict()`` followed by ``next()`` yields exactly the batch an
    uninterrupted run would have seen next. With ``text`` every batch also carries that stream's next text-only
    rows (``Batch.text_rows``), whose position is saved alongside."""

    def __init__(self, loader: DataLoader, text: TextRowStream | None = None) -> None:
        self.loader = loader
        self.text = text
        self.epoch = 0
        self.consumed = 0  # batches of the current epoch handed out by next()
        self._iterator: Any = None
        self._restored_sampler: dict[str, Any] | None = None

    def _start_epoch(self) -> None:
        sampler = self.loader.sampler
        if self._restored_sampler is not None:
            sampler.load_state_dict(copy.deepcopy(self._restored_sampler))
            self._restored_sampler = None
        else:
            sampler.set_epoch(self.epoch)
        self.loader.dataset.set_epoch(self.epoch)
        self._iterator = iter(self.loader)

    def next(self) -> Batch:
        batch = self._next_audio()
        if self.text is not None:
            batch.text_rows = self.text.next()
        return batch

    def _next_audio(self) -> Batch:
        if self._iterator is None:
            self._start_epoch()
        try:
            batch = next(self._iterator)
        except StopIteration:
            if self.consumed == 0:
                raise UserError(
                    "the training data yields no batches: check data.max_duration against the cut durations, "
                    "min_duration/max_cut_duration filters and the size of the train split"
                ) from None
            self.epoch += 1
            self.consumed = 0
            self._start_epoch()
            return self._next_audio()
        self.consumed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        sampler = None
        if self._iterator is not None:
            sampler = resume_state_dict(self.loader.sampler, self.consumed)
        elif self._restored_sampler is not None:
            sampler = copy.deepcopy(self._restored_sampler)
        text = self.text.state_dict() if self.text is not None else None
        return {"epoch": self.epoch, "consumed": self.consumed, "sampler": sampler, "text": text}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.consumed = int(state["consumed"])
        self._restored_sampler = copy.deepcopy(state["sampler"]) if state.get("sampler") is not None else None
        self._iterator = None
        if self.text is not None:
            if state.get("text") is None:
                raise UserError("the checkpoint was trained without text-only rows; a task now asks for them")
            self.text.load_state_dict(state["text"])

    def close(self) -> None:
        """Stop DataLoader workers now rather than at garbage collection."""
        self._iterator = None

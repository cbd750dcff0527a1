"""Validation during training: every task's loss and metric on the valid sets, one encoder pass per batch.

Predictions come from each task's greedy :meth:`~mtspeech.tasks.base.Task.predict` and are scored by its
:meth:`~mtspeech.tasks.base.Task.score`, so a metric means the same here as in the task's own tests:

* ``asr_ctc``: WER/CER of the greedy CTC transcript against the reference transcript;
* ``decoder``: ``token_accuracy`` (teacher-forced next-token accuracy over the answers) and, unless the config's
  ``valid_decode`` is false, per prompt task, greedy answers after the reference prompt: ``transcribe_wer/cer``,
  ``translate_bleu`` (sacreBLEU), ``slu_wer`` and ``slu_intent_accuracy`` (the final intent token);
* classifiers (``intent``, ``lid``, ``emotion``, ``accent``, ``speaker``, ``gender``): accuracy;
* ``vad``: frame accuracy and speech-frame F1; ``slots``: tag error rate and F1 on reference transcripts.

With several ranks each validates its shard and rank 0 scores the gathered predictions.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from mtspeech.data.batch import IGNORE, Batch
from mtspeech.data.tokenizer import Tokenizer
from mtspeech.model.model import MultiTaskModel
from mtspeech.tasks.metrics import accuracy, text_scores
from mtspeech.train.distributed import DistEnv, gather_objects

Pairs = dict[str, tuple[list[Any], list[Any]]]  # metric group -> (predictions, references)


def _rows(mask: torch.Tensor) -> list[int]:
    return mask.nonzero().flatten().tolist()


def _decoder_examples(batch: Batch) -> list[tuple[int, str, list[int], list[int]]]:
    """``(row, prompt task, prompt ids, reference answer ids)`` for rows with a decoder target."""
    examples = []
    for row, task in enumerate(batch.decoder_task):
        if not task:
            continue
        target = batch.decoder_target[row].tolist()
        labelled = [i for i, t in enumerate(target) if t != IGNORE]
        if not labelled:
            continue
        prompt_len = labelled[0] + 1  # the last prompt token predicts the first answer token
        prompt = batch.decoder_input[row, :prompt_len].tolist()
        answer = [target[i] for i in labelled][:-1]  # drop <|eot|>
        examples.append((row, task, prompt, answer))
    return examples


class _Collector:
    """Accumulates per-task prediction/reference pairs over batches."""

    def __init__(
        self, model: MultiTaskModel, tokenizer: Tokenizer, skip: Collection[str] = (), decode: bool = True
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.skip = frozenset(skip)
        self.decode = decode
        self.pairs: dict[str, Pairs] = defaultdict(lambda: defaultdict(lambda: ([], [])))

    def add(self, task: str, group: str, predictions: Iterable[Any], references: Iterable[Any]) -> None:
        preds, refs = self.pairs[task][group]
        preds.extend(predictions)
        refs.extend(references)

    @torch.no_grad()
    def batch(self, batch: Batch, enc: torch.Tensor, enc_lens: torch.Tensor, layers: Sequence[torch.Tensor]) -> None:
        for name, task in self.model.tasks.items():
            if name in self.skip:
                continue
            handler: Callable[..., None] | None = getattr(self, f"_task_{name}", None)
            if handler is not None:
                handler(task, batch, enc, enc_lens)
            elif hasattr(task, "key"):  # pooled utterance classifiers
                labels = batch.class_targets.get(task.key())
                if labels is None or not bool((labels != IGNORE).any()):
                    continue
                rows = _rows(labels != IGNORE)
                inputs = self.model.task_input(name, enc, layers)
                self.add(name, "", task.predict(inputs[rows], enc_lens[rows]), labels[rows].tolist())

    def _task_asr_ctc(self, task: Any, batch: Batch, enc: torch.Tensor, enc_lens: torch.Tensor) -> None:
        rows = _rows(batch.ctc_mask)
        if not rows:
            return
        hyps = task.predict(enc[rows], enc_lens[rows])
        refs = [batch.ctc_targets[r, : int(batch.ctc_target_lens[r])].tolist() for r in rows]
        self.add("asr_ctc", "", map(self.tokenizer.decode, hyps), map(self.tokenizer.decode, refs))

    def _task_decoder(self, task: Any, batch: Batch, enc: torch.Tensor, enc_lens: torch.Tensor) -> None:
        examples = _decoder_examples(batch)
        if not examples:
            return
        # Teacher-forced next-token accuracy over the answer tokens: one forward, no search.
        rows = [e[0] for e in examples]
        targets = batch.decoder_target[rows]
        predicted = task.logits(batch.decoder_input[rows], enc[rows], enc_lens[rows]).argmax(dim=-1)
        answer = targets != IGNORE
        self.add("decoder", "token_accuracy", predicted[answer].tolist(), targets[answer].tolist())
        if not self.decode:
            return
        # Greedy decoding of an untrained decoder runs to max_new_tokens; the references bound what is useful.
        longest = max(len(e[3]) for e in examples)
        hyps = task.predict(
            enc[rows], enc_lens[rows], prompts=[e[2] for e in examples], max_new_tokens=int(longest * 1.5) + 5
        )
        for (_, kind, _, ref), hyp in zip(examples, hyps, strict=True):
            self.add("decoder", kind, [hyp], [ref])

    def _task_vad(self, task: Any, batch: Batch, enc: torch.Tensor, enc_lens: torch.Tensor) -> None:
        if batch.vad_targets is None:
            return
        rows = _rows((batch.vad_targets != IGNORE).any(dim=1))
        if not rows:
            return
        hyps = task.predict(enc[rows], enc_lens[rows])
        refs = [batch.vad_targets[r, : int(enc_lens[r])].tolist() for r in rows]
        self.add("vad", "", hyps, refs)

    def _task_slots(self, task: Any, batch: Batch, enc: torch.Tensor, enc_lens: torch.Tensor) -> None:
        if batch.slot_targets is None:
            return
        rows = _rows((batch.slot_targets != IGNORE).any(dim=1))
        if not rows:
            return
        tokens = [batch.ctc_targets[r, : int(batch.ctc_target_lens[r])].tolist() for r in rows]
        hyps = task.predict(enc[rows], enc_lens[rows], tokens=tokens)
        refs = [batch.slot_targets[r, : len(t)].tolist() for r, t in zip(rows, tokens, strict=True)]
        self.add("slots", "", hyps, refs)


def _decoder_scores(tokenizer: Tokenizer, groups: Pairs) -> dict[str, float]:
    scores: dict[str, float] = {}
    for kind, (hyps, refs) in groups.items():
        if not refs:
            continue
        if kind == "token_accuracy":
            scores["token_accuracy"] = sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)
            continue
        if kind == "translate":
            import sacrebleu

            hyp_text = [tokenizer.decode(h) for h in hyps]
            ref_text = [tokenizer.decode(r) for r in refs]
            scores["translate_bleu"] = float(sacrebleu.corpus_bleu(hyp_text, [ref_text]).score)
            continue
        if kind == "slu":
            hyp_intent = [h[-1] if h else -1 for h in hyps]
            ref_intent = [r[-1] if r else -2 for r in refs]
            scores.update({f"slu_intent_{k}": v for k, v in accuracy(hyp_intent, ref_intent).items()})
        text = text_scores([tokenizer.decode(h) for h in hyps], [tokenizer.decode(r) for r in refs])
        scores.update({f"{kind}_{k}": v for k, v in text.items()})
    return scores


def score_pairs(model: MultiTaskModel, tokenizer: Tokenizer, pairs: dict[str, Pairs]) -> dict[str, float]:
    """``{"task.metric": value}`` for every task that had references."""
    metrics: dict[str, float] = {}
    for name, groups in pairs.items():
        if name == "decoder":
            scores = _decoder_scores(tokenizer, groups)
        else:
            preds, refs = groups[""]
            scores = model.tasks[name].score(preds, refs) if refs else {}
        metrics.update({f"{name}.{k}": float(v) for k, v in scores.items()})
    return metrics


def _merge(parts: list[dict[str, Pairs]]) -> dict[str, Pairs]:
    merged: dict[str, Pairs] = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for part in parts:
        for task, groups in part.items():
            for group, (preds, refs) in groups.items():
                merged[task][group][0].extend(preds)
                merged[task][group][1].extend(refs)
    return merged


@torch.no_grad()
def validate(
    model: MultiTaskModel,
    loader: DataLoader,
    tokenizer: Tokenizer,
    env: DistEnv,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    skip_metrics: Collection[str] = (),
    decode: bool = True,
) -> dict[str, float]:
    """Losses and metrics over ``loader``: ``{"loss": total, "TASK.loss": ..., "TASK.METRIC": ...}`` (rank 0;
    other ranks get the same dict). Runs in eval mode and restores the previous mode.

    ``skip_metrics``: tasks whose predictions are not made (their losses still are), e.g. tasks the curriculum
    has not switched on yet: an untrained decoder's greedy search is most of a validation's time. ``decode=False``
    measures the decoder by its teacher-forced ``token_accuracy`` alone (always reported), without the search."""
    was_training = model.training
    model.eval()
    collector = _Collector(model, tokenizer, skip_metrics, decode)
    loss_sums: dict[str, float] = defaultdict(float)
    item_counts: dict[str, int] = defaultdict(int)
    try:
        for batch in loader:
            batch = batch.to(env.device)
            with torch.no_grad(), autocast():  # predictions too: under bf16/fp16 the encoder output is half precision
                out = model(batch)
                collector.batch(batch, out.enc, out.enc_lens, out.layers)
            for task, loss in out.raw_losses.items():
                loss_sums[task] += float(loss) * out.num_items[task]
                item_counts[task] += out.num_items[task]
    finally:
        model.train(was_training)
    pairs = {task: {g: v for g, v in groups.items()} for task, groups in collector.pairs.items()}
    gathered = gather_objects(
        {"pairs": pairs, "loss_sums": dict(loss_sums), "item_counts": dict(item_counts)},
        env,
    )
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for part in gathered:
        for task, value in part["loss_sums"].items():
            totals[task] += value
            counts[task] += part["item_counts"][task]
    metrics = {f"{task}.loss": totals[task] / counts[task] for task in totals if counts[task]}
    if metrics:
        metrics["loss"] = sum(metrics.values())
    metrics.update(score_pairs(model, tokenizer, _merge([p["pairs"] for p in gathered])))
    return dict(sorted(metrics.items()))

"""Each task on its own: head shapes, loss masking of missing labels, greedy prediction, scoring."""

from __future__ import annotations

import math

import pytest
import torch
from model_fixtures import (
    ALL_TASKS,
    EOT,
    NUM_CLASSES,
    NUM_TAGS,
    SOT,
    VOCAB,
    random_batch,
    select_rows,
    single_thread,
    task_options,
)

from mtspeech.data.batch import IGNORE
from mtspeech.errors import UserError
from mtspeech.model.encoder import subsampled_length
from mtspeech.tasks import TASKS
from mtspeech.tasks.accent import AccentConfig, grl_lambda
from mtspeech.tasks.asr_ctc import AsrCtcConfig, AsrCtcTask
from mtspeech.tasks.base import Task
from mtspeech.tasks.decoder import DecoderConfig, DecoderTask
from mtspeech.tasks.slots import SlotTags
from mtspeech.tasks.vad import align_frames

__all__ = ["single_thread"]  # autouse fixture
D_MODEL = 32
WITH_TRANSCRIPT_INTENT = (*ALL_TASKS, "intent_text")


def build(name: str, **options) -> Task:
    cls = TASKS[name]
    config = cls.config_class.model_validate({**task_options(name), **options}, context={"encoder_preset": "tiny"})
    task = cls(config, D_MODEL)
    if name in ("slots", "intent_text"):
        task.attach({"asr_ctc": build("asr_ctc")})
    return task.eval()


def encoder_output(batch, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    enc_lens = subsampled_length(batch.feature_lens)
    g = torch.Generator().manual_seed(seed)
    enc = torch.randn(batch.size, int(enc_lens.max()), D_MODEL, generator=g)
    return enc, enc_lens


def test_every_task_is_registered():
    assert set(ALL_TASKS) <= set(TASKS)


@pytest.mark.parametrize("name", WITH_TRANSCRIPT_INTENT)
def test_loss_ignores_rows_without_labels(name):
    torch.manual_seed(0)
    task = build(name)
    batch = random_batch(batch_size=4, unlabelled_rows=(1, 3))
    enc, enc_lens = encoder_output(batch)
    full = task.loss(enc, enc_lens, batch)
    # Same labelled rows alone: identical loss, so the unlabelled rows contributed nothing.
    labelled = select_rows(batch, [0, 2])
    alone = task.loss(enc[[0, 2]], enc_lens[[0, 2]], labelled)
    assert full.num_items == alone.num_items == 2
    assert torch.isfinite(full.loss) and full.loss.item() > 0
    assert full.loss.item() == pytest.approx(alone.loss.item(), rel=1e-5)
    # Changing what the unlabelled rows contain changes nothing either.
    enc2 = enc.clone()
    enc2[[1, 3]] = torch.randn_like(enc2[[1, 3]])
    assert task.loss(enc2, enc_lens, batch).loss.item() == pytest.approx(full.loss.item(), rel=1e-5)


@pytest.mark.parametrize("name", WITH_TRANSCRIPT_INTENT)
def test_no_labels_gives_connected_zero_loss(name):
    task = build(name).train()
    batch = random_batch(batch_size=3, unlabelled_rows=(0, 1, 2))
    enc, enc_lens = encoder_output(batch)
    enc.requires_grad_(True)
    assert task.target(batch) is None
    result = task.loss(enc, enc_lens, batch)
    assert result.num_items == 0 and result.loss.item() == 0.0
    result.loss.backward()  # works, and teaches nothing
    assert torch.count_nonzero(enc.grad) == 0
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in task.parameters())


@pytest.mark.parametrize("name", WITH_TRANSCRIPT_INTENT)
def test_loss_trains_the_head(name):
    task = build(name).train()
    batch = random_batch(batch_size=4, unlabelled_rows=(2,))
    enc, enc_lens = encoder_output(batch)
    task.loss(enc, enc_lens, batch).loss.backward()
    grads = [p.grad for p in task.head.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert len(list(task.parameters())) == len(list(task.head.parameters()))  # everything lives under .head


def test_pooled_classifiers_shapes_and_predictions():
    batch = random_batch(batch_size=3)
    enc, enc_lens = encoder_output(batch)
    for name, n in NUM_CLASSES.items():
        task = build(name)
        assert task.logits(enc, enc_lens).shape == (3, n)
        probs = task.probabilities(enc, enc_lens)
        assert torch.allclose(probs.sum(-1), torch.ones(3))
        predictions = task.predict(enc, enc_lens)
        assert predictions == probs.argmax(-1).tolist()
        assert task.score([0, 1, 1], [0, 1, IGNORE]) == {"accuracy": 1.0}
        assert task.score([0, 1], [1, 1]) == {"accuracy": 0.5}


def test_pooling_ignores_padded_frames():
    task = build("intent")
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    before = task.logits(enc, enc_lens)
    enc[0, int(enc_lens[0]) :] = 1e3  # garbage in row 0's padding
    assert torch.allclose(task.logits(enc, enc_lens), before, atol=1e-5)


def test_statistics_pooling_adds_the_weighted_standard_deviation_of_the_valid_frames():
    from mtspeech.model.layers import AttentionPooling

    pool = AttentionPooling(4, 8, statistics=True)
    with torch.no_grad():  # equal scores: plain mean and (population) standard deviation over the valid frames
        pool.scorer[-1].weight.zero_()
    x = torch.randn(2, 6, 4)
    valid = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    x[1, 3:] = 1e3  # padding must not count
    pooled = pool(x, valid)
    assert pool.output_dim == 8 and pooled.shape == (2, 8)
    for row, n in ((0, 6), (1, 3)):
        frames = x[row, :n]
        assert torch.allclose(pooled[row, :4], frames.mean(0), atol=1e-5)
        assert torch.allclose(pooled[row, 4:], frames.std(0, unbiased=False), atol=1e-4)


def test_statistics_pooling_trains_through_one_frame_rows():
    task = build("emotion", pooling="attention_stats").train()
    batch = random_batch(batch_size=3)
    enc, enc_lens = encoder_output(batch)
    enc_lens = enc_lens.clone()
    enc_lens[0] = 1  # a constant channel: the standard deviation's gradient must stay finite
    enc.requires_grad_(True)
    task.loss(enc, enc_lens, batch).loss.backward()
    assert torch.isfinite(enc.grad).all() and enc.grad.abs().sum() > 0
    assert task.logits(enc, enc_lens).shape == (3, NUM_CLASSES["emotion"])


def test_ctc_greedy_alignment_merges_repeats_and_drops_blanks():
    task = AsrCtcTask(AsrCtcConfig(vocab_size=5, dropout=0.0), d_model=5)
    linear = task.head[1]
    with torch.no_grad():  # logits = the one-hot frame itself
        linear.weight.copy_(torch.eye(5))
        linear.bias.zero_()
    path = [[0, 3, 3, 0, 3, 2, 2, 4, 0], [1, 1, 0, 1, 0, 0, 0, 0, 0]]
    enc = torch.nn.functional.one_hot(torch.tensor(path), 5).float()
    lens = torch.tensor([9, 4])
    alignment = task.greedy_alignment(enc, lens)
    assert alignment[0].tokens == [3, 3, 2, 4] and alignment[0].frames == [1, 4, 5, 7]
    assert alignment[1].tokens == [1, 1] and alignment[1].frames == [0, 3]
    assert task.predict(enc, lens) == [[3, 3, 2, 4], [1, 1]]


def test_ctc_loss_is_per_token():
    task = build("asr_ctc")
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    log_probs = task.log_probs(enc)
    assert log_probs.shape == (2, enc.size(1), VOCAB) and log_probs.dtype == torch.float32
    result = task.loss(enc, enc_lens, batch)
    manual = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), batch.ctc_targets, enc_lens, batch.ctc_target_lens, reduction="sum"
    )
    assert result.loss.item() == pytest.approx(manual.item() / int(batch.ctc_target_lens.sum()), rel=1e-5)


def test_text_scores():
    task = build("asr_ctc")
    assert task.score([[1, 2, 3]], [[1, 2, 4, 5]]) == {"ter": 0.5}
    scores = task.score(["wake me up"], ["wake me up now"])
    assert scores["wer"] == 0.25 and scores["cer"] == pytest.approx(4 / 14)


def test_decoder_loss_scores_only_answer_tokens():
    task = build("decoder")
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    logits = task.logits(batch.decoder_input, enc, enc_lens)
    assert logits.shape == (*batch.decoder_input.shape, VOCAB)
    manual = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch.decoder_target.flatten(), ignore_index=IGNORE
    )
    assert task.loss(enc, enc_lens, batch).loss.item() == pytest.approx(manual.item(), rel=1e-5)


def test_decoder_label_smoothing_raises_the_loss_of_a_confident_model():
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    plain, smoothed = build("decoder"), build("decoder", label_smoothing=0.2)
    smoothed.load_state_dict(plain.state_dict())
    assert smoothed.loss(enc, enc_lens, batch).loss.item() != pytest.approx(
        plain.loss(enc, enc_lens, batch).loss.item()
    )


def test_decoder_greedy_with_left_padded_prompts_matches_one_row_at_a_time():
    torch.manual_seed(3)
    task = DecoderTask(DecoderConfig(vocab_size=VOCAB, sot_id=SOT, eot_id=EOT, num_layers=2, num_heads=2), D_MODEL)
    task.eval()
    enc = torch.randn(2, 9, D_MODEL)
    enc_lens = torch.tensor([9, 6])
    prompts = [[SOT, 37, 38, 39], [SOT, 39]]
    together = task.predict(enc, enc_lens, prompts=prompts, max_new_tokens=6)
    for row in range(2):
        alone = task.predict(
            enc[row : row + 1, : int(enc_lens[row])], enc_lens[row : row + 1], prompts=[prompts[row]], max_new_tokens=6
        )
        assert together[row] == alone[0]
    assert all(len(answer) <= 6 and EOT not in answer for answer in together)


def _greedy_by_full_passes(task: DecoderTask, enc, enc_lens, prompt: list[int], max_new: int) -> list[int]:
    """The plain definition: re-run the whole decoder on the growing prefix, take the argmax of the last position."""
    tokens, answer = list(prompt), []
    for _ in range(max_new):
        next_id = int(task.logits(torch.tensor([tokens]), enc, enc_lens)[0, -1].argmax())
        if next_id == EOT:
            break
        answer.append(next_id)
        tokens.append(next_id)
    return answer


@pytest.mark.parametrize("seed", [0, 1, 6, 7, 8])
def test_cached_greedy_equals_full_decoder_passes_while_rows_finish_at_different_steps(seed: int) -> None:
    torch.manual_seed(seed)
    task = DecoderTask(DecoderConfig(vocab_size=VOCAB, sot_id=SOT, eot_id=EOT, num_layers=2, num_heads=2), D_MODEL)
    task.eval()
    with torch.no_grad():  # <|eot|> competitive, so rows stop at different steps
        task.head.output.weight[EOT] *= 4.0
    enc, enc_lens = torch.randn(4, 11, D_MODEL), torch.tensor([11, 7, 9, 4])
    prompts = [[SOT, 37, 38, 39], [SOT, 39], [SOT, 38, 39], [SOT]]
    together = task.predict(enc, enc_lens, prompts=prompts, max_new_tokens=12)
    expected = [
        _greedy_by_full_passes(task, enc[r : r + 1, : int(enc_lens[r])], enc_lens[r : r + 1], prompts[r], 12)
        for r in range(4)
    ]
    assert together == expected
    assert len({len(answer) for answer in expected}) > 1  # the test covers rows leaving the batch early


def test_decoder_predict_stops_at_eot_and_needs_a_prompt():
    task = build("decoder")
    with torch.no_grad():  # make <|eot|> win every step
        task.head.output.weight.zero_()
        task.head.output.weight[EOT] = 1.0
        task.head.final_norm.bias.fill_(1.0)
    enc = torch.randn(2, 5, D_MODEL)
    assert task.predict(enc, torch.tensor([5, 5]), prompts=[SOT]) == [[], []]
    with pytest.raises(UserError, match="prompt"):
        task.predict(enc, torch.tensor([5, 5]))
    with pytest.raises(UserError, match="outside the vocabulary"):
        task.predict(enc, torch.tensor([5, 5]), prompts=[VOCAB + 3])


def test_decoder_sizes_follow_the_encoder_preset_unless_given():
    tiny = DecoderConfig.model_validate({}, context={"encoder_preset": "tiny"})
    base = DecoderConfig.model_validate({"num_layers": 3}, context={"encoder_preset": "base"})
    assert (tiny.num_layers, tiny.ffn_dim) == (2, 128)
    assert (base.num_layers, base.ffn_dim) == (3, 2048)


def test_vad_frames_and_scores():
    task = build("vad")
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    probs = task.speech_probs(enc, enc_lens)
    assert [len(p) for p in probs] == enc_lens.tolist()
    assert task.predict(enc, enc_lens) == [[int(p >= 0.5) for p in row] for row in probs]
    scores = task.score([[1, 0, 1, 1]], [[1, 0, 0, IGNORE]])
    assert scores["frame_accuracy"] == pytest.approx(2 / 3) and scores["f1"] == pytest.approx(2 / 3)
    targets = torch.tensor([[1, 0, 1]])
    assert align_frames(targets, 5).tolist() == [[1, 0, 1, IGNORE, IGNORE]]
    assert align_frames(targets, 2).tolist() == [[1, 0]]


def test_slots_tag_the_asr_hypothesis_or_given_tokens():
    task = build("slots")
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    given = task.predict(enc, enc_lens, tokens=[[3, 4, 5], []])
    assert given[0].tokens == [3, 4, 5] and len(given[0].tags) == 3 and given[1] == SlotTags([], [])
    assert all(0 <= t < NUM_TAGS for t in given[0].tags)
    hypothesis = task._peers["asr_ctc"].predict(enc, enc_lens)
    assert [p.tokens for p in task.predict(enc, enc_lens)] == hypothesis
    scores = task.score([SlotTags([1, 2, 3], [0, 1, 2])], [[0, 1, 0, IGNORE]])
    assert scores["tag_error_rate"] == pytest.approx(1 / 3) and scores["f1"] == pytest.approx(2 / 3)


def test_accent_reversal_schedule():
    dann = AccentConfig(num_classes=3)
    assert grl_lambda(dann, 0.0) == 0.0
    assert grl_lambda(dann, 1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_lambda(dann, 0.1) < grl_lambda(dann, 0.5) < grl_lambda(dann, 1.0)
    assert grl_lambda(AccentConfig(num_classes=3, schedule="constant", max_lambda=0.3), 0.0) == 0.3
    task = build("accent", reversal=False)
    task.set_progress(1.0)
    assert task.reversal_lambda == 0.0


def reversal_grads(reversal: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    task = build("accent", reversal=reversal, schedule="constant", max_lambda=1.0)
    torch.manual_seed(0)
    for p in task.parameters():
        torch.nn.init.normal_(p, std=0.3)
    batch = random_batch(batch_size=3)
    enc, enc_lens = encoder_output(batch)
    enc.requires_grad_(True)
    task.loss(enc, enc_lens, batch).loss.backward()
    return enc.grad, [p.grad.clone() for p in task.parameters()]


def test_gradient_reversal_flips_only_the_encoder_gradient():
    enc_on, head_on = reversal_grads(True)
    enc_off, head_off = reversal_grads(False)
    assert enc_on.abs().sum() > 0
    assert torch.allclose(enc_on, -enc_off, atol=1e-7)
    for on, off in zip(head_on, head_off, strict=True):
        assert torch.equal(on, off)


def test_pooled_task_needs_its_vocabulary():
    with pytest.raises(UserError, match="'gender' label vocabulary"):
        TASKS["gender"].sizes_from_data(None, {"intent": ["a", "b"]})
    with pytest.raises(UserError, match="num_classes is not set"):
        TASKS["intent"](TASKS["intent"].config_class(), D_MODEL)


def test_unknown_prediction_options_are_user_errors():
    batch = random_batch(batch_size=2)
    enc, enc_lens = encoder_output(batch)
    for name in ("asr_ctc", "intent", "vad", "slots", "decoder"):
        with pytest.raises(UserError, match=f"{name} prediction: unknown option\\(s\\) beam"):
            build(name).predict(enc, enc_lens, beam=4)


def test_tasks_declare_their_label_vocabulary():
    declared = {name: TASKS[name].label_vocab for name in ALL_TASKS}
    assert declared == {
        **{name: name for name in NUM_CLASSES},
        "slots": "slot",
        "asr_ctc": None,
        "decoder": None,
        "vad": None,
    }

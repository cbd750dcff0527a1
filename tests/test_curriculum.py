"""Task curriculum: step and metric triggers, linear ramps, latching, resume, config errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mtspeech.errors import UserError
from mtspeech.train.curriculum import Curriculum, CurriculumConfig

CONFIG = {
    "tasks": {
        "decoder": {"start_step": 10, "ramp_steps": 4},
        "intent": {"when": {"metric": "asr_ctc.cer", "below": 0.3}},
        "lid": {"start_step": 5, "when": {"metric": "accuracy", "above": 0.5}, "ramp_steps": 2},
    }
}


def curriculum(tasks=None) -> Curriculum:
    return Curriculum(CurriculumConfig.model_validate(CONFIG), tasks)


def test_step_trigger_with_linear_ramp():
    c = curriculum()
    values = [c.multipliers(step)["decoder"] for step in range(8, 16)]
    assert values == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_metric_trigger_waits_for_the_threshold_and_latches():
    c = curriculum()
    assert c.multipliers(0, {})["intent"] == 0.0  # not measured yet
    assert c.multipliers(1, {"asr_ctc.cer": 0.45})["intent"] == 0.0
    assert c.multipliers(2, {"asr_ctc.cer": 0.29})["intent"] == 1.0
    assert c.multipliers(3, {"asr_ctc.cer": 0.50})["intent"] == 1.0  # a worse metric later does not switch it off


def test_step_and_metric_conditions_both_apply():
    c = curriculum()
    assert c.multipliers(3, {"accuracy": 0.9})["lid"] == 0.0  # metric holds, step too early
    assert c.multipliers(6, {"accuracy": 0.4})["lid"] == 0.0  # step ok, metric not
    assert c.multipliers(7, {"accuracy": 0.6})["lid"] == 0.5
    assert c.multipliers(8, {})["lid"] == 1.0


def test_unscheduled_tasks_are_always_on_when_tasks_are_given():
    c = curriculum(["asr_ctc", "decoder", "intent", "lid"])
    assert c.multipliers(0) == {"asr_ctc": 1.0, "decoder": 0.0, "intent": 0.0, "lid": 0.0}
    assert Curriculum(CurriculumConfig()).multipliers(0) == {}


def test_state_round_trip_keeps_switch_on_steps():
    c = curriculum()
    c.multipliers(11)
    c.multipliers(12, {"asr_ctc.cer": 0.1})
    restored = curriculum()
    restored.load_state_dict(c.state_dict())
    assert restored.multipliers(13, {"asr_ctc.cer": 0.9}) == c.multipliers(13, {"asr_ctc.cer": 0.9})
    assert restored.multipliers(13)["decoder"] == 0.75  # switched on at step 10, not re-triggered at 13


def test_config_errors_name_the_problem():
    with pytest.raises(ValidationError, match="exactly one of 'below' or 'above'"):
        CurriculumConfig.model_validate({"tasks": {"intent": {"when": {"metric": "cer"}}}})
    with pytest.raises(ValidationError, match="ramp"):
        CurriculumConfig.model_validate({"tasks": {"intent": {"ramp": 3}}})
    with pytest.raises(ValidationError, match="start_step"):
        CurriculumConfig.model_validate({"tasks": {"intent": {"start_step": -1}}})
    with pytest.raises(UserError, match="'emotion'.*tasks: asr_ctc, intent"):
        Curriculum(CurriculumConfig.model_validate({"tasks": {"emotion": {}}}), ["asr_ctc", "intent"])


def test_a_task_that_would_start_after_the_last_step_is_a_config_error(tmp_path) -> None:
    from train_fixtures import tiny_train_config

    from mtspeech.train.config import TrainConfig

    raw = tiny_train_config(tmp_path, tmp_path / "run", curriculum={"tasks": {"lid": {"start_step": 6}}})
    with pytest.raises(ValidationError, match=r"curriculum\.tasks\.lid\.start_step \(6\) is not before max_steps"):
        TrainConfig.model_validate(raw)
    raw["curriculum"]["tasks"]["lid"]["start_step"] = 5
    assert TrainConfig.model_validate(raw).curriculum.tasks["lid"].start_step == 5


def test_a_warming_up_head_trains_before_its_task_joins_the_encoder():
    config = CurriculumConfig.model_validate(
        {"tasks": {"emotion": {"head_start_step": 3, "start_step": 8, "ramp_steps": 2}, "lid": {"start_step": 1}}}
    )
    c = Curriculum(config, ["asr_ctc", "emotion", "lid"])
    assert c.head_tasks(2) == set() and c.head_tasks(3) == {"emotion"} and c.head_tasks(20) == {"emotion"}
    assert [c.multipliers(s)["emotion"] for s in (3, 7, 8, 9)] == [0.0, 0.0, 0.5, 1.0]  # what reaches the encoder
    with pytest.raises(ValidationError, match=r"head_start_step \(9\) must not come after start_step \(8\)"):
        CurriculumConfig.model_validate({"tasks": {"emotion": {"head_start_step": 9, "start_step": 8}}})


def test_untrained_tasks_are_those_no_step_has_trained_and_no_condition_reads():
    config = CurriculumConfig.model_validate(
        {
            "tasks": {
                "decoder": {"start_step": 4},
                "emotion": {"head_start_step": 2, "start_step": 6},
                "lid": {"start_step": 4},
                "intent": {"when": {"metric": "lid.accuracy", "above": 0.5}},  # lid's metric is watched
            }
        }
    )
    c = Curriculum(config, ["asr_ctc", "decoder", "emotion", "lid", "intent"])
    for step in range(5):
        c.multipliers(step)
    # Validation after step 4 ran (progress.step == 5): decoder trained at step 4; validation after 4 steps: not.
    assert c.untrained(4) == {"decoder", "intent"}
    assert c.untrained(5) == {"intent"}
    assert c.untrained(2) == {"decoder", "emotion", "intent"}  # the head warms from step 2: trained after it
    assert c.switched_on == {"decoder": 4, "lid": 4}  # untrained() reads the state, never latches

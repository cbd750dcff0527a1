"""Two-process data-parallel training on CPU (gloo), launched by torchrun like a real multi-GPU job."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from train_fixtures import tiny_train_config, write_config

from mtspeech.train.run_log import read_log

pytestmark = pytest.mark.slow  # two processes training for a few steps: about a minute on 2 shared cores

# Runs in each rank: train, then dump this rank's final weights so the test can compare ranks.
RANK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch
    from mtspeech.train.config import load_train_config
    from mtspeech.train.trainer import Trainer

    trainer = Trainer(load_train_config(sys.argv[1]))
    result = trainer.run()
    state = {k: v.detach().cpu() for k, v in trainer.run_state.model.state_dict().items()}
    torch.save({"weights": state, "steps": result.steps}, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_keeps_ranks_identical_and_learns(tiny_corpus: Path, tmp_path: Path) -> None:
    config = tiny_train_config(
        tiny_corpus,
        tmp_path / "run",
        max_steps=8,
        valid_every=8,
        checkpoint_every=4,
        data={"augment": {"spec_augment": False}},
        optim={"lr": 3e-3, "warmup_steps": 1, "schedule": "constant"},
        distributed={"backend": "gloo"},
    )
    cfg = write_config(tmp_path / "cfg.yaml", config)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        str(script), str(cfg), str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 8
    for key, value in ranks[0]["weights"].items():
        torch.testing.assert_close(ranks[1]["weights"][key], value, rtol=0, atol=0, msg=key)

    records = read_log(tmp_path / "run" / "train.jsonl")
    start = next(r for r in records if r["kind"] == "event")
    assert start["world_size"] == 2 and start["strategy"] == "ddp"
    ctc = [r["loss/asr_ctc"] for r in records if r["kind"] == "train" and "loss/asr_ctc" in r]
    assert len(ctc) == 8 and sum(ctc[-3:]) / 3 < ctc[0] * 0.8, ctc
    # Only rank 0 writes: one log, one set of checkpoints, one model file.
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*.pt")) == [
        "step-00000004.pt",
        "step-00000008.pt",
    ]
    assert (tmp_path / "run" / "model.pt").is_file()


def test_two_process_fsdp_trains_checkpoints_and_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    """FSDP2 sharding on CPU/gloo with a balancer that has its own learned weights (uncertainty)."""
    config = tiny_train_config(
        tiny_corpus,
        tmp_path / "run",
        max_steps=2,
        valid_every=2,
        checkpoint_every=2,
        model={"encoder": {"num_blocks": 2}},
        balancer={"name": "uncertainty", "telemetry_every": 0},
        distributed={"strategy": "fsdp", "backend": "gloo"},
    )
    cfg = write_config(tmp_path / "cfg.yaml", config)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    for extra in ([], ["--resume", "--set", "max_steps=3"]):
        command = [*launch, "--master_port", str(_free_port()), "-m", "mtspeech", "train", str(cfg), *extra]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_log(tmp_path / "run" / "train.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert next(r for r in records if r["kind"] == "event")["strategy"] == "fsdp"
    assert all(math.isfinite(r["loss/total"]) for r in records if r["kind"] == "train")
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-00000003.pt", weights_only=True)
    assert state["balancer_optimizer"] is not None and state["balancer"]["name"] == "uncertainty"
    assert (tmp_path / "run" / "model.pt").is_file()

"""``mtspeech lm``: an n-gram LM estimated, tuned and stored in the model file, then used by evaluate and serve."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_fixtures import build_model_file
from typer.testing import CliRunner

from mtspeech.cli import app
from mtspeech.data.corpus import load_cuts, load_texts
from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.lm_fit import transcripts
from mtspeech.errors import UserError
from mtspeech.evaluate.predict import PredictOptions, resolve_decoding
from mtspeech.model.package import load_model
from mtspeech.serve.inference import ModelAnalyzer, decoding_options


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_file(tmp_path_factory.mktemp("lm-model") / "model.pt", tasks=("asr_ctc", "lid"))


@pytest.fixture(scope="module")
def with_lm(model_file: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("lm-out") / "model-lm.pt"
    extra = out.parent / "extra.txt"
    seen_in_valid = transcripts(load_cuts(tiny_corpus, "valid"))[0]  # the overlap check must count it
    extra.write_text(f"set an alarm for seven\n\n{seen_in_valid}\n", encoding="utf-8")
    args = ["lm", "-m", str(model_file), "-d", str(tiny_corpus), "--order", "3", "--weights", "0.3,0.6"]
    args += ["--text", str(extra)]
    result = CliRunner().invoke(app, [*args, "--bonuses", "0,1", "--max-utterances", "6", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_lm_is_stored_with_its_tuning_and_the_model_is_unchanged(with_lm, model_file: Path, tiny_corpus: Path) -> None:
    path, output = with_lm
    assert "chosen: weight" in output and "CER" in output
    said = " ".join(output.split())  # rich wraps at the test terminal's width
    assert "valid transcripts also occur in the LM's text (train + text-only rows + --text)" in said
    assert "text-only rows and 2 lines of --text" in said
    loaded, original = load_model(path), load_model(model_file)
    assert original.lm is None and isinstance(loaded.lm, TokenNgramLM)
    tuning = loaded.lm.metadata["tuning"]
    assert len(tuning) == 1 + 2 * 2  # no LM, then every weight x bonus
    best = min(tuning, key=lambda p: (p["cer"], p["weight"], abs(p["bonus"])))
    assert (loaded.lm.metadata["weight"], loaded.lm.metadata["bonus"]) == (best["weight"], best["bonus"])
    assert loaded.lm.order == 3 and loaded.lm.vocab_size == loaded.tokenizer.sp_size
    assert loaded.lm.metadata["tune_transcripts_in_fit_split"] >= 1 and loaded.lm.metadata["text_lines"] == 2
    assert loaded.lm.metadata["text_only_rows"] == len(load_texts(tiny_corpus, "train")) > 0
    for key, value in original.model.state_dict().items():
        assert loaded.model.state_dict()[key].equal(value), key


def test_evaluate_and_serve_use_the_tuned_fusion_unless_told_otherwise(with_lm, model_file: Path) -> None:
    loaded = load_model(with_lm[0])
    loaded.lm.metadata |= {"weight": 0.4, "bonus": 0.5}  # as if tuning had chosen the LM
    tuned = resolve_decoding(loaded, PredictOptions())
    assert tuned is not None and (tuned.lm_weight, tuned.lm_bonus) == (0.4, 0.5)
    assert resolve_decoding(loaded, PredictOptions(lm_weight=0.0)).lm_weight == 0.0
    assert decoding_options(loaded.model, lm=loaded.lm).lm_weight == 0.4
    assert decoding_options(loaded.model, mode="ctc_greedy", lm=loaded.lm).lm_weight == 0.0
    assert decoding_options(loaded.model, lm=loaded.lm, lm_weight=0.0).lm_weight == 0.0
    with pytest.raises(UserError, match="lm_weight fuses the n-gram LM"):
        decoding_options(loaded.model, mode="attention_beam", lm=loaded.lm, lm_weight=0.5)
    analyzer = ModelAnalyzer(loaded)
    assert analyzer.decoding.lm_weight == 0.4 and analyzer.decoder.lm is loaded.lm
    plain = load_model(model_file)
    assert resolve_decoding(plain, PredictOptions()).lm_weight == 0.0
    with pytest.raises(UserError, match="--lm-weight needs a model file with an n-gram LM"):
        decoding_options(plain.model, lm=None, lm_weight=0.5)


def test_lm_errors_name_the_problem(model_file: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["lm", "-m", str(model_file), "-d", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "corpus directory not found" in result.output
    result = runner.invoke(app, ["lm", "-m", str(model_file), "-d", str(tiny_corpus), "--weights", "a,b"])
    assert result.exit_code != 0 and "--weights: expected comma-separated numbers" in result.output
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    result = runner.invoke(app, ["lm", "-m", str(model_file), "-d", str(tiny_corpus), "--text", str(latin1)])
    assert result.exit_code != 0 and "--text: not UTF-8 text" in result.output and "latin1.txt" in result.output
    evaluate = ["evaluate", "-m", str(model_file), "-d", str(tiny_corpus), "--lm-weight", "0.5", "--no-progress"]
    result = runner.invoke(app, [*evaluate, "-o", str(tmp_path / "eval")])
    assert result.exit_code != 0 and "needs a model file with an n-gram LM" in result.output


def test_a_damaged_lm_or_a_model_without_ctc_is_named(with_lm, tiny_corpus: Path, tmp_path: Path) -> None:
    import torch

    payload = torch.load(with_lm[0], weights_only=True)
    payload["lm"] = {"format": "something else"}
    damaged = tmp_path / "damaged.pt"
    torch.save(payload, damaged)
    with pytest.raises(UserError, match="unreadable n-gram language model") as err:
        load_model(damaged)
    assert "damaged.pt" in str(err.value)
    no_ctc = build_model_file(tmp_path / "lid-only.pt", tasks=("lid",))
    result = CliRunner().invoke(app, ["lm", "-m", str(no_ctc), "-d", str(tiny_corpus)])
    assert result.exit_code != 0 and "has no asr_ctc head" in result.output

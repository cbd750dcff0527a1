"""The SentencePiece tokenizer with Whisper-style special tokens: round trips, id layout, prompts, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from pipeline_fixtures import make_fixture_cuts
from typer.testing import CliRunner

from mtspeech.cli.tokenizer import train_tokenizer_cmd
from mtspeech.data.corpus import manifest_path
from mtspeech.data.tokenizer import (
    CONTROL_TOKENS,
    DEFAULT_LANGUAGES,
    TOKENIZER_JSON,
    TOKENIZER_MODEL,
    Tokenizer,
    tokenizer_inputs_from_cuts,
    train_tokenizer,
    train_tokenizer_from_cuts,
)
from mtspeech.errors import UserError

EXTRA_TEXTS = [
    "set an alarm for seven thirty tomorrow morning",
    "what is the weather going to be like in london",
    "le chat dort sur le canapé",
    "der hund spielt im garten",
    "el tren llega a las ocho",
    "il treno parte alle nove",
]
ROUND_TRIP = [
    "wake me up at eight o'clock",
    "wake me up at [time : eight] o'clock",
    "réveille-moi à huit heures",
    "weck mich um acht uhr",
    "set alarm 7:30 am, please!",
    "Ünïcödé never seen: 日本語 ΩΣ",
    "<|en|> <|sot|> <|intent:alarm_set|> <|1.00|> typed by a user",
    "spaces   collapse\tto one",
]


@pytest.fixture(scope="module")
def cuts(tmp_path_factory: pytest.TempPathFactory):
    return make_fixture_cuts(tmp_path_factory.mktemp("tok") / "audio")


@pytest.fixture(scope="module")
def tok(cuts) -> Tokenizer:
    texts, languages, intents = tokenizer_inputs_from_cuts(cuts)
    return train_tokenizer([*texts, *EXTRA_TEXTS], vocab_size=320, languages=languages, intents=intents)


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_text_round_trip_and_no_special_ids_from_text(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert ids and all(0 < i < tok.sp_size for i in ids), "plain text must never encode to blank or specials"
    assert tok.decode(ids) == " ".join(text.split())
    assert tok.decode(ids, keep_specials=True) == " ".join(text.split())


def test_special_tokens_are_single_ids_never_split(tok: Tokenizer) -> None:
    for token in [*CONTROL_TOKENS, "<|en|>", "<|fr|>", "<|intent:alarm_set|>", "<|0.00|>", "<|30.00|>"]:
        token_id = tok.token_to_id(token)
        assert tok.is_special(token_id)
        assert tok.id_to_token(token_id) == token
        assert tok.decode([token_id]) == ""  # dropped from plain text
        assert tok.decode([token_id], keep_specials=True) == token
    # Typed in text, a special token's spelling is plain text (several ordinary pieces), not the special id.
    assert len(tok.encode("<|en|>")) > 1 and tok.language_id("en") not in tok.encode("<|en|>")


def test_id_layout(tok: Tokenizer) -> None:
    assert tok.blank_id == tok.pad_id == 0 and tok.id_to_token(0) == "<blank>" and tok.sp.is_control(0)
    assert tok.vocab_size == tok.sp_size + len(tok.special_tokens)
    assert tok.special_tokens[: len(CONTROL_TOKENS)] == list(CONTROL_TOKENS)
    assert tok.sot_id == tok.sp_size and tok.eot_id == tok.sp_size + 1
    assert set(DEFAULT_LANGUAGES) <= set(tok.languages) and tok.languages == sorted(tok.languages)
    language_ids = [tok.language_id(code) for code in tok.languages]
    assert language_ids == list(range(language_ids[0], language_ids[0] + len(language_ids)))
    assert tok.intents == ["alarm_set", "weather_query"]
    assert tok.intent_id("weather_query") == tok.intent_id("alarm_set") + 1
    assert tok.num_timestamps == 751 and tok.timestamp_begin + 751 == tok.vocab_size
    assert tok.id_to_token(tok.vocab_size - 1) == "<|30.00|>"
    with pytest.raises(ValueError):
        tok.id_to_token(tok.vocab_size)
    with pytest.raises(KeyError):
        tok.token_to_id("<|not-a-token|>")


def test_timestamps_round_to_the_resolution_and_clamp(tok: Tokenizer) -> None:
    assert tok.id_to_token(tok.timestamp_id(1.234)) == "<|1.24|>"
    assert tok.timestamp_seconds(tok.timestamp_id(2.0)) == pytest.approx(2.0)
    assert tok.timestamp_id(-1.0) == tok.timestamp_begin
    assert tok.timestamp_id(99.0) == tok.vocab_size - 1
    assert tok.is_timestamp(tok.timestamp_id(0.5)) and not tok.is_timestamp(tok.eot_id)
    with pytest.raises(ValueError):
        tok.timestamp_seconds(tok.eot_id)


def test_decoder_prompts(tok: Tokenizer) -> None:
    def spelled(ids: list[int]) -> str:
        return "".join(tok.id_to_token(i) for i in ids)

    assert spelled(tok.prompt("transcribe", "fr")) == "<|sot|><|fr|><|transcribe|><|notimestamps|>"
    assert spelled(tok.prompt("transcribe", "en", timestamps=True)) == "<|sot|><|en|><|transcribe|><|timestamps|>"
    assert spelled(tok.prompt("translate", "en", "fr")) == "<|sot|><|en|><|translate|><|fr|><|notimestamps|>"
    assert spelled(tok.prompt("slu", "en")) == "<|sot|><|en|><|slu|><|notimestamps|>"
    with pytest.raises(ValueError, match="target_language"):
        tok.prompt("translate", "en")
    with pytest.raises(ValueError, match="target_language"):
        tok.prompt("transcribe", "en", "fr")
    with pytest.raises(ValueError, match="task"):
        tok.prompt("summarise", "en")
    with pytest.raises(KeyError, match="xx"):
        tok.prompt("transcribe", "xx")


def test_word_starts_mark_the_first_piece_of_every_word(tok: Tokenizer) -> None:
    text = "wake me up at eight o'clock réveille-moi"
    ids = tok.encode(text)
    starts = tok.word_starts(ids)
    assert starts[0] and sum(starts) == len(text.split())
    words, current = [], []
    for token_id, is_start in zip(ids, starts, strict=True):
        if is_start and current:
            words.append(tok.decode(current))
            current = []
        current.append(token_id)
    words.append(tok.decode(current))
    assert words == text.split()


def test_bytes_and_directory_round_trips_keep_every_id(tok: Tokenizer, tmp_path: Path) -> None:
    for copy in (Tokenizer.from_bytes(tok.to_bytes()), Tokenizer.load(tok.save(tmp_path / "tok"))):
        assert copy.config() == tok.config()
        assert copy.special_tokens == tok.special_tokens
        for text in ROUND_TRIP:
            assert copy.encode(text) == tok.encode(text)
        assert copy.prompt("translate", "en", "de") == tok.prompt("translate", "en", "de")
    assert (tmp_path / "tok" / TOKENIZER_MODEL).is_file() and (tmp_path / "tok" / TOKENIZER_JSON).is_file()


def test_loading_broken_files_names_the_problem(tok: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=TOKENIZER_MODEL):
        Tokenizer.load(tmp_path)
    directory = tok.save(tmp_path / "tok")
    json_path = directory / TOKENIZER_JSON
    json_path.write_text(json_path.read_text().replace(f'"vocab_size": {tok.vocab_size}', '"vocab_size": 5'))
    with pytest.raises(UserError, match="different runs"):
        Tokenizer.load(directory)
    json_path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        Tokenizer.load(directory)
    with pytest.raises(ValueError, match="not a serialised"):
        Tokenizer.from_bytes(b"\x00garbage")


def test_training_is_deterministic(cuts) -> None:
    first = train_tokenizer_from_cuts(cuts, vocab_size=300)
    second = train_tokenizer_from_cuts(cuts, vocab_size=300)
    assert first.to_bytes() == second.to_bytes()


def test_inputs_cover_transcripts_translations_and_slot_annotations(cuts) -> None:
    texts, languages, intents = tokenizer_inputs_from_cuts(cuts)
    assert "wake me up at eight o'clock" in texts
    assert "weck mich um acht uhr" in texts and "apaga las luces" in texts
    assert "wake me up at [time : eight] o'clock" in texts
    # en-weather has only BIO tags: the annotation the collator builds from them is trained on too.
    assert "what's the weather like in [place_name : paris]" in texts
    assert languages == {"en", "fr", "de", "es"}
    assert intents == {"alarm_set", "weather_query"}


def test_bad_training_input_is_a_user_error() -> None:
    with pytest.raises(UserError, match="vocab_size"):
        train_tokenizer(["some text"], vocab_size=100)
    with pytest.raises(UserError, match="no text"):
        train_tokenizer(["", "   "], vocab_size=400)
    with pytest.raises(UserError, match="model_type"):
        train_tokenizer(["some text"], model_type="wordpiece")
    with pytest.raises(UserError, match="language code"):
        train_tokenizer(["some text"], vocab_size=300, languages=["English"])


def test_special_token_names_must_be_distinct(tok: Tokenizer) -> None:
    proto = tok.sp.serialized_model_proto()
    with pytest.raises(ValueError, match="distinct"):
        Tokenizer(proto, languages=["en", "sot"])  # <|sot|> would be both a control token and a language
    with pytest.raises(ValueError, match="distinct"):
        Tokenizer(proto, timestamp_resolution=0.004)  # two-decimal names would repeat


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(train_tokenizer_cmd)
    return app


def test_cli_trains_and_saves_a_loadable_tokenizer(cuts, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    path = manifest_path(corpus, "cuts", "train")
    path.parent.mkdir(parents=True)
    cuts.to_file(path)
    result = CliRunner().invoke(_cli(), [str(corpus), "--out", str(tmp_path / "tok"), "--vocab-size", "300"])
    assert result.exit_code == 0, result.output
    loaded = Tokenizer.load(tmp_path / "tok")
    assert loaded.intents == ["alarm_set", "weather_query"]
    assert loaded.decode(loaded.encode("bonjour à tous")) == "bonjour à tous"
    assert f"{loaded.vocab_size} ids" in result.output


def test_cli_reports_a_missing_split_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(_cli(), [str(tmp_path / "empty"), "--out", str(tmp_path / "tok")])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "tok").exists()


def test_char_model_has_one_piece_per_character_and_round_trips() -> None:
    texts = ["wake me up at seven", "réveille-moi à sept heures", "weck mich um sieben [time : sieben]"]
    tok = train_tokenizer(texts, vocab_size=1000, model_type="char")
    text = "weck mich à sept"
    ids = tok.encode(text)
    assert len(ids) == len(text) + 1  # every character, spaces as "▁", plus the leading "▁"
    assert tok.decode(ids) == text
    assert tok.word_starts(ids).count(True) == len(text.split())
    assert tok.sp_size < 1000  # the soft limit only bounds it: 256 byte pieces + the characters seen + specials

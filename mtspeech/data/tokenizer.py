"""The text tokenizer: a SentencePiece model for text plus appended Whisper-style special tokens.

Id space (``V = vocab_size``)::

    0                   <blank>   CTC blank and decoder padding; a SentencePiece *control* piece, so encode()
                                  never produces it
    1                   <unk>     (never produced in practice: byte fallback covers every character)
    2 .. S-1            text pieces: "[", "]", ":" as user-defined symbols (SLU annotations tokenize cleanly),
                        256 byte-fallback pieces, then the learned pieces
    S .. V-1            specials, appended after the SentencePiece model (``S = sp_size``), in this order:
                        <|sot|> <|eot|> <|transcribe|> <|translate|> <|slu|> <|notimestamps|> <|timestamps|>
                        <|nospeech|>, one <|xx|> per language (sorted), one <|intent:name|> per intent (sorted),
                        then timestamps <|0.00|> <|0.04|> ... <|30.00|>

Specials live outside SentencePiece so they can never be matched inside plain text ("<|en|>" typed by a user
encodes as ordinary bytes) and so the text vocabulary size is exactly what the user asked for. Timestamps use a
0.04 s step by default: one encoder frame after x4 subsampling of 10 ms features, so finer steps carry no
information; 0..30 s is 751 tokens.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from mtspeech.errors import UserError

BLANK_PIECE = "<blank>"
SLU_SYMBOLS = ("[", "]", ":")
# SentencePiece model types; "char" (one piece per character) gives CTC many more examples of each unit, which
# lets a small model trained for minutes leave the blank plateau (see docs/training.md).
MODEL_TYPES = ("unigram", "bpe", "char")
TASKS = ("transcribe", "translate", "slu")
CONTROL_TOKENS = (
    "<|sot|>",
    "<|eot|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|slu|>",
    "<|notimestamps|>",
    "<|timestamps|>",
    "<|nospeech|>",
)
# Reserved language tokens (ISO 639-1) so a model can later be fine-tuned on a language its corpus lacked.
_DEFAULT_LANGUAGE_CODES = (
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha he hi hr ht hu hy id "
    "is it ja jv ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa "
    "sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh"
)
DEFAULT_LANGUAGES = tuple(_DEFAULT_LANGUAGE_CODES.split())
TOKENIZER_MODEL = "tokenizer.model"
TOKENIZER_JSON = "tokenizer.json"
FORMAT_VERSION = 1
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_INTENT_NAME = re.compile(r"^[^\s|<>]+$")


class Tokenizer:
    """Encode/decode text and build decoder prompts; see the module docstring for the id layout."""

    def __init__(
        self,
        model_proto: bytes,
        languages: Iterable[str] = DEFAULT_LANGUAGES,
        intents: Iterable[str] = (),
        timestamp_resolution: float = 0.04,
        max_timestamp: float = 30.0,
    ) -> None:
        self._model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self._model_proto)
        if self.sp.id_to_piece(0) != BLANK_PIECE or not self.sp.is_control(0):
            raise ValueError(f"SentencePiece id 0 must be the control piece {BLANK_PIECE!r} (the CTC blank)")
        self.languages = sorted(set(languages))
        self.intents = sorted(set(intents))
        for code in self.languages:
            if not _LANGUAGE_CODE.match(code):
                raise ValueError(f"language code must be 2-3 lowercase letters (ISO 639), got {code!r}")
        for name in self.intents:
            if not _INTENT_NAME.match(name):
                raise ValueError(f"intent name must be non-empty without whitespace, '|', '<', '>': {name!r}")
        if timestamp_resolution <= 0 or max_timestamp <= 0:
            raise ValueError("timestamp_resolution and max_timestamp must be positive")
        self.timestamp_resolution = float(timestamp_resolution)
        self.max_timestamp = float(max_timestamp)
        self.num_timestamps = int(round(self.max_timestamp / self.timestamp_resolution)) + 1

        self.sp_size = self.sp.get_piece_size()
        self.special_tokens: list[str] = [
            *CONTROL_TOKENS,
            *(f"<|{code}|>" for code in self.languages),
            *(f"<|intent:{name}|>" for name in self.intents),
            *(f"<|{i * self.timestamp_resolution:.2f}|>" for i in range(self.num_timestamps)),
        ]
        clashes = sorted(tok for tok, n in Counter(self.special_tokens).items() if n > 1)
        if clashes:
            # e.g. a language code equal to a control word ("sot") or a timestamp step finer than 0.01 s,
            # which the two-decimal token names cannot tell apart.
            raise ValueError(f"special tokens must be distinct; repeated: {', '.join(clashes[:5])}")
        self._special_ids = {tok: self.sp_size + i for i, tok in enumerate(self.special_tokens)}

        self.blank_id = 0
        self.pad_id = 0  # decoder padding reuses the blank: it is never a decoder input or a scored target
        self.unk_id = self.sp.unk_id()
        self.sot_id, self.eot_id = self._special_ids["<|sot|>"], self._special_ids["<|eot|>"]
        self.transcribe_id = self._special_ids["<|transcribe|>"]
        self.translate_id = self._special_ids["<|translate|>"]
        self.slu_id = self._special_ids["<|slu|>"]
        self.notimestamps_id = self._special_ids["<|notimestamps|>"]
        self.timestamps_id = self._special_ids["<|timestamps|>"]
        self.nospeech_id = self._special_ids["<|nospeech|>"]
        self.language_ids = {code: self._special_ids[f"<|{code}|>"] for code in self.languages}
        self.intent_ids = {name: self._special_ids[f"<|intent:{name}|>"] for name in self.intents}
        self.timestamp_begin = self.sp_size + len(self.special_tokens) - self.num_timestamps
        self._task_ids = {"transcribe": self.transcribe_id, "translate": self.translate_id, "slu": self.slu_id}

    # --- sizes and lookups --------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Embedding/output size of the decoder and the CTC head (text pieces + specials)."""
        return self.sp_size + len(self.special_tokens)

    def is_special(self, token_id: int) -> bool:
        return token_id >= self.sp_size

    def is_timestamp(self, token_id: int) -> bool:
        return self.timestamp_begin <= token_id < self.vocab_size

    def id_to_token(self, token_id: int) -> str:
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} outside the vocabulary [0, {self.vocab_size})")
        if token_id < self.sp_size:
            return self.sp.id_to_piece(token_id)
        return self.special_tokens[token_id - self.sp_size]

    def token_to_id(self, token: str) -> int:
        """Id of a special token (``"<|en|>"``) or a SentencePiece piece (``"▁wake"``)."""
        if token in self._special_ids:
            return self._special_ids[token]
        piece_id = self.sp.piece_to_id(token)
        if piece_id == self.unk_id and token != self.sp.id_to_piece(self.unk_id):
            raise KeyError(f"unknown token {token!r}")
        return piece_id

    def language_id(self, language: str) -> int:
        if language not in self.language_ids:
            raise KeyError(f"language {language!r} has no token (tokenizer languages: {', '.join(self.languages)})")
        return self.language_ids[language]

    def intent_id(self, intent: str) -> int:
        if intent not in self.intent_ids:
            raise KeyError(f"intent {intent!r} has no token ({len(self.intents)} intents known)")
        return self.intent_ids[intent]

    def timestamp_id(self, seconds: float) -> int:
        """The timestamp token nearest to ``seconds``, clamped to ``[0, max_timestamp]``."""
        step = int(round(seconds / self.timestamp_resolution))
        return self.timestamp_begin + min(max(step, 0), self.num_timestamps - 1)

    def timestamp_seconds(self, token_id: int) -> float:
        if not self.is_timestamp(token_id):
            raise ValueError(f"token id {token_id} is not a timestamp token")
        return (token_id - self.timestamp_begin) * self.timestamp_resolution

    # --- text -----------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Text piece ids (no specials). SentencePiece's NFKC normalisation collapses repeated whitespace."""
        if not isinstance(text, str):
            raise TypeError(f"encode() expects str, got {type(text).__name__}")
        return list(self.sp.encode(text, out_type=int))

    def decode(self, ids: Iterable[int], keep_specials: bool = False) -> str:
        """Text of ``ids``; specials and the blank are dropped unless ``keep_specials`` (then shown inline)."""
        ids = [int(i) for i in ids]
        if not keep_specials:
            return self.sp.decode([i for i in ids if 0 < i < self.sp_size])
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            if 0 < token_id < self.sp_size:
                run.append(token_id)
            elif token_id >= self.sp_size:
                parts += [self.sp.decode(run), self.id_to_token(token_id)]
                run = []
        parts.append(self.sp.decode(run))
        return "".join(parts)

    def word_starts(self, ids: Sequence[int]) -> list[bool]:
        """Per id: does this piece begin a new whitespace word (its piece starts with SentencePiece's "▁")?"""
        return [0 < i < self.sp_size and self.sp.id_to_piece(int(i)).startswith("\u2581") for i in ids]

    # --- decoder prompt -------------------------------------------------------------------------
    def prompt(
        self, task: str, language: str, target_language: str | None = None, timestamps: bool = False
    ) -> list[int]:
        """``<|sot|> <|lang|> <|task|> [<|target-lang|>] <|notimestamps|>`` (or ``<|timestamps|>``)."""
        if task not in self._task_ids:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if (task == "translate") != (target_language is not None):
            raise ValueError("target_language is required for 'translate' and only allowed there")
        ids = [self.sot_id, self.language_id(language), self._task_ids[task]]
        if target_language is not None:
            ids.append(self.language_id(target_language))
        ids.append(self.timestamps_id if timestamps else self.notimestamps_id)
        return ids

    # --- persistence ------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "sp_size": self.sp_size,
            "vocab_size": self.vocab_size,
            "languages": self.languages,
            "intents": self.intents,
            "timestamp_resolution": self.timestamp_resolution,
            "max_timestamp": self.max_timestamp,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.model`` and ``tokenizer.json`` into ``directory``; returns the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / TOKENIZER_MODEL).write_bytes(self._model_proto)
        (directory / TOKENIZER_JSON).write_text(json.dumps(self.config(), indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        directory = Path(directory)
        model_path, json_path = directory / TOKENIZER_MODEL, directory / TOKENIZER_JSON
        for path in (model_path, json_path):
            if not path.is_file():
                raise UserError(f"tokenizer file missing (expected {TOKENIZER_MODEL} and {TOKENIZER_JSON})", path=path)
        try:
            config = json.loads(json_path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON ({err.msg} at line {err.lineno})", path=json_path) from None
        return cls._from_parts(model_path.read_bytes(), config, source=json_path)

    def to_bytes(self) -> bytes:
        """Self-contained serialisation (config + model) for embedding in a single checkpoint file."""
        payload = {"config": self.config(), "model": base64.b64encode(self._model_proto).decode("ascii")}
        return json.dumps(payload).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Tokenizer:
        try:
            payload = json.loads(data.decode("utf-8"))
            model = base64.b64decode(payload["model"])
            config = payload["config"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a serialised mtspeech tokenizer: {err}") from None
        return cls._from_parts(model, config, source="<bytes>")

    @classmethod
    def _from_parts(cls, model: bytes, config: dict[str, Any], source: str | Path) -> Tokenizer:
        if config.get("format_version") != FORMAT_VERSION:
            found = config.get("format_version")
            raise UserError(f"tokenizer format_version is {found!r}, this mtspeech reads {FORMAT_VERSION}", path=source)
        try:
            tok = cls(
                model,
                languages=config["languages"],
                intents=config["intents"],
                timestamp_resolution=config["timestamp_resolution"],
                max_timestamp=config["max_timestamp"],
            )
        except KeyError as err:
            raise UserError(f"tokenizer config lacks field {err}", path=source) from None
        except (ValueError, RuntimeError) as err:
            raise UserError(f"invalid tokenizer: {err}", path=source) from None
        if tok.vocab_size != config.get("vocab_size") or tok.sp_size != config.get("sp_size"):
            raise UserError(
                f"tokenizer model has {tok.sp_size} pieces / {tok.vocab_size} ids but the config says "
                f"{config.get('sp_size')} / {config.get('vocab_size')} (model and json from different runs?)",
                path=source,
            )
        return tok


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 1000,
    model_type: str = "unigram",
    languages: Iterable[str] = (),
    intents: Iterable[str] = (),
    seed: int = 0,
    character_coverage: float = 1.0,
    timestamp_resolution: float = 0.04,
    max_timestamp: float = 30.0,
) -> Tokenizer:
    """Train SentencePiece on ``texts`` (single thread, fixed seed: the same input gives the same model).

    ``vocab_size`` counts text pieces only (including <blank>, <unk>, the SLU symbols and 256 byte pieces); it is
    a soft limit, so a small corpus yields fewer pieces instead of failing. Languages are added to the
    :data:`DEFAULT_LANGUAGES` reserve."""
    if model_type not in MODEL_TYPES:
        raise UserError(f"model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}")
    minimum = 2 + len(SLU_SYMBOLS) + 256 + 1
    if vocab_size <= minimum:
        raise UserError(f"vocab_size must be > {minimum} (blank, unk, SLU symbols, 256 byte pieces); got {vocab_size}")
    # Distinct sentences only: a synthetic corpus speaks each sentence with many voices, and that repetition
    # says nothing about the language, so it should not skew piece statistics.
    lines = list(dict.fromkeys(" ".join(t.split()) for t in texts if t and t.strip()))
    if not lines:
        raise UserError("no text to train the tokenizer on (no transcripts or translations found)")
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            byte_fallback=True,
            pad_id=0,
            pad_piece=BLANK_PIECE,
            unk_id=1,
            bos_id=-1,
            eos_id=-1,
            user_defined_symbols=list(SLU_SYMBOLS),
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise UserError(f"SentencePiece training failed: {err}") from None
    try:
        return Tokenizer(
            model.getvalue(),
            languages=set(DEFAULT_LANGUAGES) | set(languages),
            intents=intents,
            timestamp_resolution=timestamp_resolution,
            max_timestamp=max_timestamp,
        )
    except ValueError as err:
        raise UserError(f"cannot build the tokenizer's special tokens: {err}") from None


def tokenizer_inputs_from_cuts(cuts: Iterable[Any]) -> tuple[list[str], set[str], set[str]]:
    """Texts (transcripts, translations, SLU annotations), languages and intents found in ``cuts``.

    The SLU annotation is the one the collator builds (:func:`~mtspeech.data.targets.slurp_annotation_of`), so
    slot-type names inside brackets are part of what SentencePiece learns from."""
    from mtspeech.data.schema import INTENT, TRANSLATION
    from mtspeech.data.targets import slurp_annotation_of  # lazy: targets imports this module

    texts: list[str] = []
    languages: set[str] = set()
    intents: set[str] = set()
    for cut in cuts:
        for sup in cut.supervisions:
            custom = sup.custom or {}
            if sup.text:
                texts.append(sup.text)
            if sup.language:
                languages.add(sup.language)
            for lang, translated in (custom.get(TRANSLATION) or {}).items():
                languages.add(lang)
                if translated:
                    texts.append(translated)
            annotation = slurp_annotation_of(sup)
            if annotation:
                texts.append(annotation)
            if custom.get(INTENT):
                intents.add(custom[INTENT])
    return texts, languages, intents


def train_tokenizer_from_cuts(cuts: Iterable[Any], **kwargs: Any) -> Tokenizer:
    """:func:`train_tokenizer` on every transcript, translation and SLURP annotation of ``cuts``; the cuts'
    languages and intents get special tokens."""
    texts, languages, intents = tokenizer_inputs_from_cuts(cuts)
    languages |= set(kwargs.pop("languages", ()))
    intents |= set(kwargs.pop("intents", ()))
    return train_tokenizer(texts, languages=languages, intents=intents, **kwargs)

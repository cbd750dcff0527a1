"""The decoding modes on a :class:`~mtspeech.model.model.MultiTaskModel`: the adapter between the model-free
search algorithms of this package and the model's encoder, CTC head, decoder, VAD and language-ID heads.

``ModelDecoder(model, tokenizer, vocabs).decode(features, feature_lens, options)``:

1. encode the batch once;
2. language: ``options.language``, else the ``lid`` head's answer per utterance;
3. pieces: each utterance whole, or with ``options.vad`` its speech segments (no segment: an empty, ``no_speech``
   answer, the decoders never run);
4. run the mode on all pieces at once (batched over pieces and beams), then turn hypotheses into results and join
   each utterance's pieces.

``decode_long`` handles one recording longer than the encoder should see at once: a windowed VAD pass, then
each speech segment is cut from the features, re-encoded and decoded (segments batched), times kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mtspeech.data.features import encoder_frame_times
from mtspeech.data.tokenizer import Tokenizer
from mtspeech.decode.answers import AnswerBuilder, PieceContext
from mtspeech.decode.beam import beam_search
from mtspeech.decode.ctc import LmFusion, ctc_greedy_search, ctc_prefix_beam_search
from mtspeech.decode.grammar import AnswerGrammar, VocabLayout
from mtspeech.decode.incremental import CachedDecoderStep
from mtspeech.decode.joint import CTCPrefixScorer
from mtspeech.decode.lm import TokenNgramLM
from mtspeech.decode.options import DecodingOptions, VadOptions
from mtspeech.decode.rescoring import attention_rescoring
from mtspeech.decode.result import DecodingResult, Hypothesis, empty_result, merge_results
from mtspeech.decode.vad_gating import speech_segments
from mtspeech.errors import UserError

NEEDS_CTC = ("ctc_greedy", "ctc_prefix_beam", "attention_rescoring", "joint_ctc_attention")
NEEDS_DECODER = ("attention_beam", "attention_rescoring", "joint_ctc_attention")


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, configured chunking) for the block; the caller's mode is restored afterwards. The
    root module's flag decides: a model in eval mode is used as it is."""
    if not module.training:  # the serving case: setting ~450 modules' flags twice per request showed up in profiles
        yield
        return
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@dataclasses.dataclass
class Piece:
    utt: int
    start: int  # encoder frames of the utterance, [start, end)
    end: int


class ModelDecoder:
    """Decode with every mode of :mod:`mtspeech.decode` on one model; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        vocabs: Mapping[str, Any] | None = None,
        lm: TokenNgramLM | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.vocabs = dict(vocabs or {})
        if lm is not None and lm.vocab_size != tokenizer.sp_size:
            raise UserError(
                f"the n-gram LM covers {lm.vocab_size} text pieces but the tokenizer has {tokenizer.sp_size}: "
                "it was estimated for another tokenizer"
            )
        self.lm = lm
        self.layout = VocabLayout.from_tokenizer(tokenizer)
        feature_shift = float(model.frontend.frame_shift)
        self.frame_shift = feature_shift * model.encoder.subsampling_factor
        # Word times place encoder frames as VAD does: one frame shift around their receptive-field centre.
        first_centre = float(encoder_frame_times(1, model.encoder.subsampling_factor, feature_shift)[0])
        self.frame_lead = first_centre - self.frame_shift / 2

    @classmethod
    def from_loaded(cls, loaded: Any) -> ModelDecoder:
        """From :func:`mtspeech.model.package.load_model`'s ``LoadedModel``."""
        return cls(loaded.model, loaded.tokenizer, loaded.vocabs, getattr(loaded, "lm", None))

    # --- decoder and CTC as plain functions -----------------------------------------------------------
    def step(self, tokens: torch.Tensor, memory: torch.Tensor, memory_valid: torch.Tensor) -> torch.Tensor:
        """The beam search step function: log-probs ``(N, V)`` of the token after ``tokens``."""
        return self.model.tasks["decoder"].head(tokens, memory, memory_valid)[:, -1].float().log_softmax(dim=-1)

    def sequence_log_probs(self, tokens: torch.Tensor, memory: torch.Tensor, memory_valid: torch.Tensor):
        """Teacher-forced log-probs ``(N, U, V)`` (attention rescoring)."""
        return self.model.tasks["decoder"].head(tokens, memory, memory_valid).float().log_softmax(dim=-1)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """CTC log-probs ``(B, T, sp_size)`` renormalised over blank + text pieces: CTC is trained on transcripts,
        so a special token (intent, timestamp, language) is never a CTC output; joint decoding then treats the
        decoder's timestamps as transparent to CTC."""
        logits = self.model.tasks["asr_ctc"].head(enc).float()
        return logits[..., : self.tokenizer.sp_size].log_softmax(dim=-1)

    # --- entry points ---------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(
        self, features: torch.Tensor, feature_lens: torch.Tensor, options: DecodingOptions | None = None
    ) -> list[DecodingResult]:
        """One result per row of the log-mel batch ``(B, T, n_mels)``."""
        options = options or DecodingOptions()
        self._check_model(options)
        with eval_mode(self.model):
            enc, enc_lens = self.model.encode(features, feature_lens)
            return self.decode_encoded(enc, enc_lens, options)

    @torch.no_grad()
    def decode_waveforms(
        self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None, options: DecodingOptions | None = None
    ) -> list[DecodingResult]:
        """Padded 16 kHz waveforms ``(B, N)`` through the model's own front end, then :meth:`decode`."""
        with eval_mode(self.model):
            features, feature_lens = self.model.features_from_audio(waveforms, lengths)
        return self.decode(features, feature_lens, options)

    @torch.no_grad()
    def decode_rows(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        rows: Sequence[int],
        options_of: Callable[[int], DecodingOptions],
    ) -> dict[int, DecodingResult]:
        """Decode the encoder rows ``rows``, each with its own options (prompt language, translation target),
        batched by equal options; the encoder output is reused, never recomputed."""
        groups: dict[DecodingOptions, list[int]] = defaultdict(list)
        for row in rows:
            groups[options_of(row)].append(row)
        found: dict[int, DecodingResult] = {}
        for options, members in groups.items():
            index = torch.tensor(members, device=enc.device)
            lens = enc_lens[index]
            found.update(zip(members, self.decode_encoded(enc[index, : int(lens.max())], lens, options), strict=True))
        return found

    @torch.no_grad()
    def decode_encoded(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        options: DecodingOptions,
        offsets: Sequence[float] | None = None,
    ) -> list[DecodingResult]:
        """Decode an encoder output (the encoder has run); ``offsets``: seconds added to every row's times."""
        self._check_model(options)
        with eval_mode(self.model):
            languages = self._languages(enc, enc_lens, options)
            lengths = [int(n) for n in enc_lens.tolist()]
            offsets = list(offsets) if offsets is not None else [0.0] * len(lengths)
            pieces: list[Piece] = []
            for utt, length in enumerate(lengths):
                if options.vad is None:
                    pieces.append(Piece(utt, 0, length))
                else:
                    probs = self.model.tasks["vad"].frame_logits(enc[utt : utt + 1, :length]).float().sigmoid()[0]
                    vad = dataclasses.replace(options.vad, frame_shift=self.frame_shift)
                    pieces += [Piece(utt, start, end) for start, end in speech_segments(probs, vad)]
            decoded = self._decode_pieces(enc, pieces, languages, options, offsets) if pieces else []
        results = []
        for utt, language in enumerate(languages):
            empty = empty_result(
                options.mode, options.task, language, no_speech=True, target_language=options.target_language
            )
            results.append(merge_results([r for p, r in zip(pieces, decoded, strict=True) if p.utt == utt], empty))
        return results

    @torch.no_grad()
    def decode_long(
        self, features: torch.Tensor, options: DecodingOptions | None = None, window: float = 30.0
    ) -> DecodingResult:
        """One long recording's features ``(T, n_mels)``: VAD over ``window``-second encoder passes, then each
        speech segment (at most ``options.vad.max_segment`` s) re-encoded alone and decoded, segments batched."""
        options = options or DecodingOptions()
        vad = options.vad or VadOptions()
        if "vad" not in self.model.tasks:
            raise UserError(
                "decoding long audio needs the model's 'vad' task to find speech segments; "
                f"enabled tasks: {', '.join(self.model.tasks)}"
            )
        self._check_model(options)
        subsampling = self.model.encoder.subsampling_factor
        window_frames = max(int(window / self.frame_shift), 8) * subsampling
        total_enc = int(features.size(0)) // subsampling
        with eval_mode(self.model):
            probs = self._windowed_speech_probs(features, window_frames, total_enc)
            segments = speech_segments(probs, dataclasses.replace(vad, frame_shift=self.frame_shift))
            # Each segment's features: encoder frame j sees feature frames subsampling*j .. subsampling*j + 6.
            spans = [(s * subsampling, min(features.size(0), e * subsampling + 3)) for s, e in segments]
            spans = [(a, b) for a, b in spans if b - a >= 7]  # shorter than the subsampling's receptive field
            template = empty_result(
                options.mode, options.task, options.language, no_speech=True, target_language=options.target_language
            )
            if not spans:
                return template
            batch = nn.utils.rnn.pad_sequence([features[a:b] for a, b in spans], batch_first=True)
            lens = torch.tensor([b - a for a, b in spans], device=features.device)
            enc, enc_lens = self.model.encode(batch, lens)
            offsets = [a / subsampling * self.frame_shift for a, _ in spans]
            pieces = self.decode_encoded(enc, enc_lens, dataclasses.replace(options, vad=None), offsets=offsets)
        return merge_results(pieces, template)

    # --- internals ----------------------------------------------------------------------------------------
    def _windowed_speech_probs(self, features: torch.Tensor, window_frames: int, total_enc: int) -> torch.Tensor:
        windows = [features[i : i + window_frames] for i in range(0, features.size(0), window_frames)]
        windows = [w for w in windows if w.size(0) >= 7]
        if not windows:
            return torch.zeros(0)
        batch = nn.utils.rnn.pad_sequence(windows, batch_first=True)
        lens = torch.tensor([w.size(0) for w in windows], device=features.device)
        enc, enc_lens = self.model.encode(batch, lens)
        probs = self.model.tasks["vad"].frame_logits(enc).float().sigmoid()
        per_window = window_frames // self.model.encoder.subsampling_factor
        out = torch.zeros(total_enc)
        for k, n in enumerate(enc_lens.tolist()):
            start = k * per_window
            piece = probs[k, :n].cpu()[: max(0, total_enc - start)]
            out[start : start + piece.numel()] = piece
            # the subsampling drops a frame or two at each window's end: repeat the window's last value there
            gap_end = min(total_enc, start + per_window)
            if piece.numel():
                out[start + piece.numel() : gap_end] = piece[-1]
        return out

    def _check_model(self, options: DecodingOptions) -> None:
        tasks = self.model.tasks
        enabled = ", ".join(tasks)
        if options.mode in NEEDS_CTC and "asr_ctc" not in tasks:
            raise UserError(f"decoding mode {options.mode!r} needs the model's 'asr_ctc' task; enabled: {enabled}")
        needs_decoder = options.mode in NEEDS_DECODER and not (
            options.mode == "joint_ctc_attention" and options.ctc_weight == 1.0
        )
        if needs_decoder and "decoder" not in tasks:
            raise UserError(f"decoding mode {options.mode!r} needs the model's 'decoder' task; enabled: {enabled}")
        if options.word_timestamps and "asr_ctc" not in tasks:
            raise UserError(f"decoding option word_timestamps needs the model's 'asr_ctc' task; enabled: {enabled}")
        if options.vad is not None and "vad" not in tasks:
            raise UserError(f"decoding option vad needs the model's 'vad' task; enabled: {enabled}")
        for code in (options.language, options.target_language):
            if code is not None and code not in self.tokenizer.language_ids:
                raise UserError(f"language {code!r} has no token in this model's tokenizer")
        if options.task == "slu" and not self.tokenizer.intents:
            raise UserError("task 'slu' needs intent tokens, and this model's tokenizer has none")

    def _languages(self, enc: torch.Tensor, enc_lens: torch.Tensor, options: DecodingOptions) -> list[str | None]:
        """The spoken language per row: the option, else the ``lid`` head (required by decoder prompts)."""
        if options.language is not None:
            return [options.language] * enc.size(0)
        if "lid" in self.model.tasks and "lid" in self.vocabs:
            ids = self.model.tasks["lid"].logits(enc, enc_lens).argmax(dim=-1).tolist()
            languages = [self.vocabs["lid"].decode(i) if i < len(self.vocabs["lid"]) else None for i in ids]
            known = [code if code in self.tokenizer.language_ids else None for code in languages]
            if None in known and options.mode not in ("ctc_greedy", "ctc_prefix_beam"):
                raise UserError(
                    "the 'lid' head detected a language without a tokenizer token; give decoding option language"
                )
            return known
        if options.mode in ("ctc_greedy", "ctc_prefix_beam"):
            return [None] * enc.size(0)  # CTC needs no prompt
        raise UserError("decoding option language is required: this model has no 'lid' task to detect it")

    def _decode_pieces(
        self,
        enc: torch.Tensor,
        pieces: list[Piece],
        languages: list[str | None],
        options: DecodingOptions,
        offsets: list[float],
    ) -> list[DecodingResult]:
        longest = max(p.end - p.start for p in pieces)
        memory = enc.new_zeros(len(pieces), longest, enc.size(-1))
        for i, p in enumerate(pieces):
            memory[i, : p.end - p.start] = enc[p.utt, p.start : p.end]
        lens = torch.tensor([p.end - p.start for p in pieces], device=enc.device)
        valid = torch.arange(longest, device=enc.device)[None, :] < lens[:, None]
        needs_ctc = options.mode in NEEDS_CTC or options.word_timestamps
        ctc = self.ctc_log_probs(memory) if needs_ctc else None
        piece_languages = [languages[p.utt] for p in pieces]
        hypotheses = self._search(memory, valid, lens, ctc, piece_languages, options)
        builder = AnswerBuilder(self.tokenizer, options, self.frame_shift, self.frame_lead)
        results = []
        for i, (piece, hypothesis) in enumerate(zip(pieces, hypotheses, strict=True)):
            context = PieceContext(
                language=piece_languages[i],
                offset=offsets[piece.utt] + piece.start * self.frame_shift,
                duration=(piece.end - piece.start) * self.frame_shift,
                ctc_log_probs=None if ctc is None else ctc[i, : piece.end - piece.start],
            )
            results.append(builder.build(hypothesis, context))
        return results

    def _fusion(self, options: DecodingOptions) -> LmFusion | None:
        if options.lm_weight <= 0:
            return None
        if self.lm is None:
            raise UserError(
                "decoding option lm_weight needs an n-gram language model in the model file "
                "(add one with: mtspeech lm --model MODEL --data CORPUS)"
            )
        return LmFusion(self.lm, options.lm_weight, options.lm_bonus)

    def _search(
        self,
        memory: torch.Tensor,
        valid: torch.Tensor,
        lens: torch.Tensor,
        ctc: torch.Tensor | None,
        languages: list[str | None],
        options: DecodingOptions,
    ) -> list[Hypothesis]:
        """The best hypothesis of each piece under ``options.mode``."""
        mode, blank = options.mode, self.layout.blank_id
        fusion = self._fusion(options)
        if mode == "ctc_greedy":
            assert ctc is not None
            return ctc_greedy_search(ctc, lens, blank=blank)
        if mode == "ctc_prefix_beam":
            assert ctc is not None
            return [
                n[0]
                for n in ctc_prefix_beam_search(
                    ctc, lens, options.beam_size, options.ctc_token_topk, blank, options.ctc_blank_skip, fusion
                )
            ]
        prompts = [
            self.tokenizer.prompt(options.task, code, options.target_language, options.timestamps) for code in languages
        ]
        if mode == "attention_rescoring":
            assert ctc is not None
            width = max(options.beam_size, options.nbest)
            found = ctc_prefix_beam_search(
                ctc, lens, width, options.ctc_token_topk, blank, options.ctc_blank_skip, fusion
            )
            nbest = [n[: options.nbest] for n in found]
            rescored = attention_rescoring(
                self.sequence_log_probs,
                memory,
                valid,
                prompts,
                nbest,
                options.ctc_weight,
                self.layout.eot_id,
                options.lm_weight,
                options.lm_bonus,
            )
            return [r[0] for r in rescored]
        grammar = AnswerGrammar(self.layout, options.task, options.timestamps)
        weight = options.ctc_weight if mode == "joint_ctc_attention" else 0.0
        scorer = CTCPrefixScorer(ctc, lens, self.layout.eot_id, blank) if weight > 0 and ctc is not None else None
        found = beam_search(
            CachedDecoderStep(self.model.tasks["decoder"].head) if weight < 1 else None,
            memory,
            valid,
            prompts,
            grammar,
            options,
            ctc=scorer,
            ctc_weight=weight,
            frame_shift=self.frame_shift,
        )
        return [f[0] for f in found]

"""The corpus plan: which sentence is spoken, by whom, how, in which split, recording and noise.

Every random choice is made here, in one process, from ``--seed``; the workers that render and mix only
carry the plan out, so the corpus is the same whatever ``--jobs`` is.

Categorical labels are drawn *stratified* (exact shares, rounded by largest remainder, every class with a
positive share present once there are as many draws as classes, order shuffled), which is what lets
``--size tiny`` hold every task's labels in every split with a few dozen utterances.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mtspeech.data.schema import ACCENTS, LANGUAGES, SPLITS, TRANSLATION_TARGETS
from mtspeech.data.synth.scene import Layout, NoiseSpec
from mtspeech.data.synth.sentence import Sentence
from mtspeech.data.synth.voices import (
    HELD_OUT_SPEAKERS,
    LANGUAGE_VOICES,
    SPEAKERS,
    SPEAKERS_BY_LABEL,
    Prosody,
    sample_prosody,
)


@dataclass(frozen=True)
class SizeSpec:
    utterances: dict[str, int]  # per split
    scene_share: float  # share of utterances spoken inside multi-utterance recordings


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec({"train": 32, "valid": 20, "test": 20}, scene_share=0.3),
    "small": SizeSpec({"train": 2700, "valid": 300, "test": 300}, scene_share=0.25),
    "base": SizeSpec({"train": 10000, "valid": 1000, "test": 1000}, scene_share=0.25),
}
SPLIT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}  # of the sentence pool, by hash

# What the utterances are, by share of utterances (docs/corpus.md has the table).
KIND_SHARES = {
    "slu": 0.35,  # English SLURP sentence with intent + slots
    "translation": 0.15,  # English sentence with fr/de/es translations
    "fr": 0.10,
    "de": 0.10,
    "es": 0.10,
    "it": 0.10,
    "conflict": 0.10,  # positive words, angry or sad prosody
}
DRAW_ORDER = ("translation", "conflict", "fr", "de", "es", "it", "slu")  # scarcest sentences first
EMOTION_SHARES = {"neutral": 0.34, "happy": 0.26, "sad": 0.20, "angry": 0.20}  # utterances other than conflict
CONFLICT_EMOTION_SHARES = {"sad": 0.5, "angry": 0.5}
NOISE_SHARES = {"none": 0.40, "white": 0.10, "pink": 0.10, "brown": 0.08, "babble": 0.16, "tone": 0.08, "click": 0.08}
SNR_CHOICES_DB = {
    "white": (5, 10, 15, 20),
    "pink": (5, 10, 15, 20),
    "brown": (5, 10, 15, 20),
    "babble": (5, 10, 15, 20),
    "tone": (0, 10, 20),
    "click": (0, 5, 10),
}
SLU_SLURP_SHARE = 0.7  # of "slu" utterances spoken from SLURP sentences (the rest: templated commands)
HELD_OUT_SHARE = 0.35  # of valid/test utterances spoken by held-out speakers
WORDS_MIN, WORDS_MAX = 3, 16  # keeps most utterances within 1.5-5 s
SCENE_SIZES, SCENE_SIZE_WEIGHTS = (2, 3), (0.6, 0.4)
LEAD_TRAIL_S, GAP_S, GAIN_DB = (0.1, 0.7), (0.3, 1.2), (-3.0, 3.0)
BABBLE_TALKERS = (3, 6)  # [low, high) other utterances summed into babble


@dataclass(frozen=True)
class UtterancePlan:
    utt_id: str
    sentence: Sentence
    kind: str  # a KIND_SHARES key
    language_voice: str  # espeak-ng voice; for English also the accent label
    speaker: str
    emotion: str
    prosody: Prosody

    @property
    def accent(self) -> str | None:
        return self.language_voice if self.sentence.language == "en" else None

    @property
    def gender(self) -> str:
        return SPEAKERS_BY_LABEL[self.speaker].gender

    @property
    def prosody_conflict(self) -> bool:
        return self.sentence.polarity == "positive" and self.emotion in ("sad", "angry")


@dataclass(frozen=True)
class RecordingPlan:
    recording_id: str
    split: str
    utterances: tuple[UtterancePlan, ...]
    layout: Layout
    noise: NoiseSpec
    babble_ids: tuple[str, ...]  # utterances (same split, other recordings) summed into babble noise
    gain_db: float
    mix_seed: int


def stratified(n: int, shares: dict[str, float], rng: np.random.Generator) -> list[str]:
    """``n`` labels in the given shares (largest remainder), each positive-share label at least once when
    ``n`` allows, in random order."""
    labels = [k for k, v in shares.items() if v > 0]
    total = sum(shares[k] for k in labels)
    exact = [n * shares[k] / total for k in labels]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(labels)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(labels):
        for i in range(len(labels)):
            if counts[i] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    drawn = [label for label, count in zip(labels, counts, strict=True) for _ in range(count)]
    rng.shuffle(drawn)
    return drawn


def _fraction(seed: int, key: str) -> float:
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:13], 16) / 16**13


def assign_splits(sentences: Sequence[Sentence], seed: int) -> dict[str, str]:
    """sentence_id -> split. Sentences that share a group, a (language, text) or a translation text are
    joined (union-find) and the whole component goes to the split picked by hashing its smallest key, so
    no sentence text, spoken or as a translation target, is shared between splits."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def keys(s: Sentence) -> Iterable[str]:
        yield f"id:{s.sentence_id}"
        yield f"text:{s.language}:{s.text}"
        yield from (f"text:{lang}:{text}" for lang, text in s.translations.items())
        if s.group:
            yield f"group:{s.group}"

    for s in sentences:
        first, *rest = keys(s)
        for key in rest:
            a, b = find(first), find(key)
            if a != b:
                parent[max(a, b)] = min(a, b)
    bounds = np.cumsum([SPLIT_FRACTIONS[split] for split in SPLITS])
    result = {}
    for s in sentences:
        index = int(np.searchsorted(bounds, _fraction(seed, find(f"id:{s.sentence_id}")), side="right"))
        result[s.sentence_id] = SPLITS[min(index, len(SPLITS) - 1)]
    return result


def kind_filters() -> dict[str, Callable[[Sentence], bool]]:
    """Which sentences each draw kind may use ("translation-fr": English with a French translation)."""
    filters: dict[str, Callable[[Sentence], bool]] = {
        "slu": lambda s: s.language == "en" and s.intent is not None,
        "conflict": lambda s: s.polarity == "positive",
    }
    for target in TRANSLATION_TARGETS:
        filters[f"translation-{target}"] = lambda s, t=target: s.language == "en" and t in s.translations
    for lang in LANGUAGES:
        filters[lang] = lambda s, lang=lang: s.language == lang
    return filters


def interleave(first: Sequence[Sentence], second: Sequence[Sentence], share: float) -> list[Sentence]:
    """Both lists merged in order so that any prefix holds ``share`` of ``first`` (as near as whole
    items allow) until one list runs out; the rest of the other follows."""
    merged: list[Sentence] = []
    i = j = 0
    while i < len(first) or j < len(second):
        take_first = j >= len(second) or (i < len(first) and i < share * (len(merged) + 1))
        if take_first:
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged


class _SentenceDrawer:
    """Draws sentences of one split by kind, without repeats until a kind runs out (then it recycles)."""

    def __init__(self, sentences: Sequence[Sentence], split: str, rng: np.random.Generator) -> None:
        self.split, self.used = split, set()
        fitting = [s for s in sentences if WORDS_MIN <= len(s.text.split()) <= WORDS_MAX]
        self.queues: dict[str, list[Sentence]] = {}
        for kind, keep in kind_filters().items():
            candidates = [s for s in fitting if keep(s)] or [s for s in sentences if keep(s)]
            shuffled = [candidates[i] for i in rng.permutation(len(candidates))]
            if kind == "slu":  # real SLURP commands first and foremost; templates widen the coverage,
                # those with translations last, as the translation kind needs them more
                shuffled = interleave(
                    [s for s in shuffled if s.source == "slurp"],
                    sorted((s for s in shuffled if s.source != "slurp"), key=lambda s: bool(s.translations)),
                    SLU_SLURP_SHARE,
                )
            self.queues[kind] = shuffled
        self.cursor: dict[str, int] = defaultdict(int)

    def draw(self, kind: str) -> Sentence:
        queue = self.queues[kind]
        if not queue:
            raise RuntimeError(f"the sentence pool has no {kind!r} sentence in split {self.split!r}")
        for _ in range(len(queue)):
            sentence = queue[self.cursor[kind] % len(queue)]
            self.cursor[kind] += 1
            if sentence.sentence_id not in self.used:
                break
        self.used.add(sentence.sentence_id)
        return sentence


def _speaker_shares(split: str) -> dict[str, float]:
    seen = [s.label for s in SPEAKERS if s.label not in HELD_OUT_SPEAKERS]
    if split == "train":
        return dict.fromkeys(seen, 1 / len(seen))
    return {
        **dict.fromkeys(seen, (1 - HELD_OUT_SHARE) / len(seen)),
        **dict.fromkeys(HELD_OUT_SPEAKERS, HELD_OUT_SHARE / len(HELD_OUT_SPEAKERS)),
    }


def _plan_utterances(sentences: Sequence[Sentence], split: str, n: int, rng: np.random.Generator) -> list[dict]:
    """Drafts (no ids yet) of the ``n`` utterances of one split."""
    drawer = _SentenceDrawer(sentences, split, rng)
    kinds = sorted(stratified(n, KIND_SHARES, rng), key=list(KIND_SHARES).index)
    n_translation = kinds.count("translation")
    targets = iter(stratified(n_translation, dict.fromkeys(TRANSLATION_TARGETS, 1.0), rng))
    queues = [f"translation-{next(targets)}" if kind == "translation" else kind for kind in kinds]
    # A sentence can fit several kinds (a positive French sentence is "fr" and "conflict", a translated
    # command is "slu" and "translation"): the kinds with the fewest candidates choose first.
    chosen: dict[int, Sentence] = {}
    for i in sorted(range(n), key=lambda i: (DRAW_ORDER.index(kinds[i]), i)):
        chosen[i] = drawer.draw(queues[i])
    drafts = [{"kind": kind, "sentence": chosen[i]} for i, kind in enumerate(kinds)]
    conflict = [d for d in drafts if d["kind"] == "conflict"]
    other = [d for d in drafts if d["kind"] != "conflict"]
    for group, shares in ((other, EMOTION_SHARES), (conflict, CONFLICT_EMOTION_SHARES)):
        for draft, emotion in zip(group, stratified(len(group), shares, rng), strict=True):
            draft["emotion"] = emotion
    english = [d for d in drafts if d["sentence"].language == "en"]
    for draft, accent in zip(english, stratified(len(english), dict.fromkeys(ACCENTS, 1.0), rng), strict=True):
        draft["language_voice"] = accent
    for draft in drafts:
        draft.setdefault("language_voice", LANGUAGE_VOICES[draft["sentence"].language][0])
    for draft, speaker in zip(drafts, stratified(n, _speaker_shares(split), rng), strict=True):
        draft["speaker"] = speaker
        draft["prosody"] = sample_prosody(draft["emotion"], rng)
    return drafts


def _group_into_recordings(drafts: list[dict], scene_share: float, rng: np.random.Generator) -> list[list[dict]]:
    """Singles plus multi-utterance scenes (2-3 utterances of one language), in random order."""
    order = [drafts[i] for i in rng.permutation(len(drafts))]
    n_scene = int(round(scene_share * len(order)))
    by_language: dict[str, list[dict]] = defaultdict(list)
    for draft in order[:n_scene]:
        by_language[draft["sentence"].language].append(draft)
    groups = [[d] for d in order[n_scene:]]
    for members in by_language.values():
        while members:
            size = int(rng.choice(SCENE_SIZES, p=SCENE_SIZE_WEIGHTS))
            size = len(members) if len(members) - size == 1 else size  # no scene of one left over
            groups.append(members[:size])
            members = members[size:]
    return [groups[i] for i in rng.permutation(len(groups))]


def plan_corpus(pool: Sequence[Sentence], size: str, seed: int) -> list[RecordingPlan]:
    """The recordings of every split, in order (train, valid, test); ids like ``train-00042``, utterances
    ``train-00042-1``."""
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    sentences = sorted((s for s in pool if s.language in LANGUAGES), key=lambda s: s.sentence_id)
    split_of = assign_splits(sentences, seed)
    plans: list[RecordingPlan] = []
    for split in SPLITS:
        in_split = [s for s in sentences if split_of[s.sentence_id] == split]
        drafts = _plan_utterances(in_split, split, spec.utterances[split], rng)
        groups = _group_into_recordings(drafts, spec.scene_share, rng)
        noises = stratified(len(groups), NOISE_SHARES, rng)
        recordings = []
        for index, (group, noise_type) in enumerate(zip(groups, noises, strict=True), start=1):
            recording_id = f"{split}-{index:05d}"
            utterances = tuple(
                UtterancePlan(utt_id=f"{recording_id}-{k}", **draft) for k, draft in enumerate(group, start=1)
            )
            snr = None if noise_type == "none" else float(rng.choice(SNR_CHOICES_DB[noise_type]))
            layout = Layout(
                lead=float(rng.uniform(*LEAD_TRAIL_S)),
                gaps=tuple(float(g) for g in rng.uniform(*GAP_S, size=len(group) - 1)),
                trail=float(rng.uniform(*LEAD_TRAIL_S)),
            )
            recordings.append([recording_id, utterances, layout, NoiseSpec(noise_type, snr)])
        all_ids = [u.utt_id for _, utts, _, _ in recordings for u in utts]
        for recording_id, utterances, layout, noise in recordings:
            babble_ids: tuple[str, ...] = ()
            if noise.type == "babble":
                own = {u.utt_id for u in utterances}
                others = [i for i in all_ids if i not in own] or [u.utt_id for u in utterances]
                talkers = min(len(others), int(rng.integers(*BABBLE_TALKERS)))
                babble_ids = tuple(sorted(rng.choice(others, size=talkers, replace=False).tolist()))
            plans.append(
                RecordingPlan(
                    recording_id=recording_id,
                    split=split,
                    utterances=utterances,
                    layout=layout,
                    noise=noise,
                    babble_ids=babble_ids,
                    gain_db=float(rng.uniform(*GAIN_DB)),
                    mix_seed=int(rng.integers(2**63)),
                )
            )
    return plans

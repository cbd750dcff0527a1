"""``mtspeech corpus summary``: what a corpus holds, as SUMMARY.md, plots and a terminal table.

Works on any corpus that follows data/corpus.py's layout (synthetic or imported): every number is
counted from the cut manifests, never from the plan that produced them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mtspeech.data.corpus import available_splits, load_cuts, load_texts, read_info
from mtspeech.data.schema import ACCENT, EMOTION, INTENT, NOISE, PROSODY_CONFLICT, SLOTS, TRANSLATION
from mtspeech.errors import UserError

if TYPE_CHECKING:
    from rich.table import Table

SLURP_ATTRIBUTION = "SLURP (Bastianelli et al., 2020), CC BY 4.0"
SUMMARY_FILE = "SUMMARY.md"
PLOTS_DIR = "plots"
TOP_INTENTS = 15

# Task -> what counts as "this utterance has a label for the task"; rows of the coverage table.
TASK_ROWS = (
    ("ASR (text)", "text"),
    ("language ID", "language"),
    ("speaker", "speaker"),
    ("gender", "gender"),
    ("SLU intent", "intent"),
    ("SLU slots (>= 1 slot)", "slots"),
    ("translation", "translation"),
    ("emotion", "emotion"),
    ("accent", "accent"),
    ("prosody conflict", "conflict"),
)


@dataclass
class SplitStats:
    recordings: int = 0
    utterances: int = 0
    seconds: float = 0.0
    speech_seconds: float = 0.0
    multi_utterance_recordings: int = 0
    exact_segment_recordings: int = 0
    utterance_durations: list[float] = field(default_factory=list)
    recording_durations: list[float] = field(default_factory=list)
    tasks: Counter[str] = field(default_factory=Counter)  # TASK_ROWS keys -> labelled utterances
    labels: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # kind -> label -> n


def collect_stats(corpus_dir: Path) -> dict[str, SplitStats]:
    """Per split statistics read from ``manifests/cuts_*.jsonl.gz``."""
    splits = available_splits(corpus_dir)
    if not splits:
        raise UserError("no cut manifests found (expected manifests/cuts_{split}.jsonl.gz)", path=corpus_dir)
    stats = {}
    for split in splits:
        st = stats[split] = SplitStats()
        for cut in load_cuts(corpus_dir, split):
            custom = cut.custom or {}
            noise = custom.get(NOISE) or {"type": "none"}
            st.recordings += 1
            st.seconds += cut.duration
            st.recording_durations.append(cut.duration)
            st.multi_utterance_recordings += len(cut.supervisions) > 1
            st.exact_segment_recordings += bool(custom.get("exact_segments"))
            snr = noise.get("snr_db")
            st.labels["noise"][noise.get("type", "none")] += 1
            st.labels["noise_snr"][f"{noise.get('type', 'none')} @ {snr:g} dB" if snr is not None else "none"] += 1
            for sup in cut.supervisions:
                _count_supervision(st, sup)
    return stats


def _count_supervision(st: SplitStats, sup: object) -> None:
    custom = getattr(sup, "custom", None) or {}
    st.utterances += 1
    st.speech_seconds += sup.duration  # type: ignore[attr-defined]
    st.utterance_durations.append(sup.duration)  # type: ignore[attr-defined]
    present = {
        "text": bool(getattr(sup, "text", None)),
        "language": bool(getattr(sup, "language", None)),
        "speaker": bool(getattr(sup, "speaker", None)),
        "gender": bool(getattr(sup, "gender", None)),
        "intent": INTENT in custom,
        "slots": bool(custom.get(SLOTS)),
        "translation": bool(custom.get(TRANSLATION)),
        "emotion": EMOTION in custom,
        "accent": ACCENT in custom,
        "conflict": bool(custom.get(PROSODY_CONFLICT)),
    }
    st.tasks.update(k for k, v in present.items() if v)
    for kind, value in (
        ("language", getattr(sup, "language", None)),
        ("speaker", getattr(sup, "speaker", None)),
        ("gender", getattr(sup, "gender", None)),
        ("intent", custom.get(INTENT)),
        ("emotion", custom.get(EMOTION)),
        ("accent", custom.get(ACCENT)),
    ):
        if value:
            st.labels[kind][value] += 1
    for target in custom.get(TRANSLATION) or {}:
        st.labels["translation"][target] += 1


def _total(stats: dict[str, SplitStats], kind: str) -> Counter[str]:
    total: Counter[str] = Counter()
    for st in stats.values():
        total.update(st.labels[kind])
    return total


def _plot(corpus_dir: Path, stats: dict[str, SplitStats]) -> list[tuple[str, str]]:
    """Write the plots; return (title, relative path) pairs for SUMMARY.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir = corpus_dir / PLOTS_DIR
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, attr, title in (
        (axes[0], "utterance_durations", "utterance (speech segment) duration"),
        (axes[1], "recording_durations", "recording duration"),
    ):
        ax.hist([getattr(st, attr) for st in stats.values()], bins=30, label=list(stats), stacked=True)
        ax.set(title=title, xlabel="seconds", ylabel="count")
        ax.legend()
    fig.tight_layout()
    fig.savefig(plots_dir / "durations.png", dpi=100)
    plt.close(fig)
    written.append(("Durations", f"{PLOTS_DIR}/durations.png"))

    for kind, title in (
        ("language", "Utterances per language"),
        ("emotion", "Utterances per emotion"),
        ("accent", "English utterances per accent"),
        ("speaker", "Utterances per speaker"),
        ("intent", f"Top {TOP_INTENTS} intents"),
        ("noise", "Recordings per noise type"),
    ):
        total = _total(stats, kind)
        if not total:
            continue
        labels = [label for label, _ in total.most_common(TOP_INTENTS if kind == "intent" else None)]
        fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(labels) + 2), 3.5))
        bottom = [0] * len(labels)
        for split, st in stats.items():
            values = [st.labels[kind][label] for label in labels]
            ax.bar(labels, values, bottom=bottom, label=split)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set(title=title, ylabel="count")
        if len(labels) > 6:  # long names: rotate, anchored at their tick
            plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
        ax.legend()
        fig.tight_layout()
        fig.savefig(plots_dir / f"{kind}.png", dpi=100)
        plt.close(fig)
        written.append((title, f"{PLOTS_DIR}/{kind}.png"))
    return written


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _label_table(stats: dict[str, SplitStats], kind: str, top: int | None = None) -> str:
    total = _total(stats, kind)
    rows = [[label, *(st.labels[kind][label] for st in stats.values()), n] for label, n in total.most_common(top)]
    return _md_table([kind, *stats, "total"], rows)


def render_markdown(corpus_dir: Path, stats: dict[str, SplitStats], plots: list[tuple[str, str]]) -> str:
    info = read_info(corpus_dir)
    splits = list(stats)
    name = info.get("name", corpus_dir.name)
    out = [f"# Corpus `{name}`", ""]
    if info:
        details = ", ".join(f"{k}: `{info[k]}`" for k in ("size", "seed", "version") if k in info)
        out += [f"{info.get('origin', '')}{' (' + details + ')' if details else ''}".strip(), ""]
    held_out = info.get("speakers_held_out")
    if held_out:
        out += [f"Speakers held out of train (valid/test only): {', '.join(held_out)}.", ""]

    def hours(seconds: float) -> str:
        return f"{seconds / 3600:.2f}"

    overview = [
        ["recordings", *(stats[s].recordings for s in splits), sum(st.recordings for st in stats.values())],
        ["utterances", *(stats[s].utterances for s in splits), sum(st.utterances for st in stats.values())],
        ["hours of audio", *(hours(stats[s].seconds) for s in splits), hours(sum(st.seconds for st in stats.values()))],
        [
            "hours of speech",
            *(hours(stats[s].speech_seconds) for s in splits),
            hours(sum(st.speech_seconds for st in stats.values())),
        ],
        ["multi-utterance recordings", *(stats[s].multi_utterance_recordings for s in splits), ""],
        ["recordings with exact VAD segments", *(stats[s].exact_segment_recordings for s in splits), ""],
    ]
    out += ["## Splits", "", _md_table(["", *splits, "total"], overview), ""]
    tasks = [
        [row, *(stats[s].tasks[key] for s in splits), sum(st.tasks[key] for st in stats.values())]
        for row, key in TASK_ROWS
    ]
    out += ["## Utterances with a label, per task", "", _md_table(["task", *splits, "total"], tasks), ""]
    for kind, title, top in (
        ("language", "Languages", None),
        ("translation", "Translation targets", None),
        ("intent", f"Intents (top {TOP_INTENTS} of {len(_total(stats, 'intent'))})", TOP_INTENTS),
        ("emotion", "Emotions", None),
        ("accent", "Accents (English)", None),
        ("speaker", "Speakers", None),
        ("gender", "Gender", None),
        ("noise", "Noise type (recordings)", None),
        ("noise_snr", "Noise type and SNR (recordings)", None),
    ):
        if _total(stats, kind):
            out += [f"## {title}", "", _label_table(stats, kind, top), ""]
    out += _text_rows_section(corpus_dir, splits)
    if plots:
        out += ["## Plots", ""] + [f"![{title}]({path})" for title, path in plots] + [""]
    if _total(stats, "intent") or info.get("name") == "synth":
        out += ["## Attribution", "", f"English SLU text: {SLURP_ATTRIBUTION}.", ""]
    return "\n".join(out)


def _text_rows_section(corpus_dir: Path, splits: list[str]) -> list[str]:
    """Counts of the sentences without audio (manifests/texts_<split>.jsonl.gz), by language, with an intent."""
    found = {split: load_texts(corpus_dir, split) for split in splits}
    found = {split: rows for split, rows in found.items() if rows}
    if not found:
        return []
    languages = sorted({row.language for rows in found.values() for row in rows})
    table = [[lang, *(sum(r.language == lang for r in found[s]) for s in found)] for lang in languages]
    table.append(["with an intent", *(sum(bool(r.custom.get("intent")) for r in found[s]) for s in found)])
    intro = "Sentences of the split that no recording speaks, for the n-gram LM and the intent_text head:"
    return ["## Text without audio", "", intro, "", _md_table(["language", *found], table), ""]


def write_summary(corpus_dir: Path) -> Path:
    """Write ``corpus_dir/SUMMARY.md`` and ``corpus_dir/plots/*.png``; return the SUMMARY.md path."""
    corpus_dir = Path(corpus_dir)
    stats = collect_stats(corpus_dir)
    plots = _plot(corpus_dir, stats)
    path = corpus_dir / SUMMARY_FILE
    path.write_text(render_markdown(corpus_dir, stats, plots))
    return path


def summary_table(stats: dict[str, SplitStats]) -> Table:
    """The compact terminal view: size and task coverage per split."""
    from rich.table import Table

    table = Table(title="corpus summary", show_edge=False, pad_edge=False)
    table.add_column("")
    for split in stats:
        table.add_column(split, justify="right")
    table.add_row("recordings", *(str(st.recordings) for st in stats.values()))
    table.add_row("utterances", *(str(st.utterances) for st in stats.values()))
    table.add_row("hours", *(f"{st.seconds / 3600:.2f}" for st in stats.values()), end_section=True)
    for row, key in TASK_ROWS:
        table.add_row(row, *(str(st.tasks[key]) for st in stats.values()))
    for kind in ("language", "emotion", "noise"):
        table.add_row(f"{kind}s", *(str(len(st.labels[kind])) for st in stats.values()))
    return table

"""Write an :class:`EvaluationReport` as files: ``report.json``, ``report.md``, ``report.html`` and ``plots/*.png``.

The report is first laid out as a list of blocks (heading, paragraph, table, image), then rendered twice: as
Markdown (images linked from ``plots/``) and as one self-contained HTML page (images embedded as base64 data
URIs, so the page can be mailed or attached to a CI run on its own).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtspeech.evaluate.report import EvaluationReport, save_report_json
from mtspeech.evaluate.scoring import HEADLINE


@dataclass
class Block:
    kind: str  # "h1" | "h2" | "h3" | "p" | "table" | "img"
    text: str = ""
    headers: list[str] | None = None
    rows: list[list[str]] | None = None
    image: str | None = None  # path relative to the report directory


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers with ``digits`` decimals, NaN/None as ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_report(report: EvaluationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write every report file into ``out_dir``; returns ``{"json", "markdown", "html", "plot:NAME"...}`` paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"json": save_report_json(report, out_dir / "report.json")}
    plots = draw_plots(report, out_dir / "plots")
    paths.update({f"plot:{name}": path for name, path in plots.items()})
    blocks = layout(report, {name: path.relative_to(out_dir).as_posix() for name, path in plots.items()})
    paths["markdown"] = _write(out_dir / "report.md", to_markdown(blocks))
    paths["html"] = _write(out_dir / "report.html", to_html(blocks, out_dir))
    return paths


def draw_plots(report: EvaluationReport, plot_dir: Path) -> dict[str, Path]:
    """Every figure the report has data for: confusions, group bars, VAD timelines."""
    from mtspeech.evaluate import plots

    titles = {"lid": "language ID", "intent": "intent (most frequent)", "emotion": "emotion", "accent": "accent"}
    drawn = {}
    for task, matrix in report.confusions.items():
        drawn[f"confusion_{task}"] = plots.plot_confusion(
            matrix, titles.get(task, task), plot_dir / f"confusion_{task}.png"
        )
    for dimension, breakdown in report.groups.items():
        if breakdown.groups:
            drawn[f"groups_{dimension}"] = plots.plot_group_bars(
                breakdown, dimension, plot_dir / f"groups_{dimension}.png"
            )
    if report.vad_examples:
        drawn["vad_timelines"] = plots.plot_vad_timelines(report.vad_examples, plot_dir / "vad_timelines.png")
    return drawn


def layout(report: EvaluationReport, images: dict[str, str]) -> list[Block]:
    """The report's content, independent of the output format."""
    blocks = [Block("h1", "mtspeech evaluation report")]
    if report.metadata:
        blocks.append(Block("table", headers=["", ""], rows=[[str(k), fmt(v)] for k, v in report.metadata.items()]))
    epsilon = report.options.get("epsilon", "")
    blocks.append(
        Block(
            "p",
            f"**Score: {fmt(report.score)}** over {report.num_utterances} utterances: the geometric mean of "
            f"{len(report.headline)} task scores on a 0-100 higher-is-better scale, each floored at {epsilon} "
            "(see docs/evaluation.md).",
        )
    )
    blocks.append(Block("h2", "Tasks"))
    rows = []
    for task, score in report.headline.items():
        metric = HEADLINE[task]
        rows.append([task, metric, fmt(report.metrics.get(metric)), fmt(score), str(report.counts.get(task, ""))])
    blocks.append(
        Block("table", headers=["task", "headline metric", "value", "score (0-100)", "utterances"], rows=rows)
    )
    blocks.append(Block("h2", "All metrics"))
    rows = [[name, fmt(value), fmt(report.normalised.get(name))] for name, value in sorted(report.metrics.items())]
    blocks.append(Block("table", headers=["metric", "value", "normalised (0-100)"], rows=rows))
    blocks += _group_blocks(report, images)
    confusions = [name for name in images if name.startswith("confusion_")]
    if confusions:
        blocks.append(Block("h2", "Confusion matrices"))
        blocks += [Block("img", name.removeprefix("confusion_"), image=images[name]) for name in confusions]
    if "vad_timelines" in images:
        blocks.append(Block("h2", "Voice activity: reference vs predicted"))
        blocks.append(Block("img", "VAD timelines", image=images["vad_timelines"]))
    if report.worst_transcripts:
        blocks.append(Block("h2", "Transcripts with the most word errors"))
        rows = [
            [r["id"], str(r["errors"]), fmt(r["wer"]), r["reference"], r["hypothesis"]]
            for r in report.worst_transcripts
        ]
        blocks.append(Block("table", headers=["id", "errors", "WER %", "reference", "hypothesis"], rows=rows))
    return blocks


def _group_blocks(report: EvaluationReport, images: dict[str, str]) -> list[Block]:
    if not report.groups:
        return []
    min_size = report.options.get("min_group_size", 1)
    blocks = [
        Block("h2", "Breakdown by group (fairness check)"),
        Block("p", f"Headline metrics per group, in their own units; groups under {min_size} utterances are skipped."),
    ]
    for dimension, breakdown in report.groups.items():
        blocks.append(Block("h3", f"By {dimension}"))
        tasks = [t for t in HEADLINE if any(HEADLINE[t] in g.metrics for g in breakdown.groups.values())]
        headers = [dimension, "utterances", *(HEADLINE[t] for t in tasks), "score"]
        rows = [
            [name, str(g.size), *(fmt(g.metrics.get(HEADLINE[t])) for t in tasks), fmt(g.score)]
            for name, g in breakdown.groups.items()
        ]
        if rows:
            blocks.append(Block("table", headers=headers, rows=rows))
        if breakdown.gaps:
            gap_rows = [[t, v["best"], v["worst"], fmt(v["gap"])] for t, v in breakdown.gaps.items()]
            blocks.append(
                Block("table", headers=["task", "best group", "worst group", "gap (0-100 points)"], rows=gap_rows)
            )
        if breakdown.skipped:
            skipped = ", ".join(f"{name} ({size})" for name, size in breakdown.skipped.items())
            blocks.append(Block("p", f"Skipped (too few utterances): {skipped}."))
        if f"groups_{dimension}" in images:
            blocks.append(Block("img", f"scores by {dimension}", image=images[f"groups_{dimension}"]))
    return blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(block.kind[1]) + " " + block.text, ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "table":
            lines.append("| " + " | ".join(map(_md_cell, block.headers or [])) + " |")
            lines.append("|" + "---|" * len(block.headers or []))
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows or []]
            lines.append("")
        elif block.kind == "img":
            lines += [f"![{block.text}]({block.image})", ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""


def _inline_markup(text: str) -> str:
    """HTML-escape, then turn ``**bold**`` pairs (the only Markdown the blocks use) into ``<strong>``."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], base_dir: Path) -> str:
    body: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            body.append(f"<{block.kind}>{html.escape(block.text)}</{block.kind}>")
        elif block.kind == "p":
            body.append(f"<p>{_inline_markup(block.text)}</p>")
        elif block.kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers or [])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows or []
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "img" and block.image:
            data = base64.b64encode((base_dir / block.image).read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(block.text)}" src="data:image/png;base64,{data}">')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>mtspeech evaluation report</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(".tmp-" + path.name)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

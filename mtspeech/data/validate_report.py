"""What ``mtspeech data validate`` found: every problem with its file, manifest line and field, as a rich
table for people and as JSON for scripts."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem of a corpus. ``line`` is the 1-based line of the manifest (None: the whole file);
    ``kind`` is a stable code for scripts (``missing_audio``, ``slot_span``, ``unknown_label``, ...)."""

    file: str
    line: int | None
    field: str
    message: str
    severity: Severity = "error"
    kind: str = "invalid_entry"

    @property
    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def __str__(self) -> str:
        field_part = f" [{self.field}]" if self.field else ""
        return f"{self.where}: {self.severity}{field_part}: {self.message}"


@dataclass
class SplitCounts:
    """How much of a split was checked."""

    cuts: int = 0
    supervisions: int = 0
    recordings: int = 0
    hours: float = 0.0


@dataclass
class ValidationReport:
    """Every problem of a corpus, found in one pass. ``ok`` is True when there are no errors (warnings allowed)."""

    corpus_dir: Path
    problems: list[Problem] = field(default_factory=list)
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    audio_check: str = "header"

    def add(
        self,
        file: str | Path,
        line: int | None,
        field_name: str,
        message: str,
        *,
        kind: str,
        severity: Severity = "error",
    ) -> None:
        self.problems.append(Problem(str(file), line, field_name, message, severity, kind))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def sorted_problems(self) -> list[Problem]:
        """Errors before warnings, then by file and line, so related problems sit together."""
        return sorted(self.problems, key=lambda p: (p.severity != "error", p.file, p.line or 0, p.field))

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": str(self.corpus_dir),
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "audio_check": self.audio_check,
            "splits": {name: asdict(counts) for name, counts in self.splits.items()},
            "problem_kinds": dict(Counter(p.kind for p in self.problems)),
            "problems": [asdict(p) for p in self.sorted_problems()],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def _short_file(self, file: str) -> str:
        """The file relative to the corpus when it lies inside it: shorter table rows."""
        try:
            return str(Path(file).relative_to(self.corpus_dir))
        except ValueError:
            return file

    def table(self) -> Table:
        """All problems as a rich table (severity, file:line, field, message)."""
        from rich.table import Table

        table = Table(title=f"{len(self.errors)} errors, {len(self.warnings)} warnings in {self.corpus_dir}")
        table.add_column("", no_wrap=True)
        table.add_column("file:line", style="cyan", overflow="fold")
        table.add_column("field", style="magenta", overflow="fold")
        table.add_column("problem", overflow="fold")
        for p in self.sorted_problems():
            mark = "[bold red]error[/]" if p.severity == "error" else "[yellow]warning[/]"
            where = self._short_file(p.file) + (f":{p.line}" if p.line is not None else "")
            table.add_row(mark, where, p.field, p.message)
        return table

    def summary_line(self) -> str:
        checked = ", ".join(
            f"{name}: {c.cuts} cuts / {c.supervisions} supervisions / {c.hours:.2f} h"
            for name, c in self.splits.items()
        )
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"{verdict}: {len(self.errors)} errors, {len(self.warnings)} warnings "
            f"(audio check: {self.audio_check}; {checked or 'nothing checked'})"
        )

    def lines(self) -> list[str]:
        """All problems as compiler-style lines, ``file:line: severity [field]: message`` (for grep and editors)."""
        return [str(p) for p in self.sorted_problems()]

    def render(self, console: Console, *, table_min_width: int = 120) -> None:
        """Print the problems (a table on wide terminals, compiler-style lines on narrow ones and in logs)
        and a one-line verdict."""
        if self.problems and console.width >= table_min_width:
            console.print(self.table())
        elif self.problems:
            for text, problem in zip(self.lines(), self.sorted_problems(), strict=True):
                style = "red" if problem.severity == "error" else "yellow"
                console.print(f"[{style}]{escape(text)}[/]", highlight=False, soft_wrap=True)
        style = "bold green" if self.ok else "bold red"
        console.print(f"[{style}]{self.summary_line()}[/]", highlight=False, soft_wrap=True)

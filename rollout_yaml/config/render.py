"""Diagnostics drawn for people: compiler-style text, coloured on a terminal.

The same lines serve both: each is a rich `Text` whose styles a terminal shows (severity, code
and the underline in the severity's colour) and whose `.plain` is what a pipe, a log or a test
gets. The data (codes, positions) stays in `config/diagnostics.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from rollout_yaml.config.diagnostics import Diagnostic, Related, Severity

DOCS = "docs/diagnostics.md"
TAB = "    "
"""A tab in a shown source line: a fixed width, so that the underline stays under its text."""

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow"}
GUTTER_STYLE = "bold blue"
RELATED_MARK = "-"


def docs_reference(code: str) -> str:
    """Where a code is explained: its anchor in the generated `docs/diagnostics.md`."""
    return f"{DOCS}#{code.lower()}"


@dataclass(frozen=True, slots=True)
class _Mark:
    line: int
    col: int
    end_line: int | None
    end_col: int | None
    char: str
    style: str
    label: str | None = None


class SourceLines:
    """The project's files, read once each, by the display name diagnostics carry."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._files: dict[str, list[str]] = {}

    def get(self, file: str, line: int) -> str | None:
        if file not in self._files:
            path = (self.root / file) if self.root is not None else Path(file)
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            self._files[file] = text.splitlines()
        source = self._files[file]
        return source[line - 1].rstrip() if 0 < line <= len(source) else None


def _shown(text: str) -> str:
    return text.replace("\t", TAB)


def _snippet(sources: SourceLines, file: str, mark: _Mark) -> list[Text]:
    text = sources.get(file, mark.line)
    if text is None:
        return []
    gutter = f"{mark.line:>5} | "
    start = len(_shown(text[: mark.col - 1]))
    if mark.end_line is not None and mark.end_line > mark.line:
        stop = len(_shown(text))  # a span over several lines: the rest of its first one
    else:
        end = mark.col + 1
        if mark.end_line == mark.line and mark.end_col is not None and mark.end_col > mark.col:
            end = mark.end_col
        stop = len(_shown(text[: end - 1]))
    width = max(stop - start, 1)
    underline = Text(" " * (len(gutter) - 2), style=GUTTER_STYLE)
    underline.append("| ", style=GUTTER_STYLE)
    underline.append(" " * start)
    underline.append(mark.char * width, style=mark.style)
    if mark.label:
        underline.append(" " + mark.label, style=mark.style)
    line = Text(gutter, style=GUTTER_STYLE)
    line.append(_shown(text))
    return [line, underline]


def _note(label: str, text: str, style: str = "bold") -> Text:
    line = Text("      = ", style=GUTTER_STYLE)
    line.append(label + ":", style=style)
    line.append(" " + text)
    return line


def diagnostic_lines(diagnostic: Diagnostic, sources: SourceLines) -> list[Text]:
    """One diagnostic: its header, the source line(s) with the span underlined, the fix, the
    reference to its entry in the docs."""
    d = diagnostic
    style = SEVERITY_STYLE.get(d.severity, "bold")
    header = Text(f"{d.file}:{d.line}:{d.col}: ", style="bold")
    header.append(f"{d.severity.value}[{d.code}]", style=style)
    header.append(" " + d.message, style="bold")
    lines = [header]
    main = _Mark(d.line, d.col, d.end_line, d.end_col, "^", style)
    here = [
        (r, _Mark(r.line, r.col, r.end_line, r.end_col, RELATED_MARK, GUTTER_STYLE, r.message))
        for r in d.related
    ]
    same_file = sorted(
        [(main.line, main)] + [(m.line, m) for r, m in here if r.file == d.file],
        key=lambda pair: pair[0],
    )
    for _, mark in same_file:
        lines.extend(_snippet(sources, d.file, mark))
    for related, mark in here:
        if related.file != d.file:
            lines.append(_location(related))
            lines.extend(_snippet(sources, related.file, mark))
    if d.hint:
        lines.append(_note("help", d.hint, "bold cyan"))
    lines.append(_note("see", f"{docs_reference(d.code)} (`rollout-yaml explain {d.code}`)", "dim"))
    return lines


def _location(related: Related) -> Text:
    line = Text("  --> ", style=GUTTER_STYLE)
    line.append(f"{related.file}:{related.line}:{related.col}")
    return line


def summary_line(diagnostics: Sequence[Diagnostic]) -> Text:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    line = Text(f"{errors} error(s)", style="bold red" if errors else "")
    line.append(", ")
    line.append(f"{warnings} warning(s)", style="bold yellow" if warnings else "")
    return line


def report_lines(diagnostics: Sequence[Diagnostic], root: Path | None = None) -> list[Text]:
    """Every diagnostic, then the count of errors and warnings."""
    sources = SourceLines(root)
    lines: list[Text] = []
    for d in diagnostics:
        lines.extend(diagnostic_lines(d, sources))
    lines.append(summary_line(diagnostics))
    return lines


def plain(lines: Iterable[Text]) -> str:
    return "\n".join(line.plain for line in lines)


def print_lines(console: Console, lines: Iterable[Text]) -> None:
    """Styled on a terminal (colourless with NO_COLOR, which rich honours), the plain text
    byte for byte otherwise."""
    if not console.is_terminal:
        text = plain(lines)
        console.file.write(text + "\n" if text else "")
        console.file.flush()
        return
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)

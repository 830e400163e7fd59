"""Diagnostics: what `validate` reports, with a stable code, a place and a fix."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about one place in one file (line and column are 1-based)."""

    code: str
    message: str
    file: str
    line: int = 1
    col: int = 1
    severity: Severity = Severity.ERROR
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.col, self.code)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class ConfigError(Exception):
    """Raised where a caller needs a valid configuration and got diagnostics instead."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        summary = f"{first.file}:{first.line}:{first.col}: {first.message}" if first else "invalid"
        super().__init__(f"{len(self.diagnostics)} problem(s); first: {summary}")


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def sorted_unique(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diagnostics), key=Diagnostic.sort_key)


def format_text(diagnostics: Sequence[Diagnostic], root: Path | None = None) -> str:
    """Compiler-style: `path:line:col: error[CODE] message`, the source line, a caret, the fix."""
    lines: list[str] = []
    sources: dict[str, list[str]] = {}
    for d in diagnostics:
        lines.append(f"{d.file}:{d.line}:{d.col}: {d.severity.value}[{d.code}] {d.message}")
        text = _source_line(d.file, d.line, root, sources)
        if text is not None:
            gutter = f"{d.line:>5} | "
            lines.append(gutter + text)
            lines.append(" " * (len(gutter) - 2) + "| " + " " * max(d.col - 1, 0) + "^")
        if d.hint:
            lines.append(f"      = help: {d.hint}")
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    lines.append(f"{errors} error(s), {warnings} warning(s)")
    return "\n".join(lines)


def _source_line(
    file: str, line: int, root: Path | None, cache: dict[str, list[str]]
) -> str | None:
    if file not in cache:
        path = (root / file) if root is not None else Path(file)
        try:
            cache[file] = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            cache[file] = []
    source = cache[file]
    return source[line - 1].rstrip() if 0 < line <= len(source) else None


def format_json(diagnostics: Sequence[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    return json.dumps(
        {
            "diagnostics": [d.to_dict() for d in diagnostics],
            "errors": errors,
            "warnings": len(diagnostics) - errors,
        },
        indent=2,
    )


def _github_property(value: str) -> str:
    """A workflow command property: `,` and `:` end it unless escaped (as @actions/core does)."""
    for raw, escaped in (("%", "%25"), ("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C")):
        value = value.replace(raw, escaped)
    return value


def format_github(diagnostics: Sequence[Diagnostic]) -> str:
    """GitHub Actions workflow commands: one annotation per diagnostic on the pull request."""
    out = []
    for d in diagnostics:
        message = f"[{d.code}] {d.message}" + (f" ({d.hint})" if d.hint else "")
        message = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        file = _github_property(d.file)
        out.append(f"::{d.severity.value} file={file},line={d.line},col={d.col}::{message}")
    return "\n".join(out)

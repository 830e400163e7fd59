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
class Related:
    """Another place that explains a diagnostic (where a duplicate key was first defined)."""

    message: str
    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding about one place in one file (line and column are 1-based).

    `end_line`/`end_col` close the offending span (the column just past it), when known, so
    that renderers can underline all of it; this module holds the data, `config/render.py`
    draws it for people, `config/sarif.py` writes it for code-scanning tools.
    """

    code: str
    message: str
    file: str
    line: int = 1
    col: int = 1
    severity: Severity = Severity.ERROR
    hint: str | None = None
    end_line: int | None = None
    end_col: int | None = None
    related: tuple[Related, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        """Place, then code, then message: findings at one place come out in the same order
        on every run (a set's order changes with each process's string hashing)."""
        return (self.file, self.line, self.col, self.code, self.message)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape: the span's end and related places only where they are known."""
        data = asdict(self)
        data["severity"] = self.severity.value
        for name in ("end_line", "end_col"):
            if data[name] is None:
                del data[name]
        if not self.related:
            del data["related"]
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
    """Compiler-style plain text: `path:line:col: error[CODE] message`, the source line with
    the span underlined, the fix, the docs entry (drawn by `config/render.py`)."""
    from rollout_yaml.config.render import plain, report_lines  # rendering sits above the data

    return plain(report_lines(diagnostics, root))


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

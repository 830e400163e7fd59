"""The last refused reload, and why a stored automation is invalid, printed the way `validate`
prints it: `file:line:col: error[CODE] message`, the source line, a caret under the column,
and the help."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rollout_yaml.config.diagnostics import Diagnostic, Severity, format_text
from rollout_yaml.config.render import SourceLines, diagnostic_lines, plain


@dataclass(frozen=True, slots=True)
class ReloadReport:
    at: float
    blocks: list[str]  # one printed diagnostic each
    summary: str  # "2 error(s), 0 warning(s)"


def _diagnostic(data: Mapping[str, Any]) -> Diagnostic:
    return Diagnostic(
        code=str(data.get("code", "")),
        message=str(data.get("message", "")),
        file=str(data.get("file", "")),
        line=int(data.get("line") or 1),
        col=int(data.get("col") or 1),
        severity=Severity(str(data.get("severity", "error"))),
        hint=data.get("hint") if isinstance(data.get("hint"), str) else None,
    )


def reload_report(error: Mapping[str, Any] | None, root: Path) -> ReloadReport | None:
    """The printed diagnostics of `/status`'s `last_reload_error`, or None when there is none."""
    if not error:
        return None
    diagnostics: Sequence[Diagnostic] = [_diagnostic(d) for d in error.get("diagnostics", ())]
    blocks = [format_text([d], root).rsplit("\n", 1)[0] for d in diagnostics]
    summary = format_text(diagnostics, root).rsplit("\n", 1)[-1]
    return ReloadReport(float(error.get("at") or 0), blocks, summary)


class _Given(SourceLines):
    """Source lines of a text that is no file (a stored automation, written out)."""

    def __init__(self, file: str, text: str) -> None:
        super().__init__(None)
        self._files[file] = text.splitlines()


_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def _segments(path: str) -> list[str | int]:
    return [
        int(index) if index else name for name, index in _SEGMENT.findall(path.removeprefix("$"))
    ]


def _place(node: yaml.Node, segments: Sequence[str | int]) -> tuple[int, int]:
    """Line and column (1-based) of the deepest part of `segments` the document has."""
    mark = node.start_mark
    for segment in segments:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == segment:
                    mark, child = key.start_mark, value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(segment, int)
            and 0 <= segment < len(node.value)
        ):
            child = node.value[segment]
            mark = child.start_mark
        if child is None:
            break
        node = child
    return mark.line + 1, mark.column + 1


def stored_report(
    display: str, key: str, definition: Mapping[str, Any], problems: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Why a stored automation is invalid, printed the way `validate` prints a consumer file:
    its definition written out as YAML under `display` (`api:acme/alerts`), each problem
    at the line its JSON path names, with a caret, and the help."""
    text = yaml.safe_dump(
        {"key": key, **definition}, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sources = _Given(display, text)
    blocks = []
    for problem in problems:
        segments = _segments(str(problem.get("path") or "$"))
        line, col = _place(root, segments) if root is not None else (1, 1)
        hint = problem.get("help")
        diagnostic = Diagnostic(
            code=str(problem.get("code", "")),
            message=f"{problem.get('path') or '$'}: {problem.get('message', '')}",
            file=display,
            line=line,
            col=col,
            severity=Severity.ERROR,
            hint=hint if isinstance(hint, str) else None,
        )
        blocks.append(plain(diagnostic_lines(diagnostic, sources)))
    return blocks

"""Diagnostics as a SARIF 2.1.0 log (`validate --format sarif`): what GitHub code scanning
and editors' SARIF viewers read.

One run, one rule per code that occurs (with its title, explanation and the wrong and right
examples from the catalogue), one result per diagnostic with its span and related places.
Paths are relative to the project root (`%SRCROOT%`), as code scanning expects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rollout_yaml import __version__
from rollout_yaml.config.codes import CODES, Code
from rollout_yaml.config.diagnostics import Diagnostic, Related, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROOT = "%SRCROOT%"


def _rule(code: Code) -> dict[str, Any]:
    reference = f"docs/diagnostics.md#{code.code.lower()}"
    return {
        "id": code.code,
        "name": "".join(word.capitalize() for word in code.title.replace("$", "").split()),
        "shortDescription": {"text": code.title},
        "fullDescription": {"text": code.explanation},
        "help": {
            "text": f"{code.explanation}\n\nWrong:\n{code.bad}\n\nRight:\n{code.good}",
            "markdown": f"{code.explanation}\n\nWrong:\n\n```yaml\n{code.bad}\n```\n\n"
            f"Right:\n\n```yaml\n{code.good}\n```\n\nSee `{reference}`.",
        },
        "defaultConfiguration": {"level": "warning" if code.warns else "error"},
    }


def _region(line: int, col: int, end_line: int | None, end_col: int | None) -> dict[str, int]:
    region = {"startLine": line, "startColumn": col}
    if end_line is not None and end_col is not None:
        region["endLine"] = end_line
        region["endColumn"] = end_col
    return region


def _location(file: str, region: dict[str, int]) -> dict[str, Any]:
    return {
        "physicalLocation": {
            "artifactLocation": {"uri": file, "uriBaseId": ROOT},
            "region": region,
        }
    }


def _related(index: int, related: Related) -> dict[str, Any]:
    region = _region(related.line, related.col, related.end_line, related.end_col)
    return {**_location(related.file, region), "id": index, "message": {"text": related.message}}


def _result(d: Diagnostic, rule_index: int) -> dict[str, Any]:
    message = d.message + (f" (help: {d.hint})" if d.hint else "")
    result: dict[str, Any] = {
        "ruleId": d.code,
        "ruleIndex": rule_index,
        "level": "error" if d.severity is Severity.ERROR else "warning",
        "message": {"text": message},
        "locations": [_location(d.file, _region(d.line, d.col, d.end_line, d.end_col))],
    }
    if d.related:
        result["relatedLocations"] = [_related(i, r) for i, r in enumerate(d.related, 1)]
    return result


def sarif_log(diagnostics: Sequence[Diagnostic], root: Path) -> dict[str, Any]:
    codes = sorted({d.code for d in diagnostics})
    known = [c for c in codes if c in CODES]
    index = {code: i for i, code in enumerate(known)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rollout-yaml",
                        "version": __version__,
                        "rules": [_rule(CODES[c]) for c in known],
                    }
                },
                "originalUriBaseIds": {ROOT: {"uri": root.resolve().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(d, index.get(d.code, -1)) for d in diagnostics],
            }
        ],
    }


def format_sarif(diagnostics: Sequence[Diagnostic], root: Path) -> str:
    return json.dumps(sarif_log(diagnostics, root), indent=2, ensure_ascii=False)

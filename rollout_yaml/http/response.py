"""Reads an App's answer: success or failure, the error message to record, the run's output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rollout_yaml.expr.compiled import CompiledAction, CompiledApp
from rollout_yaml.http.errors import BadAnswer


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: Any = None
    error: str | None = None


def parse_body(content: bytes | str | None, content_type: str | None = None) -> Any:
    """JSON when it parses as JSON, else the text (some Apps answer JSON as text/plain).
    JSON nested too deeply to be read raises BadAnswer: it is neither usable data nor text
    the App meant as such."""
    if content is None:
        return None
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError as exc:
        raise BadAnswer("the answer's JSON is nested too deeply to be read") from exc


def interpret(app: CompiledApp, action: CompiledAction, status: int, body: Any) -> Outcome:
    """Apply `success`, `error` and `output` (20x is success unless `success` says otherwise)."""
    if action.success is not None:
        ok = 200 <= status < 300 and action.success.is_true(body)
    else:
        ok = 200 <= status < 300
    if ok:
        output = action.output.search(body) if action.output is not None else body
        return Outcome(True, output=output)
    return Outcome(False, error=error_message(app, action, status, body))


def error_message(app: CompiledApp, action: CompiledAction | None, status: int, body: Any) -> str:
    query = (action.error if action is not None else None) or app.error
    message: Any = None
    if query is not None and body is not None and not isinstance(body, str):
        message = query.search(body)
    if message in (None, "", [], {}):
        message = body.strip()[:500] if isinstance(body, str) and body.strip() else f"HTTP {status}"
    if not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False)[:500]
    return str(message)

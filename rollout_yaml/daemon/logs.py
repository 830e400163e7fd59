"""Structured logs: one JSON object a line (`--log-format json`) or readable text; every line
passes through secret redaction before it is written."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable

from rollout_yaml.config.secrets import redact

CONTEXT_FIELDS = ("consumer", "automation", "run_id", "file", "generation")


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with the active configuration's secrets replaced."""

    def __init__(self, secrets: Callable[[], frozenset[str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message, self._secrets())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        return json.dumps(entry, ensure_ascii=False)


LEVEL_COLOUR = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[1;33m",
    "ERROR": "\x1b[1;31m",
    "CRITICAL": "\x1b[1;37;41m",
}
DIM, RESET = "\x1b[2m", "\x1b[0m"


def wants_colour(stream: object) -> bool:
    """A terminal, and no NO_COLOR (https://no-color.org) in the environment."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


class TextFormatter(logging.Formatter):
    """`12:00:01 INFO    message  [consumer=acme]`; with `colour`, the level in its colour and
    the time and context dimmed (the text is the same)."""

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        level = f"{record.levelname:<7}"
        tail = f"  [{context}]" if context else ""
        if self.colour:
            colour = LEVEL_COLOUR.get(record.levelname, "")
            stamp = f"{DIM}{stamp}{RESET}"
            level = f"{colour}{level}{RESET}" if colour else level
            tail = f"{DIM}{tail}{RESET}" if tail else ""
        return f"{stamp} {level} {record.getMessage()}{tail}"


def configure(
    log_format: str, secrets: Callable[[], frozenset[str]], level: int = logging.INFO
) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else TextFormatter(wants_colour(sys.stderr))
    )
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "watchdog", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler

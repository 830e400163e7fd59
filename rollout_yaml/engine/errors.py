"""Errors the engine reports to its callers (the HTTP API turns them into answers)."""

from __future__ import annotations

from typing import Any


class EventRejected(Exception):
    """An event that cannot be accepted; nothing of the request was stored."""

    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

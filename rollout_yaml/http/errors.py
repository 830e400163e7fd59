"""Why a request got no usable answer, as a hierarchy (as httpx's `TransportError` family):
callers catch the class they mean instead of comparing strings.

`error_kind` is what a failed run records as its `error_kind`; `transient` says whether the
retry policy treats it as a passing transport problem (retried) or not.
"""

from __future__ import annotations


class SendError(Exception):
    """The request got no usable answer."""

    error_kind = "transport"
    transient = False


class EgressRefused(SendError):
    """`runtime.egress` forbids the address: never retried, whatever the policy."""

    error_kind = "egress"


class SendTimeout(SendError):
    """No complete answer within the request's timeout."""

    transient = True


class ConnectFailed(SendError):
    """The connection could not be made, or broke before the answer was complete."""

    transient = True


class TooLarge(SendError):
    """The (decoded) answer is larger than `runtime.limits.max_response_bytes`."""


class BadAnswer(SendError):
    """An answer arrived but cannot be read: an unknown or corrupt `Content-Encoding`, a body
    that cannot be parsed. `status` is the answer's, for the retry policy to judge."""

    error_kind = "response"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


__all__ = [
    "BadAnswer",
    "ConnectFailed",
    "EgressRefused",
    "SendError",
    "SendTimeout",
    "TooLarge",
]

"""One error shape for every answer: `{"error": {"code", "message", "details"}}`.

FastAPI and Starlette have their own error bodies (`{"detail": …}`); every one of them is
converted here, so a client parses errors one way whatever went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rollout_yaml.engine.automations import AutomationRefused
from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.server.auth import Unauthorized
from rollout_yaml.server.responses import JSONResponse

log = logging.getLogger("rollout_yaml.server")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success, raised anywhere in a request's handling."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details or [])
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[Any] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def json_path(loc: Sequence[str | int], root: str = "$") -> str:
    """`("events", 0, "payload")` → `$.events[0].payload`."""
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validation_details(errors: Sequence[Any], root: str = "$") -> list[dict[str, str]]:
    """Pydantic errors as `{"path", "message"}`; FastAPI's `body`/`query` prefixes become
    the JSON path root or the parameter name."""
    details = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc and loc[0] == "body":
            path = json_path(loc[1:], root)
        elif loc and loc[0] in ("query", "path", "header"):
            path = ".".join(str(p) for p in loc[1:]) or str(loc[0])
        else:
            path = json_path(loc, root)
        details.append({"path": path, "message": str(error.get("msg", "invalid"))})
    return details


REFUSALS = (ApiError, Unauthorized, EventRejected, AutomationRefused)
"""What a handler raises to refuse a request; `refusal` answers each of them."""


def refusal(exc: ApiError | Unauthorized | EventRejected | AutomationRefused) -> JSONResponse:
    """The answer to a refused request, from the router's handlers and the fast lane alike."""
    if isinstance(exc, ApiError | AutomationRefused):
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    if isinstance(exc, Unauthorized):
        return error_response(401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
    return error_response(exc.status, exc.code, exc.message, exc.details)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one error shape."""

    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, REFUSALS)
        return refusal(exc)

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = validation_details(exc.errors())
        message = details[0]["path"] + ": " + details[0]["message"] if details else "invalid"
        return error_response(422, "invalid_request", message, details)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 404:
            message = "no such endpoint"
        elif status == 405:
            message = "method not allowed on this endpoint"
        return error_response(
            status,
            _CODES.get(status, f"http_{status}"),
            message,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the daemon's log")

    for kind in REFUSALS:
        app.add_exception_handler(kind, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, crashed)

"""tRPC v10 over HTTP: the wire protocol of `@trpc/client`'s `httpBatchLink` and `httpLink`,
apart from what the procedures do (`rollout_procedures`).

- a query is `GET <prefix>/a.b,c.d?batch=1&input={"0": …, "1": …}`, a mutation
  `POST <prefix>/a.b?batch=1` with the body `{"0": …}` (no `batch`: one call, `input=` its
  input, the body the mutation's input);
- each call answers `{"result": {"data": …}}` or `{"error": {"message", "code", "data":
  {"code", "httpStatus", "path"}}}` (a batch: an array in the order asked); the HTTP status is
  the calls' one status, or 207 when they differ — as tRPC's own server answers.

A procedure refuses with `TRPCError`, or with the API's own `ApiError` or `AutomationRefused`
(its status picks the tRPC code), so the procedures reuse the checks of `/v1` unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from rollout_yaml import json_codec
from rollout_yaml.engine.automations import AutomationRefused
from rollout_yaml.server.auth import Unauthorized
from rollout_yaml.server.body import read_limited
from rollout_yaml.server.errors import ApiError
from rollout_yaml.server.responses import JSONResponse

log = logging.getLogger("rollout_yaml.server")

Kind = Literal["query", "mutation"]
C = TypeVar("C")

# tRPC's error codes: the JSON-RPC number and the HTTP status of each.
CODES: dict[str, tuple[int, int]] = {
    "PARSE_ERROR": (-32700, 400),
    "BAD_REQUEST": (-32600, 400),
    "INTERNAL_SERVER_ERROR": (-32603, 500),
    "UNAUTHORIZED": (-32001, 401),
    "FORBIDDEN": (-32003, 403),
    "NOT_FOUND": (-32004, 404),
    "METHOD_NOT_SUPPORTED": (-32005, 405),
    "TIMEOUT": (-32008, 408),
    "CONFLICT": (-32009, 409),
    "PRECONDITION_FAILED": (-32012, 412),
    "PAYLOAD_TOO_LARGE": (-32013, 413),
    "UNPROCESSABLE_CONTENT": (-32022, 422),
    "TOO_MANY_REQUESTS": (-32029, 429),
    "CLIENT_CLOSED_REQUEST": (-32099, 499),
}
_BY_STATUS = {status: code for code, (_, status) in CODES.items()}
_BY_STATUS[422] = "BAD_REQUEST"  # a body that fails its schema: what zod's refusal answers


class TRPCError(Exception):
    """A call refused with one of tRPC's codes; `details` (our `{path, message}` list) goes
    out as `data.details`."""

    def __init__(
        self, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


def bad_input(path: str, message: str) -> TRPCError:
    return TRPCError("BAD_REQUEST", f"{path}: {message}", [{"path": path, "message": message}])


@dataclass(frozen=True, slots=True)
class Procedure(Generic[C]):
    kind: Kind
    handle: Callable[[C, Any], Awaitable[Any]]
    """Given the caller's context and the call's input (None when none was sent)."""


def query(handle: Callable[[C, Any], Awaitable[Any]]) -> Procedure[C]:
    return Procedure("query", handle)


def mutation(handle: Callable[[C, Any], Awaitable[Any]]) -> Procedure[C]:
    return Procedure("mutation", handle)


def error_shape(error: TRPCError, path: str) -> dict[str, Any]:
    number, status = CODES[error.code]
    data: dict[str, Any] = {"code": error.code, "httpStatus": status, "path": path}
    if error.details:
        data["details"] = error.details
    return {"message": error.message, "code": number, "data": data}


def as_trpc_error(exc: Exception) -> TRPCError | None:
    """The tRPC form of a refusal raised by shared code (None: not a refusal)."""
    if isinstance(exc, TRPCError):
        return exc
    if isinstance(exc, Unauthorized):
        return TRPCError("UNAUTHORIZED", str(exc))
    if isinstance(exc, ApiError | AutomationRefused):
        fallback = "INTERNAL_SERVER_ERROR" if exc.status >= 500 else "BAD_REQUEST"
        code = _BY_STATUS.get(exc.status, fallback)
        return TRPCError(code, exc.message, exc.details)
    return None


def _inputs(raw: Any, count: int, batch: bool) -> list[Any]:
    """Each call's input: a batch sends `{"0": …, "1": …}` (an absent index: no input)."""
    if not batch:
        return [raw]
    if raw is None:
        return [None] * count
    if not isinstance(raw, Mapping):
        raise TRPCError("BAD_REQUEST", '"input" needs to be an object when doing a batch call')
    return [raw.get(str(index)) for index in range(count)]


def _query_input(request: Request) -> Any:
    text = request.query_params.get("input")
    if text is None:
        return None
    try:
        return json_codec.loads(text.encode())
    except json_codec.JSONRejected as exc:
        raise TRPCError("PARSE_ERROR", f"the input is not acceptable JSON: {exc}") from exc


async def _body_input(request: Request, limit: int) -> Any:
    try:
        raw = await read_limited(request, limit)
    except ApiError as exc:
        raise as_trpc_error(exc) or exc from exc
    if not raw.strip():
        return None
    try:
        return json_codec.loads(raw)
    except json_codec.JSONRejected as exc:
        raise TRPCError("PARSE_ERROR", f"the body is not acceptable JSON: {exc}") from exc


def _answer(outcomes: list[dict[str, Any]], statuses: list[int], batch: bool) -> Response:
    status = statuses[0] if len(set(statuses)) == 1 else 207
    return JSONResponse(outcomes if batch else outcomes[0], status_code=status)


def router(
    prefix: str,
    procedures: Mapping[str, Procedure[C]],
    context: Callable[[Request], Awaitable[C]],
    body_limit: Callable[[], int],
) -> APIRouter:
    """The tRPC endpoint at `prefix`. `context` is built once per HTTP request (it checks the
    token: its refusal answers every call of the batch)."""
    api = APIRouter(include_in_schema=False)

    async def endpoint(request: Request, paths: str) -> Response:
        kind: Kind = "mutation" if request.method == "POST" else "query"
        batch = request.query_params.get("batch") in ("1", "true")
        names = [unquote(p) for p in paths.split(",")] if batch else [unquote(paths)]
        try:
            raw = (
                _query_input(request)
                if kind == "query"
                else await _body_input(request, body_limit())
            )
            inputs = _inputs(raw, len(names), batch)
            ctx = await context(request)
        except Exception as exc:  # every call gets the same refusal
            refused = as_trpc_error(exc)
            if refused is None:
                raise
            shape = {"error": error_shape(refused, names[0] if len(names) == 1 else paths)}
            status = CODES[refused.code][1]
            return _answer([shape] * len(names), [status] * len(names), batch)
        outcomes: list[dict[str, Any]] = []
        statuses: list[int] = []
        for name, given in zip(names, inputs, strict=True):
            try:
                procedure = procedures.get(name)
                if procedure is None:
                    raise TRPCError("NOT_FOUND", f'No "{kind}"-procedure on path "{name}"')
                if procedure.kind != kind:
                    method = "GET" if kind == "query" else "POST"
                    raise TRPCError(
                        "METHOD_NOT_SUPPORTED",
                        f"Unsupported {method}-request to {procedure.kind} procedure "
                        f'at path "{name}"',
                    )
                data = await procedure.handle(ctx, given)
            except Exception as exc:  # a refusal answers this call only
                refused = as_trpc_error(exc)
                if refused is None:
                    log.error("unhandled error in tRPC procedure %s", name, exc_info=exc)
                    refused = TRPCError(
                        "INTERNAL_SERVER_ERROR", "internal error; see the daemon's log"
                    )
                outcomes.append({"error": error_shape(refused, name)})
                statuses.append(CODES[refused.code][1])
                continue
            outcomes.append({"result": {"data": data}})
            statuses.append(200)
        return _answer(outcomes, statuses, batch)

    api.add_api_route(prefix + "/{paths:path}", endpoint, methods=["GET", "POST"])
    return api

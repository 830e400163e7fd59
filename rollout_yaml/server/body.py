"""Request bodies: size limit first, then JSON, then the schema; each with its own answer
(413, 400, 422). Bodies are read here rather than by FastAPI so that the size is checked before
anything is parsed, on the declared length and on the bytes actually received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from rollout_yaml import json_codec
from rollout_yaml.server.errors import ApiError, validation_details

M = TypeVar("M", bound=BaseModel)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the request body exceeds runtime.limits.max_payload_bytes ({limit} bytes)",
    )


async def read_within(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The whole body, refused with a 413 as soon as it is known to be over `limit`: by its
    declared Content-Length before reading, else by the bytes received. Both the router and
    the fast lane read bodies with this, so the limit is one rule."""
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError as exc:
            raise ApiError(400, "bad_request", "invalid Content-Length header") from exc
    received = bytearray()
    async for chunk in chunks:
        received.extend(chunk)
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


async def read_limited(request: Request, limit: int) -> bytes:
    return await read_within(request.stream(), request.headers.get("content-length"), limit)


async def read_json(request: Request, limit: int) -> Any:
    return decode_json(await read_limited(request, limit))


def decode_json(raw: bytes) -> Any:
    """A request body as JSON (json_codec's strict reading), or a 400 naming the JSON path of
    what is wrong: not JSON, not UTF-8, NaN or an infinite number, a lone surrogate, nesting
    deeper than json_codec.MAX_DEPTH."""
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object")
    try:
        return json_codec.loads(raw)
    except json_codec.JSONRejected as exc:
        message = f"the request body is not acceptable JSON: {exc}"
        raise ApiError(
            400, "invalid_json", message, [{"path": exc.path, "message": exc.reason}]
        ) from exc


def parse(model: type[M], data: Any) -> M:
    """`data` as `model`, or a 422 listing each problem with its JSON path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc.errors(include_url=False, include_input=False))
        first = details[0] if details else {"path": "$", "message": "invalid"}
        raise ApiError(
            422, "invalid_request", f"{first['path']}: {first['message']}", details
        ) from exc


async def read_model(request: Request, model: type[M], limit: int) -> M:
    return parse(model, await read_json(request, limit))

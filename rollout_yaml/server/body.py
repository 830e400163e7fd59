"""Request bodies: size limit first, then JSON, then the schema; each with its own answer
(413, 400, 422). Bodies are read here rather than by FastAPI so that the size is checked before
anything is parsed, on the declared length and on the bytes actually received."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from rollout_yaml.server.errors import ApiError, validation_details

M = TypeVar("M", bound=BaseModel)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the request body exceeds runtime.limits.max_payload_bytes ({limit} bytes)",
    )


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError as exc:
            raise ApiError(400, "bad_request", "invalid Content-Length header") from exc
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > limit:
            raise _too_large(limit)
    return bytes(received)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, limit: int) -> Any:
    return decode_json(await read_limited(request, limit))


def decode_json(raw: bytes) -> Any:
    """A request body as JSON, or a 400 saying why not (NaN and Infinity are not JSON)."""
    if not raw.strip():
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", "the request body is not UTF-8") from exc
    except ValueError as exc:  # JSONDecodeError, and numbers beyond int_max_str_digits
        raise ApiError(400, "invalid_json", f"the request body is not JSON: {exc}") from exc


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

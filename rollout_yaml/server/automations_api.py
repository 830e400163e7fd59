"""Writes of automations over the API: `/v1/automations` (a consumer's JWT, limited by
`self_service`) and `/admin/v1/automations` (the admin token, a `consumer` field, unlimited).
Reads are the consumer and admin APIs' (`GET …/automations`), which list both kinds."""

# No `from __future__ import annotations`: FastAPI reads the dependency aliases declared
# inside the functions from the live annotations.
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response

from rollout_yaml.config.types import CONSUMER_KEY_PATTERN
from rollout_yaml.engine.automations import AutomationRefused
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.deps import admin_auth, consumer_auth, json_body
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import (
    ERRORS,
    AdminAutomationIn,
    AutomationIn,
    AutomationOut,
    AutomationPatchIn,
    ErrorOut,
    request_body,
)

IfMatch = Annotated[
    str | None,
    Header(description="The version the change is made over; 412 if it is not the stored one"),
]
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorOut, "description": "A consumer file's automation, or the key exists"},
    412: {"model": ErrorOut, "description": "If-Match is not the stored version"},
}


async def _answer(runtime: Runtime, consumer: str, key: str, status: int = 200) -> JSONResponse:
    view = await reads.get_automation(runtime, consumer, key)
    etag = {"ETag": f'"{view["version"]}"'} if view.get("version") is not None else None
    return JSONResponse(view, status, headers=etag)


def _consumer_of(body: Any) -> str:
    consumer = body.get("consumer") if isinstance(body, dict) else None
    if not isinstance(consumer, str) or not re.match(CONSUMER_KEY_PATTERN, consumer):
        message = "`consumer` is required: the consumerKey the automation belongs to"
        raise AutomationRefused(
            422,
            "invalid_request",
            f"$.consumer: {message}",
            [{"code": "invalid_request", "message": message, "path": "$.consumer", "help": None}],
        )
    return consumer


def consumer_router(runtime: Runtime) -> APIRouter:
    Consumer = Annotated[str, Depends(consumer_auth(runtime))]
    Body = Annotated[Any, Depends(json_body(runtime))]
    api = APIRouter(prefix="/v1", tags=["consumer"], responses=WRITE_ERRORS)
    service = runtime.automations

    @api.post(
        "/automations",
        status_code=201,
        response_model=AutomationOut,
        openapi_extra=request_body(AutomationIn),
        summary="Create an automation (checked as `validate` checks a consumer file)",
    )
    async def create_automation(who: Consumer, body: Body) -> JSONResponse:
        stored = await service.create(who, body, admin=False)
        return await _answer(runtime, who, stored.key, 201)

    @api.put(
        "/automations/{key}",
        response_model=AutomationOut,
        openapi_extra=request_body(AutomationIn),
        summary="Replace an automation created over the API",
    )
    async def replace_automation(
        who: Consumer, key: str, body: Body, if_match: IfMatch = None
    ) -> JSONResponse:
        await service.replace(who, key, body, if_match, admin=False)
        return await _answer(runtime, who, key)

    @api.patch(
        "/automations/{key}",
        response_model=AutomationOut,
        openapi_extra=request_body(AutomationPatchIn),
        summary="Change enabled, params, credentials or custom_data",
    )
    async def patch_automation(
        who: Consumer, key: str, body: Body, if_match: IfMatch = None
    ) -> JSONResponse:
        await service.patch(who, key, body, if_match, admin=False)
        return await _answer(runtime, who, key)

    @api.delete(
        "/automations/{key}",
        status_code=204,
        summary="Delete an automation created over the API (its runs stay readable)",
    )
    async def delete_automation(who: Consumer, key: str) -> Response:
        await service.delete(who, key)
        return Response(status_code=204)

    return api


def admin_router(runtime: Runtime) -> APIRouter:
    Body = Annotated[Any, Depends(json_body(runtime))]
    api = APIRouter(
        prefix="/admin/v1",
        tags=["admin"],
        responses=WRITE_ERRORS,
        dependencies=[Depends(admin_auth(runtime))],
    )
    service = runtime.automations

    @api.post(
        "/automations",
        status_code=201,
        response_model=AutomationOut,
        openapi_extra=request_body(AdminAutomationIn),
        summary="Create an automation for a consumer (not limited by self_service)",
    )
    async def create_automation(body: Body) -> JSONResponse:
        consumer = _consumer_of(body)
        stored = await service.create(consumer, body, admin=True)
        return await _answer(runtime, consumer, stored.key, 201)

    @api.put(
        "/automations/{consumer}/{key}",
        response_model=AutomationOut,
        openapi_extra=request_body(AdminAutomationIn),
        summary="Replace a consumer's automation created over the API",
    )
    async def replace_automation(
        consumer: str, key: str, body: Body, if_match: IfMatch = None
    ) -> JSONResponse:
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "consumer"}
        await service.replace(consumer, key, body, if_match, admin=True)
        return await _answer(runtime, consumer, key)

    @api.patch(
        "/automations/{consumer}/{key}",
        response_model=AutomationOut,
        openapi_extra=request_body(AutomationPatchIn),
        summary="Change enabled, params, credentials or custom_data",
    )
    async def patch_automation(
        consumer: str, key: str, body: Body, if_match: IfMatch = None
    ) -> JSONResponse:
        await service.patch(consumer, key, body, if_match, admin=True)
        return await _answer(runtime, consumer, key)

    @api.delete(
        "/automations/{consumer}/{key}",
        status_code=204,
        summary="Delete a consumer's automation created over the API",
    )
    async def delete_automation(consumer: str, key: str) -> Response:
        await service.delete(consumer, key)
        return Response(status_code=204)

    return api

"""`/admin/v1`: the consumer API's reads across every consumer, for operators and the CLI,
behind the environment's admin token."""

# No `from __future__ import annotations`: FastAPI reads the dependency aliases declared
# inside `router` from the live annotations.
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from rollout_yaml.engine.cipher import EncryptionKeyError
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.body import parse
from rollout_yaml.server.consumer_api import Cursor, Limit, Since
from rollout_yaml.server.deps import admin_auth, json_body
from rollout_yaml.server.errors import ApiError
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import (
    ERRORS,
    AdminCredentialIn,
    AdminEventBatchIn,
    AdminEventIn,
    AutomationList,
    AutomationOut,
    CredentialList,
    CredentialOut,
    CredentialTestOut,
    CredentialValuesIn,
    ErrorOut,
    EventsAccepted,
    RunList,
    RunOut,
    request_body,
)


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(
        prefix="/admin/v1",
        tags=["admin"],
        responses=ERRORS,
        dependencies=[Depends(admin_auth(runtime))],
    )
    Body = Annotated[Any, Depends(json_body(runtime))]

    @api.post(
        "/events",
        status_code=202,
        response_model=EventsAccepted,
        openapi_extra=request_body(AdminEventIn, AdminEventBatchIn),
        summary="Push trigger events for the consumer named in `consumer`",
    )
    async def push_events(body: Body) -> JSONResponse:
        if isinstance(body, dict) and "events" in body:
            batch = parse(AdminEventBatchIn, body)
            consumer, events, many = batch.consumer, list(batch.events), True
        else:
            single = parse(AdminEventIn, body)
            consumer, many = single.consumer, False
            events = [single]
        if consumer not in runtime.config.current.consumers:
            message = f"no consumer `{consumer}` in this environment"
            raise ApiError(404, "not_found", message, [{"path": "$.consumer", "message": message}])
        return JSONResponse(await reads.push(runtime, consumer, events, batch=many), 202)

    @api.get("/automations", response_model=AutomationList, summary="Automations of consumers")
    async def list_automations(
        consumer: str | None = None, limit: Limit = 50, cursor: Cursor = None
    ) -> JSONResponse:
        page = await reads.list_automations(runtime, consumer, limit=limit, cursor=cursor)
        return JSONResponse(page)

    @api.get(
        "/automations/{consumer}/{key}", response_model=AutomationOut, summary="One automation"
    )
    async def get_automation(consumer: str, key: str) -> JSONResponse:
        return JSONResponse(await reads.get_automation(runtime, consumer, key))

    @api.get("/runs", response_model=RunList, summary="Runs of every consumer, newest first")
    async def list_runs(
        consumer: str | None = None,
        automation: str | None = None,
        status: str | None = None,
        since: Since = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> JSONResponse:
        page = await reads.list_runs(
            runtime,
            consumer or None,
            automation=automation,
            status=status,
            since=reads.parse_since(since),
            limit=limit,
            cursor=cursor,
        )
        return JSONResponse(page)

    @api.get("/runs/{run_id}", response_model=RunOut, summary="One run with its attempts")
    async def get_run(run_id: str) -> JSONResponse:
        return JSONResponse(await reads.get_run(runtime, None, run_id))

    @api.post("/runs/{run_id}/replay", status_code=202, response_model=RunOut, summary="Replay")
    async def replay_run(run_id: str) -> JSONResponse:
        return JSONResponse(await reads.replay(runtime, None, run_id), 202)

    @api.get("/credentials", response_model=CredentialList, summary="Credentials, never values")
    async def list_credentials(consumer: str | None = None) -> JSONResponse:
        views = await reads.list_consumers_credentials(runtime, consumer)
        return JSONResponse({"credentials": views, "next_cursor": None})

    @api.post(
        "/credentials",
        status_code=201,
        response_model=CredentialOut,
        openapi_extra=request_body(AdminCredentialIn),
        responses={409: {"model": ErrorOut, "description": "The key is another App's"}},
        summary="Store a consumer's credential values, or create one no file declares",
    )
    async def create_credential(body: Body) -> JSONResponse:
        given = parse(AdminCredentialIn, body)
        view = await reads.put_credential(
            runtime, given.consumer, given.key, given.app, given.values
        )
        return JSONResponse({**view, "consumer": given.consumer}, 201)

    @api.post(
        "/credentials/{consumer}/{key}/test",
        response_model=CredentialTestOut,
        summary="Try a consumer's credential with the App's `auth.test`",
    )
    async def test_credential(consumer: str, key: str) -> JSONResponse:
        view = await reads.run_auth_test(runtime, consumer, key)
        return JSONResponse({**view, "consumer": consumer})

    @api.put(
        "/credentials/{consumer}/{key}",
        response_model=CredentialOut,
        openapi_extra=request_body(CredentialValuesIn),
        summary="Store a consumer's credential values (encrypted; never returned)",
    )
    async def put_credential(consumer: str, key: str, body: Body) -> JSONResponse:
        given = parse(CredentialValuesIn, body)
        return JSONResponse(await reads.put_credential(runtime, consumer, key, None, given.values))

    @api.delete(
        "/credentials/{consumer}/{key}",
        status_code=204,
        responses={409: {"model": ErrorOut, "description": "Automations use it (listed)"}},
        summary="Delete a stored credential",
    )
    async def delete_credential(consumer: str, key: str) -> Response:
        await reads.delete_credential(runtime, consumer, key)
        return Response(status_code=204)

    @api.post(
        "/credentials/rotate",
        summary="Re-encrypt stored credentials with the first key",
        responses={409: {"model": ErrorOut, "description": "encryption_key is not set"}},
    )
    async def rotate_credentials() -> JSONResponse:
        try:
            count = await runtime.credentials.rotate(runtime.config.current)
        except EncryptionKeyError as exc:
            raise ApiError(409, "conflict", str(exc)) from exc
        return JSONResponse({"rotated": count})

    return api

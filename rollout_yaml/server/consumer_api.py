"""`/v1`: what one consumer's JWT may see and do, and nothing of another consumer."""

# No `from __future__ import annotations`: FastAPI reads the dependency aliases declared
# inside `router` from the live annotations.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.body import parse
from rollout_yaml.server.deps import consumer_auth, json_body
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import (
    ERRORS,
    AppList,
    AutomationList,
    AutomationOut,
    ConnectOut,
    CredentialIn,
    CredentialList,
    CredentialOut,
    CredentialTestOut,
    ErrorOut,
    EventBatchIn,
    EventIn,
    EventsAccepted,
    RunList,
    RunOut,
    request_body,
)
from rollout_yaml.server.views import app_view

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500)")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page")]
Since = Annotated[str | None, Query(description="Epoch seconds or an ISO-8601 time")]


def router(runtime: Runtime) -> APIRouter:
    Consumer = Annotated[str, Depends(consumer_auth(runtime))]
    Body = Annotated[Any, Depends(json_body(runtime))]
    api = APIRouter(prefix="/v1", tags=["consumer"], responses=ERRORS)

    @api.post(
        "/events",
        status_code=202,
        response_model=EventsAccepted,
        openapi_extra=request_body(EventIn, EventBatchIn),
        summary="Push trigger events (one, or up to 500 as `events`)",
    )
    async def push_events(who: Consumer, body: Body) -> JSONResponse:
        events, batch = reads.events_of(body)
        return JSONResponse(await reads.push(runtime, who, events, batch=batch), 202)

    @api.get("/apps", response_model=AppList, summary="Apps with their triggers and actions")
    async def list_apps(_who: Consumer) -> JSONResponse:
        apps = runtime.config.current.apps
        return JSONResponse(
            {"apps": [app_view(apps[k]) for k in sorted(apps)], "next_cursor": None}
        )

    @api.get("/automations", response_model=AutomationList, summary="This consumer's automations")
    async def list_automations(
        who: Consumer, limit: Limit = 50, cursor: Cursor = None
    ) -> JSONResponse:
        page = await reads.list_automations(runtime, who, limit=limit, cursor=cursor)
        return JSONResponse(page)

    @api.get("/automations/{key}", response_model=AutomationOut, summary="One automation")
    async def get_automation(who: Consumer, key: str) -> JSONResponse:
        return JSONResponse(await reads.get_automation(runtime, who, key))

    @api.get("/runs", response_model=RunList, summary="Runs, newest first")
    async def list_runs(
        who: Consumer,
        automation: str | None = None,
        status: str | None = None,
        since: Since = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> JSONResponse:
        page = await reads.list_runs(
            runtime,
            who,
            automation=automation,
            status=status,
            since=reads.parse_since(since),
            limit=limit,
            cursor=cursor,
        )
        return JSONResponse(page)

    @api.get("/runs/{run_id}", response_model=RunOut, summary="One run with its attempts")
    async def get_run(who: Consumer, run_id: str) -> JSONResponse:
        return JSONResponse(await reads.get_run(runtime, who, run_id))

    @api.post(
        "/runs/{run_id}/replay",
        status_code=202,
        response_model=RunOut,
        summary="Run it again, as a new run linked to this one",
    )
    async def replay_run(who: Consumer, run_id: str) -> JSONResponse:
        return JSONResponse(await reads.replay(runtime, who, run_id), 202)

    @api.get("/credentials", response_model=CredentialList, summary="Credentials, never values")
    async def list_credentials(who: Consumer) -> JSONResponse:
        views = await reads.list_credentials(runtime, who)
        return JSONResponse({"credentials": views, "next_cursor": None})

    @api.post(
        "/credentials",
        status_code=201,
        response_model=CredentialOut,
        openapi_extra=request_body(CredentialIn),
        responses={409: {"model": ErrorOut, "description": "The key is another App's"}},
        summary="Store a credential's values (encrypted; never returned)",
        description="Of a credential the consumer file declares `stored: true`, or a new one "
        "no file declares (`app` of auth `api_key`, `bearer` or `basic`; `key` made up when "
        "left out). Values are checked against the App's credential `fields`.",
    )
    async def put_credential(who: Consumer, body: Body) -> JSONResponse:
        given = parse(CredentialIn, body)
        view = await reads.put_credential(runtime, who, given.key, given.app, given.values)
        return JSONResponse(view, 201)

    @api.post(
        "/credentials/{key}/test",
        response_model=CredentialTestOut,
        summary="Try the credential with the App's `auth.test`; its label is kept",
    )
    async def test_credential(who: Consumer, key: str) -> JSONResponse:
        return JSONResponse(await reads.run_auth_test(runtime, who, key))

    @api.delete(
        "/credentials/{key}",
        status_code=204,
        responses={409: {"model": ErrorOut, "description": "Automations use it (listed)"}},
        summary="Delete a stored credential",
    )
    async def delete_credential(who: Consumer, key: str) -> Response:
        await reads.delete_credential(runtime, who, key)
        return Response(status_code=204)

    @api.get(
        "/connect/{app}",
        status_code=302,
        response_model=ConnectOut,
        summary="Start an OAuth2 connect flow: a redirect to the App's authorize URL",
        description="Without `credential`, the flow connects a new credential with a key "
        "made up here (given back to `redirect` as `credential`). With "
        "`Accept: application/json`, answers `{authorize_url, credential}` instead of "
        "redirecting (for a page that sends the JWT from script and then navigates).",
    )
    async def connect(
        who: Consumer,
        app: str,
        request: Request,
        credential: Annotated[
            str | None,
            Query(description="credentialKey to connect (again); left out: a new credential"),
        ] = None,
        redirect: Annotated[
            str | None, Query(description="Where the browser goes afterwards")
        ] = None,
    ) -> Response:
        url, key = await reads.connect_url(
            runtime, who, app, credential, redirect, str(request.base_url)
        )
        accept = request.headers.get("accept", "")
        if "application/json" in accept and "text/html" not in accept:
            return JSONResponse({"authorize_url": url, "credential": key})
        return RedirectResponse(url, status_code=302)

    return api

"""`/api/...`: Rollout's Project Environment API endpoints, same consumer JWT as `/v1`.

Lists answer JSON arrays here, as Rollout's do; `/v1` is the API to build new clients on.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency aliases declared
# inside `router` from the live annotations.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import compat, reads
from rollout_yaml.server.body import parse
from rollout_yaml.server.deps import consumer_auth, json_body
from rollout_yaml.server.schemas import ERRORS, EventIn, RolloutPushIn, request_body
from rollout_yaml.store.records import RunQuery


def router(runtime: Runtime) -> APIRouter:
    Consumer = Annotated[str, Depends(consumer_auth(runtime))]
    Body = Annotated[Any, Depends(json_body(runtime))]
    api = APIRouter(prefix="/api", tags=["rollout-compatible"], responses=ERRORS)

    @api.post(
        "/trigger-push-event",
        status_code=202,
        openapi_extra=request_body(RolloutPushIn),
        summary="Push one trigger event (Rollout's spelling of POST /v1/events)",
    )
    async def trigger_push_event(who: Consumer, body: Body) -> JSONResponse:
        pushed = parse(RolloutPushIn, body)
        event = EventIn(
            app=pushed.appKey, trigger=pushed.triggerKey, id=pushed.id, payload=pushed.payload
        )
        result = await reads.push(runtime, who, [event], batch=False)
        answer = {"eventIds": result["event_ids"], "runsQueued": result["runs_queued"]}
        return JSONResponse(answer, 202)

    @api.get("/automations", summary="This consumer's automations, Rollout-style")
    async def automations(who: Consumer) -> JSONResponse:
        found = reads.automations_of(runtime, who)
        return JSONResponse([compat.automation_view(a) for a in found])

    @api.get("/automation-runs", summary="Runs, newest first, Rollout-style")
    async def automation_runs(
        who: Consumer,
        automationId: str | None = None,
        status: Annotated[str | None, Query(description="Rollout's or rollout-yaml's")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[str | None, Query(description="Runs older than this run id")] = None,
    ) -> JSONResponse:
        ours = [status] if status in reads.STATUSES else compat.statuses_for(status or "")
        if status is not None and not ours:
            reads.check_status(status)
        query = RunQuery(who, automationId, ours[0] if ours else None, None, before, limit)
        runs = await runtime.store.list_runs(query)
        views = [compat.run_view(r) for r in runs]
        if status in ("SERVER_ERROR", "USER_ERROR"):
            views = [v for v in views if v["status"] == status]
        return JSONResponse(views)

    @api.get("/credentials", summary="This consumer's credentials, never their values")
    async def credentials(who: Consumer) -> JSONResponse:
        views = await reads.list_credentials(runtime, who)
        return JSONResponse(
            [
                {
                    "id": v["key"],
                    "credentialKey": v["key"],
                    "appKey": v["app"],
                    "consumerKey": who,
                    "stored": v["stored"],
                    "status": v["status"],
                }
                for v in views
            ]
        )

    return api

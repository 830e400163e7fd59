"""`/api/...`: Rollout's Project Environment API endpoints, same consumer JWT as `/v1`.

Lists answer JSON arrays here, as Rollout's do; `/v1` is the API to build new clients on.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency aliases declared
# inside `router` from the live annotations.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import compat, reads, rollout_procedures
from rollout_yaml.server.body import parse
from rollout_yaml.server.deps import consumer_auth, json_body
from rollout_yaml.server.errors import ApiError
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import ERRORS, EventIn, RolloutPushIn, request_body
from rollout_yaml.server.trpc import CODES, TRPCError
from rollout_yaml.store.records import Run, RunQuery


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

    def env_name() -> str:
        return runtime.config.current.name

    table = rollout_procedures.procedures(runtime)

    async def call(who: str, name: str, given: Any) -> Any:
        """The tRPC procedure's answer, its refusal as this API's error shape."""
        caller = rollout_procedures.Caller(who, "")
        try:
            return await table[name].handle(caller, given)
        except TRPCError as exc:
            status = CODES[exc.code][1]
            code = "invalid_request" if status in (400, 422) else exc.code.lower()
            raise ApiError(
                422 if status == 400 else status, code, exc.message, exc.details
            ) from exc

    def automation_data(body: Any) -> Any:
        """Rollout's `automationData`, alone or wrapped (`{"automationData": …}`)."""
        if isinstance(body, dict) and isinstance(body.get("automationData"), dict):
            return body["automationData"]
        return body

    @api.get("/automations", summary="This consumer's automations, as Rollout's `Automation`")
    async def automations(who: Consumer) -> JSONResponse:
        return JSONResponse(await call(who, "automations.list", None))

    @api.post("/automations", status_code=201, summary="Create an automation (Rollout's shape)")
    async def create_automation(who: Consumer, body: Body) -> JSONResponse:
        created = await call(who, "automations.create", automation_data(body))
        return JSONResponse(created, 201)

    @api.get("/automations/{automation_id}", summary="One automation, by its UUID")
    async def automation(who: Consumer, automation_id: str) -> JSONResponse:
        return JSONResponse(await call(who, "automations.get", {"automationId": automation_id}))

    @api.put("/automations/{automation_id}", summary="Replace an automation created over the API")
    async def replace_automation(who: Consumer, automation_id: str, body: Body) -> JSONResponse:
        given = {"id": automation_id, "automationData": automation_data(body)}
        return JSONResponse(await call(who, "automations.update", given))

    @api.patch("/automations/{automation_id}", summary="Switch an automation on or off (`active`)")
    async def patch_automation(who: Consumer, automation_id: str, body: Body) -> JSONResponse:
        if not isinstance(body, dict) or set(body) - {"active"} or "active" not in body:
            message = "PATCH changes `active`; PUT replaces the automation"
            details = [{"path": "$", "message": message}]
            raise ApiError(422, "invalid_request", message, details)
        given = {"id": automation_id, "active": body["active"]}
        return JSONResponse(await call(who, "automations.toggleActive", given))

    @api.delete("/automations/{automation_id}", status_code=204, summary="Delete an automation")
    async def delete_automation(who: Consumer, automation_id: str) -> Response:
        await call(who, "automations.delete", {"id": automation_id})
        return Response(status_code=204)

    @api.get("/automation-runs", summary="Runs, newest first, as Rollout's `AutomationRun`")
    async def automation_runs(
        who: Consumer,
        automationId: Annotated[str | None, Query(description="An automation's UUID")] = None,
        automationRunId: Annotated[str | None, Query(description="A run's UUID")] = None,
        status: Annotated[
            str | None,
            Query(
                description="Rollout's or rollout-yaml's; FILTERED and DRY_RUN runs are "
                "listed only when asked for by this filter"
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[str | None, Query(description="Runs older than this run's UUID")] = None,
    ) -> JSONResponse:
        runs = await rollout_runs(who, automationId, automationRunId, status, limit, before)
        return JSONResponse([compat.run_view(env_name(), r) for r in runs])

    async def rollout_runs(
        who: str,
        automation_id: str | None,
        run_uuid: str | None,
        status: str | None,
        limit: int,
        before: str | None,
    ) -> list[Run]:
        status = status or None
        ours = [status] if status in reads.STATUSES else compat.statuses_for(status or "")
        if status is not None and not ours:
            reads.check_status(status)
        if run_uuid:
            run_id = compat.run_id_of(run_uuid) or run_uuid
            found = await runtime.store.get_run(run_id, who)
            candidates = [found] if found is not None else []
        else:
            automation = None
            if automation_id:
                owned = await runtime.automations.list(who)
                match = compat.find_listed(env_name(), owned, automation_id)
                if match is None:
                    return []
                automation = match.key
            cursor = (compat.run_id_of(before) or before) if before else None
            # hidden statuses are skipped below: ask for more so that a page stays full
            query = RunQuery(who, automation, ours[0] if ours else None, None, cursor, limit * 4)
            candidates = await runtime.store.list_runs(query)  # without attempts
        if automation_id and run_uuid:
            candidates = [
                r
                for r in candidates
                if automation_id
                in (r.automation, compat.automation_uuid(env_name(), who, r.automation))
            ]
        shown = []
        for run in candidates:
            theirs = compat.rollout_status(run)
            if status is None and theirs in compat.HIDDEN:
                continue
            if status in ("SERVER_ERROR", "USER_ERROR") and theirs != status:
                continue
            shown.append(run)
        if run_uuid:
            return shown
        # only the page's runs are read in full (their attempts), not every one listed
        full = [await runtime.store.get_run(r.id, who) for r in shown[:limit]]
        return [r for r in full if r is not None]

    @api.post("/credentials", status_code=201, summary="Add an API-token credential")
    async def add_credential(who: Consumer, body: Body) -> JSONResponse:
        """`{appKey, credential: {…values}}`, as `credentials.addApiToken` takes it."""
        added = await call(who, "credentials.addApiToken", body)
        view = await reads.credential(runtime, who, added["credentialKey"])
        return JSONResponse(compat.credential_view(who, view), 201)

    @api.delete(
        "/credentials/{credential_key}",
        status_code=204,
        summary="Delete a stored credential (409 while automations use it)",
    )
    async def delete_credential(who: Consumer, credential_key: str) -> Response:
        await call(who, "credentials.delete", {"credentialKey": credential_key})
        return Response(status_code=204)

    @api.get("/credentials", summary="This consumer's credentials, never their values")
    async def credentials(who: Consumer) -> JSONResponse:
        views = await reads.list_credentials(runtime, who)
        return JSONResponse([compat.credential_view(who, v) for v in views])

    return api

"""Unauthenticated operational endpoints: liveness, readiness, configuration status, metrics.

None of them shows a record or a secret; `/status` shows file names and diagnostics, which a
project's repository holds anyway.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.errors import error_response
from rollout_yaml.server.responses import JSONResponse


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get(
        "/healthz",
        summary="The process is alive",
        description="`instance` identifies this daemon process (its address file names it "
        "too): the command line checks it before sending the admin token.",
    )
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "environment": runtime.config.current.name,
                "instance": runtime.instance,
            }
        )

    @api.get("/readyz", summary="Configuration loaded and database reachable (else 503)")
    async def readyz() -> JSONResponse:
        checks = {"runtime": runtime.ready(), "database": await runtime.store.ping()}
        if all(checks.values()):
            return JSONResponse({"status": "ready", "checks": checks})
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        return error_response(
            503,
            "not_ready",
            f"not ready: {failing}",
            [{"path": name, "message": "ok" if ok else "failing"} for name, ok in checks.items()],
        )

    @api.get(
        "/status",
        summary="Configuration generation, files, last reload error, webhook subscriptions, "
        "poll groups",
    )
    async def status() -> JSONResponse:
        return JSONResponse(
            {
                **runtime.config.status(),
                "webhooks": await runtime.subscriptions.status(),
                "polls": runtime.poller.status(),
                "runtime_automations": runtime.automations.invalid(),
            }
        )

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body = generate_latest(runtime.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return api

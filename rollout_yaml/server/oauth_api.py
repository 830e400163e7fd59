"""`GET /oauth/callback`: where an App sends the consumer's browser back after an OAuth2
authorization. No JWT here (a browser is redirected, it carries none): the signed, single-use
`state` says which consumer and credential the code is for."""

from __future__ import annotations

import logging

import httpx
from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from rollout_yaml.engine.connect import ConnectFailed, StateRejected
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.errors import error_response
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import ErrorOut

log = logging.getLogger("rollout_yaml.server")


def _back_to(redirect: str, params: dict[str, str]) -> RedirectResponse:
    return RedirectResponse(str(httpx.URL(redirect).copy_merge_params(params)), status_code=303)


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(tags=["oauth"])

    @api.get(
        "/oauth/callback",
        summary="Finish an OAuth2 connect flow and store the tokens",
        responses={
            303: {"description": "Back to the connect flow's `redirect`, with the outcome"},
            400: {
                "model": ErrorOut,
                "description": "The `state` is missing, forged, expired or used, or the App "
                "refused the authorization",
            },
        },
    )
    async def callback(
        state: str | None = None,
        code: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> Response:
        env = runtime.config.current
        try:
            pending = await runtime.connect.finish(env, state, code, error, error_description)
        except StateRejected as exc:
            return error_response(400, "invalid_state", str(exc))
        except ConnectFailed as exc:
            where = exc.pending
            log.warning(
                "connecting credential %s failed: %s",
                where.credential,
                exc,
                extra={"consumer": where.consumer},
            )
            if where.redirect:
                params = {"credential": where.credential, "app": where.app, "error": exc.error}
                return _back_to(where.redirect, params)
            return error_response(400, "connect_failed", f"connecting failed: {exc}")
        log.info(
            "credential %s of app %s connected",
            pending.credential,
            pending.app,
            extra={"consumer": pending.consumer},
        )
        result = {"credential": pending.credential, "app": pending.app, "status": "connected"}
        if pending.redirect:
            return _back_to(pending.redirect, result)
        return JSONResponse({**result, "consumer": pending.consumer})

    return api

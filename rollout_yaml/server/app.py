"""The FastAPI application of one running environment, built around its Runtime."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from rollout_yaml import __version__
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import (
    admin_api,
    automations_api,
    compat_api,
    connect_react_api,
    consumer_api,
    errors,
    health,
    notifications_api,
    oauth_api,
    rollout_procedures,
    webhooks_api,
)
from rollout_yaml.server.auth import VerifiedTokens
from rollout_yaml.server.cors import CorsMiddleware
from rollout_yaml.server.fast_lane import FastLane
from rollout_yaml.server.redaction import RedactMiddleware
from rollout_yaml.server.schemas import REQUEST_MODELS
from rollout_yaml.server.ui import routes as ui_routes

DESCRIPTION = """\
The API of one rollout-yaml environment.

* `/v1`: the consumer API, `Authorization: Bearer <JWT>` (HS512, `sub` = consumerKey).
* `/api`: Rollout-compatible aliases, same JWT; `/api/trpc`: the tRPC procedures of Rollout's
  embedded components (not part of this document).
* `/admin/v1`: reads across consumers, `Authorization: Bearer <admin_token>`.
* `/webhooks/{app}/{trigger}/{hookId}`: deliveries from other Apps, verified per connector.
* `/ui`: pages for operators and the consumer portal `/ui/embed` (not part of this document).

Every error is `{"error": {"code", "message", "details"}}`.
"""


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="rollout-yaml",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.include_router(consumer_api.router(runtime))
    app.include_router(automations_api.consumer_router(runtime))
    app.include_router(automations_api.admin_router(runtime))
    app.include_router(compat_api.router(runtime))
    app.include_router(rollout_procedures.router(runtime))
    app.include_router(connect_react_api.router(runtime))
    app.include_router(admin_api.router(runtime))
    app.include_router(notifications_api.router(runtime))
    app.include_router(health.router(runtime))
    app.include_router(webhooks_api.router(runtime))
    app.include_router(oauth_api.router(runtime))
    app.include_router(ui_routes.router(runtime))
    app.state.tokens = VerifiedTokens()  # one cache of verified JWTs, for both lanes
    app.add_middleware(FastLane, runtime=runtime, tokens=app.state.tokens)
    app.add_middleware(RedactMiddleware, secrets=lambda: runtime.config.current.secret_values)
    app.add_middleware(
        CorsMiddleware, origins=lambda: runtime.config.current.settings.server.cors_origins
    )
    _document_request_bodies(app)
    return app


def _document_request_bodies(app: FastAPI) -> None:
    """Add the bodies the handlers read themselves (see `body`) to the OpenAPI components."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = default_openapi()
        _, top = models_json_schema(
            [(model, "validation") for model in REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in top.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]

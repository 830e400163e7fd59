"""The FastAPI application of one running environment, built around its Runtime."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from rollout_yaml import __version__
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import (
    admin_api,
    compat_api,
    consumer_api,
    errors,
    health,
    oauth_api,
    webhooks_api,
)
from rollout_yaml.server.fast_lane import FastLane
from rollout_yaml.server.redaction import RedactMiddleware
from rollout_yaml.server.schemas import REQUEST_MODELS

DESCRIPTION = """\
The API of one rollout-yaml environment.

* `/v1`: the consumer API, `Authorization: Bearer <JWT>` (HS512, `sub` = consumerKey).
* `/api`: Rollout-compatible aliases, same JWT.
* `/admin/v1`: reads across consumers, `Authorization: Bearer <admin_token>`.
* `/webhooks/{app}/{trigger}/{hookId}`: deliveries from other Apps, verified per connector.

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
    app.include_router(compat_api.router(runtime))
    app.include_router(admin_api.router(runtime))
    app.include_router(health.router(runtime))
    app.include_router(webhooks_api.router(runtime))
    app.include_router(oauth_api.router(runtime))
    app.add_middleware(FastLane, runtime=runtime)
    app.add_middleware(RedactMiddleware, secrets=lambda: runtime.config.current.secret_values)
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

"""`/api/connect-react/...`: the files `@rollout/connect-react` loads by URL: UI modules,
icons, and the end of the OAuth2 popup. No token: a browser's `import()` and `<img>` send
none, and these hold only what the connectors define (never a consumer's data)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures' annotations.
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.connect_modules import (
    icon_data,
    icon_file,
    monogram,
    oauth_done_page,
    ui_module,
)
from rollout_yaml.server.errors import not_found

PREFIX = "/api/connect-react"
# Modules are imported across origins (the partner's page loads them from the runner): a module
# script needs CORS. They change with the configuration: always revalidated.
PUBLIC = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}
# An icon opened on its own (an SVG can hold a script) runs nothing: no script, no fetch.
IMAGE = {
    **PUBLIC,
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "sandbox",
    "X-Content-Type-Options": "nosniff",
}


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)

    def module(schema: object) -> Response:
        assert isinstance(schema, dict)
        return Response(ui_module(schema), media_type="text/javascript", headers=PUBLIC)

    @api.get("/oauth-done")
    async def oauth_done(
        requestId: str = "",
        credential: str | None = None,
        app: str | None = None,
        status: str | None = None,
        error: Annotated[str | None, Query()] = None,
    ) -> HTMLResponse:
        ok = status == "connected" and credential is not None and error is None
        message: dict[str, object] = {
            "type": "credential-added",
            "requestId": requestId,
            "ok": ok,
            "appKey": app,
        }
        if ok:
            message["credential"] = {"credentialKey": credential}
        else:
            message["error"] = error or "the account could not be connected"
        return HTMLResponse(oauth_done_page({"_rollout": message}))

    @api.get("/{app}/triggers/{name}")
    async def trigger_module(app: str, name: str) -> Response:
        found = runtime.config.current.apps.get(app)
        trigger = found.triggers.get(name.removesuffix(".js")) if found else None
        if trigger is None or not name.endswith(".js"):
            raise not_found(f"trigger module `{app}/{name}`")
        return module(dict(trigger.input_schema.schema))

    @api.get("/{app}/actions/{name}")
    async def action_module(app: str, name: str) -> Response:
        found = runtime.config.current.apps.get(app)
        action = found.actions.get(name.removesuffix(".js")) if found else None
        if action is None or not name.endswith(".js"):
            raise not_found(f"action module `{app}/{name}`")
        return module(dict(action.input_schema.schema))

    @api.get("/{app}/icon")
    async def icon(app: str) -> Response:
        env = runtime.config.current
        found = env.apps.get(app)
        if found is None:
            raise not_found(f"app `{app}`")
        icon = found.connector.icon
        inline = icon_data(icon)
        if inline is not None:
            return Response(inline[0], media_type=inline[1], headers=IMAGE)
        loaded = env.source.connectors.get(app)
        folders = [loaded.source.path.parent] if loaded is not None and loaded.source else []
        folders.append(env.source.layout.root / "connectors")
        given = icon_file(folders, icon)
        if given is not None:
            return FileResponse(given[0], media_type=given[1], headers=IMAGE)
        svg = monogram(found.connector.name, app)
        return Response(svg, media_type="image/svg+xml", headers=IMAGE)

    return api

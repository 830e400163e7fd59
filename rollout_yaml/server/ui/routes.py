"""`/ui`: every page, the package's static files and the portal's theme stylesheet, on one
router that the server includes (none of it is in the API's OpenAPI document)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations live.
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.ui import operator_pages, portal_pages, signin
from rollout_yaml.server.ui.layout import Layout
from rollout_yaml.server.ui.theme import parse_theme, theme_css

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The package's static files by name, read once (there is no path to traverse)."""
    found = {}
    for item in files("rollout_yaml.server.ui").joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _TYPES:
            found[item.name] = (item.read_bytes(), _TYPES[suffix])
    return found


def router(runtime: Runtime) -> APIRouter:
    layout = Layout(runtime)
    static = _static_files()
    pages = APIRouter(include_in_schema=False)
    pages.include_router(signin.router(runtime, layout))
    pages.include_router(operator_pages.router(runtime, layout))
    pages.include_router(portal_pages.router(runtime, layout))

    @pages.get("/ui/static/{version}/{name}")
    async def static_file(version: str, name: str) -> Response:
        found = static.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media_type = found
        # The version in the path changes with every release, so a file may be kept long.
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        return Response(body, media_type=media_type, headers=headers)

    @pages.get("/ui/theme.css")
    async def theme(theme: str = "") -> Response:
        headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
        css = theme_css(parse_theme(theme))
        return Response(css, media_type="text/css; charset=utf-8", headers=headers)

    return pages

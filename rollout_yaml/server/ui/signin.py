"""Signing in and out of the pages: a token is exchanged once at `/ui/session` for a session
cookie, and never travels in a URL after that.

`/ui/session` takes `token` (the admin token, or a consumer JWT checked exactly as the API
checks it), and optionally `next` (a `/ui` page) and `theme`. It answers with the cookie and a
303 to `next`. A partner puts it in its page as a form posted into the portal's iframe (the
token then never sits in any URL), or as the iframe's `src`
(`/ui/session?token=…&next=/ui/embed`), which is redirected at once to a URL without it.
This exchange takes no CSRF token, since there is no session yet: the token itself is the proof,
so a forged exchange can only sign a browser in as the forger's own consumer.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations live.
import time

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from rollout_yaml.config.models.environment import EnvironmentSettings
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.auth import (
    Unauthorized,
    VerifiedTokens,
    verify_admin_token,
)
from rollout_yaml.server.ui.access import (
    FormRefused,
    checked_form,
    clear_session,
    first,
    local_next,
    read_form,
    session_of,
    set_session,
)
from rollout_yaml.server.ui.layout import Layout
from rollout_yaml.server.ui.session import Kind, new_session
from rollout_yaml.server.ui.theme import parse_theme, theme_param

OPERATOR_HOME = "/ui/runs"
PORTAL_HOME = "/ui/embed"


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def sign_in_page(
    layout: Layout,
    next_page: str,
    *,
    portal: bool,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {"next": next_page, "error": error}
    if portal:
        return layout.portal("sign_in.html", "Sign in", None, context, status=status)
    return layout.operator("sign_in.html", "Sign in", None, context, status=status)


def router(runtime: Runtime, layout: Layout) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    def settings() -> EnvironmentSettings:
        return runtime.config.current.settings

    async def exchange(request: Request, token: str, target: str, theme: str) -> Response:
        env_settings = settings()
        now = time.time()
        token = token.strip()
        kind: Kind
        try:
            if not token:
                raise Unauthorized("enter a token")
            if _looks_like_jwt(token):
                tokens: VerifiedTokens = request.app.state.tokens  # the API's one cache
                consumer = tokens.verify(token, env_settings.auth)
                kind, key = "consumer", consumer.key
                expires = float(consumer.claims["exp"])
            else:
                verify_admin_token(token, env_settings.auth)
                kind, key = "operator", None
                expires = now + env_settings.server.ui.session_ttl
        except Unauthorized as exc:
            portal = target.startswith(PORTAL_HOME)
            return sign_in_page(layout, target, portal=portal, error=str(exc), status=401)
        home = OPERATOR_HOME if kind == "operator" else PORTAL_HOME
        if kind == "consumer" and not target.startswith(PORTAL_HOME):
            target = home  # a consumer has only the portal
        session = new_session(kind, key, expires, theme_param(parse_theme(theme)))
        answer = RedirectResponse(target if target != "/ui" else home, status_code=303)
        answer.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        set_session(answer, session, now, request, env_settings)
        return answer

    @pages.get("/ui/sign-in")
    async def sign_in(request: Request, next: str = "") -> Response:
        target = local_next(next, "/ui")
        portal = target.startswith(PORTAL_HOME)
        return sign_in_page(layout, target, portal=portal)

    @pages.post("/ui/session")
    async def post_session(request: Request) -> Response:
        try:
            form = await read_form(request, settings())
        except FormRefused as exc:
            return sign_in_page(layout, "/ui", portal=False, error=exc.message, status=exc.status)
        target = local_next(first(form, "next"), "/ui")
        return await exchange(request, first(form, "token"), target, first(form, "theme"))

    @pages.get("/ui/session")
    async def get_session(
        request: Request,
        token: str = "",
        next: str = "",
        theme: str = "",
    ) -> Response:
        return await exchange(request, token, local_next(next, "/ui"), theme)

    async def sign_out(request: Request, kind: Kind) -> Response:
        env_settings = settings()
        try:
            await checked_form(request, session_of(request, kind, env_settings), env_settings)
        except FormRefused as exc:
            return layout.message(
                None, "Not signed out", exc.message, portal=kind == "consumer", status=exc.status
            )
        target = "/ui/sign-in" + ("?next=/ui/embed" if kind == "consumer" else "")
        answer = RedirectResponse(target, status_code=303)
        clear_session(answer, kind, request, env_settings)
        return answer

    @pages.post("/ui/sign-out")
    async def operator_sign_out(request: Request) -> Response:
        return await sign_out(request, "operator")

    @pages.post("/ui/embed/sign-out")
    async def consumer_sign_out(request: Request) -> Response:
        return await sign_out(request, "consumer")

    @pages.get("/ui")
    async def home(request: Request) -> Response:
        if session_of(request, "operator", settings()) is not None:
            return RedirectResponse(OPERATOR_HOME, status_code=303)
        if session_of(request, "consumer", settings()) is not None:
            return RedirectResponse(PORTAL_HOME, status_code=303)
        return RedirectResponse("/ui/sign-in", status_code=303)

    return pages

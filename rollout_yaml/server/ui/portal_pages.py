"""The consumer portal, `/ui/embed`: what one consumer may switch on, its automations, runs and
connections. Meant to sit in an iframe of the partner's app (`server.ui.frame_ancestors`)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations live.
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from rollout_yaml.engine.automations import AutomationRefused
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.errors import ApiError
from rollout_yaml.server.ui import run_views
from rollout_yaml.server.ui.access import (
    FormRefused,
    checked_form,
    first,
    session_of,
    set_session,
)
from rollout_yaml.server.ui.connections import (
    NEW_KEY,
    app_of,
    connection_rows,
    credential_problems,
    new_connections,
    read_values,
)
from rollout_yaml.server.ui.csrf import from_another_site
from rollout_yaml.server.ui.forms import field_errors
from rollout_yaml.server.ui.layout import Layout
from rollout_yaml.server.ui.session import Session, with_theme
from rollout_yaml.server.ui.setup_form import read_setup, refusal_details, setup_form
from rollout_yaml.server.ui.theme import parse_theme, theme_param
from rollout_yaml.store.records import RunQuery

BASE = "/ui/embed"
RECENT_RUNS = 10
DONE = {
    "created": "Switched on. New events start runs from now on.",
    "enabled": "Switched on again.",
    "disabled": "Paused: events start no runs until you switch it on again.",
    "deleted": "Deleted. Its runs stay in the run history.",
}


def router(runtime: Runtime, layout: Layout) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    def signed_in(request: Request) -> Session | None:
        return session_of(request, "consumer", runtime.config.current.settings)

    def sign_in(request: Request) -> Response:
        """The portal's own sign-in (inside the frame), coming back to this page after."""
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        theme = theme_param(parse_theme(request.query_params.get("theme")))
        context = {"next": target, "error": None}
        return layout.portal("sign_in.html", "Sign in", None, context, status=401, theme=theme)

    def refused(session: Session | None, heading: str, exc: FormRefused) -> Response:
        return layout.message(session, heading, exc.message, portal=True, status=exc.status)

    def missing(session: Session, what: str) -> Response:
        return layout.message(
            session, "Not found", f"{what} was not found.", portal=True, status=404
        )

    def base_url(request: Request) -> str:
        public = runtime.config.current.settings.server.public_url
        return (public or str(request.base_url)).rstrip("/")

    @pages.get(BASE)
    async def home(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        consumer = session.consumer or ""
        theme = request.query_params.get("theme")
        env = runtime.config.current
        listed = await reads.list_automations(runtime, consumer, limit=500, cursor=None)
        rules = env.settings.self_service
        blueprints = [
            {"key": key, "name": bp.model.name, "description": bp.model.description}
            for key, bp in sorted(env.blueprints.items())
            if rules.allows_blueprint(key)
        ]
        context = {
            "automations": listed["automations"],
            "blueprints": blueprints,
            "flash": DONE.get(request.query_params.get("done") or ""),
        }
        if theme is None:
            return layout.portal("portal_home.html", "Integrations", session, context, current=BASE)
        session = with_theme(session, theme_param(parse_theme(theme)))
        answer = layout.portal("portal_home.html", "Integrations", session, context, current=BASE)
        set_session(answer, session, time.time(), request, env.settings)
        return answer

    async def blueprint_page(
        session: Session,
        key: str,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        form_errors: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        consumer = session.consumer or ""
        env = runtime.config.current
        blueprint = env.blueprints.get(key)
        if blueprint is None or not env.settings.self_service.allows_blueprint(key):
            return missing(session, f"Blueprint {key}")
        credentials = await reads.list_credentials(runtime, consumer)
        taken = {a.key for a in reads.automations_of(runtime, consumer)}
        form = setup_form(env, blueprint, credentials, taken, values, errors)
        context = {
            "blueprint": {
                "key": key,
                "name": blueprint.model.name,
                "description": blueprint.model.description,
            },
            "fields": form.fields,
            "params": form.params,
            "missing": form.missing_connections,
            "form_errors": form_errors or [],
        }
        return layout.portal(
            "blueprint_form.html", blueprint.model.name, session, context, status=status
        )

    @pages.get(BASE + "/blueprints/{key}")
    async def blueprint(request: Request, key: str) -> Response:
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        return await blueprint_page(session, key)

    @pages.post(BASE + "/blueprints/{key}")
    async def create(request: Request, key: str) -> Response:
        """The setup form's post: the automation made through the same service and checks
        as `POST /v1/automations`; its problems shown next to their fields."""
        session = signed_in(request)
        try:
            form = await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, "Not switched on", exc)
        assert session is not None
        env = runtime.config.current
        blueprint = env.blueprints.get(key)
        if blueprint is None or not env.settings.self_service.allows_blueprint(key):
            return missing(session, f"Blueprint {key}")
        post = read_setup(blueprint, form)
        values = {
            "key": post.body["key"],
            "credentials": post.body.get("credentials", {}),
            "params": post.body["params"],
        }
        if post.errors:
            return await blueprint_page(session, key, values=values, errors=post.errors, status=422)
        consumer = session.consumer or ""
        try:
            await runtime.automations.create(consumer, post.body, admin=False)
        except AutomationRefused as exc:
            credentials = await reads.list_credentials(runtime, consumer)
            shown = setup_form(env, blueprint, credentials, set(), values)
            placed, loose = field_errors(
                refusal_details(exc.status, exc.message, exc.details),
                [*shown.fields, *shown.params],
            )
            return await blueprint_page(
                session,
                key,
                values=values,
                errors=placed,
                form_errors=loose,
                status=exc.status,
            )
        target = f"{BASE}/automations/{quote(post.body['key'], safe='')}?done=created"
        return RedirectResponse(target, status_code=303)

    @pages.get(BASE + "/automations/{key}")
    async def automation(request: Request, key: str) -> Response:
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        return await automation_page(session, key, request.query_params.get("done"))

    async def automation_page(
        session: Session,
        key: str,
        done: str | None = None,
        *,
        problem: str | None = None,
        confirm_delete: bool = False,
        status: int = 200,
    ) -> Response:
        consumer = session.consumer or ""
        try:
            view = await reads.get_automation(runtime, consumer, key)
        except ApiError:
            return missing(session, f"Automation {key}")
        recent = await runtime.store.list_runs(
            RunQuery(consumer=consumer, automation=key, limit=RECENT_RUNS)
        )
        compiled = runtime.config.current.automations.get((consumer, key))
        definition = view.get("definition") or {}
        context = {
            "automation": view,
            "params": dict(compiled.params)
            if compiled is not None
            else definition.get("params", {}),
            "runs": [run_views.list_view(run) for run in recent],
            "manageable": view.get("source") == "api",
            "problem": problem,
            "confirm_delete": confirm_delete,
            "flash": DONE.get(done or ""),
        }
        title = view["name"] or key
        return layout.portal("portal_automation.html", title, session, context, status=status)

    async def change_automation(request: Request, key: str, heading: str, change: str) -> Response:
        """Pause, resume or delete (after its confirmation) an automation made here."""
        session = signed_in(request)
        try:
            form = await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, heading, exc)
        assert session is not None
        consumer = session.consumer or ""
        service = runtime.automations
        try:
            if change == "delete":
                if first(form, "confirm") != "yes":
                    return await automation_page(session, key, confirm_delete=True)
                await service.delete(consumer, key)
                return RedirectResponse(f"{BASE}?done=deleted", status_code=303)
            body = {"enabled": change == "enable"}
            await service.patch(consumer, key, body, None, admin=False)
        except AutomationRefused as exc:
            if exc.status == 404:
                return missing(session, f"Automation {key}")
            return await automation_page(session, key, problem=exc.message, status=exc.status)
        done = "enabled" if change == "enable" else "disabled"
        target = f"{BASE}/automations/{quote(key, safe='')}?done={done}"
        return RedirectResponse(target, status_code=303)

    @pages.post(BASE + "/automations/{key}/enable")
    async def enable(request: Request, key: str) -> Response:
        return await change_automation(request, key, "Not switched on", "enable")

    @pages.post(BASE + "/automations/{key}/disable")
    async def disable(request: Request, key: str) -> Response:
        return await change_automation(request, key, "Not paused", "disable")

    @pages.post(BASE + "/automations/{key}/delete")
    async def delete(request: Request, key: str) -> Response:
        return await change_automation(request, key, "Not deleted", "delete")

    @pages.get(BASE + "/runs")
    async def runs(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        filters = run_views.RunFilters.of(request.query_params, operator=False)
        context = await run_views.runs_page(runtime, session.consumer, filters, BASE)
        context["consumer_choices"] = []
        return layout.portal("runs.html", "Runs", session, context, current=BASE + "/runs")

    @pages.get(BASE + "/runs/{run_id}")
    async def run(request: Request, run_id: str) -> Response:
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        context = await run_views.run_page(runtime, session.consumer, run_id)
        if context is None:
            return missing(session, f"Run {run_id}")
        return layout.portal("run.html", f"Run {run_id}", session, context, current=BASE + "/runs")

    @pages.post(BASE + "/runs/{run_id}/replay")
    async def replay(request: Request, run_id: str) -> Response:
        session = signed_in(request)
        try:
            await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, "Not replayed", exc)
        assert session is not None
        new_id = await run_views.replay(runtime, session.consumer, run_id)
        if new_id is None:
            return missing(session, f"Run {run_id}")
        return RedirectResponse(f"{BASE}/runs/{new_id}", status_code=303)

    async def credentials_page(
        request: Request,
        session: Session,
        *,
        errors: dict[str, dict[str, str]] | None = None,
        new_errors: dict[str, dict[str, str]] | None = None,
        tested: dict[str, str] | None = None,
        flash: str | None = None,
        status: int = 200,
    ) -> Response:
        consumer = session.consumer or ""
        views = await reads.list_credentials(runtime, consumer)
        rows = await connection_rows(
            runtime,
            consumer,
            views,
            callback=f"{base_url(request)}{BASE}/connected",
            base_url=base_url(request),
            errors=errors or {},
            tested=tested,
        )
        context: dict[str, Any] = {
            "connections": rows,
            "new": new_connections(runtime, new_errors or {}),
            "flash": flash,
        }
        return layout.portal(
            "credentials.html",
            "Connections",
            session,
            context,
            current=BASE + "/credentials",
            status=status,
        )

    @pages.get(BASE + "/credentials")
    async def credentials(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        saved, removed = request.query_params.get("saved"), request.query_params.get("removed")
        flash = f"Saved {saved}." if saved else f"Disconnected {removed}." if removed else None
        return await credentials_page(request, session, flash=flash)

    @pages.post(BASE + "/credentials")
    async def add_credential(request: Request) -> Response:
        """A connection no consumer file declares: the App's fields, under a key given or
        made up (the same call as `POST /v1/credentials` without a file declaration)."""
        session = signed_in(request)
        try:
            form = await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, "Not saved", exc)
        assert session is not None
        app = first(form, "app")
        if app not in runtime.config.current.apps:
            return missing(session, f"App {app}")
        read = read_values(runtime, app, form)
        if read.errors:
            return await credentials_page(
                request, session, new_errors={app: read.errors}, status=422
            )
        key = first(form, NEW_KEY).strip() or None
        try:
            view = await reads.put_credential(
                runtime, session.consumer or "", key, app, read.values
            )
        except ApiError as exc:
            return await credentials_page(
                request,
                session,
                new_errors={app: credential_problems(exc.message, exc.details or [])},
                status=exc.status,
            )
        return RedirectResponse(
            f"{BASE}/credentials?saved={quote(str(view['key']))}", status_code=303
        )

    @pages.post(BASE + "/credentials/{key}")
    async def save_credential(request: Request, key: str) -> Response:
        session = signed_in(request)
        try:
            form = await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, "Not saved", exc)
        assert session is not None
        consumer = session.consumer or ""
        app = await app_of(runtime, consumer, key)
        if app is None:
            return missing(session, f"Connection {key}")
        read = read_values(runtime, app, form)
        if read.errors:
            return await credentials_page(request, session, errors={key: read.errors}, status=422)
        try:
            await reads.put_credential(runtime, consumer, key, None, read.values)
        except ApiError as exc:
            if exc.status == 404:
                return missing(session, f"Connection {key}")
            return await credentials_page(
                request,
                session,
                errors={key: credential_problems(exc.message, exc.details or [])},
                status=exc.status,
            )
        return RedirectResponse(f"{BASE}/credentials?saved={quote(key)}", status_code=303)

    @pages.post(BASE + "/credentials/{key}/test")
    async def test_credential(request: Request, key: str) -> Response:
        """ "Test connection": the App's `auth.test` with the credential; its label or error."""
        session = signed_in(request)
        try:
            await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, "Not tested", exc)
        assert session is not None
        try:
            answer = await reads.run_auth_test(runtime, session.consumer or "", key)
        except ApiError as exc:
            if exc.status == 404:
                return missing(session, f"Connection {key}")
            return await credentials_page(request, session, tested={key: exc.message})
        test = answer["test"]
        if test["ok"]:
            label = test.get("label")
            outcome = f"Connection works{f': {label}' if label else ''}."
        else:
            outcome = f"Connection failed: {test.get('error') or test.get('status')}."
        return await credentials_page(request, session, tested={key: outcome})

    @pages.post(BASE + "/credentials/{key}/delete")
    async def delete_credential(request: Request, key: str) -> Response:
        session = signed_in(request)
        try:
            await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return refused(session, "Not deleted", exc)
        assert session is not None
        try:
            await reads.delete_credential(runtime, session.consumer or "", key)
        except ApiError as exc:
            if exc.status == 404:
                return missing(session, f"Connection {key}")
            problem = {"$": exc.message}
            return await credentials_page(
                request, session, errors={key: problem}, status=exc.status
            )
        return RedirectResponse(f"{BASE}/credentials?removed={quote(key)}", status_code=303)

    @pages.get(BASE + "/connect/{app}")
    async def connect(request: Request, app: str, credential: str = "") -> Response:
        """In the popup: to the App's consent page, for `credential` or a new key."""
        session = signed_in(request)
        if session is None:
            return sign_in(request)
        if from_another_site(request.headers.get("sec-fetch-site")):
            message = "a connection is started from this portal's own page, not another site's"
            return layout.message(session, "Not connected", message, portal=True, status=403)
        try:
            url, _ = await reads.connect_url(
                runtime,
                session.consumer or "",
                app,
                credential or None,
                f"{base_url(request)}{BASE}/connected",
                base_url(request),
            )
        except ApiError as exc:
            return layout.message(
                session, "Not connected", exc.message, portal=True, status=exc.status
            )
        return RedirectResponse(url, status_code=303)

    @pages.get(BASE + "/connected")
    async def connected(
        request: Request, credential: str = "", app: str = "", status: str = "", error: str = ""
    ) -> Response:
        """Where an App's consent flow ends, in the popup: it tells the portal and closes."""
        outcome = "connected" if status == "connected" and not error else "failed"
        context = {"credential": credential, "app": app, "outcome": outcome, "error": error}
        return layout.portal("connected.html", "Connection", None, context)

    return pages

"""The operator's pages, behind the admin token: consumers, automations, runs of everyone, one
run with its attempts and a replay button, and the configuration's status."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations live.
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.expr.automation_check import runtime_display
from rollout_yaml.expr.compiled import CompiledAutomation
from rollout_yaml.server import reads
from rollout_yaml.server.ui import run_views
from rollout_yaml.server.ui.access import FormRefused, checked_form, session_of
from rollout_yaml.server.ui.layout import Layout
from rollout_yaml.server.ui.reload_report import reload_report, stored_report
from rollout_yaml.server.ui.session import Session
from rollout_yaml.store.records import RunQuery, RunStatus

AUTOMATIONS_PAGE = 50
CONSUMERS_PAGE = 100
ERROR_WINDOW = 50


def error_rate(statuses: list[str]) -> tuple[int, int]:
    """Failed runs and runs that either succeeded or failed, among `statuses`."""
    failed = sum(1 for s in statuses if s == RunStatus.FAILED)
    finished = failed + sum(1 for s in statuses if s == RunStatus.SUCCEEDED)
    return failed, finished


def _source(view: dict[str, Any], automation: CompiledAutomation | None) -> dict[str, Any]:
    """Where an automation is defined: its file and line, or the API."""
    source = view.get("source", "file")
    file, line = view.get("file"), view.get("line")
    if source == "file" and automation is not None and file is None:
        file, line = automation.file, automation.location()[0]
    return {"source": source, "file": file, "line": line}


def router(runtime: Runtime, layout: Layout) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    def signed_in(request: Request) -> Session | None:
        return session_of(request, "operator", runtime.config.current.settings)

    def to_sign_in(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/sign-in?next={quote(target, safe='')}", status_code=303)

    @pages.get("/ui/runs")
    async def runs(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return to_sign_in(request)
        filters = run_views.RunFilters.of(request.query_params, operator=True)
        context = await run_views.runs_page(runtime, None, filters, "/ui")
        consumers = sorted(runtime.config.current.consumers)
        context["consumer_choices"] = [(c, c) for c in consumers]
        return layout.operator("runs.html", "Runs", session, context, current="/ui/runs")

    @pages.get("/ui/runs/{run_id}")
    async def run(request: Request, run_id: str) -> Response:
        session = signed_in(request)
        if session is None:
            return to_sign_in(request)
        context = await run_views.run_page(runtime, None, run_id)
        if context is None:
            return layout.message(
                session, "No such run", f"There is no run {run_id}.", portal=False, status=404
            )
        return layout.operator("run.html", f"Run {run_id}", session, context, current="/ui/runs")

    @pages.post("/ui/runs/{run_id}/replay")
    async def replay(request: Request, run_id: str) -> Response:
        session = signed_in(request)
        try:
            await checked_form(request, session, runtime.config.current.settings)
        except FormRefused as exc:
            return layout.message(
                session, "Not replayed", exc.message, portal=False, status=exc.status
            )
        new_id = await run_views.replay(runtime, None, run_id)
        if new_id is None:
            return layout.message(
                session, "No such run", f"There is no run {run_id}.", portal=False, status=404
            )
        return RedirectResponse(f"/ui/runs/{new_id}", status_code=303)

    @pages.get("/ui/automations")
    async def automations(request: Request, consumer: str = "", cursor: str = "") -> Response:
        session = signed_in(request)
        if session is None:
            return to_sign_in(request)
        env = runtime.config.current
        page = await reads.list_automations(
            runtime, consumer or None, limit=AUTOMATIONS_PAGE, cursor=cursor or None
        )
        rows = []
        for view in page["automations"]:
            compiled = env.automations.get((view["consumer"], view["key"]))
            recent = await runtime.store.list_runs(
                RunQuery(consumer=view["consumer"], automation=view["key"], limit=ERROR_WINDOW)
            )
            failed, finished = error_rate([str(r.status) for r in recent])
            rows.append(
                {
                    **view,
                    **_source(view, compiled),
                    "enabled": view.get("enabled", view.get("status") == "enabled"),
                    "state": view.get("state") or view.get("status", "ready"),
                    "report": stored_report(
                        runtime_display(view["consumer"], view["key"]),
                        view["key"],
                        view.get("definition") or {},
                        view["diagnostics"],
                    )
                    if view.get("diagnostics")
                    else [],
                    "failed": failed,
                    "finished": finished,
                    "error_rate": f"{100 * failed / finished:.0f}%" if finished else "",
                }
            )
        query = {"consumer": consumer} if consumer else {}
        next_cursor = page["next_cursor"]
        context = {
            "automations": rows,
            "consumer": consumer,
            # a consumer with no file (only run-time automations) can be filtered to as well
            "consumer_choices": [(c, c) for c in sorted({*env.consumers, consumer} - {""})],
            "window": ERROR_WINDOW,
            "cursor": cursor,
            "first_href": "/ui/automations" + (f"?{urlencode(query)}" if query else ""),
            "next_href": "/ui/automations?" + urlencode({**query, "cursor": next_cursor})
            if next_cursor
            else None,
        }
        return layout.operator(
            "automations.html", "Automations", session, context, current="/ui/automations"
        )

    @pages.get("/ui/consumers")
    async def consumers(request: Request, cursor: str = "") -> Response:
        session = signed_in(request)
        if session is None:
            return to_sign_in(request)
        env = runtime.config.current
        counts: dict[str, int] = {}
        for owner, _ in env.automations:
            counts[owner] = counts.get(owner, 0) + 1
        keys = [k for k in sorted(env.consumers) if k > cursor][: CONSUMERS_PAGE + 1]
        rows = []
        for key in keys[:CONSUMERS_PAGE]:
            found = env.consumers[key]
            rows.append(
                {
                    "key": key,
                    "name": found.name,
                    "file": found.file,
                    "automations": counts.get(key, 0),
                    "credentials": await reads.list_credentials(runtime, key),
                }
            )
        last = keys[CONSUMERS_PAGE - 1] if len(keys) > CONSUMERS_PAGE else None
        context = {
            "consumers": rows,
            "cursor": cursor,
            "next_href": f"/ui/consumers?cursor={quote(last)}" if last else None,
        }
        return layout.operator(
            "consumers.html", "Consumers", session, context, current="/ui/consumers"
        )

    @pages.get("/ui/status")
    async def status(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return to_sign_in(request)
        current = runtime.config.status()
        webhooks = await runtime.subscriptions.status()
        root = runtime.config.current.source.layout.root
        context = {
            "status": current,
            "reload_error": reload_report(current.get("last_reload_error"), root),
            "pending_hooks": webhooks.get("pending", []),
        }
        return layout.operator("status.html", "Status", session, context, current="/ui/status")

    return pages

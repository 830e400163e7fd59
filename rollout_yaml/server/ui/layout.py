"""The frame every page shares: navigation, the CSRF token of its forms, the theme, and the
framing rule of its side (operator pages never framed, the portal framed as configured)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.responses import HTMLResponse

from rollout_yaml import __version__
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.ui.csrf import csrf_token
from rollout_yaml.server.ui.render import Pages
from rollout_yaml.server.ui.session import Session

STATIC = "/ui/static"
OPERATOR_NAV = (
    ("/ui/runs", "Runs"),
    ("/ui/automations", "Automations"),
    ("/ui/consumers", "Consumers"),
    ("/ui/status", "Status"),
)
PORTAL_NAV = (
    ("/ui/embed", "Integrations"),
    ("/ui/embed/runs", "Runs"),
    ("/ui/embed/credentials", "Connections"),
)


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    label: str
    current: bool


class Layout:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pages = Pages()

    def _nav(self, items: tuple[tuple[str, str], ...], current: str | None) -> list[NavItem]:
        return [NavItem(href, label, href == current) for href, label in items]

    def _common(self, title: str, session: Session | None) -> dict[str, Any]:
        auth = self.runtime.config.current.settings.auth
        return {
            "title": title,
            "static": f"{STATIC}/{__version__}",
            "csrf": csrf_token(session, auth) if session is not None else "",
            "kind": session.kind if session is not None else "",
            "theme": "",
            "refresh": None,
            "flash": None,
            "nav": [],
        }

    def operator(
        self,
        template: str,
        title: str,
        session: Session | None,
        context: Mapping[str, Any],
        *,
        current: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        values = {
            **self._common(title, session),
            "brand": f"rollout-yaml · {self.runtime.config.current.name}",
            "nav": self._nav(OPERATOR_NAV, current) if session is not None else [],
            "base": "/ui",
            **context,
        }
        return self.pages.response(template, values, status=status)

    def portal(
        self,
        template: str,
        title: str,
        session: Session | None,
        context: Mapping[str, Any],
        *,
        current: str | None = None,
        status: int = 200,
        theme: str | None = None,
    ) -> HTMLResponse:
        env = self.runtime.config.current
        values = {
            **self._common(title, session),
            "brand": "Integrations",
            "nav": self._nav(PORTAL_NAV, current) if session is not None else [],
            "base": "/ui/embed",
            "theme": theme if theme is not None else (session.theme if session else ""),
            **context,
        }
        ancestors = env.settings.server.ui.frame_ancestors
        return self.pages.response(
            template, values, status=status, frame_ancestors=ancestors, framed=True
        )

    def message(
        self,
        session: Session | None,
        heading: str,
        message: str,
        *,
        portal: bool,
        status: int = 200,
        link: tuple[str, str] | None = None,
    ) -> HTMLResponse:
        """A page that says one thing (a refusal, a missing run), on the side it belongs to."""
        context = {
            "heading": heading,
            "message": message,
            "bad": status >= 400,
            "link": {"href": link[0], "label": link[1]} if link else None,
        }
        show = self.portal if portal else self.operator
        return show("message.html", heading, session, context, status=status)

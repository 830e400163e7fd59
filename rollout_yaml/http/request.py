"""Builds the concrete HTTP request an action, a poll or a subscription sends.

The host of a request is always the host of the connector's `base_url`: a path can add
segments, never change the scheme, host or port (no absolute URL, no `..`, no `@`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from rollout_yaml import json_codec
from rollout_yaml.expr.compiled import CompiledApp, CompiledRequest
from rollout_yaml.expr.templates import Template
from rollout_yaml.expr.values import render_tree

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class RequestBuildError(ValueError):
    """The request cannot be built (a template failed, or the URL would leave the App)."""


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    url: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    json_body: Any = None
    form: dict[str, Any] | None = None
    body: str | None = None
    timeout: float = 30.0
    has_json: bool = field(default=False)

    def content(self) -> bytes | None:
        if self.has_json:
            return json_codec.dumps(self.json_body)  # always JSON: NaN is sent as null
        if self.form is not None:
            return urlencode(_form_pairs(self.form)).encode()
        if self.body is not None:
            return self.body.encode()
        return None

    def full_url(self) -> str:
        """`url` with `query` appended (a next-page URL may already carry a query of its own,
        which is kept byte for byte)."""
        if not self.query:
            return self.url
        return self.url + ("&" if "?" in self.url else "?") + urlencode(self.query)


def _form_pairs(form: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested form fields the way Stripe and Rails read them: `metadata[order_id]=1`."""
    pairs: list[tuple[str, str]] = []
    for key, value in form.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs.extend(_form_pairs(value, name))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    pairs.extend(_form_pairs(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", scalar(item)))
        elif value is not None:
            pairs.append((name, scalar(value)))
    return pairs


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def request_context(
    app: CompiledApp,
    *,
    input: Any,
    credential: Mapping[str, Any],
    cursor: Any = None,
    page: int | None = None,
    run: Mapping[str, Any] | None = None,
    webhook_url: str | None = None,
    subscription: Mapping[str, Any] | None = None,
    app_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What every connector template sees (a request, a verify secret, auth headers), built
    here only: `input`, `credential`, `app`, `cursor`, `page`, `run`, `webhook`, `subscription`
    (expr/context.py's CONNECTOR_NAMES)."""
    return {
        "input": input,
        "credential": dict(credential),
        "app": dict(app_values) if app_values is not None else app_context(app),
        "cursor": cursor,
        "page": page,
        "run": dict(run) if run is not None else {"id": None, "attempt": 1},
        "webhook": {"url": webhook_url},
        "subscription": dict(subscription or {}),
    }


def app_context(app: CompiledApp) -> dict[str, Any]:
    """What connector templates see as `app`: the environment's settings for this App."""
    settings = app.settings
    return {
        "key": app.key,
        "vars": dict(settings.vars),
        "webhook_secret": settings.webhook_secret,
        "base_url": settings.base_url,
    }


def _render(value: Template | str | None, context: Mapping[str, Any], what: str) -> Any:
    if value is None:
        return None
    try:
        return value.render(context) if isinstance(value, Template) else value
    except ValueError as exc:
        raise RequestBuildError(f"{what}: {exc}") from exc


def render_tree_part(tree: Any, context: Mapping[str, Any], what: str) -> Any:
    """Render a request part. A key whose value renders to null is left out everywhere, so an
    optional input that was not given is absent from the request rather than sent as null
    (which many APIs read as "clear this field")."""
    try:
        return render_tree(tree, context, drop_null=True)
    except ValueError as exc:
        raise RequestBuildError(f"{what}: {exc}") from exc


def base_url(app: CompiledApp, context: Mapping[str, Any]) -> str:
    override = app.settings.base_url
    return str(override if override else _render(app.base_url, context, "base_url"))


def join_url(base: str, path: str) -> str:
    """Join a rendered path to the base URL, refusing anything that could change the host."""
    base_parts = urlsplit(base)
    if base_parts.scheme not in ("http", "https") or not base_parts.netloc:
        raise RequestBuildError(f"base_url {base!r} is not an absolute http(s) URL")
    if "@" in base_parts.netloc or base_parts.fragment:
        # `https://api.example.com@127.0.0.1` names 127.0.0.1 (the part before `@` is a user
        # name) and a `#` drops what follows; template values cannot add them (each `{{ }}` of
        # a base_url is percent-encoded), an override or a literal could.
        raise RequestBuildError(f"base_url {base!r} may not hold `@` (user info) or `#`")
    if "://" in path or path.startswith("//") or "\\" in path or "@" in path or _SCHEME.match(path):
        raise RequestBuildError(f"path {path!r} may not be a URL or contain `@` or `\\`")
    path_only = path.split("?", 1)[0]
    for segment in path_only.split("/"):
        if unquote(unquote(segment)) in (".", ".."):
            raise RequestBuildError(f"path {path!r} may not contain `.` or `..` segments")
    url = base.rstrip("/") + ("/" + path.lstrip("/") if path else "")
    parts = urlsplit(url)
    if (parts.scheme, parts.netloc) != (base_parts.scheme, base_parts.netloc):
        raise RequestBuildError(f"path {path!r} would change the host of {base!r}")
    return url


def build_request(
    app: CompiledApp, request: CompiledRequest, context: Mapping[str, Any]
) -> PreparedRequest:
    """Render `request` against `context` (`request_context`), unsigned: the credential is
    applied by the App's auth flow (http/auth.py) when the request is sent."""
    base = base_url(app, context)
    path = str(_render(request.path, context, "path") or "")
    url = join_url(base, path)
    headers = {
        k: str(v)
        for k, v in (
            render_tree_part(app.default_headers, context, "defaults.headers") or {}
        ).items()
    }
    headers.update(
        {
            k: str(v)
            for k, v in (render_tree_part(request.headers, context, "headers") or {}).items()
        }
    )
    query_values: dict[str, Any] = {}
    query_values.update(render_tree_part(app.default_query, context, "defaults.query") or {})
    query_values.update(render_tree_part(request.query, context, "query") or {})
    query: list[tuple[str, str]] = []
    for key, value in query_values.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                query.append((key, scalar(item)))
    json_body = form = body = None
    has_json = request.json_body is not None
    if has_json:
        json_body = render_tree_part(request.json_body, context, "json")
        headers.setdefault("Content-Type", "application/json")
    elif request.form is not None:
        form = render_tree_part(request.form, context, "form")
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif request.body is not None:
        body = str(_render(request.body, context, "body"))
    return PreparedRequest(
        method=request.method,
        url=url,
        path=path,
        query=query,
        headers=headers,
        json_body=json_body,
        form=form,
        body=body,
        timeout=request.timeout,
        has_json=has_json,
    )

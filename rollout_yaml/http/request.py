"""Builds the concrete HTTP request an action, a poll or a subscription sends.

The host of a request is always the host of the connector's `base_url`: a path can add
segments, never change the scheme, host or port (no absolute URL, no `..`, no `@`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

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
            return json.dumps(self.json_body, separators=(",", ":"), ensure_ascii=False).encode()
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
                    pairs.append((f"{name}[{index}]", _scalar(item)))
        elif value is not None:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def _render_tree(tree: Any, context: Mapping[str, Any], what: str) -> Any:
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


def auth_headers_and_query(
    app: CompiledApp, context: Mapping[str, Any], credential: Mapping[str, Any] | None
) -> tuple[dict[str, str], dict[str, Any]]:
    auth = app.connector.auth
    cred = credential or {}
    if auth.type == "api_key":
        headers = _render_tree(app.auth_headers, context, "auth headers") or {}
        query = _render_tree(app.auth_query, context, "auth query") or {}
        return {k: str(v) for k, v in headers.items()}, query
    if auth.type == "bearer":
        return {"Authorization": f"Bearer {cred.get('token', '')}"}, {}
    if auth.type == "oauth2":
        return {"Authorization": f"Bearer {cred.get('access_token', '')}"}, {}
    if auth.type == "basic":
        raw = f"{cred.get('username', '')}:{cred.get('password', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}, {}
    return {}, {}


def build_request(
    app: CompiledApp,
    request: CompiledRequest,
    context: Mapping[str, Any],
    credential: Mapping[str, Any] | None,
) -> PreparedRequest:
    """Render `request` against `context` (input, credential, app, cursor, page, run, …)."""
    base = base_url(app, context)
    path = str(_render(request.path, context, "path") or "")
    url = join_url(base, path)
    headers = {
        k: str(v)
        for k, v in (_render_tree(app.default_headers, context, "defaults.headers") or {}).items()
    }
    headers.update(
        {k: str(v) for k, v in (_render_tree(request.headers, context, "headers") or {}).items()}
    )
    auth_headers, auth_query = auth_headers_and_query(app, context, credential)
    headers.update(auth_headers)
    query_values: dict[str, Any] = {}
    query_values.update(_render_tree(app.default_query, context, "defaults.query") or {})
    query_values.update(_render_tree(request.query, context, "query") or {})
    query_values.update(auth_query)
    query: list[tuple[str, str]] = []
    for key, value in query_values.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                query.append((key, _scalar(item)))
    json_body = form = body = None
    has_json = request.json_body is not None
    if has_json:
        json_body = _render_tree(request.json_body, context, "json")
        headers.setdefault("Content-Type", "application/json")
    elif request.form is not None:
        form = _render_tree(request.form, context, "form")
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

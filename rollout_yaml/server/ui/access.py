"""Sign-in state of a page request: the session cookies, where a form may send you next, and
the checks every form post passes (size, encoding, origin, CSRF token).

Cookie attributes, and why:
- Both cookies are HttpOnly (no script reads them) and scoped to `/ui`; `Secure` whenever the
  page is served over HTTPS (directly, or behind a proxy that says so, or a `public_url`
  starting with https).
- The operator cookie is `SameSite=Lax`: a link from a chat message to a run opens signed in,
  while no other site's form post carries it.
- The portal cookie is the same while `server.ui.frame_ancestors` is empty. Once partners may
  frame the portal, their page is usually another site, and a browser sends a Lax cookie to a
  cross-site iframe never; so it becomes `SameSite=None; Secure; Partitioned`: sent inside the
  frame, kept by the browser per top-level site (CHIPS), so the session made inside partner A's
  page exists only there. Forgery is still stopped by the CSRF token and `Sec-Fetch-Site`.
  `Secure` needs HTTPS, which browsers waive only for localhost.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from starlette.responses import Response

from rollout_yaml.config.models.environment import EnvironmentSettings
from rollout_yaml.server.body import read_limited
from rollout_yaml.server.ui.csrf import FIELD, csrf_matches, from_another_site
from rollout_yaml.server.ui.session import (
    CONSUMER_COOKIE,
    COOKIE_PATH,
    OPERATOR_COOKIE,
    Kind,
    Session,
    seal,
    unseal,
)

MAX_FORM_FIELDS = 500


class FormRefused(Exception):
    """A form post that is not handled at all (no valid session, forged, malformed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def cookie_name(kind: Kind) -> str:
    return OPERATOR_COOKIE if kind == "operator" else CONSUMER_COOKIE


def session_of(request: Request, kind: Kind, settings: EnvironmentSettings) -> Session | None:
    return unseal(request.cookies.get(cookie_name(kind)), kind, settings.auth)


def served_over_https(request: Request, settings: EnvironmentSettings) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    public = (settings.server.public_url or "").lower()
    return request.url.scheme == "https" or forwarded == "https" or public.startswith("https:")


def cookie_header(
    kind: Kind, value: str, max_age: int, request: Request, settings: EnvironmentSettings
) -> str:
    """The Set-Cookie value for a session (see the module's docstring for the attributes)."""
    parts = [f"{cookie_name(kind)}={value}", f"Path={COOKIE_PATH}", f"Max-Age={max_age}"]
    parts.append("HttpOnly")
    if kind == "consumer" and settings.server.ui.frame_ancestors:
        parts += ["Secure", "SameSite=None", "Partitioned"]
    else:
        if served_over_https(request, settings):
            parts.append("Secure")
        parts.append("SameSite=Lax")
    return "; ".join(parts)


def set_session(
    response: Response,
    session: Session,
    now: float,
    request: Request,
    settings: EnvironmentSettings,
) -> None:
    max_age = max(int(session.expires_at - now), 1)
    value = seal(session, settings.auth)
    response.headers.append(
        "set-cookie", cookie_header(session.kind, value, max_age, request, settings)
    )


def clear_session(
    response: Response, kind: Kind, request: Request, settings: EnvironmentSettings
) -> None:
    response.headers.append("set-cookie", cookie_header(kind, "", 0, request, settings))


def local_next(target: str | None, default: str) -> str:
    """`target` when it is a page of this UI (never another host: no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return default
    if parts.path != "/ui" and not parts.path.startswith("/ui/"):
        return default
    if target.startswith("//") or any(ord(c) < 32 for c in target):
        return default
    return target


async def read_form(request: Request, settings: EnvironmentSettings) -> dict[str, list[str]]:
    """An url-encoded form body, within the payload limit."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormRefused(415, "this page takes url-encoded form posts")
    raw = await read_limited(request, settings.runtime.limits.max_payload_bytes)
    try:
        text = raw.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormRefused(400, "the form could not be read") from exc


def first(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[-1] if values else ""


async def checked_form(
    request: Request, session: Session | None, settings: EnvironmentSettings
) -> dict[str, list[str]]:
    """The form of a post made by a signed-in page of this site, or FormRefused."""
    if session is None:
        raise FormRefused(401, "you are not signed in (or your session ended); sign in again")
    if from_another_site(request.headers.get("sec-fetch-site")):
        raise FormRefused(403, "this form was posted from another site")
    form = await read_form(request, settings)
    if not csrf_matches(session, settings.auth, first(form, FIELD)):
        raise FormRefused(403, "this form has expired (its CSRF token does not match); reload it")
    return form

"""The security headers of every page: a strict Content-Security-Policy and framing rules.

Scripts and styles come only from the package's own `/ui/static` (no inline script, no inline
style, nothing from another host); forms post only to this server. The operator pages may be
framed by nobody; the consumer portal by the origins in `server.ui.frame_ancestors` (nobody
when that is empty).
"""

from __future__ import annotations

from collections.abc import Sequence

_POLICY = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
)


def content_security_policy(frame_ancestors: Sequence[str] = ()) -> str:
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    return "; ".join((*_POLICY, f"frame-ancestors {ancestors}"))


def page_headers(frame_ancestors: Sequence[str] = (), *, framed: bool = False) -> dict[str, str]:
    """Headers of one page; `framed` pages (the portal) may sit in the listed ancestors."""
    allowed = tuple(frame_ancestors) if framed else ()
    headers = {
        "Content-Security-Policy": content_security_policy(allowed),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    if not allowed:
        headers["X-Frame-Options"] = "DENY"
    if not framed:
        # The portal opens an App's consent page as a popup and hears back from it; only the
        # operator pages can cut every tie to other windows.
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
    return headers

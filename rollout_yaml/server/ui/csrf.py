"""Cross-site request forgery: every form carries a token only the signed-in page knows.

The token is an HMAC of the session's nonce, so it changes with every sign-in and never shows
in the cookie. Browsers also say where a request comes from (`Sec-Fetch-Site`); a form post
from another site is refused before its token is even looked at (the portal's forms are posted
from inside its own frame, which is same-origin even when the frame sits on a partner's page).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from rollout_yaml.config.models.environment import AuthSettings
from rollout_yaml.server.ui.session import Session, signing_key

FIELD = "csrf"


def csrf_token(session: Session, auth: AuthSettings) -> str:
    key = signing_key(session.kind, auth) or b""
    digest = hmac.new(key, f"csrf {session.nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_matches(session: Session, auth: AuthSettings, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session, auth), given or "")


def from_another_site(sec_fetch_site: str | None) -> bool:
    """True when the browser says the request was started by a page of another site."""
    return (sec_fetch_site or "").lower() == "cross-site"

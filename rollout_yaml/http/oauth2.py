"""The OAuth 2.0 client side (RFC 6749, PKCE RFC 7636): authorize URLs, token requests and
token responses, with oauthlib's parameter handling.

Token requests are `PreparedRequest`s sent through the App's `AppClients` like any other
request, so they obey the same timeouts, size limit and egress rules. oauthlib refuses plain
http URLs through a process-wide environment variable; the few calls used here do not check the
transport, and the connector's `token_url` is the partner's to choose.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from oauthlib.common import add_params_to_uri
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from oauthlib.oauth2.rfc6749.parameters import parse_token_response, prepare_token_request

from rollout_yaml.config.models.connector import OAuth2Auth
from rollout_yaml.http.client import HttpAnswer
from rollout_yaml.http.request import PreparedRequest

TIMEOUT = 30.0
VERIFIER_LENGTH = 64


class TokenRefused(Exception):
    """The token endpoint refused the grant (400/401): the refresh token or authorization code
    is no longer good, or the client is misconfigured. Asking again will not help."""

    def __init__(self, status: int, error: str, description: str | None) -> None:
        detail = f"{error}: {description}" if description else error
        super().__init__(f"the token endpoint refused ({status}): {detail}")
        self.status = status
        self.error = error


class TokenError(Exception):
    """The token endpoint gave no usable answer (5xx, 429, not a token): try again later."""


@dataclass(frozen=True, slots=True)
class Client:
    """This environment's OAuth client at the App (`apps.<app>.oauth`)."""

    client_id: str
    client_secret: str


def new_verifier() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge."""
    helper = WebApplicationClient("")
    verifier = helper.create_code_verifier(VERIFIER_LENGTH)
    return verifier, helper.create_code_challenge(verifier, "S256")


def authorize_url(
    auth: OAuth2Auth, client: Client, redirect_uri: str, state: str, challenge: str
) -> str:
    assert auth.authorize_url is not None
    params: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", client.client_id),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    if auth.scopes:
        params.append(("scope", auth.scope_separator.join(auth.scopes)))
    params.extend(auth.authorize_params.items())
    return str(add_params_to_uri(auth.authorize_url, params))


def _token_request(auth: OAuth2Auth, client: Client, grant: str, **params: Any) -> PreparedRequest:
    """A form POST to `token_url`; the client authenticates in the body or with Basic auth
    (`token_auth`)."""
    in_body = auth.token_auth == "body"
    if in_body:
        params["client_secret"] = client.client_secret
    body = prepare_token_request(
        grant, include_client_id=in_body, client_id=client.client_id, **params
    )
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if not in_body:
        # RFC 6749 2.3.1: both parts form-encoded before they are joined
        pair = (
            urlencode({"": client.client_id})[1:] + ":" + urlencode({"": client.client_secret})[1:]
        )
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return PreparedRequest(
        method="POST",
        url=auth.token_url,
        path="",
        query=[],
        headers=headers,
        body=body,
        timeout=TIMEOUT,
    )


def code_request(
    auth: OAuth2Auth, client: Client, code: str, redirect_uri: str, verifier: str
) -> PreparedRequest:
    return _token_request(
        auth,
        client,
        "authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )


def refresh_request(auth: OAuth2Auth, client: Client, refresh_token: str) -> PreparedRequest:
    return _token_request(auth, client, "refresh_token", refresh_token=refresh_token)


def client_credentials_request(auth: OAuth2Auth, client: Client) -> PreparedRequest:
    scope = auth.scope_separator.join(auth.scopes) if auth.scopes else None
    return _token_request(auth, client, "client_credentials", scope=scope)


def read_token(answer: HttpAnswer, now: float | None = None) -> dict[str, Any]:
    """The token fields of a token endpoint's answer, `expires_in` turned into `expires_at`
    (epoch seconds). TokenRefused on 400/401, TokenError on anything else unusable."""
    text = answer.body.decode("utf-8", errors="replace")
    if answer.status in (400, 401):
        error, description = _error_of(text)
        raise TokenRefused(answer.status, error, description)
    if answer.status != 200:
        raise TokenError(f"the token endpoint answered {answer.status}")
    try:
        token = dict(parse_token_response(text))
    except OAuth2Error as exc:
        if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
            raise TokenRefused(answer.status, exc.error, exc.description) from exc
        raise TokenError(f"the token endpoint answered an error: {exc.error}") from exc
    except (ValueError, TypeError) as exc:
        raise TokenError("the token endpoint's answer is not a token") from exc
    expires_in = token.pop("expires_in", None)
    token.pop("expires_at", None)
    if isinstance(expires_in, int | float):
        token["expires_at"] = (time.time() if now is None else now) + float(expires_in)
    scope = token.get("scope")
    if isinstance(scope, list):
        token["scope"] = " ".join(str(s) for s in scope)
    return token


def _error_of(text: str) -> tuple[str, str | None]:
    try:
        data = json.loads(text)
    except ValueError:
        return "refused", None
    if not isinstance(data, dict):
        return "refused", None
    description = data.get("error_description")
    return str(data.get("error") or "refused"), None if description is None else str(description)

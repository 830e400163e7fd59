"""The OAuth2 authorization-code connect flow: `GET /v1/connect/{app}` sends the consumer's
browser to the App's authorize URL; the App sends it back to `GET /oauth/callback`, where the
code is exchanged and the tokens are stored encrypted.

The `state` carried through the browser is a Fernet token (encrypted and authenticated with a
key derived from `encryption_key`) holding the consumer, the App, the credential key, where to
send the browser afterwards, the redirect URI and the PKCE verifier. It expires after
`STATE_TTL`, and its nonce is recorded in the database when it is used, so a callback cannot be
replayed, on this replica or another one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import InvalidToken

from rollout_yaml.config.models.consumer import Credential
from rollout_yaml.engine.cipher import EncryptionKeyError
from rollout_yaml.engine.credentials import (
    CredentialRejected,
    Credentials,
    CredentialUnavailable,
    Declared,
    declared,
    oauth_client,
)
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.http import oauth2

STATE_TTL = 600


class StateRejected(Exception):
    """The callback's `state` is missing, forged, expired or already used."""


class ConnectFailed(Exception):
    """The App refused the authorization or the code exchange (shown to the user)."""

    def __init__(self, pending: Pending, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.pending = pending
        self.error = error


@dataclass(frozen=True, slots=True)
class Pending:
    """What a `state` says: which credential a callback completes."""

    nonce: str
    consumer: str
    app: str
    credential: str
    redirect: str | None
    redirect_uri: str
    verifier: str
    issued_at: float
    runtime: bool = False
    """The credential is declared in no consumer file (created or connected at run time)."""


def _connectable(target: Declared) -> Declared:
    if not target.credential.stored:
        raise CredentialRejected(
            f"credential `{target.key}` is given by `values:`; declare it `stored: true` to "
            "connect it"
        )
    if target.oauth is None or target.oauth.grant != "authorization_code":
        raise CredentialRejected(
            f"app `{target.app.key}` does not use OAuth2 authorization_code; set its "
            "credential through POST /v1/credentials instead"
        )
    return target


async def _target(
    credentials: Credentials,
    env: CompiledEnvironment,
    consumer: str,
    app: str,
    credential: str | None,
) -> Declared:
    """The consumer's OAuth2 credential `credential` of `app`: declared `stored: true` in its
    consumer file, or stored at run time by an earlier connect flow (connected again). Without
    `credential`, a new one with a key made up here: stored when the flow finishes."""
    found = env.apps.get(app)
    if found is None:
        raise CredentialRejected(f"no app `{app}` in this environment", not_found=True)
    if credential is None:
        target = Declared(
            consumer,
            await credentials.new_key(consumer, app),
            Credential.model_construct(app=app, values=None, stored=True),
            found,
            runtime=True,
        )
        return _connectable(target)
    resolved = await credentials.target(env, consumer, credential)
    if resolved is None or resolved.credential.app != app:
        raise CredentialRejected(
            f"credential `{credential}` of app `{app}` is neither declared nor stored for "
            f"`{consumer}`; leave `credential` out to connect a new one",
            not_found=True,
        )
    return _connectable(resolved)


def _pending_target(env: CompiledEnvironment, pending: Pending) -> Declared:
    """The credential a callback completes: as `start` resolved it (the state says whether
    it was declared in the consumer file; one created at run time is of the state's App)."""
    target = declared(env, pending.consumer, pending.credential)
    if target is None and pending.runtime and pending.app in env.apps:
        credential = Credential.model_construct(app=pending.app, values=None, stored=True)
        target = Declared(
            pending.consumer, pending.credential, credential, env.apps[pending.app], runtime=True
        )
    if target is None or target.credential.app != pending.app:
        raise CredentialRejected(
            f"credential `{pending.credential}` of app `{pending.app}` is no longer declared "
            f"for `{pending.consumer}`",
            not_found=True,
        )
    return _connectable(target)


def _check_redirect(redirect: str | None) -> None:
    if redirect is None:
        return
    parts = urlsplit(redirect)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CredentialRejected("`redirect` must be an absolute http(s) URL")


class ConnectFlow:
    def __init__(self, credentials: Credentials, clock: Callable[[], float] | None = None) -> None:
        self.credentials = credentials
        self.clock = clock or credentials.clock

    async def start(
        self,
        env: CompiledEnvironment,
        consumer: str,
        app: str,
        credential: str | None,
        redirect: str | None,
        callback_url: str,
    ) -> tuple[str, str]:
        """The App's authorize URL to send the consumer's browser to, and the key of the
        credential it connects (made up when `credential` is None)."""
        target = await _target(self.credentials, env, consumer, app, credential)
        assert target.oauth is not None
        _check_redirect(redirect)
        try:
            client = oauth_client(target, {})
            box = self.credentials.cipher(env).state_box()
        except (CredentialUnavailable, EncryptionKeyError) as exc:
            raise CredentialRejected(str(exc)) from exc
        verifier, challenge = oauth2.new_verifier()
        now = self.clock()
        sealed = {
            "n": secrets.token_urlsafe(24),
            "c": consumer,
            "a": app,
            "k": target.key,
            "r": redirect,
            "u": callback_url,
            "v": verifier,
            "t": now,
            "x": target.runtime,
        }
        state = box.encrypt_at_time(json.dumps(sealed).encode(), int(now)).decode()
        url = oauth2.authorize_url(target.oauth, client, callback_url, state, challenge)
        return url, target.key

    def open_state(self, env: CompiledEnvironment, state: str | None) -> Pending:
        """What a `state` says, if this environment sealed it less than STATE_TTL ago."""
        if not state:
            raise StateRejected("the callback has no `state`")
        try:
            box = self.credentials.cipher(env).state_box()
            raw = box.decrypt_at_time(state.encode(), STATE_TTL, int(self.clock()))
            data: dict[str, Any] = json.loads(raw)
            return Pending(
                nonce=str(data["n"]),
                consumer=str(data["c"]),
                app=str(data["a"]),
                credential=str(data["k"]),
                redirect=data["r"],
                redirect_uri=str(data["u"]),
                verifier=str(data["v"]),
                issued_at=float(data["t"]),
                runtime=bool(data.get("x", False)),
            )
        except (InvalidToken, EncryptionKeyError, ValueError, KeyError, TypeError) as exc:
            raise StateRejected(
                "the `state` is not one this environment issued, or it expired "
                f"(a connect flow must finish within {STATE_TTL // 60} minutes)"
            ) from exc

    async def finish(
        self,
        env: CompiledEnvironment,
        state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> Pending:
        """Check the state (once), exchange the code and store the tokens."""
        pending = self.open_state(env, state)
        store = self.credentials.store
        if not await store.use_oauth_state(
            pending.nonce, self.clock(), pending.issued_at + STATE_TTL
        ):
            raise StateRejected("this `state` was already used; start the connect flow again")
        if error:
            raise ConnectFailed(pending, error, error_description)
        if not code:
            raise ConnectFailed(pending, "invalid_request", "the callback has no `code`")
        try:
            target = _pending_target(env, pending)
            client = oauth_client(target, {})
        except (CredentialRejected, CredentialUnavailable) as exc:
            raise ConnectFailed(pending, "not_connectable", str(exc)) from exc
        if target.runtime:  # its key must still be free, or this App's
            taken = await store.get_credential(pending.consumer, pending.credential)
            if taken is not None and taken.app != pending.app:
                message = f"credential `{pending.credential}` now belongs to app `{taken.app}`"
                raise ConnectFailed(pending, "not_connectable", message)
        assert target.oauth is not None
        request = oauth2.code_request(
            target.oauth, client, code, pending.redirect_uri, pending.verifier
        )
        try:
            token = await self.credentials.fetch_token(target, request, "authorization_code")
        except oauth2.TokenRefused as exc:
            raise ConnectFailed(pending, exc.error, str(exc)) from exc
        except CredentialUnavailable as exc:
            raise ConnectFailed(pending, "token_endpoint_unavailable", str(exc)) from exc
        await self.credentials.save_token(env, target, token)
        return pending

"""A real OAuth 2.0 authorization server for tests: Authlib's AuthorizationServer in a small
Flask app on 127.0.0.1, with an API behind Authlib's ResourceProtector standing in for the App.

Grants: authorization_code (PKCE S256 required), refresh_token (rotating: a refresh token works
once) and client_credentials. The consent screen approves at once (or denies, when told to).
Every token request is counted by grant type, so a test can assert how many refreshes the
runner made; tokens can be expired or revoked from the test.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

CLIENT_ID = "rollout-test-client"
CLIENT_SECRET = "provider-client-secret-9f8e7d6c"


@dataclass
class User:
    id: int

    def get_user_id(self) -> int:
        return self.id


@dataclass
class Client:
    client_id: str
    client_secret: str
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials")

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri.startswith("http://127.0.0.1:")

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: int
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token:
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    user_id: int | None
    issued_at: float
    expires_in: int
    revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> User | None:
        return None if self.user_id is None else User(self.user_id)


@dataclass
class ApiCall:
    path: str
    token: str
    body: Any


@dataclass
class Provider:
    expires_in: int = 3600
    deny: bool = False
    clients: dict[str, Client] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    by_refresh: dict[str, Token] = field(default_factory=dict)
    grants: Counter[str] = field(default_factory=Counter)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    api_calls: list[ApiCall] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    """The token of each `GET /api/contacts` (a poll's page) that got through."""
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.clients[CLIENT_ID] = Client(CLIENT_ID, CLIENT_SECRET)
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Provider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests change -------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.issued_at -= token.expires_in + 1

    def revoke_access_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.revoked = True

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            for token in self.by_refresh.values():
                token.refresh_revoked = True

    def live_access_tokens(self) -> set[str]:
        with self.lock:
            return {
                t.access_token for t in self.tokens.values() if not t.revoked and not t.is_expired()
            }

    # -- the Flask app -----------------------------------------------------------------------

    def _build(self) -> Flask:
        provider = self
        app = Flask("oauth-provider")

        def query_client(client_id: str) -> Client | None:
            return provider.clients.get(client_id)

        def save_token(token: dict[str, Any], req: Any) -> None:
            user = req.user
            saved = Token(
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                client_id=req.client.client_id,
                scope=token.get("scope", ""),
                user_id=user.id if user is not None else None,
                issued_at=time.time(),
                expires_in=int(token["expires_in"]),
            )
            with provider.lock:
                provider.tokens[saved.access_token] = saved
                if saved.refresh_token:
                    provider.by_refresh[saved.refresh_token] = saved

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: secrets.token_urlsafe(32),
                lambda **_: secrets.token_urlsafe(40),
                lambda client, grant_type: provider.expires_in,
            ),
        )

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, req: Any) -> None:
                data = req.payload.data
                with provider.lock:
                    provider.codes[code] = AuthorizationCode(
                        code=code,
                        client_id=req.client.client_id,
                        redirect_uri=req.payload.redirect_uri,
                        scope=req.payload.scope or "",
                        user_id=req.user.id,
                        code_challenge=data.get("code_challenge"),
                        code_challenge_method=data.get("code_challenge_method"),
                    )

            def query_authorization_code(self, code: str, client: Client) -> Any:
                with provider.lock:
                    found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
                with provider.lock:
                    provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
                return User(authorization_code.user_id)

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
            INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token works once

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                with provider.lock:
                    found = provider.by_refresh.get(refresh_token)
                return found if found is not None and not found.refresh_revoked else None

            def authenticate_user(self, credential: Token) -> User | None:
                return credential.get_user()

            def revoke_old_credential(self, credential: Token) -> None:
                with provider.lock:
                    credential.refresh_revoked = True
                    credential.revoked = True

        class ClientCredentialsGrant(grants.ClientCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        server.register_grant(CodeGrant, [CodeChallenge(required=True)])
        server.register_grant(RefreshGrant)
        server.register_grant(ClientCredentialsGrant)

        class Validator(BearerTokenValidator):
            def authenticate_token(self, token_string: str) -> Token | None:
                with provider.lock:
                    return provider.tokens.get(token_string)

        protect = ResourceProtector()
        protect.register_token_validator(Validator())

        @app.get("/oauth/authorize")
        def authorize() -> Any:
            # the consent page: the user approves at once, or denies when the test says so
            user = User(1)
            try:
                grant = server.get_consent_grant(end_user=user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            return server.create_authorization_response(
                grant=grant, grant_user=None if provider.deny else user
            )

        @app.post("/oauth/token")
        def issue_token() -> Any:
            with provider.lock:
                provider.grants[request.form.get("grant_type", "")] += 1
                provider.token_requests.append(
                    {"form": dict(request.form), "authorization": request.authorization}
                )
            return server.create_token_response()

        @app.get("/api/contacts")
        @protect()
        def list_contacts() -> Any:
            token = request.headers["Authorization"].split(" ", 1)[1]
            with provider.lock:
                provider.listed.append(token)
                made = [call.body or {} for call in provider.api_calls]
            contacts = [{"id": f"c{i + 1}", "email": b.get("email")} for i, b in enumerate(made)]
            return jsonify({"results": contacts})

        @app.post("/api/contacts")
        @protect()
        def create_contact() -> Any:
            token = request.headers["Authorization"].split(" ", 1)[1]
            body = request.get_json(silent=True)
            with provider.lock:
                provider.api_calls.append(ApiCall("/api/contacts", token, body))
            return jsonify(
                {"id": f"c{len(provider.api_calls)}", "email": (body or {}).get("email")}
            )

        return app

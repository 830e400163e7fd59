"""A credential's auth material, wherever it lives: in the consumer file (`values:`) or in the
database (`stored: true`, encrypted), with OAuth2 tokens kept fresh.

Everything that sends a request for a consumer (actions, polls, webhook subscriptions) goes
through engine/outbound.py, which asks `values()` before building it and, when the App's auth
flow meets a 401, `renew_after_401()` once before sending it again. OAuth2 tokens are
refreshed when they expire within `REFRESH_MARGIN`, one refresh at a time per credential: an
asyncio lock within the process and a store lease across replicas, then the row is read
again, so a caller that waited uses the token another one just stored instead of refreshing
it a second time. A refresh the provider refuses (400/401) marks the credential
`needs_reauth`: runs then fail with that reason until it is connected again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from rollout_yaml.config.models.connector import OAuth2Auth
from rollout_yaml.config.models.consumer import Credential
from rollout_yaml.config.references import required_fields
from rollout_yaml.config.suggest import did_you_mean
from rollout_yaml.config.types import KEY_PATTERN
from rollout_yaml.engine.cipher import CredentialCipher, EncryptionKeyError
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.notifications import Notifications
from rollout_yaml.engine.token_credentials import TokenCredentialMissing, TokenCredentials
from rollout_yaml.expr.compiled import CompiledApp, CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.schemas import Schema
from rollout_yaml.http import oauth2
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.errors import SendError
from rollout_yaml.http.request import PreparedRequest
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import CredentialStatus, StoredCredential

log = logging.getLogger("rollout_yaml.credentials")

REFRESH_MARGIN = 60.0
LEASE_TTL = 2 * oauth2.TIMEOUT  # outlives one token request, so no replica refreshes meanwhile
LEASE_WAIT = LEASE_TTL + 5
TOKEN_RESPONSE_BYTES = 1_048_576
KEY_CHARS = 100  # the store's `credentials.key` column


class CredentialUnavailable(Exception):
    """No usable auth material. `retryable`: a passing problem (the token endpoint is down);
    otherwise the run fails with this message (not connected, needs_reauth, bad key)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class CredentialRejected(ValueError):
    """Values that cannot be stored for this credential: the API answers 422 naming `path` (the
    JSON path in the request body) with a `code` and a `help`; 404 when `not_found`, 409 when
    `conflict` (the key is taken by a credential of another App)."""

    def __init__(
        self,
        message: str,
        *,
        not_found: bool = False,
        conflict: bool = False,
        path: str = "$",
        code: str = "invalid_request",
        help: str | None = None,
    ) -> None:
        super().__init__(message)
        self.not_found = not_found
        self.conflict = conflict
        self.path = path
        self.code = code
        self.help = help


@dataclass(frozen=True, slots=True)
class Declared:
    """A credential as the consumer file declares it, or as it was created at run time
    (`runtime`: stored, declared in no file), with its App."""

    consumer: str
    key: str
    credential: Credential
    app: CompiledApp
    runtime: bool = False

    @property
    def oauth(self) -> OAuth2Auth | None:
        auth = self.app.connector.auth
        return auth if isinstance(auth, OAuth2Auth) else None

    @property
    def client_credentials(self) -> bool:
        return self.oauth is not None and self.oauth.grant == "client_credentials"


def declared(env: CompiledEnvironment, consumer: str, key: str) -> Declared | None:
    found = env.consumers.get(consumer)
    credential = found.credentials.get(key) if found else None
    if credential is None or credential.app not in env.apps:
        return None
    return Declared(consumer, key, credential, env.apps[credential.app])


def at_runtime(env: CompiledEnvironment, row: StoredCredential) -> Declared | None:
    """A stored credential no consumer file declares (created over the API or by a connect
    flow), declared by its row; None when its App is no longer in the environment."""
    app = env.apps.get(row.app)
    if app is None:
        return None
    credential = Credential.model_construct(app=row.app, values=None, stored=True)
    return Declared(row.consumer, row.key, credential, app, runtime=True)


def users_of(env: CompiledEnvironment, consumer: str, key: str) -> list[CompiledAutomation]:
    """The automations of `consumer` that use its credential `key` (for their trigger or
    their action), by key. Reads the compiled environment, which holds every automation that
    runs, from consumer files and from the API alike."""
    return sorted(
        (
            automation
            for (owner, _), automation in env.automations.items()
            if owner == consumer
            and key in (automation.trigger_credential, automation.action_credential)
        ),
        key=lambda automation: automation.key,
    )


def in_use(env: CompiledEnvironment, consumer: str, key: str) -> list[CompiledAutomation]:
    """What deleting the stored credential `key` would break: the automations using it when no
    consumer file declares it (a declared one stays declared: deleting only disconnects it)."""
    return [] if declared(env, consumer, key) is not None else users_of(env, consumer, key)


def needs_values(app: CompiledApp) -> bool:
    """Whether credentials of `app` are values a consumer gives (`api_key`, `bearer`,
    `basic`), rather than tokens of a connect flow (OAuth2) or nothing."""
    return app.connector.auth.type in ("api_key", "bearer", "basic")


def check_values(target: Declared, values: Mapping[str, Any]) -> None:
    """CredentialRejected naming the first field of `values` that is unknown, missing or of
    the wrong type (never quoting a value: it may be a secret)."""
    if not values:
        raise CredentialRejected("no values given", path="$.values", code="RY504")
    connector = target.app.connector
    fields = connector.credential_fields()
    if target.oauth is not None:
        fields = {**fields, "client_id": {"type": "string"}, "client_secret": {"type": "string"}}
    for name in values:
        if name not in fields:
            hint = did_you_mean(name, fields, noun="fields")
            raise CredentialRejected(
                f"app `{target.app.key}` credentials have no field `{name}`",
                path=f"$.values.{name}",
                code="RY504",
                help=hint or "fields: " + (", ".join(sorted(fields)) or "(none)"),
            )
    if target.runtime or target.oauth is None:
        for name in sorted(required_fields(connector) - values.keys()):
            raise CredentialRejected(
                f"app `{target.app.key}` credentials need field `{name}`",
                path=f"$.values.{name}",
                code="RY504",
                help=f"add `{name}` to values",
            )
    for name, value in values.items():
        spec = {k: v for k, v in fields[name].items() if k not in ("secret", "optional")}
        wrong = Schema(spec).violations(value) if spec else []
        if wrong:
            expected = spec.get("type")
            what = (
                f"must be of type {expected}"
                if wrong[0].validator == "type"
                else (f"does not match its schema ({wrong[0].validator})")
            )
            raise CredentialRejected(
                f"field `{name}` {what}",
                path=f"$.values.{name}",
                code="invalid_value",
                help=f"see the `{target.app.key}` connector's auth fields",
            )


def secrets_with(secrets: frozenset[str], extra: frozenset[str]) -> frozenset[str]:
    """`secrets` plus the values of `extra` it lacks. The set is returned as is when nothing is
    added, so its redaction pattern (compiled once per set) is reused."""
    added = extra - secrets
    return secrets | added if added else secrets


def oauth_client(target: Declared, values: Mapping[str, Any]) -> oauth2.Client:
    """The OAuth client: the credential's own `client_id`/`client_secret` if it has them,
    else the environment's `apps.<app>.oauth`."""
    settings = target.app.settings.oauth
    client_id = values.get("client_id") or (settings.client_id if settings else None)
    secret = values.get("client_secret") or (settings.client_secret if settings else None)
    if not client_id or not secret:
        raise CredentialUnavailable(
            f"app `{target.app.key}` has no OAuth client: set apps.{target.app.key}.oauth "
            "(client_id, client_secret) in environment.yaml"
        )
    return oauth2.Client(str(client_id), str(secret))


def _expiring(values: Mapping[str, Any], now: float, margin: float = REFRESH_MARGIN) -> bool:
    expires_at = values.get("expires_at")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        return False  # no expiry given: used until the App answers 401
    return float(expires_at) - now <= margin


class Credentials:
    def __init__(
        self,
        store: Store,
        clients: AppClients,
        owner: str,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        self.store = store
        self.notifications = notifications
        self.clients = clients
        self.owner = owner
        self.clock = clock
        self.metrics = metrics
        self.from_tokens = TokenCredentials(clock)
        """`jwt` Apps' credentials: the authData of the consumers' tokens, in memory only."""
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._ciphers: dict[str, CredentialCipher] = {}

    def cipher(self, env: CompiledEnvironment) -> CredentialCipher:
        """The environment's cipher (built once per distinct `encryption_key`)."""
        setting = env.settings.encryption_key or ""
        found = self._ciphers.get(setting)
        if found is None:
            found = CredentialCipher.of(setting)
            self._ciphers = {setting: found}
        return found

    # -- reading -------------------------------------------------------------------------

    async def target(self, env: CompiledEnvironment, consumer: str, key: str) -> Declared | None:
        """The credential `key` of `consumer`: declared in its consumer file, else stored at
        run time; None when it is neither."""
        found = declared(env, consumer, key)
        if found is not None:
            return found
        row = await self.store.get_credential(consumer, key)
        return None if row is None else at_runtime(env, row)

    async def values(
        self, env: CompiledEnvironment, consumer: str, key: str, *, refresh: bool = True
    ) -> dict[str, Any]:
        """The credential's values, as connector templates see them as `credential`.
        `refresh=False` (dry runs) uses stored tokens as they are and sends nothing."""
        target = await self.target(env, consumer, key)
        if target is None:
            raise CredentialUnavailable(
                f"credential `{key}` is neither declared nor stored for `{consumer}`"
            )
        if target.client_credentials:
            return await self._client_credentials_token(env, target, refresh=refresh)
        if target.credential.values is not None:
            return dict(target.credential.values)
        values = await self._read(env, target)
        if refresh and target.oauth is not None and _expiring(values, self.clock()):
            return await self._refresh(env, target, stale=values.get("access_token"))
        return values

    def from_token(self, consumer: str) -> dict[str, Any]:
        """A `jwt` App's credential: the authData of the consumer's latest token."""
        try:
            return self.from_tokens.values(consumer)
        except TokenCredentialMissing as exc:
            raise CredentialUnavailable(str(exc)) from exc

    async def renew_after_401(
        self, env: CompiledEnvironment, consumer: str, key: str, used: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """New values after the App answered 401 to `used`, or None when there is nothing to
        renew (not OAuth2, or tokens given in the consumer file)."""
        target = await self.target(env, consumer, key)
        if target is None or target.oauth is None:
            return None
        if target.client_credentials:
            return await self._client_credentials_token(
                env, target, refresh=True, stale=used.get("access_token")
            )
        if target.credential.values is not None:
            return None
        return await self._refresh(env, target, stale=used.get("access_token"), force=True)

    async def _read(self, env: CompiledEnvironment, target: Declared) -> dict[str, Any]:
        row = await self.store.get_credential(target.consumer, target.key)
        if row is None:
            raise CredentialUnavailable(
                f"credential `{target.key}` is stored but has not been connected yet"
            )
        if row.status is CredentialStatus.NEEDS_REAUTH:
            raise CredentialUnavailable(
                f"credential `{target.key}` needs to be connected again (needs_reauth): "
                f"{row.error or 'the provider refused to refresh it'}"
            )
        try:
            return self.cipher(env).open(target.consumer, target.key, row.ciphertext)
        except EncryptionKeyError as exc:
            raise CredentialUnavailable(str(exc)) from exc

    # -- single flight ---------------------------------------------------------------------

    @asynccontextmanager
    async def _exclusive(self, consumer: str, key: str) -> AsyncIterator[None]:
        """One holder per credential: in this process (a lock), across replicas (a lease)."""
        lock = self._locks.setdefault((consumer, key), asyncio.Lock())
        async with lock:
            name = f"credential:{consumer}/{key}"
            deadline = time.monotonic() + LEASE_WAIT
            delay = 0.05
            while not await self.store.acquire_lease(name, self.owner, self.clock(), LEASE_TTL):
                if time.monotonic() > deadline:
                    raise CredentialUnavailable(
                        f"credential `{key}` is being refreshed by another replica",
                        retryable=True,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            try:
                yield
            finally:
                await self.store.release_lease(name, self.owner)

    async def _refresh(
        self, env: CompiledEnvironment, target: Declared, *, stale: Any, force: bool = False
    ) -> dict[str, Any]:
        assert target.oauth is not None
        async with self._exclusive(target.consumer, target.key):
            values = await self._read(env, target)  # again: another may have refreshed
            now = self.clock()
            replaced = values.get("access_token") != stale and not _expiring(values, now, 0)
            if replaced or (not force and not _expiring(values, now)):
                return values
            refresh_token = values.get("refresh_token")
            if not refresh_token:
                reason = "the access token expired and there is no refresh token"
                await self._needs_reauth(target, reason)
                raise CredentialUnavailable(
                    f"credential `{target.key}` needs to be connected again (needs_reauth): "
                    + reason
                )
            client = oauth_client(target, values)
            request = oauth2.refresh_request(target.oauth, client, str(refresh_token))
            try:
                token = await self.fetch_token(target, request, "refresh_token")
            except oauth2.TokenRefused as exc:
                await self._needs_reauth(target, str(exc))
                raise CredentialUnavailable(
                    f"credential `{target.key}` needs to be connected again (needs_reauth): {exc}"
                ) from exc
            fresh = {**values, **token}
            if not token.get("refresh_token"):
                fresh["refresh_token"] = refresh_token  # providers may keep the old one valid
            if "expires_at" not in token:
                fresh.pop("expires_at", None)
            await self._save(env, target, fresh)
            log.info(
                "refreshed the OAuth2 token of credential %s",
                target.key,
                extra={"consumer": target.consumer},
            )
            return fresh

    async def _client_credentials_token(
        self,
        env: CompiledEnvironment,
        target: Declared,
        *,
        refresh: bool,
        stale: Any = None,
    ) -> dict[str, Any]:
        """client_credentials: the token is fetched by the runner itself, kept encrypted in the
        credential's row (next to a `client_id`/`client_secret` set through the API, if any),
        and fetched again when it expires or the App answers 401."""
        assert target.oauth is not None
        given = dict(target.credential.values or {})

        async def stored() -> dict[str, Any]:
            row = await self.store.get_credential(target.consumer, target.key)
            if row is None:
                return {}
            try:
                return self.cipher(env).open(target.consumer, target.key, row.ciphertext)
            except EncryptionKeyError as exc:
                raise CredentialUnavailable(str(exc)) from exc

        def usable(values: Mapping[str, Any]) -> bool:
            token = values.get("access_token")
            return bool(token) and token != stale and not _expiring(values, self.clock())

        values = {**given, **await stored()}
        if usable(values) or (not refresh and values.get("access_token")):
            return values
        if not refresh:
            raise CredentialUnavailable(f"credential `{target.key}` has no token yet (dry run)")
        async with self._exclusive(target.consumer, target.key):
            kept = await stored()  # again: another may have fetched one meanwhile
            values = {**given, **kept}
            if usable(values):
                return values
            client = oauth_client(target, values)
            request = oauth2.client_credentials_request(target.oauth, client)
            try:
                token = await self.fetch_token(target, request, "client_credentials")
            except oauth2.TokenRefused as exc:
                raise CredentialUnavailable(
                    f"credential `{target.key}`: client_credentials grant refused: {exc}"
                ) from exc
            fresh = {**kept, **token}
            if "expires_at" not in token:
                fresh.pop("expires_at", None)
            await self._save(env, target, fresh)
            return {**given, **fresh}

    async def fetch_token(
        self, target: Declared, request: PreparedRequest, grant: str
    ) -> dict[str, Any]:
        """Send a token request; the token, TokenRefused (400/401), or a retryable
        CredentialUnavailable."""
        outcome = "unavailable"
        try:
            answer = await self.clients.send(target.app.key, request, TOKEN_RESPONSE_BYTES)
            token = oauth2.read_token(answer, self.clock())
            outcome = "ok"
            return token
        except oauth2.TokenRefused:
            outcome = "refused"
            raise
        except SendError as exc:
            raise CredentialUnavailable(
                f"credential `{target.key}`: the token endpoint did not answer: {exc}",
                retryable=True,
            ) from exc
        except oauth2.TokenError as exc:
            raise CredentialUnavailable(
                f"credential `{target.key}`: {exc}", retryable=True
            ) from exc
        finally:
            if self.metrics is not None:
                self.metrics.token_requests.labels(target.app.key, grant, outcome).inc()

    async def _needs_reauth(self, target: Declared, reason: str) -> None:
        """Mark the credential `needs_reauth`; the partner hears of it once per change
        (`credential.needs_reauth`, stored in the same transaction)."""
        notices = []
        if self.notifications is not None:
            notices = self.notifications.prepare(
                "credential.needs_reauth",
                {
                    "consumer": target.consumer,
                    "credential": {
                        "key": target.key,
                        "app": target.app.key,
                        "status": str(CredentialStatus.NEEDS_REAUTH),
                        "error": reason,
                    },
                },
            )
        changed = await self.store.mark_credential(
            target.consumer,
            target.key,
            CredentialStatus.NEEDS_REAUTH,
            reason,
            self.clock(),
            notices,
        )
        if changed and notices and self.notifications is not None:
            self.notifications.wake()
        log.warning(
            "credential %s needs to be connected again: %s",
            target.key,
            reason,
            extra={"consumer": target.consumer},
        )

    # -- writing ---------------------------------------------------------------------------

    async def _save(
        self, env: CompiledEnvironment, target: Declared, values: Mapping[str, Any]
    ) -> StoredCredential:
        expires_at = values.get("expires_at")
        row = StoredCredential(
            consumer=target.consumer,
            key=target.key,
            app=target.app.key,
            ciphertext=self.cipher(env).seal(target.consumer, target.key, values),
            status=CredentialStatus.ACTIVE,
            updated_at=self.clock(),
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
        )
        await self.store.put_credential(row)
        return row

    async def save_token(
        self, env: CompiledEnvironment, target: Declared, token: Mapping[str, Any]
    ) -> StoredCredential:
        """Store the tokens of a finished connect flow (the credential becomes active; a label
        read by an earlier auth test may name another account, so it is cleared)."""
        row = await self._save(env, target, token)
        await self.store.label_credential(target.consumer, target.key, None, None)
        return row

    async def put(
        self,
        env: CompiledEnvironment,
        consumer: str,
        key: str | None,
        values: Mapping[str, Any],
        app: str | None = None,
    ) -> StoredCredential:
        """Store values set through the API or the CLI, after checking them against the
        credential's App's credential fields: of a credential the consumer file declares
        `stored: true`, of one created at run time before (`app`, if given, its own), or of a
        new one (`app` named, `api_key` / `bearer` / `basic`; a key made up when `key` is
        None). The label of an earlier test is cleared."""
        target = await self.target(env, consumer, key) if key is not None else None
        if target is None:
            target = await self._runtime_target(env, consumer, key, app)
        elif target.runtime and app is not None and app != target.credential.app:
            raise CredentialRejected(
                f"credential `{key}` already exists, of app `{target.credential.app}`",
                conflict=True,
                path="$.key",
            )
        elif not target.credential.stored:
            raise CredentialRejected(
                f"credential `{key}` is given by `values:` in the consumer file; declare it "
                "`stored: true` to set it through the API or the CLI",
                path="$.key",
            )
        elif app is not None and app != target.credential.app:
            raise CredentialRejected(
                f"credential `{key}` is of app `{target.credential.app}`, not `{app}`",
                path="$.app",
                help=f"give app `{target.credential.app}`, or another key",
            )
        check_values(target, values)
        try:
            row = await self._save(env, target, values)
        except EncryptionKeyError as exc:
            raise CredentialRejected(str(exc)) from exc
        await self.store.label_credential(target.consumer, target.key, None, None)
        return row

    async def _runtime_target(
        self, env: CompiledEnvironment, consumer: str, key: str | None, app: str | None
    ) -> Declared:
        """A new credential no consumer file declares, for `app`."""
        if app is None:
            raise CredentialRejected(
                f"credential `{key}` is not declared in the consumer file of `{consumer}`; "
                "give `app` to create it",
                path="$.app",
                help="add `app`: one of " + ", ".join(sorted(env.apps)),
            )
        found = env.apps.get(app)
        if found is None or found.connector.auth.type == "none":
            why = "no app" if found is None else "no credential for app"
            hint = did_you_mean(app, [k for k, a in env.apps.items() if needs_values(a)])
            raise CredentialRejected(
                f"{why} `{app}` in this environment",
                path="$.app",
                code="RY201",
                help=hint or None,
            )
        if not needs_values(found):
            raise CredentialRejected(
                f"app `{app}` uses OAuth2 ({found.connector.auth.type}): connect a new "
                f"credential with GET /v1/connect/{app} instead",
                path="$.app",
            )
        if key is None:
            key = await self.new_key(consumer, app)
        elif not re.fullmatch(KEY_PATTERN, key) or len(key) > KEY_CHARS:
            raise CredentialRejected(
                f"`{key[:KEY_CHARS]}` is not a credential key: up to {KEY_CHARS} lowercase "
                "letters, digits and `-`, starting with a letter or digit",
                path="$.key",
                help="leave `key` out to have one made up",
            )
        elif await self.store.get_credential(consumer, key) is not None:
            raise CredentialRejected(  # stored, of an App this environment no longer has
                f"credential `{key}` already exists, of an app not in this environment",
                conflict=True,
                path="$.key",
            )
        return Declared(
            consumer,
            key,
            Credential.model_construct(app=app, values=None, stored=True),
            found,
            runtime=True,
        )

    async def new_key(self, consumer: str, app: str) -> str:
        """A key no stored credential of `consumer` has: `<app>-` and 8 random hex digits."""
        while True:
            key = f"{app}-{secrets.token_hex(4)}"
            if await self.store.get_credential(consumer, key) is None:
                return key

    async def rotate(self, env: CompiledEnvironment) -> int:
        """Re-encrypt every stored credential with the first key of `encryption_key`, each
        under its refresh lock so that a refresh running meanwhile is not overwritten."""
        cipher = self.cipher(env)
        count = 0
        for listed in await self.store.list_credentials(None):
            async with self._exclusive(listed.consumer, listed.key):
                row = await self.store.get_credential(listed.consumer, listed.key)
                if row is not None:
                    rotated = cipher.rotate(row.ciphertext)
                    await self.store.put_credential(replace(row, ciphertext=rotated))
                    count += 1
        return count

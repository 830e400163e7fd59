"""Stored credentials in process: the cipher, the OAuth `state`, migration 4, and two replicas
sharing one database refreshing a token once (against the real Authlib authorization server).
The tests that keep credentials in the store run on a SQLite file and a PostgreSQL database."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from oauth_provider import CLIENT_SECRET, Provider
from runner_env import SECRETS
from store_env import close_stores, on_database, release_1, replica_stores

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.cipher import CredentialCipher, EncryptionKeyError
from rollout_yaml.engine.connect import STATE_TTL, ConnectFailed, ConnectFlow, StateRejected
from rollout_yaml.engine.credentials import CredentialRejected, Credentials, CredentialUnavailable
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.migrations import LATEST
from rollout_yaml.store.records import CredentialStatus
from rollout_yaml.store.sqlite import SQLiteStore

FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project"
KEY = Fernet.generate_key().decode()
CALLBACK = "http://127.0.0.1:5999/oauth/callback"
T = TypeVar("T")


# -- the cipher ------------------------------------------------------------------------------


def test_a_sealed_credential_opens_only_as_itself() -> None:
    cipher = CredentialCipher(KEY)
    plain = {"access_token": "tok-5b1f09c2", "account": "account-77e3"}
    sealed = cipher.seal("acme", "crm", plain)
    # values long enough that the random base64 of the ciphertext cannot spell them by chance
    assert b"tok-5b1f09c2" not in sealed and b"account-77e3" not in sealed
    assert cipher.open("acme", "crm", sealed) == plain
    with pytest.raises(EncryptionKeyError, match="belongs to another credential"):
        cipher.open("globex", "crm", sealed)  # a row copied onto another consumer's
    with pytest.raises(EncryptionKeyError, match="does not decrypt"):
        CredentialCipher(Fernet.generate_key().decode()).open("acme", "crm", sealed)


def test_rotation_decrypts_with_every_key_and_encrypts_with_the_first() -> None:
    old, new = KEY, Fernet.generate_key().decode()
    sealed = CredentialCipher(old).seal("acme", "crm", {"token": "t"})
    both = CredentialCipher(f"{new}, {old}")
    assert both.open("acme", "crm", sealed) == {"token": "t"}
    rotated = both.rotate(sealed)
    assert CredentialCipher(new).open("acme", "crm", rotated) == {"token": "t"}
    with pytest.raises(EncryptionKeyError):
        CredentialCipher(old).open("acme", "crm", rotated)


def test_a_malformed_key_is_refused_without_showing_it() -> None:
    with pytest.raises(EncryptionKeyError) as refused:
        CredentialCipher("correct horse battery staple")
    assert "staple" not in str(refused.value) and "Fernet.generate_key" in str(refused.value)
    with pytest.raises(EncryptionKeyError, match="not set"):
        CredentialCipher.of(None)


# -- environment, store and provider ---------------------------------------------------------


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider().start()
    yield running
    running.stop()


@pytest.fixture
def env(tmp_path: Path, provider: Provider) -> CompiledEnvironment:
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    for connector in (project / "connectors").glob("*.yaml"):
        connector.write_text(connector.read_text().replace("PROVIDER_URL", provider.url))
    environ = {
        **SECRETS,
        "ROLLOUT_ENCRYPTION_KEY": KEY,
        "PROVIDER_URL": provider.url,
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": "http://127.0.0.1:5999",
        "SINK_URL": "http://127.0.0.1:9",
    }
    compiled, diagnostics = load_and_compile(
        Layout(project), "test", missing_secret=Severity.ERROR, environ=environ
    )
    assert compiled is not None and not [d for d in diagnostics if d.is_error], diagnostics
    return compiled


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_state_expires_and_is_bound_to_the_environment_key(
    env: CompiledEnvironment, tmp_path: Path
) -> None:
    clock = Clock()
    # The state is signed, not stored, until the callback uses it: this store is never opened,
    # so the test has nothing to check on PostgreSQL.
    store = SQLiteStore(tmp_path / "state.db")
    flow = ConnectFlow(Credentials(store, AppClients(), "test", clock=clock))
    authorize, key = asyncio.run(flow.start(env, "acme", "crm", "crm", None, CALLBACK))
    assert key == "crm"
    url = httpx.URL(authorize)
    state = url.params["state"]
    assert url.params["code_challenge_method"] == "S256" and url.params["scope"] == "contacts"

    clock.now += STATE_TTL - 5
    pending = flow.open_state(env, state)
    assert (pending.consumer, pending.app, pending.credential) == ("acme", "crm", "crm")
    assert pending.verifier not in str(url)  # only its S256 challenge travels
    clock.now += 10
    with pytest.raises(StateRejected, match="expired"):
        flow.open_state(env, state)

    other_key = Fernet.generate_key().decode()
    settings = env.settings.model_copy(update={"encryption_key": other_key})
    elsewhere = CompiledEnvironment(
        env.name, settings, env.source, env.apps, env.blueprints, env.consumers, env.automations
    )
    clock.now -= 10
    with pytest.raises(StateRejected):
        flow.open_state(elsewhere, state)


# -- migration 4 -----------------------------------------------------------------------------


def test_migration_4_extends_a_version_1_database(tmp_path: Path, database: str) -> None:
    on_database(database, release_1)  # credentials without expiry or error, no OAuth states

    async def upgrade() -> list[int]:
        store = open_store(database, tmp_path)
        try:
            return await store.open()
        finally:
            await store.close()

    assert 4 in asyncio.run(upgrade())

    def check(conn: sa.Connection) -> None:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("credentials")}
        assert {"expires_at", "error"} <= columns
        assert sa.inspect(conn).has_table("oauth_states")
        assert conn.execute(sa.text("select max(version) from schema_version")).scalar() == LATEST
        assert conn.execute(sa.text("select status from credentials")).scalar() == "active"

    on_database(database, check)


# -- two replicas, one database --------------------------------------------------------------


async def _connect(flow: ConnectFlow, env: CompiledEnvironment) -> None:
    """The authorization-code flow with the browser's part done by httpx."""
    url, _ = await flow.start(env, "acme", "crm", "crm", None, CALLBACK)
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    back = httpx.URL(answer.headers["location"])
    await flow.finish(env, back.params["state"], back.params["code"])


def test_two_replicas_refresh_an_expired_token_once(
    env: CompiledEnvironment, provider: Provider, tmp_path: Path, database: str
) -> None:
    async def main() -> tuple[set[Any], int]:
        stores = await replica_stores(database, tmp_path)
        clients = AppClients()
        try:
            one, two = (
                Credentials(store, clients, owner)
                for store, owner in zip(stores, ("replica-1", "replica-2"), strict=True)
            )
            provider.expires_in = 30  # inside the refresh margin at once
            await _connect(ConnectFlow(one), env)
            provider.expires_in = 3600
            calls = [r.values(env, "acme", "crm") for r in (one, two) for _ in range(20)]
            values = await asyncio.gather(*calls)
            return {v["access_token"] for v in values}, provider.grants["refresh_token"]
        finally:
            await clients.close()
            await close_stores(stores)

    tokens, refreshes = asyncio.run(main())
    assert refreshes == 1
    assert tokens == provider.live_access_tokens()


def test_not_connected_and_needs_reauth_are_clear_errors(
    env: CompiledEnvironment, provider: Provider, tmp_path: Path, database: str
) -> None:
    async def main() -> list[str]:
        store = open_store(database, tmp_path)
        await store.open()
        clients = AppClients()
        messages = []
        try:
            service = Credentials(store, clients, "replica-1")
            try:
                await service.values(env, "acme", "crm")
            except CredentialUnavailable as exc:
                messages.append(str(exc))
            await _connect(ConnectFlow(service), env)
            provider.revoke_refresh_tokens()
            used = await service.values(env, "acme", "crm")
            try:
                await service.renew_after_401(env, "acme", "crm", used)
            except CredentialUnavailable as exc:
                assert not exc.retryable
                messages.append(str(exc))
            row = await store.get_credential("acme", "crm")
            assert row is not None and row.status is CredentialStatus.NEEDS_REAUTH
            return messages
        finally:
            await clients.close()
            await store.close()

    not_connected, refused = asyncio.run(main())
    assert "has not been connected yet" in not_connected
    assert "needs_reauth" in refused and "invalid_grant" in refused


def test_without_encryption_key_nothing_is_stored_and_the_setting_is_named(
    env: CompiledEnvironment, tmp_path: Path, database: str
) -> None:
    settings = env.settings.model_copy(update={"encryption_key": None})
    keyless = CompiledEnvironment(
        env.name, settings, env.source, env.apps, env.blueprints, env.consumers, env.automations
    )

    async def main() -> list[str]:
        store = open_store(database, tmp_path)
        await store.open()
        service = Credentials(store, AppClients(), "replica-1")
        messages = []
        try:
            try:
                await service.put(keyless, "acme", "vault", {"api_key": "k", "account": "a"})
            except CredentialRejected as exc:
                messages.append(str(exc))
            try:
                await ConnectFlow(service).start(keyless, "acme", "crm", None, None, CALLBACK)
            except CredentialRejected as exc:
                messages.append(str(exc))
            assert await store.list_credentials() == []
            return messages
        finally:
            await store.close()

    messages = asyncio.run(main())
    assert len(messages) == 2
    assert all("encryption_key is not set" in m for m in messages)


# -- created at run time ---------------------------------------------------------------------


def test_a_runtime_credential_connects_refreshes_and_keeps_its_label(
    env: CompiledEnvironment, provider: Provider, tmp_path: Path, database: str
) -> None:
    """A connect flow without a key makes one up; the new credential, declared in no file, is
    refreshed once across two replicas like a declared one, and a refresh keeps its label
    (new values clear it)."""

    async def main() -> None:
        stores = await replica_stores(database, tmp_path)
        clients = AppClients()
        try:
            one, two = (
                Credentials(store, clients, owner)
                for store, owner in zip(stores, ("replica-1", "replica-2"), strict=True)
            )
            flow = ConnectFlow(one)
            url, key = await flow.start(env, "acme", "crm", None, None, CALLBACK)
            assert key.startswith("crm-") and key not in env.consumers["acme"].credentials
            assert await one.target(env, "acme", key) is None  # nothing stored before the end
            provider.expires_in = 30  # inside the refresh margin at once
            async with httpx.AsyncClient() as browser:
                back = httpx.URL((await browser.get(url)).headers["location"])
            pending = await flow.finish(env, back.params["state"], back.params["code"])
            assert (pending.credential, pending.runtime) == (key, True)
            assert await stores[0].label_credential("acme", key, "Acme CRM", 1.0)

            provider.expires_in = 3600
            values = await asyncio.gather(
                *(r.values(env, "acme", key) for r in (one, two) for _ in range(10))
            )
            assert {v["access_token"] for v in values} == provider.live_access_tokens()
            assert provider.grants["refresh_token"] == 1
            row = await stores[1].get_credential("acme", key)
            assert row is not None and (row.app, row.label, row.tested_at) == (
                "crm",
                "Acme CRM",
                1.0,
            )

            # values stored over the API: a key of another App is refused, new values clear
            with pytest.raises(CredentialRejected) as taken:
                await one.put(env, "acme", key, {"api_key": "k", "account": "a"}, "vault")
            assert taken.value.conflict and taken.value.path == "$.key"
            await one.put(env, "acme", key, {"client_id": "own-client"}, "crm")
            row = await stores[0].get_credential("acme", key)
            assert row is not None and row.label is None and row.tested_at is None
        finally:
            await clients.close()
            await close_stores(stores)

    asyncio.run(main())


def test_a_new_key_taken_meanwhile_is_not_overwritten_by_the_flow(
    env: CompiledEnvironment, provider: Provider, tmp_path: Path, database: str
) -> None:
    async def main() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        service = Credentials(store, AppClients(), "replica-1")
        try:
            flow = ConnectFlow(service)
            url, key = await flow.start(env, "acme", "crm", None, None, CALLBACK)
            await service.put(env, "acme", key, {"api_key": "k-1", "account": "a"}, "vault")
            async with httpx.AsyncClient() as browser:
                back = httpx.URL((await browser.get(url)).headers["location"])
            with pytest.raises(ConnectFailed, match="now belongs to app `vault`"):
                await flow.finish(env, back.params["state"], back.params["code"])
            assert await service.values(env, "acme", key) == {"api_key": "k-1", "account": "a"}
            assert provider.grants["authorization_code"] == 0  # the code was never exchanged
        finally:
            await service.clients.close()
            await store.close()

    asyncio.run(main())

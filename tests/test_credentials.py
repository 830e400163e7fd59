"""Stored credentials in process: the cipher, the OAuth `state`, migration 4, and two replicas
sharing one database refreshing a token once (against the real Authlib authorization server)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from oauth_provider import CLIENT_SECRET, Provider
from runner_env import SECRETS

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.cipher import CredentialCipher, EncryptionKeyError
from rollout_yaml.engine.connect import STATE_TTL, ConnectFlow, StateRejected
from rollout_yaml.engine.credentials import CredentialRejected, Credentials, CredentialUnavailable
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.migrations import LATEST, apply_migrations
from rollout_yaml.store.records import CredentialStatus
from rollout_yaml.store.sqlite import SQLiteStore

FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project"
KEY = Fernet.generate_key().decode()
CALLBACK = "http://127.0.0.1:5999/oauth/callback"


# -- the cipher ------------------------------------------------------------------------------


def test_a_sealed_credential_opens_only_as_itself() -> None:
    cipher = CredentialCipher(KEY)
    sealed = cipher.seal("acme", "crm", {"access_token": "tok-123", "account": "a1"})
    assert b"tok-123" not in sealed and b"a1" not in sealed
    assert cipher.open("acme", "crm", sealed) == {"access_token": "tok-123", "account": "a1"}
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
    store = SQLiteStore(tmp_path / "state.db")
    flow = ConnectFlow(Credentials(store, AppClients(), "test", clock=clock))
    url = httpx.URL(flow.start(env, "acme", "crm", "crm", None, CALLBACK))
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


def test_migration_4_extends_a_version_1_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        create table schema_version (version integer primary key, applied_at float not null);
        insert into schema_version values (1, 0);
        create table credentials (consumer varchar(200), key varchar(100), app varchar(100)
            not null, ciphertext blob not null, status varchar(20) not null, updated_at float
            not null, primary key (consumer, key));
        insert into credentials values ('acme', 'crm', 'crm', x'00', 'active', 1.0);
        """
    )
    db.commit()
    db.close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        assert 4 in apply_migrations(conn)
    with engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("credentials")}
        assert {"expires_at", "error"} <= columns
        assert sa.inspect(conn).has_table("oauth_states")
        assert conn.execute(sa.text("select max(version) from schema_version")).scalar() == LATEST
        assert conn.execute(sa.text("select status from credentials")).scalar() == "active"
    engine.dispose()


# -- two replicas, one database --------------------------------------------------------------


async def _connect(flow: ConnectFlow, env: CompiledEnvironment) -> None:
    """The authorization-code flow with the browser's part done by httpx."""
    url = flow.start(env, "acme", "crm", "crm", None, CALLBACK)
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    back = httpx.URL(answer.headers["location"])
    await flow.finish(env, back.params["state"], back.params["code"])


def test_two_replicas_refresh_an_expired_token_once(
    env: CompiledEnvironment, provider: Provider, tmp_path: Path
) -> None:
    async def main() -> tuple[set[Any], int]:
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        clients = AppClients()
        try:
            one = Credentials(store, clients, "replica-1")
            two = Credentials(store, clients, "replica-2")
            provider.expires_in = 30  # inside the refresh margin at once
            await _connect(ConnectFlow(one), env)
            provider.expires_in = 3600
            calls = [r.values(env, "acme", "crm") for r in (one, two) for _ in range(20)]
            values = await asyncio.gather(*calls)
            return {v["access_token"] for v in values}, provider.grants["refresh_token"]
        finally:
            await clients.close()
            await store.close()

    tokens, refreshes = asyncio.run(main())
    assert refreshes == 1
    assert tokens == provider.live_access_tokens()


def test_not_connected_and_needs_reauth_are_clear_errors(
    env: CompiledEnvironment, provider: Provider, tmp_path: Path
) -> None:
    async def main() -> list[str]:
        store = SQLiteStore(tmp_path / "state.db")
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
    env: CompiledEnvironment, tmp_path: Path
) -> None:
    settings = env.settings.model_copy(update={"encryption_key": None})
    keyless = CompiledEnvironment(
        env.name, settings, env.source, env.apps, env.blueprints, env.consumers, env.automations
    )

    async def main() -> list[str]:
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        service = Credentials(store, AppClients(), "replica-1")
        messages = []
        try:
            try:
                await service.put(keyless, "acme", "vault", {"api_key": "k"})
            except CredentialRejected as exc:
                messages.append(str(exc))
            try:
                ConnectFlow(service).start(keyless, "acme", "crm", None, None, CALLBACK)
            except CredentialRejected as exc:
                messages.append(str(exc))
            assert await store.list_credentials() == []
            return messages
        finally:
            await store.close()

    messages = asyncio.run(main())
    assert len(messages) == 2
    assert all("encryption_key is not set" in m for m in messages)

"""The one place a request's credential comes from, for actions and polls alike: a change to
how credentials are resolved (stored ones, OAuth2 refresh) applies to both."""

from __future__ import annotations

from typing import Any

from rollout_yaml.expr.compiled import CompiledEnvironment


class CredentialUnavailable(Exception):
    """The credential exists but holds no values yet (stored, not connected)."""


def credential_values(env: CompiledEnvironment, consumer: str, key: str | None) -> dict[str, Any]:
    """The values a request is signed with; `{}` when the automation names no credential."""
    if key is None:
        return {}
    credential = env.consumers[consumer].credentials[key]
    if credential.values is None:
        raise CredentialUnavailable(f"credential `{key}` is stored but has not been connected yet")
    return dict(credential.values)


def credential_secrets(
    env: CompiledEnvironment, consumer: str, key: str | None, app: str
) -> frozenset[str]:
    """The secret fields' values of a credential, to redact from records and logs."""
    found = env.consumers.get(consumer)
    if key is None or found is None or key not in found.credentials:
        return frozenset()
    values = found.credentials[key].values or {}
    fields = env.apps[app].connector.secret_fields()
    return frozenset(str(v) for k, v in values.items() if k in fields and v)


def secrets_with(env: CompiledEnvironment, extra: frozenset[str]) -> frozenset[str]:
    """The environment's secret set, reused as is (its redaction pattern is compiled once)
    unless the credential adds values the configuration does not hold."""
    added = extra - env.secret_values
    return env.secret_values | added if added else env.secret_values

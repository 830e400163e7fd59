"""Credentials of `jwt`-auth Apps (Rollout's `defineJWTAuth`): the `authData` a consumer's JWT
carries in its `"rollout.com"` claim, put there by the partner's backend (typically the
consumer's own API token for the partner's App).

They are never stored: the latest one of each consumer is kept in this process's memory until
the token that carried it expires, and a newer token replaces it. After a restart (or on a
replica the consumer's requests did not reach) an action of a `jwt` App fails with that reason
until the consumer's next request brings a token again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

CLAIM = "rollout.com"
MAX_CONSUMERS = 100_000


class TokenCredentialMissing(Exception):
    """No live `authData` for the consumer (the message says why)."""


def values_of(auth_data: Any) -> dict[str, Any]:
    """`authData` as credential values: a string is the `token`, an object its fields."""
    if isinstance(auth_data, Mapping):
        return dict(auth_data)
    if isinstance(auth_data, str | int | float) and not isinstance(auth_data, bool):
        return {"token": str(auth_data)}
    return {}


class TokenCredentials:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._latest: dict[str, tuple[dict[str, Any], float, float]] = {}

    def remember(self, consumer: str, claims: Mapping[str, Any]) -> None:
        """Keep the `authData` of a verified token (a no-op for a token without one)."""
        claim = claims.get(CLAIM)
        if not isinstance(claim, Mapping) or "authData" not in claim:
            return
        values = values_of(claim["authData"])
        if not values:
            return
        iat, exp = float(claims.get("iat", 0)), float(claims.get("exp", 0))
        known = self._latest.get(consumer)
        if known is not None and known[2] > iat and known[1] > self.clock():
            return  # an older token than the one already kept
        if len(self._latest) >= MAX_CONSUMERS and consumer not in self._latest:
            now = self.clock()
            self._latest = {k: v for k, v in self._latest.items() if v[1] > now}
        self._latest[consumer] = (values, exp, iat)

    def values(self, consumer: str) -> dict[str, Any]:
        known = self._latest.get(consumer)
        if known is None:
            raise TokenCredentialMissing(
                f'no token of consumer `{consumer}` with `"{CLAIM}": {{authData}}` has reached '
                "this runner since it started (the credential of a `jwt` App is never stored)"
            )
        values, exp, _ = known
        if exp <= self.clock():
            raise TokenCredentialMissing(
                f"the token that carried consumer `{consumer}`'s authData has expired"
            )
        return dict(values)

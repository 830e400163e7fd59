"""Retry policy as a plain object: which failures retry, and how long to wait (with jitter,
honouring `Retry-After` in seconds or as an HTTP date)."""

from __future__ import annotations

import random
from datetime import UTC
from email.utils import parsedate_to_datetime

from rollout_yaml.config.models.request import RetryPolicy

MAX_RETRY_AFTER = 3600.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (`120` or `Wed, 21 Oct 2015 07:28:00 GMT`)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: exponential (or constant) with equal jitter, so
    retries of many runs spread out instead of arriving together."""
    step = policy.base if policy.backoff == "constant" else policy.base * 2 ** (attempt - 1)
    capped = min(step, policy.max)
    return capped / 2 + (rng or random).uniform(0, capped / 2)


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    status: int | None,
    transport_error: bool,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before retrying, or None when the failure is final.

    Retries happen for the statuses the policy lists and for timeouts / connection errors;
    any other answer (e.g. a 400) fails at once. `Retry-After` is a floor on the wait.
    """
    if attempt >= policy.max_attempts:
        return None
    if not transport_error and (status is None or status not in policy.on_status):
        return None
    delay = backoff(policy, attempt, rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay

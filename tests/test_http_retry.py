"""`http/retry.py`: which failures retry, how long to wait, and `Retry-After` in both forms
RFC 9110 allows (delay-seconds and an HTTP-date)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from rollout_yaml.config.models.request import RetryPolicy
from rollout_yaml.http.retry import MAX_RETRY_AFTER, backoff, parse_retry_after, retry_delay

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + seconds_from_now, UTC), usegmt=True)


@pytest.fixture(autouse=True)
def _local_time_is_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A host in another zone: an HTTP date without one is still UTC, not local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (http_date(90), 90.0),  # `Sun, 01 Mar 2026 12:01:30 GMT`
        (http_date(-30), 0.0),  # a date already past: retry now
        ("Sun, 01 Mar 2026 12:00:45 GMT", 45.0),
        ("Sunday, 01-Mar-26 12:00:45 GMT", 45.0),  # RFC 850, obsolete but allowed
        ("Sun Mar  1 12:00:45 2026", 45.0),  # asctime, no zone: UTC
        ("999999", MAX_RETRY_AFTER),
        (http_date(10 * 24 * 3600), MAX_RETRY_AFTER),
    ],
)
def test_retry_after_in_seconds_and_as_an_http_date(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2026"])
def test_an_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


def test_backoff_is_exponential_capped_and_jittered_within_half() -> None:
    policy = RetryPolicy(base="1s", max="10s")
    rng = random.Random(7)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = [backoff(policy, attempt, rng) for _ in range(200)]
        assert min(delays) >= step / 2 and max(delays) <= step
        # jitter spreads the retries over the whole upper half
        assert min(delays) < step * 0.55 and max(delays) > step * 0.95
    constant = RetryPolicy(backoff="constant", base="3s", max="10s")
    assert all(1.5 <= backoff(constant, n, rng) <= 3.0 for n in range(1, 8))


def test_which_failures_retry() -> None:
    policy = RetryPolicy(max_attempts=3, on_status=[429, 503], base="1s", max="5s")

    def delay(attempt: int, **kwargs: object) -> float | None:
        args = {"status": None, "transport_error": False, "retry_after": None, **kwargs}
        return retry_delay(policy, attempt, rng=random.Random(1), **args)  # type: ignore[arg-type]

    assert delay(1, status=503) is not None
    assert delay(1, status=429) is not None
    assert delay(1, status=500) is None  # not listed
    assert delay(1, status=400) is None
    assert delay(1, transport_error=True) is not None  # timeouts and connection errors
    assert delay(2, status=503) is not None
    assert delay(3, status=503) is None  # the last attempt was the policy's last
    assert delay(3, transport_error=True) is None
    # Retry-After is a floor: never sooner than the App asked, never later than the backoff
    # when the App asks for less
    assert delay(1, status=429, retry_after=30.0) == 30.0
    assert delay(1, status=429, retry_after=0.0) == pytest.approx(
        backoff(policy, 1, random.Random(1))
    )

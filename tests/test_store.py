"""The store's guarantees, asserted through the Store protocol on a real SQLite file and a real
PostgreSQL database (each test runs on both), and what several replicas sharing PostgreSQL
rely on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.migrations import MIGRATIONS
from rollout_yaml.store.records import (
    Attempt,
    EventRecord,
    NewRun,
    RunQuery,
    RunStatus,
    RunUpdate,
    new_id,
)

T = TypeVar("T")


@pytest.fixture
def store(database: str, tmp_path: Path) -> Iterator[Store]:
    yield open_store(database, tmp_path)


def run_with(store: Store, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def event(key: str, consumer: str = "acme") -> EventRecord:
    return EventRecord(
        new_id("evt"), consumer, "formflow", "submitted", key, {"k": key}, 1.0, "push"
    )


def run_for(e: EventRecord, automation: str = "notify") -> NewRun:
    return NewRun(
        new_id("run"), e.consumer, automation, e.id, e.dedupe_key, RunStatus.QUEUED, None, 1.0
    )


def test_one_run_per_automation_and_event_key_whatever_its_id(store: Store) -> None:
    """The runs table's unique constraint (consumer, automation, event key): a second run of
    the same event for the same automation, under a new id, is not stored; another
    automation's is."""

    async def body(s: Store) -> Any:
        e = event("only-once")
        first = run_for(e)
        await s.ingest([(e, [first])])
        again = [run_for(e), run_for(e)]
        other = run_for(e, automation="archive")
        inserted = await s.insert_runs([*again, other])
        runs = await s.list_runs(RunQuery(consumer="acme", limit=10))
        return first, inserted, other, runs

    first, inserted, other, runs = run_with(store, body)
    assert inserted == [other.id]
    assert sorted(r.id for r in runs) == sorted([first.id, other.id])


def test_an_event_key_stored_twice_gets_runs_once(store: Store) -> None:
    async def body(s: Store) -> Any:
        first, second = event("a"), event("a")
        one = await s.ingest([(first, [run_for(first)])])
        two = await s.ingest([(second, [run_for(second)])])
        return one, two, await s.list_runs(RunQuery())

    one, two, runs = run_with(store, body)
    assert one[0].new and len(one[0].run_ids) == 1
    assert not two[0].new and two[0].run_ids == () and two[0].event_id == one[0].event_id
    assert len(runs) == 1


def test_claimed_runs_are_not_claimed_again_until_the_lease_expires(store: Store) -> None:
    async def body(s: Store) -> Any:
        batch = [event(str(i)) for i in range(5)]
        await s.ingest([(e, [run_for(e)]) for e in batch])
        now = time.time()
        first = await s.claim_runs("a", now, 60, 3)
        second = await s.claim_runs("b", now, 60, 10)
        third = await s.claim_runs("b", now, 60, 10)
        after_expiry = await s.claim_runs("c", now + 61, 60, 10)
        return first, second, third, after_expiry

    first, second, third, after_expiry = run_with(store, body)
    assert len(first) == 3 and len(second) == 2 and third == []
    assert {r.id for r in first} | {r.id for r in second} == {r.id for r in after_expiry}


def test_a_recorded_attempt_is_read_back_with_its_run(store: Store) -> None:
    async def body(s: Store) -> Any:
        e = event("x")
        new = run_for(e)
        await s.ingest([(e, [new])])
        await s.record(
            RunUpdate(new.id, RunStatus.SUCCEEDED, 1, 2.0, output={"ok": True}, finished_at=2.0),
            Attempt(new.id, 1, 1.5, 12.0, {"method": "POST"}, {"status": 200}, None),
        )
        return await s.get_run(new.id, "acme"), await s.get_run(new.id, "other")

    mine, theirs = run_with(store, body)
    assert mine is not None and mine.status == RunStatus.SUCCEEDED and mine.output == {"ok": True}
    assert [a.response for a in mine.attempt_log] == [{"status": 200}]
    assert theirs is None


def test_a_named_lease_has_one_holder_until_it_expires_or_is_released(store: Store) -> None:
    async def body(s: Store) -> list[bool]:
        now = 1000.0
        got = [
            await s.acquire_lease("poll:g1", "a", now, 30),
            await s.acquire_lease("poll:g1", "b", now + 1, 30),  # held by a
            await s.acquire_lease("poll:g1", "a", now + 2, 30),  # a renews
            await s.acquire_lease("poll:g1", "b", now + 31, 30),  # a's renewal still live
            await s.acquire_lease("poll:g1", "b", now + 33, 30),  # expired: b takes it
        ]
        await s.release_lease("poll:g1", "b")
        got.append(await s.acquire_lease("poll:g1", "a", now + 34, 30))
        return got

    assert run_with(store, body) == [True, False, True, False, True, True]


def test_trigger_state_is_kept_by_key_prefix(store: Store) -> None:
    async def body(s: Store) -> Any:
        await s.save_state("poll:a", {"cursor": 1})
        await s.save_state("poll:a", {"cursor": 2})
        await s.save_state("schedule:b", {"last": "x"})
        return await s.load_states("poll:")

    assert run_with(store, body) == {"poll:a": {"cursor": 2}}


def test_a_migration_merged_after_a_higher_one_still_runs(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from rollout_yaml.store.migrations import MIGRATIONS, apply_migrations

    made: list[int] = []

    def step(number: int) -> tuple[int, str, Callable[[sa.Connection], None]]:
        return (number, f"step {number}", lambda conn: made.append(number))

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        assert apply_migrations(conn, [step(1), step(3)]) == [1, 3]
        assert apply_migrations(conn, [step(1), step(2), step(3)]) == [2]  # merged late
        assert apply_migrations(conn, [step(1), step(2), step(3)]) == []
    assert made == [1, 3, 2]
    real = sa.create_engine(f"sqlite:///{tmp_path / 'real.db'}")
    with real.begin() as conn:
        assert apply_migrations(conn) == sorted(m[0] for m in MIGRATIONS)
        assert {"events", "runs", "webhooks"} <= set(sa.inspect(conn).get_table_names())
    engine.dispose()
    real.dispose()


def test_a_renewed_lease_keeps_runs_from_other_claimers(store: Store) -> None:
    async def body(s: Store) -> Any:
        batch = [event(str(i)) for i in range(3)]
        await s.ingest([(e, [run_for(e)]) for e in batch])
        now = time.time()
        mine = await s.claim_runs("a", now, 10, 10)
        held = await s.renew_leases("a", now + 100)
        stolen = await s.claim_runs("b", now + 50, 10, 10)  # a's first lease has expired
        return mine, held, stolen, await s.renew_leases("b", now + 100)

    mine, held, stolen, others = run_with(store, body)
    assert held == {r.id for r in mine} and len(held) == 3
    assert stolen == [] and others == set()


def test_a_run_claimed_after_expiry_is_no_longer_held_by_its_first_owner(store: Store) -> None:
    async def body(s: Store) -> Any:
        e = event("x")
        await s.ingest([(e, [run_for(e)])])
        now = time.time()
        await s.claim_runs("a", now, 10, 10)
        taken = await s.claim_runs("b", now + 11, 10, 10)
        return taken, await s.renew_leases("a", now + 30)

    taken, held_by_a = run_with(store, body)
    assert len(taken) == 1 and held_by_a == set()


def test_pruning_removes_old_finished_runs_then_their_events_in_batches(store: Store) -> None:
    async def body(s: Store) -> Any:
        old = [event(f"old{i}") for i in range(5)]
        for e in old:
            e_runs = [run_for(e)]
            await s.ingest([(e, e_runs)])
            await s.record(
                RunUpdate(e_runs[0].id, RunStatus.SUCCEEDED, 1, 2.0, finished_at=2.0),
                Attempt(e_runs[0].id, 1, 1.5, 1.0, {}, {"status": 200}, None),
            )
        unfinished = event("waiting")
        await s.ingest([(unfinished, [run_for(unfinished)])])
        fresh = EventRecord(
            new_id("evt"), "acme", "formflow", "submitted", "fresh", {}, 1000.0, "push"
        )
        await s.ingest([(fresh, [])])
        rounds = []
        while True:
            pruned = await s.prune(runs_before=100.0, events_before=100.0, limit=2)
            rounds.append(pruned)
            if pruned == (0, 0):
                break
        return rounds, await s.list_runs(RunQuery())

    rounds, left = run_with(store, body)
    assert sum(r for r, _ in rounds) == 5 and sum(e for _, e in rounds) == 5
    assert max(max(pair) for pair in rounds) == 2  # never more than a batch at once
    assert [r.event.dedupe_key for r in left] == ["waiting"]  # unfinished: kept with its event


# -- several replicas on one PostgreSQL database ------------------------------------------


def _replicas(url: str, count: int) -> list[Store]:
    return [open_store(url, Path(".")) for _ in range(count)]


def test_replicas_starting_together_migrate_once(pg_database: str) -> None:
    async def main() -> list[list[int]]:
        stores = _replicas(pg_database, 4)
        applied = await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(s.close() for s in stores))
        return list(applied)

    every = [number for number, _title, _step in MIGRATIONS]
    assert sorted(asyncio.run(main()), key=len) == [[], [], [], every]


def test_replicas_claiming_together_never_share_a_run(pg_database: str) -> None:
    async def main() -> tuple[list[list[str]], int]:
        first, *others = _replicas(pg_database, 3)
        await first.open()
        for s in others:
            await s.open()
        events = [event(str(i)) for i in range(300)]
        await first.ingest([(e, [run_for(e)]) for e in events])
        now = time.time()
        claimed: list[list[str]] = [[], [], []]

        async def claimer(index: int, s: Store) -> None:
            while True:
                got = await s.claim_runs(f"r{index}", now, 60, 7)
                if not got:
                    return
                claimed[index] += [r.id for r in got]

        await asyncio.gather(*(claimer(i, s) for i, s in enumerate([first, *others])))
        for s in (first, *others):
            await s.close()
        return claimed, len(events)

    claimed, total = asyncio.run(main())
    every = [run_id for part in claimed for run_id in part]
    assert len(every) == total and len(set(every)) == total
    assert all(claimed), "every replica got a share"


def test_a_replica_starting_leaves_the_leases_of_running_ones(pg_database: str) -> None:
    # SQLite clears leases at open (it holds the file alone); a PostgreSQL replica must not.
    async def main() -> list[Any]:
        running, starting = _replicas(pg_database, 2)
        await running.open()
        e = event("x")
        await running.ingest([(e, [run_for(e)])])
        now = time.time()
        await running.claim_runs("running", now, 60, 10)
        await starting.open()
        stolen = await starting.claim_runs("starting", now + 1, 60, 10)
        after_expiry = await starting.claim_runs("starting", now + 61, 60, 10)
        await running.close()
        await starting.close()
        return [stolen, len(after_expiry)]

    assert asyncio.run(main()) == [[], 1]


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    from rollout_yaml.store.postgres import DatabaseUnavailable

    async def main() -> None:
        store = open_store("postgresql://app:hunter2-secret@127.0.0.1:1/nowhere", Path("."))
        await store.open()

    with pytest.raises(DatabaseUnavailable) as failure:
        asyncio.run(main())
    assert "127.0.0.1:1/nowhere" in str(failure.value)
    assert "hunter2-secret" not in str(failure.value)


def test_the_database_password_is_one_of_the_environment_secrets(tmp_path: Path) -> None:
    # so that a log line or error quoting the URL shows `***` in its place
    from runner_env import compile_env, copy_project

    project = copy_project(tmp_path)
    env_file = project / "environments/test/environment.yaml"
    env_file.write_text(
        env_file.read_text().replace(
            "database: sqlite", "database: postgresql://rollout:s3cr%40t-pw@db.internal/prod"
        )
    )
    compiled = compile_env(project, "http://127.0.0.1:9")
    assert "s3cr@t-pw" in compiled.secret_values


def test_a_failing_write_does_not_fail_the_writes_committed_with_it(store: Store) -> None:
    # Both backends commit concurrent writes together; a run of an event that does not exist
    # breaks a foreign key, and only its own caller hears of it.
    async def body(s: Store) -> Any:
        good = event("good")
        orphan = NewRun(
            new_id("run"), "acme", "notify", "evt_missing", "k", RunStatus.QUEUED, None, 1.0
        )
        results = await asyncio.gather(
            s.insert_runs([orphan]), s.ingest([(good, [run_for(good)])]), return_exceptions=True
        )
        return results, await s.list_runs(RunQuery())

    (failed, ingested), runs = run_with(store, body)
    assert isinstance(failed, Exception)
    assert not isinstance(ingested, BaseException) and ingested[0].new
    assert [r.event.dedupe_key for r in runs] == ["good"]


def test_a_write_retried_alone_is_answered_only_once_committed(tmp_path: Path) -> None:
    """SQLite retries the ops of a failed batch one by one; each caller must hear back only
    after its own commit, or it could acknowledge an event a crash would then lose."""
    import sqlalchemy as sa

    from rollout_yaml.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "state.db")

    async def body(s: SQLiteStore) -> Any:
        assert s._engine is not None
        sa.event.listen(s._engine, "commit", lambda _conn: time.sleep(0.3))  # a slow disk
        good = event("good")
        orphan = NewRun(
            new_id("run"), "acme", "notify", "evt_missing", "k", RunStatus.QUEUED, None, 1.0
        )
        pending = [s.insert_runs([orphan]), s.ingest([(good, [run_for(good)])])]
        _failed, ingested = await asyncio.gather(*pending, return_exceptions=True)
        return ingested, await s.list_runs(RunQuery())  # straight after the answer

    ingested, runs = run_with(store, body)  # type: ignore[arg-type]
    assert ingested[0].new
    assert [r.event.dedupe_key for r in runs] == ["good"]

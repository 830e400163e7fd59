"""Run and event ids are ULIDs as python-ulid reads them: time-ordered, unique across threads and
across the forked processes of a daemon (`runtime.processes`)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from ulid import ULID

from rollout_yaml.store.records import new_id


def test_an_id_is_a_ulid_of_now_after_its_prefix() -> None:
    before = time.time()
    made = new_id("run")
    after = time.time()
    prefix, _, text = made.partition("_")
    parsed = ULID.from_str(text)
    assert prefix == "run" and str(parsed) == text
    assert before - 0.001 <= parsed.timestamp <= after + 0.001


def test_ids_sort_in_the_order_they_were_made_and_never_repeat() -> None:
    made = [new_id("evt") for _ in range(20_000)]  # many within one millisecond
    assert made == sorted(made) and len(set(made)) == len(made)


def test_threads_never_get_the_same_id() -> None:
    with ThreadPoolExecutor(4) as pool:
        shares = list(pool.map(lambda _: [new_id("run") for _ in range(3000)], range(4)))
    made = [i for share in shares for i in share]
    assert len(set(made)) == len(made) == 12_000


def test_a_forked_process_makes_ids_of_its_own() -> None:
    new_id("run")  # the parent's random pool is in use when it forks
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(writing, " ".join(new_id("run") for _ in range(50)).encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(pid, 0)
    with os.fdopen(reading) as pipe:
        child = pipe.read().split()
    parent = [new_id("run") for _ in range(50)]
    # the random parts (the last 16 characters) differ: not the same bits from one pool
    assert len(child) == 50 and not {c[-16:] for c in child} & {p[-16:] for p in parent}

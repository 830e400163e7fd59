"""Running the suite's stateful property machines (hypothesis `RuleBasedStateMachine`s that
drive a `LiveEnvironment`): each example gets a folder of its own and, on PostgreSQL, a fresh
database of its own, dropped afterwards; seeds are fixed, so a run is the same every time."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine
from pg_env import fresh_database

CHAT_BLUEPRINT = """\
blueprint: order-to-chat
name: Orders to chat
params: { type: object, required: [channel], properties: { channel: { type: string } } }
trigger: { app: partner, trigger: order-created }
action:
  app: sink
  action: post-message
  input: { text: "Order {{ payload.order_id }} for {{ params.channel }}" }
"""
"""The blueprint the machines' consumers use, for `automations/order-to-chat.yaml` of a copy
of the runner project."""

NO_SHRINKING = (Phase.explicit, Phase.generate)
"""Report a failing sequence as found, without dwelling on making it shorter."""


def run_machine(
    machine: type[RuleBasedStateMachine],
    tmp_path_factory: pytest.TempPathFactory,
    *,
    examples: int,
    steps: int,
    postgres: bool = False,
    phases: Sequence[Phase] | None = None,
) -> None:
    """Run `machine` (a class with `tmp` and, for `postgres`, `database` attributes) over
    `examples` examples of up to `steps` steps, each in a new folder (and database)."""
    counter = itertools.count()
    databases: list[AbstractContextManager[str]] = []
    prefix = "pg-example" if postgres else "example"

    class PerExample(machine):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            owner: Any = type(self)
            owner.tmp = tmp_path_factory.mktemp(f"{prefix}{next(counter)}")
            if postgres:
                database = fresh_database()
                owner.database = database.__enter__()
                databases.append(database)
            super().__init__()

    options: dict[str, Any] = {} if phases is None else {"phases": list(phases)}
    PerExample.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        **options,
    )
    try:
        PerExample.TestCase("runTest").runTest()
    finally:
        for database in databases:
            database.__exit__(None, None, None)

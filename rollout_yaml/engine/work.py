"""A run waiting for a worker: what execution needs, whether it came fresh from intake or was
claimed from the database after a restart."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rollout_yaml.store.records import EventRecord, Run


@dataclass(frozen=True, slots=True)
class WorkItem:
    run_id: str
    consumer: str
    automation: str
    event: EventRecord
    attempts: int = 0

    @classmethod
    def from_run(cls, run: Run) -> WorkItem:
        return cls(run.id, run.consumer, run.automation, run.event, run.attempts)

    def next_attempt(self) -> WorkItem:
        return replace(self, attempts=self.attempts + 1)

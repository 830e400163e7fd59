"""Which automations an event starts: an index by (consumer, app, trigger), built per
configuration generation."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment

Key = tuple[str, str, str]


@dataclass(frozen=True)
class MatchIndex:
    by_trigger: dict[Key, tuple[CompiledAutomation, ...]]

    @classmethod
    def build(cls, env: CompiledEnvironment) -> MatchIndex:
        grouped: dict[Key, list[CompiledAutomation]] = defaultdict(list)
        for automation in env.automations.values():
            if automation.enabled:
                key = (automation.consumer, automation.trigger_app, automation.trigger_key)
                grouped[key].append(automation)
        return cls({k: tuple(v) for k, v in grouped.items()})

    def automations(self, consumer: str, app: str, trigger: str) -> tuple[CompiledAutomation, ...]:
        return self.by_trigger.get((consumer, app, trigger), ())

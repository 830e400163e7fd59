"""Which automations an event starts: an index by (consumer, app, trigger), built per
configuration generation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
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

    def changed(
        self, removed: Iterable[CompiledAutomation], added: Iterable[CompiledAutomation]
    ) -> MatchIndex:
        """A new index with these automations taken out and put in: only the (consumer, app,
        trigger) entries they belong to are rebuilt, whatever the size of the environment."""
        by_trigger = dict(self.by_trigger)
        gone: dict[Key, set[str]] = defaultdict(set)
        for automation in removed:
            gone[_key(automation)].add(automation.key)
        new: dict[Key, list[CompiledAutomation]] = defaultdict(list)
        for automation in added:
            gone[_key(automation)].add(automation.key)
            if automation.enabled:
                new[_key(automation)].append(automation)
        for key, keys in gone.items():
            kept = [a for a in by_trigger.get(key, ()) if a.key not in keys]
            kept.extend(new.get(key, ()))
            if kept:
                by_trigger[key] = tuple(kept)
            else:
                by_trigger.pop(key, None)
        return MatchIndex(by_trigger)

    def automations(self, consumer: str, app: str, trigger: str) -> tuple[CompiledAutomation, ...]:
        return self.by_trigger.get((consumer, app, trigger), ())


def _key(automation: CompiledAutomation) -> Key:
    return (automation.consumer, automation.trigger_app, automation.trigger_key)

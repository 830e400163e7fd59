"""From a trigger event to an action's inputParams: filters and the mapping of one automation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment, CompiledTrigger
from rollout_yaml.expr.values import render_tree


def automation_context(
    env: CompiledEnvironment,
    automation: CompiledAutomation,
    payload: Any,
    event: Mapping[str, Any],
) -> dict[str, Any]:
    """What automation templates and filters see; never credentials or process variables."""
    return {
        "payload": payload,
        "event": dict(event),
        "params": automation.params,
        "consumer": {"key": automation.consumer},
        "env": env.name,
    }


def passes_filters(
    trigger: CompiledTrigger | None,
    automation: CompiledAutomation,
    context: Mapping[str, Any],
    delivery: Mapping[str, Any] | None = None,
) -> bool:
    """The trigger's filter (over payload and the automation's trigger input), then the
    automation's own filter (over payload, params, event, consumer). A webhook delivery's
    `headers` (lower-cased names) and `query` are beside them in both (`delivery`)."""
    extra = dict(delivery or {})
    if trigger is not None and trigger.filter is not None:
        scope = {"payload": context["payload"], "input": dict(automation.trigger_input), **extra}
        if not trigger.filter.is_true(scope):
            return False
    return automation.filter is None or automation.filter.is_true({**context, **extra})


def render_action_input(automation: CompiledAutomation, context: Mapping[str, Any]) -> Any:
    """Render the mapping; keys whose value renders to null are left out (optional inputs)."""
    return render_tree(automation.action_input, context, drop_null=True)

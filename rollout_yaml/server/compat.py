"""Rollout's spelling of our records: camelCase fields and Rollout's run statuses, so clients
written against Rollout's Project Environment API keep working (see `compat_api`)."""

from __future__ import annotations

from typing import Any

from rollout_yaml.expr.compiled import CompiledAutomation
from rollout_yaml.server.views import iso
from rollout_yaml.store.records import Run, RunStatus

# `filtered` and `dry_run` have no Rollout equivalent: they keep their own name, upper-cased.
ROLLOUT_STATUS = {
    RunStatus.QUEUED: "PENDING",
    RunStatus.RUNNING: "EXECUTING",
    RunStatus.SUCCEEDED: "SUCCESS",
    RunStatus.RETRYING: "RETRY",
    RunStatus.FAILED: "SERVER_ERROR",
    RunStatus.FILTERED: "FILTERED",
    RunStatus.DRY_RUN: "DRY_RUN",
}
# The engine's `error_kind` for an App that refused the input with a 4xx (other than 429).
USER_ERROR_KIND = "app_refused"


def rollout_status(run: Run) -> str:
    if run.status == RunStatus.FAILED and run.error_kind == USER_ERROR_KIND:
        return "USER_ERROR"
    return ROLLOUT_STATUS[run.status]


def statuses_for(rollout: str) -> list[str]:
    """Our statuses behind one Rollout status (both SERVER_ERROR and USER_ERROR are `failed`)."""
    if rollout in ("SERVER_ERROR", "USER_ERROR"):
        return [str(RunStatus.FAILED)]
    return [str(ours) for ours, theirs in ROLLOUT_STATUS.items() if theirs == rollout]


def automation_view(automation: CompiledAutomation) -> dict[str, Any]:
    return {
        "id": automation.key,
        "automationId": automation.key,
        "consumerKey": automation.consumer,
        "blueprintKey": automation.blueprint,
        "name": automation.name,
        "enabled": automation.enabled,
        "trigger": {
            "appKey": automation.trigger_app,
            "triggerKey": automation.trigger_key,
            "credentialKey": automation.trigger_credential,
            "inputParams": dict(automation.trigger_input),
        },
        "action": {
            "appKey": automation.action_app,
            "actionKey": automation.action_key,
            "credentialKey": automation.action_credential,
        },
    }


def run_view(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "automationId": run.automation,
        "consumerKey": run.consumer,
        "status": rollout_status(run),
        "inputParams": run.input,
        "output": run.output,
        "error": run.error,
        "triggerEvent": {
            "id": run.event.id,
            "appKey": run.event.app,
            "triggerKey": run.event.trigger,
            "createdAt": iso(run.event.received_at),
        },
        "attemptCount": run.attempts,
        "createdAt": iso(run.created_at),
        "finishedAt": iso(run.finished_at),
        "replayOf": run.replay_of,
    }

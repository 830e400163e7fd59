"""Rollout's spelling of our records, as `@rollout/framework` types them (`Automation`,
`AutomationRun`): camelCase fields, Rollout's run statuses and UUID ids, so that Rollout's
own clients (`compat_api`'s REST aliases, `rollout_procedures`' tRPC) keep working.

Ids: Rollout clients see UUIDs; rollout-yaml's own keys and ids stay what they are everywhere
else. An automation's UUID is a UUID5 of the environment, the consumer and its key (stable, no
storage; found again by looking through the consumer's automations); a run's is its ULID's 128
bits (`run_<ULID>` ⇄ UUID, both ways without storage). A UUID is looked up only among the
caller's own records, so another consumer's UUID is simply not found.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ulid import ULID

from rollout_yaml.engine.automations import Listed
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledBlueprint, CompiledEnvironment
from rollout_yaml.server.views import iso
from rollout_yaml.store.records import (
    Attempt,
    AutomationStatus,
    Run,
    RunStatus,
    StoredAutomation,
)

NAMESPACE = uuid.UUID("5b1f3c9e-7a4d-4e8b-9c2f-0d6a1e3b7f50")
RUN_PREFIX = "run_"

# `filtered` and `dry_run` have no Rollout equivalent: they keep their own name, upper-cased,
# and are shown to Rollout clients only when asked for by that status.
ROLLOUT_STATUS = {
    RunStatus.QUEUED: "PENDING",
    RunStatus.RUNNING: "EXECUTING",
    RunStatus.SUCCEEDED: "SUCCESS",
    RunStatus.RETRYING: "RETRY",
    RunStatus.FAILED: "SERVER_ERROR",
    RunStatus.FILTERED: "FILTERED",
    RunStatus.DRY_RUN: "DRY_RUN",
}
HIDDEN = frozenset({"FILTERED", "DRY_RUN"})
# The engine's `error_kind`s of the consumer's own input: an App that refused it with a 4xx
# (other than 429), or inputParams that fail the action's input_schema.
USER_ERROR_KINDS = frozenset({"app_refused", "input"})

# connector `auth.type` → what `apps.authInfo` calls it
AUTH_TYPES = {
    "none": "none",
    "jwt": "JWT",
    "api_key": "apiKey",
    "bearer": "apiKey",
    "basic": "apiKey",
    "oauth2": "oauth2",
}
IMPLICIT_CREDENTIAL = frozenset({"none", "jwt"})
"""Auth kinds whose Rollout credential is the consumer itself (`credentialKey` = consumerKey):
no auth, or the credential the consumer's token carries."""


# -- ids -------------------------------------------------------------------------------------


def automation_uuid(environment: str, consumer: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"automation\x00{environment}\x00{consumer}\x00{key}"))


def run_uuid(run_id: str) -> str:
    """The run's ULID as a UUID; an id that is not `run_<ULID>` (none the engine makes) gets a
    UUID5 instead, which `run_id_of` cannot turn back."""
    try:
        return str(uuid.UUID(bytes=ULID.from_str(run_id.removeprefix(RUN_PREFIX)).bytes))
    except ValueError:
        return str(uuid.uuid5(NAMESPACE, f"run\x00{run_id}"))


def run_id_of(value: str) -> str | None:
    """Our run id behind a run UUID (None: not a UUID)."""
    try:
        return RUN_PREFIX + str(ULID.from_bytes(uuid.UUID(value).bytes))
    except ValueError:
        return None


# -- statuses --------------------------------------------------------------------------------


def rollout_status(run: Run) -> str:
    if run.status == RunStatus.FAILED and run.error_kind in USER_ERROR_KINDS:
        return "USER_ERROR"
    return ROLLOUT_STATUS[run.status]


def statuses_for(rollout: str) -> list[str]:
    """Our statuses behind one Rollout status (both SERVER_ERROR and USER_ERROR are `failed`)."""
    if rollout in ("SERVER_ERROR", "USER_ERROR"):
        return [str(RunStatus.FAILED)]
    return [str(ours) for ours, theirs in ROLLOUT_STATUS.items() if theirs == rollout]


# -- automations -----------------------------------------------------------------------------


def _entry(automation: CompiledAutomation) -> Mapping[str, Any]:
    """The automation as written in its consumer file (inputs before rendering)."""
    data = automation.source.data
    found = data.get("automations", {}).get(automation.key) if isinstance(data, dict) else None
    return found if isinstance(found, Mapping) else {}


def _mtime(automation: CompiledAutomation) -> str | None:
    try:
        return iso(automation.source.path.stat().st_mtime)
    except OSError:
        return None


def credential_key(consumer: str, key: str | None) -> str:
    """Rollout's credentialKey (never null): ours, or the consumer's own key for an App whose
    credential is implicit (no auth, `jwt`) or a trigger that needs none."""
    return key if key is not None else consumer


def automation_view(
    environment: str,
    automation: CompiledAutomation,
    *,
    status: str = "READY",
    created_at: str | None = None,
    updated_at: str | None = None,
    custom_data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An `Automation` of `@rollout/framework`. A blueprint automation's `action.inputParams`
    are its blueprint `params`; an automation written out has its `input:` as written."""
    entry = _entry(automation)
    if automation.blueprint is not None:
        action_input = dict(entry.get("params") or dict(automation.params))
    else:
        action = entry.get("action")
        action_input = dict(action.get("input") or {}) if isinstance(action, Mapping) else {}
    stamp = _mtime(automation)
    consumer = automation.consumer
    return _view(
        environment,
        consumer,
        automation.key,
        name=automation.name,
        enabled=automation.enabled,
        status=status,
        created_at=created_at or stamp,
        updated_at=updated_at or stamp,
        blueprint=automation.blueprint,
        trigger=(
            automation.trigger_app,
            automation.trigger_key,
            automation.trigger_credential,
            dict(automation.trigger_input),
        ),
        action=(
            automation.action_app,
            automation.action_key,
            automation.action_credential,
            action_input,
        ),
        custom_data=custom_data,
        file=automation.file,
    )


_VARIABLE = re.compile(r"\{\{\s*(payload(?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*\}\}")


def as_variables(value: Any) -> Any:
    """Inputs as connect-react reads them: a template that only reads a payload field,
    `{{ payload.order_id }}`, written as the variable it inserts, `{{payload.order_id}}` (the
    same template), so that its editor shows it as that variable."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: "{{" + m.group(1) + "}}", value)
    if isinstance(value, Mapping):
        return {k: as_variables(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_variables(v) for v in value]
    return value


def _view(
    environment: str,
    consumer: str,
    key: str,
    *,
    name: str,
    enabled: bool,
    status: str,
    created_at: str | None,
    updated_at: str | None,
    blueprint: str | None,
    trigger: tuple[str, str, str | None, Mapping[str, Any]],
    action: tuple[str, str, str | None, Mapping[str, Any]],
    custom_data: Any,
    file: str | None,
) -> dict[str, Any]:
    return {
        "id": automation_uuid(environment, consumer, key),
        "createdAt": created_at,
        "updatedAt": updated_at,
        "status": status,
        "active": enabled,
        "live": enabled and status == "READY",
        "name": name,
        "consumerKey": consumer,
        "blueprintKey": blueprint,
        "trigger": {
            "appKey": trigger[0],
            "triggerKey": trigger[1],
            "credentialKey": credential_key(consumer, trigger[2]),
            "inputParams": as_variables(dict(trigger[3])),
        },
        "action": {
            "appKey": action[0],
            "actionKey": action[1],
            "credentialKey": credential_key(consumer, action[2]),
            "inputParams": as_variables(dict(action[3])),
        },
        "customData": dict(custom_data) if isinstance(custom_data, Mapping) else None,
        "rolloutYaml": {"key": key, "file": file},
    }


def listed_view(
    environment: str, blueprints: Mapping[str, CompiledBlueprint], listed: Listed
) -> dict[str, Any]:
    """A file or stored automation; a stored one that does not compile is `INVALID`, shown
    from its stored definition."""
    stored = listed.stored
    status = "READY"
    created = updated = None
    custom: Any = None
    if stored is not None:
        status = "INVALID" if stored.status is AutomationStatus.INVALID else "READY"
        created, updated, custom = (
            iso(stored.created_at),
            iso(stored.updated_at),
            stored.custom_data,
        )
    if listed.compiled is not None:
        view = automation_view(
            environment,
            listed.compiled,
            status=status,
            created_at=created,
            updated_at=updated,
            custom_data=custom,
        )
        if stored is not None:
            view["rolloutYaml"]["file"] = None
        return view
    assert stored is not None  # a file automation is always compiled
    return _stored_view(environment, blueprints, stored, status, created, updated)


def _stored_view(
    environment: str,
    blueprints: Mapping[str, CompiledBlueprint],
    stored: StoredAutomation,
    status: str,
    created: str | None,
    updated: str | None,
) -> dict[str, Any]:
    definition = stored.definition
    blueprint = definition.get("blueprint")
    trigger: tuple[str, str, str | None, Mapping[str, Any]]
    action: tuple[str, str, str | None, Mapping[str, Any]]
    if isinstance(blueprint, str):
        model = blueprints[blueprint].model if blueprint in blueprints else None
        credentials = definition.get("credentials") or {}
        trigger = (
            model.trigger.app if model else "",
            model.trigger.trigger if model else "",
            credentials.get("trigger"),
            {},
        )
        action = (
            model.action.app if model else "",
            model.action.action if model else "",
            credentials.get("action"),
            dict(definition.get("params") or {}),
        )
        name = definition.get("name") or (model.name if model else stored.key)
    else:
        given_trigger = definition.get("trigger") or {}
        given_action = definition.get("action") or {}
        trigger = (
            str(given_trigger.get("app", "")),
            str(given_trigger.get("trigger", "")),
            given_trigger.get("credential"),
            dict(given_trigger.get("input") or {}),
        )
        action = (
            str(given_action.get("app", "")),
            str(given_action.get("action", "")),
            given_action.get("credential"),
            dict(given_action.get("input") or {}),
        )
        name = definition.get("name") or stored.key
        blueprint = None
    return _view(
        environment,
        stored.consumer,
        stored.key,
        name=str(name),
        enabled=stored.enabled,
        status=status,
        created_at=created,
        updated_at=updated,
        blueprint=blueprint,
        trigger=trigger,
        action=action,
        custom_data=stored.custom_data,
        file=None,
    )


def blueprint_of(listed: Listed) -> str | None:
    if listed.compiled is not None:
        return listed.compiled.blueprint
    found = listed.stored.definition.get("blueprint") if listed.stored else None
    return found if isinstance(found, str) else None


def find_listed(environment: str, listed: Iterable[Listed], automation_id: str) -> Listed | None:
    """The automation a UUID (or its key) names among one consumer's."""
    for found in listed:
        if automation_id in (found.key, automation_uuid(environment, found.consumer, found.key)):
            return found
    return None


# -- Rollout's automationData → a consumer file's automation ----------------------------------


_PATHS = (
    ("$.trigger.app", "$.trigger.appKey"),
    ("$.trigger.trigger", "$.trigger.triggerKey"),
    ("$.trigger.credential", "$.trigger.credentialKey"),
    ("$.trigger.input", "$.trigger.inputParams"),
    ("$.action.app", "$.action.appKey"),
    ("$.action.action", "$.action.actionKey"),
    ("$.action.credential", "$.action.credentialKey"),
    ("$.action.input", "$.action.inputParams"),
    ("$.params", "$.action.inputParams"),
    ("$.credentials.trigger", "$.trigger.credentialKey"),
    ("$.credentials.action", "$.action.credentialKey"),
    ("$.blueprint", "$.blueprintKey"),
    ("$.custom_data", "$.customData"),
    ("$.enabled", "$.active"),
)
_PATH = re.compile("^(" + "|".join(re.escape(ours) for ours, _ in _PATHS) + r")(?=$|[.\[:])")


def rollout_path(path: str) -> str:
    """A JSON path in a consumer file's automation (what the checks name) as the path in
    Rollout's `automationData` it came from: `$.action.action` → `$.action.actionKey`."""
    theirs = dict(_PATHS)
    return _PATH.sub(lambda m: theirs[m.group(1)], path)


def new_key(name: str) -> str:
    """A key for an automation Rollout's client creates (it names none): the name's words and
    a random suffix."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "automation"
    return f"{slug}-{uuid.uuid4().hex[:8]}"


def _credential_of(env: CompiledEnvironment, consumer: str, app: str, key: Any) -> str | None:
    """Ours behind a Rollout credentialKey: none for an App whose credential is implicit (no
    auth, `jwt`), nor for the consumer's own key when no credential is named so."""
    if not isinstance(key, str) or not key:
        return None
    found = env.apps.get(app)
    if found is not None and found.connector.auth.type in IMPLICIT_CREDENTIAL:
        return None
    declared = env.consumers.get(consumer)
    if key == consumer and (declared is None or key not in declared.credentials):
        return None
    return key


def definition_of(
    env: CompiledEnvironment, consumer: str, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Rollout's `automationData` (`{name, trigger, action, blueprintKey?}`) as a consumer
    file's automation: a blueprint's with its `params` (the action's inputParams) and
    credentials, or the trigger and action written out with their inputs."""
    trigger = data.get("trigger") if isinstance(data.get("trigger"), Mapping) else {}
    action = data.get("action") if isinstance(data.get("action"), Mapping) else {}
    assert isinstance(trigger, Mapping) and isinstance(action, Mapping)
    trigger_app, action_app = str(trigger.get("appKey", "")), str(action.get("appKey", ""))
    trigger_credential = _credential_of(env, consumer, trigger_app, trigger.get("credentialKey"))
    action_credential = _credential_of(env, consumer, action_app, action.get("credentialKey"))
    definition: dict[str, Any] = {}
    if isinstance(data.get("name"), str) and data["name"]:
        definition["name"] = data["name"]
    blueprint = data.get("blueprintKey")
    if isinstance(blueprint, str) and blueprint:
        definition["blueprint"] = blueprint
        definition["params"] = dict(action.get("inputParams") or {})
        credentials = {"trigger": trigger_credential, "action": action_credential}
        definition["credentials"] = {k: v for k, v in credentials.items() if v is not None}
        return definition
    written: dict[str, Any] = {}
    for role, given, credential, name in (
        ("trigger", trigger, trigger_credential, "triggerKey"),
        ("action", action, action_credential, "actionKey"),
    ):
        part: dict[str, Any] = {"app": given.get("appKey"), role: given.get(name)}
        if credential is not None:
            part["credential"] = credential
        part["input"] = dict(given.get("inputParams") or {})
        written[role] = part
    return {**definition, **written}


# -- runs ------------------------------------------------------------------------------------


def _execution_status(attempt: Attempt, run: Run, last: bool) -> str:
    response = attempt.response or {}
    code = response.get("status") if isinstance(response, Mapping) else None
    if attempt.error is None and isinstance(code, int) and code < 400:
        return "SUCCESS"
    if last and run.status == RunStatus.FAILED:
        return rollout_status(run)
    if isinstance(code, int) and 400 <= code < 500 and code != 429:
        return "USER_ERROR"
    return "SERVER_ERROR"


def executions(run: Run) -> list[dict[str, Any]]:
    """One execution per attempt: `{startedAt, endedAt, output: {status, data | error}}`."""
    found = []
    count = len(run.attempt_log)
    for index, attempt in enumerate(run.attempt_log):
        last = index == count - 1
        status = _execution_status(attempt, run, last)
        output: dict[str, Any] = {"status": status}
        if status == "SUCCESS":
            output["data"] = run.output if last else None
        else:
            output["error"] = attempt.error or (run.error if last else None)
        found.append(
            {
                "startedAt": iso(attempt.started_at),
                "endedAt": iso(attempt.started_at + attempt.duration_ms / 1000),
                "output": output,
            }
        )
    return found


def run_view(environment: str, run: Run) -> dict[str, Any]:
    """An `AutomationRun` of `@rollout/framework` (a run read with its attempts)."""
    return {
        "id": run_uuid(run.id),
        "automationId": automation_uuid(environment, run.consumer, run.automation),
        "status": rollout_status(run),
        "executions": executions(run),
        "triggerEvent": {
            "payload": run.event.payload,
            "appKey": run.event.app,
            "triggerKey": run.event.trigger,
            "createdAt": iso(run.event.received_at),
        },
        "consumerKey": run.consumer,
        "inputParams": run.input,
        "createdAt": iso(run.created_at),
        "finishedAt": iso(run.finished_at),
        "replayOf": run_uuid(run.replay_of) if run.replay_of else None,
        "rolloutYaml": {"runId": run.id, "automationKey": run.automation},
    }


# -- credentials -----------------------------------------------------------------------------


def credential_view(consumer: str, view: Mapping[str, Any]) -> dict[str, Any]:
    """A credential as `apps.credentials` lists it, with the REST alias' extra fields (from a
    `/v1/credentials` view; never its values)."""
    return {
        "id": view["key"],
        "credentialKey": view["key"],
        "credentialType": "PRIMARY",
        "label": view.get("label") or view["key"],
        "appKey": view["app"],
        "consumerKey": consumer,
        "stored": view["stored"],
        "status": view["status"],
    }

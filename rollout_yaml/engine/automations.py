"""Automations created over the API: checked as `validate` checks a consumer file, stored in the
environment database, and active once the write is answered.

A write compiles only that automation (`expr/automation_check.py`) and swaps in the running
environment with it changed (`expr/incremental.py`, `MatchIndex.changed`). After a change of
connectors or blueprints every stored one is compiled again: one that no longer compiles turns
`invalid` (kept, shown, not run) and `ready` again once it compiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rollout_yaml.config.models.consumer import Credential
from rollout_yaml.config.types import KEY_PATTERN
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.polls import group_key
from rollout_yaml.expr.automation_check import Checked, Problem, check_automation, is_runtime
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.context import CompileContext
from rollout_yaml.expr.incremental import Change, with_automations
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import AutomationStatus, StoredAutomation

META_FIELDS = ("key", "consumer", "enabled", "custom_data")
"""Body fields that are not part of the definition (what a consumer file would hold)."""
PATCHABLE = ("enabled", "params", "credentials", "custom_data")
_KEY = re.compile(KEY_PATTERN)
log = logging.getLogger("rollout_yaml.automations")


class AutomationEvents(Protocol):
    """Where automation.created / updated / deleted / invalid are raised (partner
    notifications: `engine/notifications.py`'s `Notifications.emit`, which returns once the
    notification is stored, so a write is answered only after its notification is durable)."""

    async def emit(self, type: str, data: dict[str, Any]) -> Any: ...


class _NoEvents:
    async def emit(self, type: str, data: dict[str, Any]) -> None:
        return None


class AutomationRefused(Exception):
    """A write that is not made; nothing was stored."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = headers


def _invalid(problems: Sequence[Problem]) -> AutomationRefused:
    first = problems[0]
    message = f"{first.path}: [{first.code}] {first.message}"
    return AutomationRefused(422, "invalid_automation", message, [p.to_dict() for p in problems])


def _refused(path: str, code: str, message: str, help: str | None = None) -> AutomationRefused:
    return _invalid([Problem(code, message, path, help)])


@dataclass(frozen=True, slots=True)
class Listed:
    """One automation as the API shows it: from a file (compiled) or stored (maybe invalid)."""

    consumer: str
    key: str
    compiled: CompiledAutomation | None
    stored: StoredAutomation | None


Activate = Callable[[CompiledEnvironment, Change], None]
Made = Callable[[str, str], Awaitable[None]]
"""Called once a write is active (`Subscriptions.ensure`: its webhook URL exists at once)."""
Statuses = list[tuple[StoredAutomation, Checked]]


class Automations:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        metrics: Metrics,
        activate: Activate,
        events: AutomationEvents | None = None,
        made: Made | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self._activate = activate
        self._made = made
        self.events: AutomationEvents = events or _NoEvents()
        self._invalid: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {}
        self._memo = CompileContext()  # compiled templates and queries, shared by compiles
        self._versions: dict[tuple[str, str], int] = {}
        """The version of each stored automation the running configuration reflects."""
        self._mark: tuple[int, float] | None = None
        self._told = asyncio.Event()
        self.lock = asyncio.Lock()
        """Held by each change of the running configuration (see `create`); a reload holds it
        from reading the stored automations to swapping the result in."""

    def context(self) -> CompileContext:
        """Where one compile (an API write, a saved consumer file) collects diagnostics."""
        return self._memo.fresh()

    # -- compiling -----------------------------------------------------------------------

    async def _credentials(self, env: CompiledEnvironment, consumer: str) -> dict[str, Credential]:
        """The consumer's credentials: its file's, and stored ones no file declares."""
        found: dict[str, Credential] = {}
        for stored in await self.store.list_credentials(consumer):
            found[stored.key] = Credential(app=stored.app, stored=True)
        declared = env.consumers.get(consumer)
        if declared is not None:
            found.update(declared.credentials)
        return found

    def _check(
        self,
        env: CompiledEnvironment,
        stored: StoredAutomation,
        credentials: Mapping[str, Credential],
    ) -> Checked:
        return check_automation(
            env,
            stored.consumer,
            stored.key,
            stored.definition,
            stored.enabled,
            credentials,
            self.context(),
        )

    async def compile_stored(
        self, env: CompiledEnvironment, consumer: str | None = None
    ) -> tuple[CompiledEnvironment, Change, Statuses]:
        """`env` (compiled from files) with the stored automations of `consumer` (None: all)
        compiled in, and what each one's status is now: `record` them once it is active (a
        status says whether the running configuration has it)."""
        rows = await self.store.list_automations(consumer)
        credentials: dict[str, dict[str, Credential]] = {}
        put: list[CompiledAutomation] = []
        drop: list[tuple[str, str]] = []
        statuses: Statuses = []
        if consumer is None:
            self._versions = {}
        else:  # the consumer's stored ones the running configuration has: taken out first
            drop = [
                ref
                for ref in self._versions
                if ref[0] == consumer
                and ref in env.automations
                and is_runtime(env.automations[ref])
            ]
            self._versions = {r: v for r, v in self._versions.items() if r[0] != consumer}
        for stored in rows:
            self._versions[(stored.consumer, stored.key)] = stored.version
            if stored.consumer not in credentials:
                credentials[stored.consumer] = await self._credentials(env, stored.consumer)
            checked = self._check(env, stored, credentials[stored.consumer])
            if _in_file(env, stored):  # the file's wins: this one is shown, not run
                checked = Checked(None, (_shadowed(stored.key),))
            if checked.automation is not None:
                put.append(checked.automation)
            statuses.append((stored, checked))
        changed, change = with_automations(env, put, drop)
        return changed, change, statuses

    async def record(self, statuses: Statuses) -> None:
        for stored, checked in statuses:
            await self._record(stored, checked)

    async def _record(self, stored: StoredAutomation, checked: Checked) -> None:
        ref = (stored.consumer, stored.key)
        problems = tuple(p.to_dict() for p in checked.problems)
        status = AutomationStatus.READY if checked.ok else AutomationStatus.INVALID
        if status is not stored.status or (not checked.ok and problems != stored.diagnostics):
            await self.store.mark_automation(stored.consumer, stored.key, status, problems)
            if status is AutomationStatus.INVALID:
                await self.events.emit("automation.invalid", _event(stored, problems))
        if checked.ok:
            self._invalid.pop(ref, None)
        else:
            self._invalid[ref] = problems
        self.metrics.automations_invalid.set(len(self._invalid))

    async def load(self) -> None:
        """At start: the stored automations compiled into the running environment."""
        env, change, statuses = await self.compile_stored(self.config.current)
        if change != ((), ()):
            self._activate(env, change)
        await self.record(statuses)

    def invalid(self) -> dict[str, Any]:
        """For `/status`: which stored automations do not compile, and why."""
        return {
            "invalid": [
                {"consumer": c, "key": k, "diagnostics": list(d)}
                for (c, k), d in sorted(self._invalid.items())
            ]
        }

    # -- other processes' writes -----------------------------------------------------------

    async def follow(self, every: float = 0.5) -> None:
        """Apply what other processes (replicas on PostgreSQL, `runtime.processes`) write:
        at once when the database tells (LISTEN), else by comparing the table's mark every
        `every` seconds, which also catches a missed notification."""
        try:
            await self.store.listen_automations(self._told.set)
        except Exception:
            log.warning("cannot LISTEN for automation changes; checking every %s s", every)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._told.wait(), timeout=every)
            self._told.clear()
            try:
                await self.refresh()
            except Exception:
                log.exception("following automation changes failed; trying again")

    async def _refresh(self) -> bool:
        """Compile the stored automations whose version differs from the running one and drop
        the deleted ones; True if the running configuration changed."""
        mark = await self.store.automations_mark()
        if mark == self._mark:
            return False
        versions = await self.store.automation_versions()
        stale = [ref for ref, v in versions.items() if self._versions.get(ref) != v]
        gone = [ref for ref in self._versions if ref not in versions]
        env = self.config.current
        put: list[CompiledAutomation] = []
        drop = list(gone)
        for consumer, key in stale:
            stored = await self.store.get_automation(consumer, key)
            if stored is None:
                drop.append((consumer, key))
                continue
            checked = self._check(env, stored, await self._credentials(env, consumer))
            if _in_file(env, stored):
                checked = Checked(None, (_shadowed(key),))
            self._versions[(consumer, key)] = stored.version
            if checked.automation is not None:
                put.append(checked.automation)
                self._invalid.pop((consumer, key), None)
            else:
                drop.append((consumer, key))
                self._invalid[(consumer, key)] = tuple(p.to_dict() for p in checked.problems)
        for ref in drop:
            self._versions.pop(ref, None)
            if ref in gone:
                self._invalid.pop(ref, None)
        self.metrics.automations_invalid.set(len(self._invalid))
        self._mark = mark
        if not put and not drop:
            return False
        changed, change = with_automations(env, put, drop)
        self._activate(changed, change)
        return True

    # -- reads ---------------------------------------------------------------------------

    async def list(self, consumer: str | None) -> list[Listed]:
        env = self.config.current
        stored = {(a.consumer, a.key): a for a in await self.store.list_automations(consumer)}
        found = {
            ref: Listed(ref[0], ref[1], a, None)
            for ref, a in env.automations.items()
            if consumer in (None, ref[0]) and not is_runtime(a)
        }
        for ref, row in stored.items():
            if ref not in found:  # a file automation wins (a key both use: the file's runs)
                found[ref] = Listed(ref[0], ref[1], env.automations.get(ref), row)
        return [found[ref] for ref in sorted(found)]

    async def get(self, consumer: str, key: str) -> Listed | None:
        env = self.config.current
        compiled = env.automations.get((consumer, key))
        if compiled is not None and not is_runtime(compiled):
            return Listed(consumer, key, compiled, None)
        stored = await self.store.get_automation(consumer, key)
        if stored is None:
            return None
        return Listed(consumer, key, compiled, stored)

    # -- writes --------------------------------------------------------------------------

    def _file_owned(self, consumer: str, key: str) -> AutomationRefused | None:
        compiled = self.config.current.automations.get((consumer, key))
        if compiled is None or is_runtime(compiled):
            return None
        line, _ = compiled.location()
        return AutomationRefused(
            409,
            "file_automation",
            f"automation `{key}` is defined in {compiled.file} line {line}: edit that file "
            "(automations in consumer files are read-only over the API)",
            [{"file": compiled.file, "line": line, "path": "$.key"}],
        )

    async def _stored_or_refuse(self, consumer: str, key: str) -> StoredAutomation:
        refused = self._file_owned(consumer, key)
        if refused is not None:
            raise refused
        stored = await self.store.get_automation(consumer, key)
        if stored is None:
            raise AutomationRefused(404, "not_found", f"automation `{key}` not found")
        return stored

    def _self_service(self, consumer: str, definition: Mapping[str, Any]) -> None:
        rules = self.config.current.settings.self_service
        blueprint = definition.get("blueprint")
        if isinstance(blueprint, str):
            if not rules.allows_blueprint(blueprint):
                allowed = ", ".join(f"`{b}`" for b in rules.blueprints)
                raise _refused(
                    "$.blueprint",
                    "self_service",
                    f"blueprint `{blueprint}` is not one consumers may enable",
                    f"self_service.blueprints allows {allowed}",
                )
        elif not rules.inline:
            raise _refused(
                "$.blueprint",
                "self_service",
                "consumers may only enable blueprints (self_service.inline is false)",
                "name a blueprint with `blueprint:` and give its `params`",
            )

    async def _under_limit(self, consumer: str) -> None:
        limit = self.config.current.settings.self_service.max_automations
        if await self.store.count_automations(consumer) >= limit:
            raise _refused(
                "$",
                "max_automations",
                f"consumer `{consumer}` already has {limit} automations "
                f"(self_service.max_automations)",
                "delete one first",
            )

    async def _compile_new(self, stored: StoredAutomation) -> CompiledAutomation:
        env = self.config.current
        checked = self._check(env, stored, await self._credentials(env, stored.consumer))
        if checked.automation is None:
            raise _invalid(checked.problems)
        return checked.automation

    async def _put(self, automation: CompiledAutomation, version: int) -> None:
        self._versions[(automation.consumer, automation.key)] = version
        env, change = with_automations(self.config.current, [automation])
        self._activate(env, change)
        self._invalid.pop((automation.consumer, automation.key), None)
        self.metrics.automations_invalid.set(len(self._invalid))
        if self._made is not None:
            await self._made(automation.consumer, automation.key)

    async def _create(self, consumer: str, body: Any, *, admin: bool) -> StoredAutomation:
        fields = _fields(body)
        key = _key_of(fields)
        definition = _definition(fields)
        if not admin:
            self._self_service(consumer, definition)
        refused = self._file_owned(consumer, key)
        if refused is not None:
            raise refused
        if await self.store.get_automation(consumer, key) is not None:
            raise AutomationRefused(
                409,
                "conflict",
                f"automation `{key}` exists; PUT /v1/automations/{key} replaces it",
                [{"path": "$.key", "message": "exists"}],
            )
        if not admin:
            await self._under_limit(consumer)
        now = time.time()
        stored = StoredAutomation(
            consumer=consumer,
            key=key,
            definition=definition,
            enabled=_enabled(fields, True),
            version=1,
            created_at=now,
            updated_at=now,
            custom_data=fields.get("custom_data"),
            status=AutomationStatus.READY,
        )
        compiled = await self._compile_new(stored)
        if not await self.store.insert_automation(stored):
            raise AutomationRefused(409, "conflict", f"automation `{key}` exists")
        await self._put(compiled, stored.version)
        await self.events.emit("automation.created", _event(stored))
        return stored

    async def _replace(
        self, consumer: str, key: str, body: Any, if_match: str | None, *, admin: bool
    ) -> StoredAutomation:
        fields = _fields(body)
        current = await self._stored_or_refuse(consumer, key)
        if "key" in fields and fields["key"] != key:
            raise _refused("$.key", "invalid_request", "the key is the one in the URL")
        _check_version(current, if_match)
        definition = _definition(fields)
        if not admin:
            self._self_service(consumer, definition)
        changed = replace(
            current,
            definition=definition,
            enabled=_enabled(fields, True),
            custom_data=fields.get("custom_data"),
        )
        return await self._write(current, changed)

    async def _patch(
        self, consumer: str, key: str, body: Any, if_match: str | None, *, admin: bool
    ) -> StoredAutomation:
        fields = _fields(body)
        for name in fields:
            if name not in PATCHABLE:
                raise _refused(
                    f"$.{name}",
                    "invalid_request",
                    f"PATCH changes {', '.join(PATCHABLE)}; PUT replaces the whole automation",
                )
        current = await self._stored_or_refuse(consumer, key)
        _check_version(current, if_match)
        definition = dict(current.definition)
        for name in ("params", "credentials"):
            if name in fields:
                if "blueprint" not in definition:
                    raise _refused(
                        f"$.{name}",
                        "invalid_request",
                        f"`{name}` belongs to blueprint automations; PUT the trigger and "
                        "action of this one instead",
                    )
                definition[name] = fields[name]
        changed = replace(
            current,
            definition=definition,
            enabled=_enabled(fields, current.enabled),
            custom_data=fields.get("custom_data", current.custom_data),
        )
        return await self._write(current, changed)

    async def _write(
        self, current: StoredAutomation, changed: StoredAutomation
    ) -> StoredAutomation:
        changed = replace(
            changed,
            version=current.version + 1,
            updated_at=time.time(),
            status=AutomationStatus.READY,
            diagnostics=(),
        )
        compiled = await self._compile_new(changed)
        if not await self.store.replace_automation(changed, current.version):
            raise _stale(current.key)
        await self._put(compiled, changed.version)
        await self.events.emit("automation.updated", _event(changed))
        return changed

    async def _delete(self, consumer: str, key: str) -> None:
        current = await self._stored_or_refuse(consumer, key)
        if not await self.store.delete_automation(consumer, key):
            raise AutomationRefused(404, "not_found", f"automation `{key}` not found")
        before = self.config.current
        gone = before.automations.get((consumer, key))
        env, change = with_automations(before, drop=[(consumer, key)])
        self._versions.pop((consumer, key), None)
        self._activate(env, change)
        self._invalid.pop((consumer, key), None)
        self.metrics.automations_invalid.set(len(self._invalid))
        if gone is not None:
            await self._forget_poll(before, env, gone)
        await self.events.emit("automation.deleted", _event(current))

    def _same_trigger(self, gone: CompiledAutomation) -> tuple[CompiledAutomation, ...]:
        """The automations that could share `gone`'s poll group (the match index has them)."""
        index = self.config.active.index
        return index.automations(gone.consumer, gone.trigger_app, gone.trigger_key)

    async def _forget_poll(
        self, before: CompiledEnvironment, after: CompiledEnvironment, gone: CompiledAutomation
    ) -> None:
        """A poll group left without automations is forgotten (state and seen ids)."""
        key = group_key(before, gone)
        if key is None or any(group_key(after, a) == key for a in self._same_trigger(gone)):
            return
        await self.store.drop_poll_state(f"poll:{key}", key)

    # -- one change at a time ----------------------------------------------------------------
    #
    # Writes, other processes' writes and reloads each read the running configuration, await
    # the database, then swap in a change of it: one at a time, so none swaps in a
    # configuration made before another's change (which would lose that change).

    async def create(self, consumer: str, body: Any, *, admin: bool) -> StoredAutomation:
        async with self.lock:
            return await self._create(consumer, body, admin=admin)

    async def replace(
        self, consumer: str, key: str, body: Any, if_match: str | None, *, admin: bool
    ) -> StoredAutomation:
        async with self.lock:
            return await self._replace(consumer, key, body, if_match, admin=admin)

    async def patch(
        self, consumer: str, key: str, body: Any, if_match: str | None, *, admin: bool
    ) -> StoredAutomation:
        async with self.lock:
            return await self._patch(consumer, key, body, if_match, admin=admin)

    async def delete(self, consumer: str, key: str) -> None:
        async with self.lock:
            await self._delete(consumer, key)

    async def refresh(self) -> bool:
        async with self.lock:
            return await self._refresh()


def _in_file(env: CompiledEnvironment, stored: StoredAutomation) -> bool:
    compiled = env.automations.get((stored.consumer, stored.key))
    return compiled is not None and not is_runtime(compiled)


def _shadowed(key: str) -> Problem:
    return Problem(
        "conflict",
        f"the consumer file defines an automation `{key}` too: the file's runs",
        "$.key",
        "rename this one (delete it and create it under another key) or the file's",
    )


def _stale(key: str) -> AutomationRefused:
    return AutomationRefused(
        412,
        "version_mismatch",
        f"automation `{key}` was changed since that version; GET it and try again",
    )


def _check_version(current: StoredAutomation, if_match: str | None) -> None:
    if if_match is None:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted != "*" and wanted != str(current.version):
        raise _stale(current.key)


def _fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _refused("$", "invalid_request", "the body must be a JSON object")
    return body


def _key_of(fields: Mapping[str, Any]) -> str:
    key = fields.get("key")
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > 100:
        raise _refused(
            "$.key",
            "invalid_request",
            "`key` is required: lowercase letters, digits and dashes, starting with a letter "
            "or digit (at most 100)",
        )
    return key


def _enabled(fields: Mapping[str, Any], default: bool) -> bool:
    value = fields.get("enabled", default)
    if not isinstance(value, bool):
        raise _refused("$.enabled", "invalid_request", "`enabled` is true or false")
    return value


def _definition(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if name not in META_FIELDS}


def _event(stored: StoredAutomation, diagnostics: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {
        "consumer": stored.consumer,
        "key": stored.key,
        "version": stored.version,
        "enabled": stored.enabled,
    }
    if diagnostics:
        data["diagnostics"] = list(diagnostics)
    return data

"""Promotion: validate the source, check every consumer of the target against the source's
definitions, then write the target's frozen release (only what changed, manifest last).

Works on loaded and compiled definitions only: it never touches a database, a credential store
or a consumer file, so it runs the same in CI as on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from rollout_yaml.config.diagnostics import Diagnostic, sorted_unique
from rollout_yaml.config.loader import (
    Definitions,
    EnvironmentConfig,
    FileCache,
    Loaded,
    load_definitions,
    load_environment,
)
from rollout_yaml.config.models import Consumer
from rollout_yaml.config.models.consumer import BlueprintAutomation
from rollout_yaml.config.progress import NO_PROGRESS, Progress
from rollout_yaml.config.project import Layout
from rollout_yaml.config.release import (
    MANIFEST,
    FileChanges,
    definitions_root,
    git_commit,
    new_manifest,
    read_files,
    release_dir,
    release_mode,
    render_manifest,
    write_release,
)
from rollout_yaml.config.source import PathKey, SourceFile
from rollout_yaml.expr.compiler import compile_environment, load_and_compile
from rollout_yaml.expr.context import CompileContext
from rollout_yaml.gitops.diff import ReleaseDiff, diff_definitions


class CannotPromote(Exception):
    """The command cannot even be attempted (unknown environment, live target): exit 2."""


REASONS = {
    "RY201": "app removed",
    "RY202": "trigger removed",
    "RY203": "action removed",
    "RY206": "blueprint removed",
    "RY208": "credential now needed",
    "RY210": "settings for an app the release lacks",
    "RY304": "mapped payload field removed",
    "RY402": "input no longer accepted",
    "RY403": "new required input not given",
    "RY504": "credential fields changed",
    "RY604": "auth type changed",
}


@dataclass(frozen=True)
class Breakage:
    """One place in the target environment that would stop working after the promotion."""

    diagnostic: Diagnostic
    reason: str
    consumer: str | None = None
    automation: str | None = None
    credential: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.diagnostic
        return {
            "file": d.file,
            "line": d.line,
            "col": d.col,
            "consumer": self.consumer,
            "automation": self.automation,
            "credential": self.credential,
            "reason": self.reason,
            "code": d.code,
            "message": d.message,
            "hint": d.hint,
        }

    def to_text(self) -> str:
        d = self.diagnostic
        where = (
            f"automation `{self.automation}`"
            if self.automation
            else f"credential `{self.credential}`"
            if self.credential
            else "settings"
        )
        owner = f" of consumer `{self.consumer}`" if self.consumer else ""
        text = f"{d.file}:{d.line}:{d.col}: {where}{owner}: {self.reason}: {d.message} [{d.code}]"
        return f"{text}\n      = help: {d.hint}" if d.hint else text


@dataclass
class Plan:
    """Everything `promote` decided, before it writes anything."""

    source: str
    target: str
    source_root: Path
    target_dir: Path
    diff: ReleaseDiff
    files: Mapping[str, bytes]
    source_errors: list[Diagnostic] = field(default_factory=list)
    broken: list[Breakage] = field(default_factory=list)
    checked_consumers: int = 0
    checked_automations: int = 0
    manifest_current: bool = False

    @property
    def ok(self) -> bool:
        return not self.source_errors and not self.broken

    @property
    def needs_writing(self) -> bool:
        return bool(self.diff.files) or not self.manifest_current


def _require_environments(layout: Layout, source: str, target: str) -> None:
    for env in (source, target):
        if release_mode(layout, env) is None:
            known = ", ".join(layout.environments()) or "none"
            raise CannotPromote(f"no environment `{env}` (known: {known})")
    if source == target:
        raise CannotPromote("the source and the target are the same environment")


def compute_diff(layout: Layout, source: str, target: str) -> tuple[ReleaseDiff, list[Diagnostic]]:
    """What promoting `source` to `target` would change, and problems reading either side."""
    _require_environments(layout, source, target)
    cache = FileCache()
    new_root, old_root = definitions_root(layout, source), definitions_root(layout, target)
    new = load_definitions(new_root, layout, cache)
    old = load_definitions(old_root, layout, cache)
    files = FileChanges.between(read_files(old_root), read_files(new_root))
    problems = [d for d in (*new.diagnostics, *old.diagnostics) if d.is_error]
    return diff_definitions(old, new, source, target, files), sorted_unique(problems)


def plan_promotion(
    layout: Layout,
    source: str,
    target: str,
    environ: Mapping[str, str] | None = None,
    progress: Progress = NO_PROGRESS,
) -> Plan:
    """Steps 1 and 2 of 30-environments.md: validate the source, check the target against it.

    `progress` advances once per consumer file read and once per consumer compiled, of both
    environments."""
    _require_environments(layout, source, target)
    if release_mode(layout, target) != "frozen":
        raise CannotPromote(
            f"`{target}` runs `release: live` (the working tree); only a `release: frozen` "
            f"environment takes promotions: set `release: frozen` in "
            f"environments/{target}/environment.yaml"
        )
    cache = FileCache(progress=progress)
    ctx = CompileContext(progress=progress)
    source_root = definitions_root(layout, source)
    compiled, found = load_and_compile(layout, source, environ=environ, cache=cache, ctx=ctx)
    source_errors = sorted_unique(d for d in found if d.is_error)
    new = load_definitions(source_root, layout, cache)
    target_dir = release_dir(layout, target)
    old = load_definitions(target_dir, layout, cache)
    files = read_files(source_root)
    changes = FileChanges.between(read_files(target_dir), files)
    plan = Plan(
        source=source,
        target=target,
        source_root=source_root,
        target_dir=target_dir,
        diff=diff_definitions(old, new, source, target, changes),
        files=files,
        source_errors=source_errors,
        manifest_current=_manifest_current(target_dir, source, files),
    )
    if compiled is None:
        return plan
    config, loaded = load_environment(layout, target, environ=environ, definitions=new, cache=cache)
    if config is None:
        plan.broken.extend(_classify(d, None) for d in loaded if d.is_error)
        return plan
    target_compiled, more = compile_environment(config, ctx)  # shares compiled templates
    plan.checked_consumers = len(target_compiled.consumers)
    plan.checked_automations = len(target_compiled.automations)
    own = layout.display(layout.env_dir(target)) + "/"
    release = layout.display(target_dir) + "/"
    problems = [
        d
        for d in (*loaded, *more, *_auth_changes(config, old, new))
        if d.is_error and d.file.startswith(own) and not d.file.startswith(release)
    ]
    places = _Places(config)
    ordered = sorted(set(problems), key=Diagnostic.sort_key)
    plan.broken.extend(_classify(d, places) for d in ordered)
    return plan


def _manifest_current(target_dir: Path, source: str, files: Mapping[str, bytes]) -> bool:
    """The target's release.yaml already lists exactly these files with these hashes."""
    path = target_dir / MANIFEST
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(data, dict) or data.get("promoted_from") != source:
        return False
    expected = new_manifest(source, files, None).files
    return data.get("files") == expected


def promote(plan: Plan, now: datetime | None = None) -> list[str]:
    """Step 3: write the target's release. Returns the files written or deleted."""
    assert plan.ok, "a refused promotion writes nothing"
    if not plan.needs_writing:
        return []
    commit = git_commit(plan.source_root)
    manifest = new_manifest(plan.source, plan.files, commit, now)
    return write_release(
        plan.target_dir, plan.files, plan.diff.files, render_manifest(manifest, plan.target)
    )


# -- what breaks -------------------------------------------------------------------------------


def _auth_changes(
    config: EnvironmentConfig, old: Definitions, new: Definitions
) -> list[Diagnostic]:
    """RY604: an App whose auth type changes invalidates every credential consumers hold for
    it (stored tokens included, which no file shows): each automation using one breaks."""
    changed = {
        app: (old.connectors[app].model.auth.type, loaded.model.auth.type)
        for app, loaded in new.connectors.items()
        if app in old.connectors and old.connectors[app].model.auth.type != loaded.model.auth.type
    }
    found: list[Diagnostic] = []
    for loaded_consumer in config.consumers.values():
        source = loaded_consumer.source
        assert source is not None
        found.extend(_auth_breaks(loaded_consumer.model, source, changed))
    return found


def _auth_breaks(
    consumer: Consumer, source: SourceFile, changed: Mapping[str, tuple[str, str]]
) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for cred_key, credential in consumer.credentials.items():
        if credential.app not in changed:
            continue
        before, after = changed[credential.app]
        message = (
            f"app `{credential.app}` changes auth from {before} to {after}, so credential "
            f"`{cred_key}` ({'stored' if credential.stored else 'values'}) no longer fits"
        )
        hint = (
            f"keep `{credential.app}`'s auth as it is and add the new auth as another app "
            f"(e.g. `{credential.app}-v2`), then move this consumer over"
        )
        uses = list(_credential_uses(consumer, cred_key))
        if not uses:
            found.append(
                source.diagnostic("RY604", message, ("credentials", cred_key, "app"), hint=hint)
            )
        for path in uses:
            found.append(source.diagnostic("RY604", message, path, hint=hint))
    return found


def _credential_uses(consumer: Consumer, credential: str) -> list[PathKey]:
    uses: list[PathKey] = []
    for key, entry in consumer.automations.items():
        base: PathKey = ("automations", key)
        if isinstance(entry, BlueprintAutomation):
            for role in ("trigger", "action"):
                if getattr(entry.credentials, role) == credential:
                    uses.append((*base, "credentials", role))
        else:
            if entry.trigger.credential == credential:
                uses.append((*base, "trigger", "credential"))
            if entry.action.credential == credential:
                uses.append((*base, "action", "credential"))
    return uses


class _Places:
    """Which automation or credential of a consumer file a line belongs to."""

    def __init__(self, config: EnvironmentConfig) -> None:
        self._files: dict[str, tuple[str, list[tuple[int, str, str]]]] = {}
        for loaded in config.consumers.values():
            self._add(loaded)

    def _add(self, loaded: Loaded[Consumer]) -> None:
        source, model = loaded.source, loaded.model
        assert source is not None
        starts: list[tuple[int, str, str]] = []
        for section, keys in (
            ("credentials", model.credentials),
            ("automations", model.automations),
        ):
            for key in keys:
                starts.append((source.locate((section, key), key=True)[0], section, key))
            if keys:  # the section's own key line closes the previous section's last entry
                starts.append((source.locate((section,), key=True)[0], section, ""))
        self._files[source.display] = (model.consumer, sorted(starts))

    def find(self, file: str, line: int) -> tuple[str | None, str | None, str | None]:
        """(consumer, automation, credential) at `line` of `file`."""
        if file not in self._files:
            return None, None, None
        consumer, starts = self._files[file]
        owner: tuple[int, str, str] | None = None
        for start in starts:
            if start[0] <= line:
                owner = start
        if owner is None or not owner[2]:
            return consumer, None, None
        _, section, key = owner
        if section == "automations":
            return consumer, key, None
        return consumer, None, key


def _classify(diagnostic: Diagnostic, places: _Places | None) -> Breakage:
    reason = REASONS.get(diagnostic.code, "invalid")
    if places is None:
        return Breakage(diagnostic, reason)
    consumer, automation, credential = places.find(diagnostic.file, diagnostic.line)
    return Breakage(diagnostic, reason, consumer, automation, credential)

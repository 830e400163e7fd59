"""Reads a project's files for one environment into models, collecting every diagnostic.

Each file is read on its own, so one broken file never hides another's problems. Definitions
(`connectors/`, `automations/`) shared by live environments are read once per `FileCache`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from rollout_yaml.config.diagnostics import Diagnostic, Severity
from rollout_yaml.config.errors import validation_diagnostics
from rollout_yaml.config.models import Blueprint, Connector, Consumer, EnvironmentSettings
from rollout_yaml.config.models.connector import builtin_schedule
from rollout_yaml.config.models.release import ReleaseManifest
from rollout_yaml.config.parallel import read_in_parallel, read_one, read_sequentially
from rollout_yaml.config.progress import NO_PROGRESS, Progress
from rollout_yaml.config.project import Layout, yaml_files
from rollout_yaml.config.secrets import Interpolated, interpolate, load_secret_files
from rollout_yaml.config.source import SourceFile
from rollout_yaml.config.suggest import did_you_mean

M = TypeVar("M", bound=BaseModel)

BUILTIN_APPS = frozenset({"schedule"})


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """A validated model and the file it came from (None for built-ins)."""

    model: M
    source: SourceFile | None
    interpolated: Interpolated | None = None


@dataclass(frozen=True)
class Definitions:
    """Connectors and blueprints, from the project or from a frozen release."""

    connectors: Mapping[str, Loaded[Connector]]
    blueprints: Mapping[str, Loaded[Blueprint]]
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...]


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything one environment runs, validated file by file (cross-checks come later)."""

    name: str
    layout: Layout
    settings: Loaded[EnvironmentSettings]
    definitions: Definitions
    consumers: Mapping[str, Loaded[Consumer]]
    variables: Mapping[str, str]
    files: tuple[str, ...]

    @property
    def connectors(self) -> Mapping[str, Loaded[Connector]]:
        return self.definitions.connectors

    @property
    def blueprints(self) -> Mapping[str, Loaded[Blueprint]]:
        return self.definitions.blueprints


@dataclass
class FileCache:
    """Definitions already read in this process run, keyed by folder."""

    definitions: dict[Path, Definitions] = field(default_factory=dict)
    parallel_reads: bool = False
    """Read consumer files on every CPU (one-shot commands only: it forks)."""
    progress: Progress = NO_PROGRESS
    """Advanced once per consumer file read (a long `validate` shows a bar)."""


def load_model(
    source: SourceFile,
    model: type[M],
    name_field: str,
    expected: str | None,
    diagnostics: list[Diagnostic],
    data: Any = None,
) -> M | None:
    """Validate one file's data as `model`; append diagnostics and return None on failure."""
    data = source.data if data is None else data
    if not isinstance(data, dict):
        diagnostics.append(
            source.diagnostic(
                "RY004",
                f"a {name_field} file must be a mapping with `{name_field}:` at the top",
                hint=f"start the file with `{name_field}: {expected or '<name>'}`",
            )
        )
        return None
    name = data.get(name_field)
    if expected is not None and isinstance(name, str) and name != expected:
        diagnostics.append(
            source.diagnostic(
                "RY003",
                f"`{name_field}: {name}` does not match the file name `{expected}`",
                (name_field,),
                hint=f"write `{name_field}: {expected}` or rename the file to `{name}.yaml`",
            )
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        diagnostics.extend(validation_diagnostics(exc, source, model, data))
        return None


def _read(path: Path, layout: Layout, diagnostics: list[Diagnostic]) -> SourceFile | None:
    read = read_one(path, layout)
    if isinstance(read, Diagnostic):
        diagnostics.append(read)
        return None
    return read


def _defined_twice(name: str, first: str, display: str) -> Diagnostic:
    """RY701: two files of one folder give the same name (the first one wins)."""
    return Diagnostic(
        "RY701",
        f"`{name}` is defined twice: {first} and {display}",
        display,
        hint="keep one file and delete the other",
    )


def _load_folder(
    folder: Path,
    model: type[M],
    name_field: str,
    layout: Layout,
    diagnostics: list[Diagnostic],
    prepare: Callable[[SourceFile], Any] | None = None,
    parallel: bool = False,
    progress: Progress = NO_PROGRESS,
) -> tuple[dict[str, Loaded[M]], list[str]]:
    loaded: dict[str, Loaded[M]] = {}
    seen: dict[str, str] = {}
    files: list[str] = []
    paths = yaml_files(folder)
    reads = (read_in_parallel if parallel else read_sequentially)(paths, layout, progress)
    for path, read in zip(paths, reads, strict=True):
        display = layout.display(path)
        files.append(display)
        stem = path.stem
        if stem in seen:
            diagnostics.append(_defined_twice(stem, seen[stem], display))
            continue
        seen[stem] = display
        if isinstance(read, Diagnostic):
            diagnostics.append(read)
            continue
        source = read
        prepared = prepare(source) if prepare else None
        data = prepared.data if isinstance(prepared, Interpolated) else None
        instance = load_model(source, model, name_field, stem, diagnostics, data)
        if instance is not None:
            loaded[stem] = Loaded(instance, source, prepared)
    return loaded, files


def load_definitions(root: Path, layout: Layout, cache: FileCache | None = None) -> Definitions:
    """Read `connectors/` and `automations/` under `root` (the project or a release folder)."""
    if cache is not None and root in cache.definitions:
        return cache.definitions[root]
    diagnostics: list[Diagnostic] = []
    connectors, connector_files = _load_folder(
        root / "connectors", Connector, "app", layout, diagnostics
    )
    for key in BUILTIN_APPS & connectors.keys():
        source = connectors.pop(key).source
        assert source is not None
        diagnostics.append(
            source.diagnostic(
                "RY209",
                f"`{key}` is a built-in app and cannot be redefined",
                ("app",),
                hint="give the connector another name",
            )
        )
    all_connectors: dict[str, Loaded[Connector]] = {"schedule": Loaded(builtin_schedule(), None)}
    all_connectors.update(connectors)
    blueprints, blueprint_files = _load_folder(
        root / "automations", Blueprint, "blueprint", layout, diagnostics
    )
    result = Definitions(
        connectors=MappingProxyType(all_connectors),
        blueprints=MappingProxyType(blueprints),
        diagnostics=tuple(diagnostics),
        files=tuple(connector_files + blueprint_files),
    )
    if cache is not None:
        cache.definitions[root] = result
    return result


def load_environment(
    layout: Layout,
    env: str,
    *,
    missing_secret: Severity = Severity.WARNING,
    environ: Mapping[str, str] | None = None,
    cache: FileCache | None = None,
    definitions: Definitions | None = None,
    read_consumers: bool = True,
) -> tuple[EnvironmentConfig | None, list[Diagnostic]]:
    """Read one environment: settings, its definitions (live or frozen) and its consumers.

    `definitions` replaces what the environment runs: `promote` checks a target environment's
    consumers against the source's connectors and blueprints before it writes anything.
    Without `read_consumers` the config has no consumers (and no consumer files): the caller
    reads them itself, file by file (`consumer_paths`, `load_consumer_file`), as `validate`'s
    forked processes do; an environment whose settings do not load still gets every consumer
    file's diagnostics here.
    """
    diagnostics: list[Diagnostic] = []
    env_dir = layout.env_dir(env)
    settings_path = env_dir / "environment.yaml"
    if not settings_path.is_file():
        known = layout.environments()
        diagnostics.append(
            Diagnostic(
                "RY603",
                f"no environment `{env}` (expected {layout.display(settings_path)})",
                layout.display(settings_path),
                hint=did_you_mean(env, known, noun="environments"),
            )
        )
        return None, diagnostics
    process_env = dict(os.environ if environ is None else environ)
    settings_source = _read(settings_path, layout, diagnostics)
    secret_files: list[object] = []
    if settings_source is not None and isinstance(settings_source.data, dict):
        files = settings_source.data.get("secrets") or {}
        secret_files = files.get("files", []) if isinstance(files, dict) else []
    lookup = {**load_secret_files(env_dir, [str(f) for f in secret_files]), **process_env}

    def prepare(source: SourceFile) -> Interpolated:
        if "${" not in source.text:
            return Interpolated(data=source.data)
        result = interpolate(source.data, lookup)
        _report_missing(result, source, missing_secret, env, diagnostics)
        return result

    settings = None
    if settings_source is not None:
        settings_vars = prepare(settings_source)
        settings = load_model(
            settings_source,
            EnvironmentSettings,
            "environment",
            env,
            diagnostics,
            settings_vars.data,
        )
    if settings_source is None or settings is None:
        # The environment cannot run, but its consumer files still get their own diagnostics.
        _load_folder(env_dir / "consumers", Consumer, "consumer", layout, diagnostics, prepare)
        return None, diagnostics

    if definitions is None:  # else the caller's own, checked by the caller
        root = env_dir / "release" if settings.release == "frozen" else layout.root
        if settings.release == "frozen":
            diagnostics.extend(check_release(root, layout))
        definitions = load_definitions(root, layout, cache)
        diagnostics.extend(definitions.diagnostics)
    consumers: dict[str, Loaded[Consumer]] = {}
    consumer_files: list[str] = []
    if read_consumers:
        consumers, consumer_files = _load_folder(
            env_dir / "consumers",
            Consumer,
            "consumer",
            layout,
            diagnostics,
            prepare,
            parallel=cache is not None and cache.parallel_reads,
            progress=cache.progress if cache is not None else NO_PROGRESS,
        )
    config = EnvironmentConfig(
        name=env,
        layout=layout,
        settings=Loaded(settings, settings_source, settings_vars),
        definitions=definitions,
        consumers=MappingProxyType(consumers),
        variables=MappingProxyType(lookup),
        files=(settings_source.display, *definitions.files, *consumer_files),
    )
    return config, diagnostics


def consumer_paths(layout: Layout, env: str) -> tuple[list[Path], list[Diagnostic]]:
    """The environment's consumer files that `load_environment` reads, in its order, and
    RY701 for each file whose name another one already took (the first one wins)."""
    paths: list[Path] = []
    diagnostics: list[Diagnostic] = []
    seen: dict[str, str] = {}
    for path in yaml_files(layout.env_dir(env) / "consumers"):
        display = layout.display(path)
        if path.stem in seen:
            diagnostics.append(_defined_twice(path.stem, seen[path.stem], display))
            continue
        seen[path.stem] = display
        paths.append(path)
    return paths, diagnostics


def load_consumer_file(
    layout: Layout,
    env: str,
    path: Path,
    variables: Mapping[str, str],
    *,
    missing_secret: Severity = Severity.WARNING,
) -> tuple[Loaded[Consumer] | None, list[Diagnostic]]:
    """One consumer file read as `load_environment` reads it (with the environment's
    `variables`), for a saved file that is recompiled on its own."""
    diagnostics: list[Diagnostic] = []
    source = _read(path, layout, diagnostics)
    if source is None:
        return None, diagnostics
    prepared = Interpolated(data=source.data)
    if "${" in source.text:
        prepared = interpolate(source.data, variables)
        _report_missing(prepared, source, missing_secret, env, diagnostics)
    model = load_model(source, Consumer, "consumer", path.stem, diagnostics, prepared.data)
    return (None if model is None else Loaded(model, source, prepared)), diagnostics


def _report_missing(
    result: Interpolated, source: SourceFile, severity: Severity, env: str, out: list[Diagnostic]
) -> None:
    """RY501: an error where the environment is run or validated on its own (`run` refuses to
    start without it), a warning that says so where every environment is checked at once."""
    for path, name in result.missing:
        warning = severity is Severity.WARNING
        out.append(
            source.diagnostic(
                "RY501",
                f"variable `{name}` is not set"
                + (f": `run --env {env}` would refuse to start" if warning else ""),
                path,
                warning=warning,
                hint=f"export {name}=… or add it to a `secrets.files` dotenv file",
            )
        )


def file_digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def check_release(release_dir: Path, layout: Layout) -> list[Diagnostic]:
    """A frozen release must exist and match the sha256 of every file its manifest lists."""
    manifest_path = release_dir / "release.yaml"
    display = layout.display(manifest_path)
    if not manifest_path.is_file():
        return [
            Diagnostic(
                "RY601",
                f"frozen environment has no release ({display} is missing)",
                display,
                hint="run `rollout-yaml promote <source-env> <this-env>`",
            )
        ]
    diagnostics: list[Diagnostic] = []
    source = _read(manifest_path, layout, diagnostics)
    if source is None:
        return diagnostics
    manifest = load_model(source, ReleaseManifest, "promoted_from", None, diagnostics)
    if manifest is None:
        return diagnostics
    listed = set(manifest.files)
    for relative, digest in sorted(manifest.files.items()):
        path = release_dir / relative
        folder, _, name = relative.partition("/")
        if folder not in ("connectors", "automations") or "/" in name or name in ("", ".", ".."):
            diagnostics.append(
                source.diagnostic(
                    "RY602",
                    f"release.yaml lists {relative}, which is not a connector or blueprint file "
                    "of the release",
                    ("files", relative),
                    key=True,
                    hint="a release holds only connectors/<app>.yaml and "
                    "automations/<blueprint>.yaml; promote again to rewrite it",
                )
            )
            continue
        if not path.is_file():
            diagnostics.append(
                source.diagnostic(
                    "RY601",
                    f"release file {relative} is listed but missing",
                    ("files", relative),
                    key=True,
                    hint="promote again to rewrite the release",
                )
            )
        elif file_digest(path) != digest:
            diagnostics.append(
                Diagnostic(
                    "RY602",
                    f"{layout.display(path)} was edited by hand: its sha256 no longer "
                    "matches release.yaml",
                    layout.display(path),
                    hint="edit the source environment's files and promote again",
                )
            )
    for folder in ("connectors", "automations"):
        for path in yaml_files(release_dir / folder):
            relative = path.relative_to(release_dir).as_posix()
            if relative not in listed:
                diagnostics.append(
                    Diagnostic(
                        "RY602",
                        f"{layout.display(path)} is not part of the release (not listed in "
                        "release.yaml)",
                        layout.display(path),
                        hint="remove it, or promote again",
                    )
                )
    return diagnostics

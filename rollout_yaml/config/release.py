"""Frozen releases on disk: which files an environment runs, and writing a new release.

Reading a release back (hash checks, RY601/RY602) is `loader.check_release`; this module holds
what `promote` needs to write one: the files, what changed, the manifest and the git commit.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from rollout_yaml.config.models.release import ReleaseManifest
from rollout_yaml.config.project import Layout, yaml_files

RELEASE_FOLDERS = ("connectors", "automations")
MANIFEST = "release.yaml"


def release_dir(layout: Layout, env: str) -> Path:
    return layout.env_dir(env) / "release"


def release_mode(layout: Layout, env: str) -> str | None:
    """`live` or `frozen` as `environment.yaml` says (None when there is no such environment).

    Read from the raw file: `diff` must work in CI, where the settings' secrets are unset.
    """
    path = layout.env_dir(env) / "environment.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "live"
    mode = data.get("release", "live") if isinstance(data, dict) else "live"
    return "frozen" if mode == "frozen" else "live"


def definitions_root(layout: Layout, env: str) -> Path:
    """The folder holding the `connectors/` and `automations/` that `env` runs."""
    return release_dir(layout, env) if release_mode(layout, env) == "frozen" else layout.root


def read_files(root: Path) -> dict[str, bytes]:
    """Every connector and blueprint file under `root`, by path relative to it, as bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for folder in RELEASE_FOLDERS
        for path in yaml_files(root / folder)
    }


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FileChanges:
    """Files a promotion adds, rewrites and deletes, relative to the release folder."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @classmethod
    def between(cls, old: Mapping[str, bytes], new: Mapping[str, bytes]) -> FileChanges:
        return cls(
            added=tuple(sorted(new.keys() - old.keys(), key=file_order)),
            changed=tuple(
                sorted((k for k in new if k in old and new[k] != old[k]), key=file_order)
            ),
            removed=tuple(sorted(old.keys() - new.keys(), key=file_order)),
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
        }


def file_order(relative: str) -> tuple[int, str]:
    """Connectors first, then blueprints, each by name (as a reader scans a release)."""
    folder = relative.split("/", 1)[0]
    rank = RELEASE_FOLDERS.index(folder) if folder in RELEASE_FOLDERS else len(RELEASE_FOLDERS)
    return (rank, relative)


def new_manifest(
    source_env: str, files: Mapping[str, bytes], commit: str | None, now: datetime | None = None
) -> ReleaseManifest:
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return ReleaseManifest(
        promoted_from=source_env,
        promoted_at=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        source_commit=commit,
        files={name: digest(files[name]) for name in sorted(files, key=file_order)},
    )


def render_manifest(manifest: ReleaseManifest, target_env: str) -> str:
    """release.yaml as `promote` writes it: a header, the fields, one line per file."""
    commit = manifest.source_commit
    lines = [
        f"# Written by `rollout-yaml promote {manifest.promoted_from} {target_env}`. Do not edit:",
        "# `validate` checks every file of this release against its sha256 below.",
        f"promoted_from: {manifest.promoted_from}",
        f"promoted_at: {manifest.promoted_at}",
        f"source_commit: {commit if commit else 'null'}",
        "files:" if manifest.files else "files: {}",
    ]
    lines.extend(f'  {name}: "{value}"' for name, value in manifest.files.items())
    return "\n".join(lines) + "\n"


def write_release(
    target: Path,
    files: Mapping[str, bytes],
    changes: FileChanges,
    manifest_text: str,
) -> list[str]:
    """Write the changed files, delete the removed ones, then the manifest (last, so that a
    runner reloading meanwhile sees the old release or the whole new one, never a mix that
    passes the hash check). Returns the paths written or deleted, relative to `target`."""
    touched: list[str] = []
    for relative in (*changes.added, *changes.changed):
        _write_atomic(target / relative, files[relative])
        touched.append(relative)
    for relative in changes.removed:
        (target / relative).unlink(missing_ok=True)
        touched.append(relative)
    _write_atomic(target / MANIFEST, manifest_text.encode())
    touched.append(MANIFEST)
    return touched


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.promote-tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def git_commit(root: Path, paths: tuple[str, ...] = RELEASE_FOLDERS) -> str | None:
    """HEAD of the git checkout holding `root`, with `-dirty` when `paths` have uncommitted
    changes (the release then holds files that commit does not); None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not head:
        return None
    return f"{head}-dirty" if status else head

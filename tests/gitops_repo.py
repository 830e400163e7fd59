"""A GitOps project in a real git repository in a temp folder: dev live, prod frozen, with the
command line and git run as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from runner_env import SECRETS

FIXTURE = Path(__file__).parent / "fixtures" / "gitops_project"

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,  # the host's settings (signing, hooks) stay out
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.rstrip("\n")


def init_repo(repo: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Dev Eloper")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "pull.ff", "only")


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "--short=12", "HEAD")


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`rollout-yaml ARGS --project PROJECT`, not on a terminal (no prompt), with the secrets."""
    return subprocess.run(
        [sys.executable, "-m", "rollout_yaml", *args, "--project", str(project)],
        env={**os.environ, **SECRETS, "SINK_URL": "http://127.0.0.1:9"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_fixture(tmp: Path, name: str = "origin") -> Path:
    project = tmp / name
    shutil.copytree(FIXTURE, project)
    return project


def released_repo(tmp: Path) -> Path:
    """The fixture committed, promoted dev → prod once, and that promotion committed."""
    repo = copy_fixture(tmp)
    init_repo(repo)
    commit_all(repo, "project: partner and sink apps, orders blueprint, dev and prod")
    first = cli(repo, "promote", "dev", "prod")
    assert first.returncode == 0, first.stdout + first.stderr
    commit_all(repo, "promote dev to prod")
    return repo


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }

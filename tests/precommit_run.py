"""`pre-commit try-repo <this repository> --all-files`, as a partner would try the hooks, in a
git repository holding a copy of the example project.

Installing the hook environment (rollout-yaml and its dependencies, from a clone of this
repository) takes a minute, so `conftest.py` starts it as soon as the suite is collected and
`test_ci.py` reads its outcome at the end; it runs alongside the other tests meanwhile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TEST = "test_ci.py::test_pre_commit_try_repo_installs_this_repository_and_every_hook_passes"


@dataclass
class TryRepo:
    folder: Path
    process: subprocess.Popen[str]

    def result(self, timeout: float = 600) -> tuple[int, str]:
        output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, output

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        shutil.rmtree(self.folder, ignore_errors=True)


KEY = pytest.StashKey[TryRepo]()


def start() -> TryRepo:
    folder = Path(tempfile.mkdtemp(prefix="rollout-try-repo-"))
    project = folder / "partner-project"
    for name in ("connectors", "automations", "environments", "examples"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns(".rollout"))
    git = ["git", "-c", "user.name=partner", "-c", "user.email=partner@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a partner's project"], cwd=project, check=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PRE_COMMIT", "ROLLOUT_"))},
        "PRE_COMMIT_HOME": str(folder / "pre-commit-home"),
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    }
    process = subprocess.Popen(
        [str(BIN / "pre-commit"), "try-repo", str(REPO), "--all-files"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    return TryRepo(folder, process)

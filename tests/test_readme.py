"""The README's tour, followed as a newcomer follows it, on a fresh copy of the repository.

Every ```console block of README.md is read, not copied here: its `$ ` lines are commands (a
line ending in `\\` or inside an open quote goes on), the lines under a command are what it
prints, `…` standing for lines (alone on a line) or text (inside one) that vary. Each block runs
in one shell in a copy of the working tree made into a git repository of its own; a block that
does not begin with `source .venv/bin/activate` is typed in the terminal that did, so the
shell sources it first, silently. `$ make run` starts the daemon the way it does,
`rollout-yaml run --env dev`, on a free port that replaces 8080 in the blocks after it; `<id>`
is the first column of the previous command's last line (an id from `runs list`).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from daemon_proc import free_port

REPO = Path(__file__).resolve().parents[1]
ACTIVATE = "source .venv/bin/activate"
FENCE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
MARK = "\x1estep "
"""Printed before each command's output (an ASCII record separator, never in the README)."""


@dataclass
class Step:
    command: str
    expected: list[str]


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


def console_blocks(readme: str) -> list[list[Step]]:
    blocks = []
    for match in FENCE.finditer(readme):
        steps: list[Step] = []
        lines = match.group(1).splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            index += 1
            if not line.startswith("$ "):
                assert steps, f"output before any command: {line!r}"
                steps[-1].expected.append(line)
                continue
            command = line[2:]
            while not _complete(command) and index < len(lines):
                command += "\n" + lines[index]
                index += 1
            steps.append(Step(command, []))
        blocks.append(steps)
    return blocks


def pattern(expected: list[str]) -> re.Pattern[str]:
    """The expected lines as a regex: `…` alone is any lines, `…` inside a line any text."""
    parts = []
    for line in expected:
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("…")) + r"\n")
    return re.compile("".join(parts))


def fresh_copy(tmp: Path) -> Path:
    """The working tree as a clone sees it (tracked and new files, nothing git-ignored), in a
    repository of its own, with the test run's .venv."""
    copy = tmp / "rollout-yaml"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = copy / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    (copy / ".venv").symlink_to(Path(sys.prefix))
    git = ["git", "-c", "user.name=newcomer", "-c", "user.email=newcomer@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "fresh clone"], cwd=copy, check=True)
    return copy


def shell_environment() -> dict[str, str]:
    """A newcomer's shell: no rollout-yaml variable, no virtualenv active, no colour forced."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROLLOUT_", "VIRTUAL_ENV", "FORCE_COLOR", "PYTEST", "COLUMNS"))
    }
    venv_bin = str(Path(sys.prefix) / "bin")
    keep["PATH"] = os.pathsep.join(
        p for p in keep.get("PATH", "").split(os.pathsep) if p != venv_bin
    )
    return keep


def run_block(copy: Path, commands: list[str], env: dict[str, str], scratch: Path) -> list[str]:
    """Run a block's commands in one shell; what each printed (standard output and error, as
    a terminal shows them together). `<id>` is the first column of the previous one's last line."""
    scratch.mkdir(parents=True, exist_ok=True)
    script = [] if commands[0] == ACTIVATE else [ACTIVATE + "\n"]
    for number, command in enumerate(commands):
        out = scratch / f"out-{number}"
        if "<id>" in command:
            last = scratch / f"out-{number - 1}"
            command = command.replace("<id>", f"$(tail -n 1 '{last}' | awk '{{print $1}}')")
        script.append(
            f"printf '{MARK}%s\\n' {number}\n{{ {command}\n}} >'{out}' 2>&1\ncat '{out}'\n"
        )
    done = subprocess.run(
        ["bash", "-c", "".join(script)],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    pieces = done.stdout.split(MARK)[1:]
    assert len(pieces) == len(commands), done.stdout + done.stderr
    outputs = [piece.split("\n", 1)[1] for piece in pieces]
    # curl ends without a newline: on a terminal the next prompt starts the line
    return [out + "\n" if out and not out.endswith("\n") else out for out in outputs]


@pytest.fixture
def daemon_slot() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_daemon(copy: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """What `make run` does once .venv exists: `rollout-yaml run --env dev` (here on `port`)."""
    venv_bin = Path(sys.prefix) / "bin"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv_bin / "rollout-yaml"), "run", "--env", "dev", "--port", str(port)],
            cwd=copy,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the daemon did not answer /healthz:\n" + log.read_text())


def moved(text: str, port: int | None) -> str:
    """The README's 8080, once the daemon runs on another port."""
    return text.replace(":8080", f":{port}") if port else text


@dataclass
class Terminal:
    """A run of consecutive blocks on its own fresh copy: the offline tour, then `make run`
    and the commands typed while it runs (the two are independent and run side by side)."""

    copy: Path
    port: int | None = None
    checked: list[tuple[str, list[str], str]] | None = None


def follow(
    blocks: list[tuple[int, list[Step]]],
    tmp: Path,
    env: dict[str, str],
    daemons: list[subprocess.Popen[bytes]],
) -> Terminal:
    terminal = Terminal(fresh_copy(tmp), checked=[])
    assert terminal.checked is not None
    for number, steps in blocks:
        if [s.command for s in steps] == ["make run"]:
            terminal.port = free_port()
            daemons.append(start_daemon(terminal.copy, env, terminal.port, tmp / "daemon.log"))
            continue
        commands = [moved(step.command, terminal.port) for step in steps]
        outputs = run_block(terminal.copy, commands, env, tmp / f"block-{number}")
        for step, command, output in zip(steps, commands, outputs, strict=True):
            expected = [moved(line, terminal.port) for line in step.expected]
            terminal.checked.append((command, expected, output))
    return terminal


def test_the_readme_tour_prints_what_the_readme_shows(
    tmp_path: Path, daemon_slot: list[subprocess.Popen[bytes]]
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = list(enumerate(console_blocks(readme)))
    assert len(blocks) >= 3 and sum(len(b) for _, b in blocks) >= 12, "the tour's blocks are gone"
    split = next(i for i, (_, b) in enumerate(blocks) if [s.command for s in b] == ["make run"])
    env = shell_environment()
    with ThreadPoolExecutor(max_workers=2) as pool:
        offline = pool.submit(follow, blocks[:split], tmp_path / "offline", env, daemon_slot)
        online = pool.submit(follow, blocks[split:], tmp_path / "online", env, daemon_slot)
        terminals = [offline.result(), online.result()]
    for terminal in terminals:
        for command, expected, output in terminal.checked or []:
            assert pattern(expected).fullmatch(output), (
                f"$ {command}\n--- the README shows:\n"
                + "\n".join(expected)
                + f"\n--- it printed:\n{output}"
            )
    port, copy, log = terminals[1].port, terminals[1].copy, tmp_path / "online" / "daemon.log"
    assert port is not None, "the tour never starts the daemon"
    # `run --port` moves the URLs handed out too (dev leaves server.public_url empty)
    base = f"http://127.0.0.1:{port}"
    started = log.read_text()
    assert f"webhook URLs and the OAuth2 redirect_uri start with {base}, the address" in started
    cli = str(Path(sys.prefix) / "bin" / "rollout-yaml")

    def token(consumer: str) -> dict[str, str]:
        command = [cli, "token", "--env", "dev", "--consumer", consumer]
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return {"Authorization": f"Bearer {done.stdout.strip()}"}

    globex = httpx.get(f"{base}/v1/automations", headers=token("globex")).json()
    hooks = [a["webhook_url"] for a in globex["automations"] if a["webhook_url"]]
    assert hooks and all(url.startswith(f"{base}/webhooks/") for url in hooks), hooks
    connect = httpx.get(
        f"{base}/v1/connect/slack?credential=acme-slack", headers=token("acme-corp")
    )
    assert connect.status_code == 302, connect.text
    query = parse_qs(urlsplit(connect.headers["location"]).query)
    assert query["redirect_uri"] == [f"{base}/oauth/callback"]


def test_blocks_are_read_with_their_continuations_and_wildcards() -> None:
    (block,) = console_blocks("```console\n$ echo 'a\nb' \\\n  c\na\nb c\n$ true\n```\n")
    assert [s.command for s in block] == ["echo 'a\nb' \\\n  c", "true"]
    assert block[0].expected == ["a", "b c"] and block[1].expected == []
    assert pattern(["x", "…", "y … z"]).fullmatch("x\n1\n2\ny 3 z\n")
    assert pattern(["x", "…", "y"]).fullmatch("x\ny\n")
    assert not pattern(["x"]).fullmatch("x\nmore\n")

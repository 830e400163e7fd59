"""The command line in a real terminal (a pseudo-terminal) and piped: colour and progress bars
on the terminal, plain text and nothing extra through a pipe, no colour with NO_COLOR.

Each command runs as a user runs it, `python -m rollout_yaml ...` in its own process; the
runs of this module start all at once (each takes a second or more to start).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_server import AppServer
from daemon_proc import Daemon, free_port
from list_server import ListServer
from poll_env import automation, trigger, write_automations, write_shop
from runner_env import copy_project

BASE = Path(__file__).resolve().parent / "fixtures" / "base_project"
GLOBEX = "environments/dev/consumers/globex.yaml"
ORDER_BP = "automations/order-to-chat.yaml"

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[25];[0-9;]+)(?:;[0-9;]*)?m")
"""An SGR sequence that sets a foreground colour (bold alone is no colour)."""
BAR = "━"  # rich's progress bar


@dataclass(frozen=True)
class Output:
    returncode: int
    text: str

    @property
    def plain(self) -> str:
        return ESCAPE.sub("", self.text).replace("\r", "")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM", "CI")
    }
    return {**env, "TERM": "xterm-256color", **extra}


def in_terminal(
    args: list[str], cwd: Path, env: dict[str, str], columns: int = 120, timeout: float = 120
) -> Output:
    """Run `args` with standard input, output and error on a new pseudo-terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError as exc:  # EIO: every copy of the follower is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    return Output(process.returncode, b"".join(chunks).decode("utf-8", "replace"))


def piped(args: list[str], cwd: Path, env: dict[str, str]) -> Output:
    done = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return Output(done.returncode, done.stdout + done.stderr)


def rollout(*args: str) -> list[str]:
    return [sys.executable, "-m", "rollout_yaml", *args]


def broken_project(root: Path) -> Path:
    """The base project with a typo'd key."""
    shutil.copytree(BASE, root)
    path = root / GLOBEX
    path.write_text(path.read_text().replace("    enabled: false\n", "    enabeld: false\n"))
    return root


def big_project(root: Path, consumers: int = 120, tests: int = 60) -> Path:
    """The base project with many consumer files (dev) and many blueprint tests."""
    shutil.copytree(BASE, root)
    globex = (root / GLOBEX).read_text()
    for number in range(consumers):
        name = f"customer-{number:03d}"
        text = globex.replace("consumer: globex", f"consumer: {name}")
        (root / GLOBEX).with_name(f"{name}.yaml").write_text(text)
    blueprint = root / ORDER_BP
    text = blueprint.read_text()
    head, _, first = text.partition("tests:\n")
    cases = "".join(
        first.replace("name: renders the message", f"name: case {n}") for n in range(tests)
    )
    blueprint.write_text(head + "tests:\n" + cases)
    return root


@dataclass(frozen=True)
class Projects:
    broken: Path
    big: Path


RUNS = {
    # name: (project, arguments, how)
    "validate-terminal": ("broken", ("validate",), "terminal"),
    "validate-piped": ("broken", ("validate",), "piped"),
    "validate-no-color": ("broken", ("validate",), "no-color"),
    "big-validate-terminal": ("big", ("validate",), "terminal"),
    "big-validate-piped": ("big", ("validate",), "piped"),
    "big-test-terminal": ("big", ("test",), "terminal"),
    "big-test-piped": ("big", ("test",), "piped"),
    "big-promote-terminal": ("big", ("promote", "dev", "prod", "--check"), "terminal"),
    "big-promote-piped": ("big", ("promote", "dev", "prod", "--check"), "piped"),
    "explain-terminal": ("big", ("explain", "RY403"), "terminal"),
    "explain-piped": ("big", ("explain", "RY403"), "piped"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Output]:
    base = tmp_path_factory.mktemp("terminal")
    projects = {"broken": broken_project(base / "broken"), "big": big_project(base / "big")}

    def run(name: str) -> Output:
        project, args, how = RUNS[name]
        command = rollout(*args)
        cwd = projects[project]
        if how == "piped":
            return piped(command, cwd, clean_env())
        extra = {"NO_COLOR": "1"} if how == "no-color" else {}
        return in_terminal(command, cwd, clean_env(**extra))

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(RUNS, pool.map(run, RUNS), strict=True))


def test_validate_on_a_terminal_is_in_colour_with_the_whole_span_underlined(
    runs: dict[str, Output],
) -> None:
    result = runs["validate-terminal"]
    assert result.returncode == 1, result.text
    assert COLOUR.search(result.text), repr(result.text[:400])
    # the severity and code in bold red, the underline of `enabeld` in the same colour
    assert "\x1b[1;31merror[RY101]" in result.text, repr(result.text[:400])
    assert "\x1b[1;31m^^^^^^^\x1b[0m" in result.text, repr(result.text)
    plain = result.plain
    assert f"{GLOBEX}:22:5: error[RY101] unknown key `enabeld`" in plain
    assert "= see: docs/diagnostics.md#ry101 (`rollout-yaml explain RY101`)" in plain


def test_validate_piped_is_plain_text_and_no_color_removes_colour(
    runs: dict[str, Output],
) -> None:
    result = runs["validate-piped"]
    assert result.returncode == 1
    assert "\x1b" not in result.text
    assert f"{GLOBEX}:22:5: error[RY101] unknown key `enabeld`" in result.text
    assert "      |     ^^^^^^^\n" in result.text
    # the terminal shows the same text, only styled
    terminal = runs["validate-terminal"].plain
    assert [line for line in terminal.splitlines() if line.strip()] == [
        line for line in result.text.splitlines() if line.strip()
    ]
    no_color = runs["validate-no-color"]
    assert no_color.returncode == 1
    assert not COLOUR.search(no_color.text), repr(no_color.text[:400])
    assert f"{GLOBEX}:22:5: error[RY101]" in no_color.plain


def test_long_commands_show_a_progress_bar_on_a_terminal_and_nothing_extra_piped(
    runs: dict[str, Output],
) -> None:
    for command, label in (
        ("validate", "validating"),
        ("test", "running tests"),
        ("promote", "checking prod against dev"),
    ):
        terminal, pipe = runs[f"big-{command}-terminal"], runs[f"big-{command}-piped"]
        assert terminal.returncode == 0, terminal.plain[-2000:]
        assert pipe.returncode == 0, pipe.text[-2000:]
        assert label in terminal.plain and BAR in terminal.text, (command, terminal.text[:600])
        assert re.search(r"\d+/\d+", terminal.plain), terminal.plain[:600]  # done/total
        assert label not in pipe.text and BAR not in pipe.text and "\x1b" not in pipe.text
    assert "ok: 3 connectors, 2 blueprints, 2 environments (123 consumers" in (
        runs["big-validate-piped"].text
    )
    assert runs["big-test-piped"].text.strip().endswith("61 passed, 0 failed")
    # the bar is transient: the terminal ends on the command's own last line
    assert runs["big-test-terminal"].plain.strip().endswith("61 passed, 0 failed")


def test_explain_prints_the_entry_highlighted_on_a_terminal(runs: dict[str, Output]) -> None:
    terminal, pipe = runs["explain-terminal"], runs["explain-piped"]
    assert terminal.returncode == 0 and pipe.returncode == 0
    assert COLOUR.search(terminal.text)
    assert "\x1b" not in pipe.text
    for words in ("RY403: required input missing", "Wrong:", "Right:", "input: {channel: C1}"):
        assert words in pipe.text and words in terminal.plain


@pytest.fixture
def shop() -> Iterator[ListServer]:
    server = ListServer(250).start()
    yield server
    server.stop()


def test_poll_over_many_pages_shows_its_progress_on_a_terminal_only(
    tmp_path: Path, sink: AppServer, shop: ListServer
) -> None:
    project = copy_project(tmp_path)
    write_shop(project, shop.url, {"items": trigger("link", initial="emit")})
    write_automations(project, {"items-to-sink": automation("items")})
    env = {**clean_env(), **Daemon(project, sink.url).env}
    env.pop("CI", None)
    args = rollout("poll", "--env", "test", "--consumer", "acme", "--automation", "items-to-sink")
    with ThreadPoolExecutor(max_workers=2) as pool:
        on_terminal = pool.submit(in_terminal, args, project, env)
        through_pipe = pool.submit(piped, args, project, env)
        terminal, pipe = on_terminal.result(), through_pipe.result()
    assert terminal.returncode == 0 and pipe.returncode == 0, terminal.plain
    assert "polling: page 3, 250 items" in terminal.plain, terminal.text[:800]
    assert "polling" not in pipe.text and "\x1b" not in pipe.text
    assert "page 3: GET " in pipe.text and "items: 250 (250 new)" in pipe.text


def test_daemon_text_logs_are_coloured_on_a_terminal(tmp_path: Path, sink: AppServer) -> None:
    project = copy_project(tmp_path)
    port = free_port()
    env = {**clean_env(), **Daemon(project, sink.url).env}
    args = rollout("run", "--env", "test", "--port", str(port))
    leader, follower = pty.openpty()
    process = subprocess.Popen(args, cwd=project, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"environment test running on" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                seen += os.read(leader, 65536)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        os.close(leader)
    text = seen.decode("utf-8", "replace")
    assert "\x1b[32mINFO   \x1b[0m environment test running on" in text, repr(text[:600])
    piped_logs = subprocess.run(
        [*rollout("run", "--env", "test", "--once", "--log-format", "text")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped_logs.returncode == 0, piped_logs.stderr
    assert "INFO" in piped_logs.stderr and "\x1b" not in piped_logs.stderr

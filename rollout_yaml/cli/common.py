"""What every command shares: `--project`, exit codes, JSON and rich output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import yaml
from rich.console import Console

from rollout_yaml.config.project import Layout, is_project, nearest_project

if TYPE_CHECKING:
    from rollout_yaml.config.diagnostics import Diagnostic
    from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def project_option(func: F) -> F:
    """`--project DIR` on every command: the folder holding connectors/ and environments/.

    Outside any project a command says so and exits 2, rather than checking an empty one."""

    def resolve(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Layout:
        if value is not None:
            root = value.resolve()
            if not is_project(root):
                fail(f"no project in {value} (it has neither connectors/ nor environments/)")
            return Layout(root)
        found = nearest_project()
        if found is None:
            fail(
                f"no project here (looked for connectors/ or environments/ from {Path.cwd()} "
                "upwards)"
            )
        assert found is not None
        return Layout(found)

    return click.option(
        "--project",
        "layout",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        callback=resolve,
        help="Project folder (default: the nearest parent holding connectors/ or environments/).",
    )(func)


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output for people (text) or programs (json).",
    )(func)


def console(stderr: bool = False) -> Console:
    """rich on standard output (or error): colour on a terminal unless NO_COLOR is set, plain
    text when piped."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def print_diagnostics(
    diagnostics: Sequence[Diagnostic], root: Path | None, *, err: bool = False
) -> None:
    """Diagnostics as `validate` shows them, with their count."""
    from rollout_yaml.config.render import print_lines, report_lines

    print_lines(console(stderr=err), report_lines(diagnostics, root))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def read_payload(path: Path) -> Any:
    """JSON, or YAML for a .yaml/.yml file; `-` reads standard input (JSON)."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def compiled_or_exit(layout: Layout, env: str, **options: Any) -> CompiledEnvironment:
    """The compiled environment; with errors, they are printed and the command exits 1 (it
    would act on a configuration the runner refuses)."""
    from rollout_yaml.expr.compiler import load_and_compile

    compiled, diagnostics = load_and_compile(layout, env, **options)
    errors = [d for d in diagnostics if d.is_error]
    if compiled is None or errors:
        print_diagnostics(errors or diagnostics, layout.root, err=True)
        sys.exit(EXIT_CHECK_FAILED)
    return compiled


def automation_or_exit(
    compiled: CompiledEnvironment, consumer: str, automation: str
) -> CompiledAutomation:
    """The consumer's automation, or a usage error suggesting the nearest name."""
    from rollout_yaml.config.suggest import did_you_mean

    target = compiled.automations.get((consumer, automation))
    if target is None:
        keys = [k for c, k in compiled.automations if c == consumer]
        hint = (
            did_you_mean(automation, keys, noun="automations")
            if keys
            else did_you_mean(consumer, compiled.consumers, noun="consumers")
        )
        fail(
            f"no automation `{automation}` for consumer `{consumer}`"
            + (f"; {hint}" if hint else "")
        )
    assert target is not None
    return target

"""`rollout-yaml explain RY403`: a diagnostic code's entry, with a wrong and a right example
(the same catalogue `docs/diagnostics.md` is generated from)."""

from __future__ import annotations

import click
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from rollout_yaml.cli.common import console, fail
from rollout_yaml.config.codes import CODES, Code
from rollout_yaml.config.render import docs_reference
from rollout_yaml.config.suggest import did_you_mean


def _normalised(value: str) -> str:
    code = value.strip().upper()
    return f"RY{code}" if code.isdigit() else code


def explanation(code: Code, colour: bool) -> list[RenderableType]:
    """The entry as rich renderables: the YAML examples highlighted on a terminal."""

    def example(text: str) -> RenderableType:
        if not colour:
            return Text("\n".join("    " + line for line in text.splitlines()))
        return Syntax(text, "yaml", theme="ansi_dark", background_color="default", padding=(0, 4))

    return [
        Text.assemble((f"{code.code}: {code.title}", "bold")),
        Text(""),
        Text(code.explanation),
        Text(""),
        Text("Wrong:", style="bold red"),
        example(code.bad),
        Text(""),
        Text("Right:", style="bold green"),
        example(code.good),
        Text(""),
        Text(f"See {docs_reference(code.code)}", style="dim"),
    ]


@click.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain diagnostic CODE (e.g. RY403): what it means, a wrong and a right example."""
    wanted = _normalised(code)
    entry = CODES.get(wanted)
    if entry is None:
        hint = did_you_mean(wanted, CODES, noun="codes")
        fail(f"no diagnostic code {code!r}" + (f"; {hint}" if hint else ""))
        return
    out = console()
    colour = out.is_terminal and not out.no_color
    if not out.is_terminal:
        click.echo("\n".join(t.plain for t in explanation(entry, False) if isinstance(t, Text)))
        return
    out.print(Group(*explanation(entry, colour)))

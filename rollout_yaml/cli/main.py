"""The `rollout-yaml` command group. Commands load on first use (click's lazy-group pattern),
so `validate` in CI does not pay for importing the server and the database drivers."""

from __future__ import annotations

import importlib
from typing import Any

import click

from rollout_yaml import __version__

COMMANDS: dict[str, str] = {
    "validate": "rollout_yaml.cli.validate:validate",
    "test": "rollout_yaml.cli.run_tests:test",
    "render": "rollout_yaml.cli.render:render",
    "poll": "rollout_yaml.cli.poll:poll",
    "schema": "rollout_yaml.cli.schema:schema",
    "init": "rollout_yaml.cli.init:init",
    "run": "rollout_yaml.cli.run:run",
    "token": "rollout_yaml.cli.tokens:token",
    "events": "rollout_yaml.cli.events:events",
    "runs": "rollout_yaml.cli.runs:runs",
    "db": "rollout_yaml.cli.db:db",
    "diff": "rollout_yaml.cli.promote:diff",
    "promote": "rollout_yaml.cli.promote:promote_command",
    "credentials": "rollout_yaml.cli.credentials:credentials",
    "automations": "rollout_yaml.cli.automations:automations",
    "explain": "rollout_yaml.cli.explain:explain",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: Any = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rollout-yaml")
def cli() -> None:
    """rollout-yaml: embedded integrations as YAML in git, run per environment."""


def main() -> None:
    cli(prog_name="rollout-yaml")


if __name__ == "__main__":
    main()

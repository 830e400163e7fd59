"""The `rollout-yaml` command group."""

from __future__ import annotations

import click

from rollout_yaml import __version__
from rollout_yaml.cli.init import init
from rollout_yaml.cli.render import render
from rollout_yaml.cli.run import run
from rollout_yaml.cli.run_tests import test
from rollout_yaml.cli.schema import schema
from rollout_yaml.cli.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rollout-yaml")
def cli() -> None:
    """rollout-yaml: embedded integrations as YAML in git, run per environment."""


for command in (validate, test, schema, init, render, run):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="rollout-yaml")


if __name__ == "__main__":
    main()

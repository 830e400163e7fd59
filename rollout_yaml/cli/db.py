"""`rollout-yaml db migrate`: bring an environment's database to the current schema.

`run` migrates on start too; this is for deploying the schema before the new version starts.
On PostgreSQL it takes the same advisory lock as `run`, so it is safe while replicas start.
"""

from __future__ import annotations

import asyncio

import click

from rollout_yaml.cli.common import fail, print_diagnostics, project_option
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.store.base import DatabaseUnavailable
from rollout_yaml.store.factory import UnsupportedDatabase, open_store
from rollout_yaml.store.sqlite import StoreLocked


@click.group()
def db() -> None:
    """The environment's database."""


@db.command("migrate")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
def migrate(layout: Layout, env: str) -> None:
    """Apply the migrations the database does not have yet."""
    compiled, diagnostics = load_and_compile(layout, env)
    if compiled is None:
        print_diagnostics(diagnostics, layout.root, err=True)
        fail(f"environment `{env}` cannot be loaded")
        return
    try:
        store = open_store(compiled.settings.database, layout.env_dir(env))
    except UnsupportedDatabase as exc:
        fail(str(exc))
        return

    async def apply() -> list[int]:
        applied = await store.open()
        await store.close()
        return applied

    try:
        applied = asyncio.run(apply())
    except StoreLocked:
        fail(
            f"environment `{env}` is running: its daemon holds the database and migrated it "
            "when it started"
        )
        return
    except DatabaseUnavailable as exc:
        fail(str(exc))
        return
    if applied:
        click.echo(f"applied migration(s) {', '.join(map(str, applied))}")
    else:
        click.echo("the database is up to date")

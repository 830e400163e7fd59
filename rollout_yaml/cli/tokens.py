"""`rollout-yaml token`: a consumer JWT for trying the API (curl, the /ui page)."""

from __future__ import annotations

import click

from rollout_yaml.cli import daemon_link
from rollout_yaml.cli.common import fail, project_option
from rollout_yaml.config.project import Layout
from rollout_yaml.config.suggest import did_you_mean
from rollout_yaml.config.types import parse_duration
from rollout_yaml.server.auth import MAX_LIFETIME, make_token


def _ttl(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: write a number and a unit, e.g. 30m or 1h") from exc
    if not 0 < seconds <= MAX_LIFETIME:
        raise click.BadParameter("a token lives at most 24h")
    return seconds


@click.command()
@project_option
@click.option("--env", required=True, help="The environment whose auth.jwt_secret signs it.")
@click.option("--consumer", required=True, help="The consumerKey (the token's `sub`).")
@click.option("--ttl", default="1h", show_default=True, callback=_ttl, help="Lifetime, ≤ 24h.")
def token(layout: Layout, env: str, consumer: str, ttl: float) -> None:
    """Print a consumer JWT (HS512, signed with the environment's auth.jwt_secret)."""
    target = daemon_link.load(layout, env)
    auth = target.compiled.settings.auth
    if not auth.jwt_secret:
        fail(f"auth.jwt_secret is not set in environment `{env}` (or its variable is unset)")
        return
    if consumer not in target.compiled.consumers:
        hint = did_you_mean(consumer, target.compiled.consumers, noun="consumers")
        fail(f"no consumer `{consumer}` in environment `{env}`" + (f"; {hint}" if hint else ""))
        return
    click.echo(make_token(auth.jwt_secret, consumer, ttl, auth.jwt_issuer))

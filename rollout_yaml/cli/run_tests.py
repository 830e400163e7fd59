"""`rollout-yaml test`: the offline `tests:` of connectors and blueprints."""

from __future__ import annotations

import sys

import click

from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    format_option,
    print_json,
    project_option,
)
from rollout_yaml.config.diagnostics import format_text, has_errors, sorted_unique
from rollout_yaml.config.loader import load_definitions
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.offline import run_tests
from rollout_yaml.expr.compiler import compile_definitions, load_and_compile


@click.command()
@project_option
@click.option("--env", default=None, help="Use this environment's release and App settings.")
@click.option("-k", "pattern", default=None, help="Only tests whose app/blueprint or name match.")
@format_option
def test(layout: Layout, env: str | None, pattern: str | None, output_format: str) -> None:
    """Run the tests written in connectors and blueprints, offline."""
    if env:
        compiled, diagnostics = load_and_compile(layout, env)
        apps = dict(compiled.apps) if compiled else {}
        blueprints = dict(compiled.blueprints) if compiled else {}
    else:
        definitions = load_definitions(layout.root, layout)
        apps, blueprints, more = compile_definitions(definitions)
        diagnostics = [*definitions.diagnostics, *more]
    errors = [d for d in sorted_unique(diagnostics) if d.is_error]
    if has_errors(errors):
        click.echo(format_text(errors, layout.root), err=True)
        click.echo("the project does not validate; fix it before running tests", err=True)
        sys.exit(EXIT_CHECK_FAILED)
    results = run_tests(apps, blueprints, pattern)
    failed = [r for r in results if not r.passed]
    if output_format == "json":
        print_json(
            {
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "tests": [
                    {"file": r.file, "name": r.name, "passed": r.passed, "failures": r.failures}
                    for r in results
                ],
            }
        )
    else:
        for result in results:
            mark = "PASS" if result.passed else "FAIL"
            click.echo(f"{mark}  {result.file} :: {result.name}")
            for failure in result.failures:
                click.echo("      " + failure.replace("\n", "\n      "))
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    sys.exit(EXIT_CHECK_FAILED if failed else EXIT_OK)

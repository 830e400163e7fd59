"""`rollout-yaml test`: the offline `tests:` of connectors and blueprints."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click
from rich.text import Text

from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    console,
    format_option,
    print_diagnostics,
    print_json,
    project_option,
)
from rollout_yaml.cli.progress import progress_bar
from rollout_yaml.config.diagnostics import has_errors, sorted_unique
from rollout_yaml.config.loader import Loaded, load_definitions
from rollout_yaml.config.project import Layout
from rollout_yaml.config.render import print_lines
from rollout_yaml.config.source import SourceFile
from rollout_yaml.engine.offline import CaseResult, count_tests, iter_tests
from rollout_yaml.expr.compiler import compile_definitions, load_and_compile

MANY_TESTS = 50
"""From this many tests on, a terminal shows a progress bar while they run."""


@click.command()
@project_option
@click.option("--env", default=None, help="Use this environment's release and App settings.")
@click.option("-k", "pattern", default=None, help="Only tests whose app/blueprint or name match.")
@format_option
def test(layout: Layout, env: str | None, pattern: str | None, output_format: str) -> None:
    """Run the tests written in connectors and blueprints, offline."""
    loaded: list[Loaded[Any]] = []
    if env:
        compiled, diagnostics = load_and_compile(layout, env)
        apps = dict(compiled.apps) if compiled else {}
        blueprints = dict(compiled.blueprints) if compiled else {}
        if compiled is not None:
            loaded = [*compiled.source.connectors.values(), *compiled.source.blueprints.values()]
    else:
        definitions = load_definitions(layout.root, layout)
        apps, blueprints, more = compile_definitions(definitions)
        diagnostics = [*definitions.diagnostics, *more]
        loaded = [*definitions.connectors.values(), *definitions.blueprints.values()]
    errors = [d for d in sorted_unique(diagnostics) if d.is_error]
    if has_errors(errors):
        print_diagnostics(errors, layout.root, err=True)
        click.echo("the project does not validate; fix it before running tests", err=True)
        sys.exit(EXIT_CHECK_FAILED)
    sources = {item.source.display: item.source for item in loaded if item.source is not None}
    total = count_tests(apps, blueprints, pattern)
    results: list[CaseResult] = []
    with progress_bar("running tests", total, threshold=MANY_TESTS) as progress:
        for result in iter_tests(apps, blueprints, pattern):
            results.append(result)
            progress.advance()
    failed = [r for r in results if not r.passed]
    if output_format == "json":
        print_json(
            {
                "passed": len(results) - len(failed),
                "failed": len(failed),
                "tests": [_as_dict(r, sources) for r in results],
            }
        )
    else:
        print_lines(console(), _as_text(results, sources))
    sys.exit(EXIT_CHECK_FAILED if failed else EXIT_OK)


def _where(
    result: CaseResult, place: tuple[str | int, ...], sources: Mapping[str, SourceFile]
) -> str:
    """`file:line:col` of a test (or of the key one of its failures is about)."""
    source = sources.get(result.file)
    if source is None:
        return result.file
    line, col = source.locate(("tests", result.index, *place), key=bool(place))
    return f"{result.file}:{line}:{col}"


def _as_dict(result: CaseResult, sources: Mapping[str, SourceFile]) -> dict[str, Any]:
    return {
        "file": result.file,
        "where": _where(result, (), sources),
        "name": result.name,
        "passed": result.passed,
        "failures": list(result.failures),
        "failure_places": [_where(result, f.place, sources) for f in result.found],
    }


def _as_text(results: list[CaseResult], sources: Mapping[str, SourceFile]) -> list[Text]:
    lines: list[Text] = []
    for result in results:
        mark = Text("PASS", style="bold green") if result.passed else Text("FAIL", style="bold red")
        where = _where(result, (), sources) if not result.passed else result.file
        lines.append(Text.assemble(mark, f"  {where} :: {result.name}"))
        for failure in result.found:
            text = f"{_where(result, failure.place, sources)}: {failure.text}"
            lines.append(Text("      " + text.replace("\n", "\n      ")))
    failed = sum(1 for r in results if not r.passed)
    summary = Text(f"{len(results) - failed} passed", style="bold green" if not failed else "")
    summary.append(", ")
    summary.append(f"{failed} failed", style="bold red" if failed else "")
    lines.append(summary)
    return lines

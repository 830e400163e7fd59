"""One automation written over the API, checked and compiled exactly as `validate` checks and
compiles it in a consumer file: the same models, cross-file checks and compiler, so the same
RY codes and "did you mean" hints.

The definition is written out as a one-line JSON document (JSON is YAML) shaped like a consumer
file, `{"consumer": …, "automations": {<key>: <definition>}}`; each diagnostic's place in that
document is turned back into the JSON path of the definition (`$.params.channel`), which is
also its path in the request body that carried it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.loader import Loaded, load_model
from rollout_yaml.config.models import Consumer
from rollout_yaml.config.models.consumer import Credential
from rollout_yaml.config.references import check_consumer_automation
from rollout_yaml.config.source import PathKey, YamlProblem, parse_source
from rollout_yaml.expr.compile_automations import AutomationCompiler
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.context import CompileContext

RUNTIME_SOURCE = "api:"
"""How the source of an automation created over the API is named: `api:<consumer>/<key>`."""


def runtime_display(consumer: str, key: str) -> str:
    return f"{RUNTIME_SOURCE}{consumer}/{key}"


def is_runtime(automation: CompiledAutomation) -> bool:
    """Created over the API (its source is the stored definition, not a consumer file)."""
    return automation.source.display.startswith(RUNTIME_SOURCE)


@dataclass(frozen=True, slots=True)
class Problem:
    """A diagnostic of a definition, placed by JSON path rather than by line."""

    code: str
    message: str
    path: str
    help: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path, "help": self.help}


@dataclass(frozen=True, slots=True)
class Checked:
    automation: CompiledAutomation | None
    """Compiled, when there is no error."""
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return self.automation is not None


def check_automation(
    env: CompiledEnvironment,
    consumer: str,
    key: str,
    definition: Mapping[str, Any],
    enabled: bool,
    credentials: Mapping[str, Credential] | None = None,
    ctx: CompileContext | None = None,
) -> Checked:
    """Check and compile `definition` as automation `key` of `consumer` against the apps and
    blueprints `env` runs. `credentials` are the consumer's (its file's and stored ones)."""
    display = runtime_display(consumer, key)
    written = {**definition, "enabled": enabled}
    if "blueprint" in written:  # their defaults written out, so a problem there has a place
        written = {"params": {}, "credentials": {}, **written}
    document = {"consumer": consumer, "automations": {key: written}}
    text = json.dumps(document, ensure_ascii=False, separators=(", ", ": "))
    try:
        source = parse_source(text, Path(display), display)
    except (YamlProblem, yaml.YAMLError):  # a control character no consumer file can hold either
        message = "the definition holds characters a consumer file cannot (control characters)"
        return Checked(None, (Problem("RY001", message, "$", "remove them"),))
    diagnostics: list[Diagnostic] = []
    model = load_model(source, Consumer, "consumer", None, diagnostics)
    compiled: CompiledAutomation | None = None
    if model is not None:
        model = model.model_copy(update={"credentials": dict(credentials or {})})
        entry = model.automations[key]
        diagnostics.extend(check_consumer_automation(env.source, model, source, key, entry))
        ctx = ctx or CompileContext()
        start = len(ctx.diagnostics)
        compiler = AutomationCompiler(ctx, env.name, env.apps)
        _, owned = compiler.consumer(Loaded(model, source), env.blueprints)
        diagnostics.extend(ctx.diagnostics[start:])
        compiled = owned[0] if owned else None
    errors = [d for d in diagnostics if d.is_error]
    places = _Places(text) if errors else None  # positions only for what is reported
    problems = tuple(
        Problem(d.code, d.message, places.json_path(d, key) if places else "$", d.hint)
        for d in _unique(errors)
    )
    return Checked(None if problems else compiled, problems)


def _unique(diagnostics: list[Diagnostic]) -> Iterator[Diagnostic]:
    seen: set[tuple[str, str, int, int]] = set()
    for d in diagnostics:
        mark = (d.code, d.message, d.line, d.col)
        if mark not in seen:
            seen.add(mark)
            yield d


class _Places:
    """Where each key and value of the one-line document is, to find a diagnostic's path."""

    def __init__(self, text: str) -> None:
        self.spans: list[tuple[int, int, PathKey]] = []
        root = yaml.compose(
            text, Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
        )
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: Node, path: PathKey) -> None:
        self._add(node, path)
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    continue
                inner = (*path, key_node.value)
                self._add(key_node, inner)
                self._walk(value_node, inner)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def _add(self, node: Node, path: PathKey) -> None:
        self.spans.append(
            (node.start_mark.index, max(node.end_mark.index, node.start_mark.index + 1), path)
        )

    def json_path(self, diagnostic: Diagnostic, key: str) -> str:
        at = diagnostic.col - 1  # one line: the column is the offset
        found: PathKey = ()
        width = None
        for start, end, path in self.spans:
            if start <= at < end and (width is None or end - start < width):
                found, width = path, end - start
        prefix = ("automations", key)
        if found[:2] != prefix:
            return "$"
        rest = found[2:]
        if rest == ("enabled",):
            return "$.enabled"
        return json_path(rest)


def json_path(path: PathKey) -> str:
    """`("params", "channels", 0)` → `$.params.channels[0]`."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out

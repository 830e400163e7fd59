"""What compiling one environment shares: caches and the place diagnostics go."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.progress import NO_PROGRESS, Progress
from rollout_yaml.config.source import PathKey, SourceFile
from rollout_yaml.config.suggest import did_you_mean
from rollout_yaml.expr.jmespath import JMESPathError, Query, compile_query
from rollout_yaml.expr.schemas import (
    MissingField,
    Schema,
    SchemaProblem,
    Violation,
    check_schema,
    find_missing_field,
)
from rollout_yaml.expr.templates import Template, TemplateCompiler, TemplateProblem
from rollout_yaml.expr.values import Tree, compile_tree, templates_in

# Names each kind of template may read (20-automations.md, "What each template sees").
CONNECTOR_NAMES = frozenset(
    {"input", "credential", "app", "cursor", "page", "run", "webhook", "subscription"}
)
AUTOMATION_NAMES = frozenset({"payload", "event", "params", "consumer", "env"})
STATIC_NAMES = frozenset({"params", "consumer", "env"})


@dataclass
class CompileContext:
    templates: TemplateCompiler = field(default_factory=TemplateCompiler)
    queries: dict[str, Query] = field(default_factory=dict)
    schemas: dict[str, Schema] = field(default_factory=dict)
    checked_schemas: dict[str, SchemaProblem | None] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    validated: dict[tuple[int, str], list[Violation]] = field(default_factory=dict)
    fields: dict[tuple[int, tuple[str | int, ...]], tuple[object, MissingField | None]] = field(
        default_factory=dict
    )
    """`find_missing_field` per (schema, path): each trigger's payload fields are looked up
    again by every automation that reads them. The schema is kept with its result, so that
    its id cannot be reused by another while this context lives."""
    progress: Progress = NO_PROGRESS
    """Advanced once per consumer compiled (a long `validate` shows a bar)."""

    def fresh(self) -> CompileContext:
        """A context for one more compile that reuses this one's compiled templates and
        queries (pure memos of their text): a long-lived one makes small compiles cheap."""
        return CompileContext(templates=self.templates, queries=self.queries)

    # -- expressions -------------------------------------------------------------------------

    def query(self, source: SourceFile | None, text: str | None, path: PathKey) -> Query | None:
        if text is None:
            return None
        try:
            return compile_query(text, self.queries)
        except JMESPathError as exc:
            within = None if exc.offset is None else (exc.offset, exc.offset + exc.length)
            self.report(source, exc.code, str(exc), path, hint=exc.hint, within=within)
            return None

    def template(
        self,
        source: SourceFile | None,
        text: str,
        path: PathKey,
        allowed: frozenset[str],
        *,
        url_path: bool = False,
    ) -> Template | str:
        try:
            template = self.templates.compile(text, path=url_path)
        except TemplateProblem as exc:
            self.report(source, exc.code, str(exc), path)
            return text
        self.check_names(source, template, path, allowed)
        return text if template.is_literal else template

    def tree(
        self, source: SourceFile | None, value: Any, path: PathKey, allowed: frozenset[str]
    ) -> Tree:
        def on_error(at: PathKey, exc: Exception) -> None:
            code = getattr(exc, "code", "RY301")
            self.report(source, code, str(exc), at)

        tree = compile_tree(value, self.templates, on_error, tuple(path))
        for at, template in templates_in(tree, tuple(path)):
            self.check_names(source, template, at, allowed)
        return tree

    def check_names(
        self,
        source: SourceFile | None,
        template: Template,
        path: PathKey,
        allowed: frozenset[str],
    ) -> None:
        for name in sorted(template.names - allowed):
            hint = did_you_mean(name, allowed, noun="names here")
            if name == "credential" or (name.startswith("env") and "env" not in allowed):
                hint = "automation templates never see credentials or environment variables"
            self.report(
                source, "RY305", f"`{name}` is not available in this template", path, hint=hint
            )

    # -- schemas -----------------------------------------------------------------------------

    def schema(self, source: SourceFile | None, schema: Mapping[str, Any], path: PathKey) -> Schema:
        key = json.dumps(schema, sort_keys=True, default=str)
        if key not in self.checked_schemas:
            try:
                check_schema(schema)
                self.checked_schemas[key] = None
            except SchemaProblem as exc:
                self.checked_schemas[key] = exc
        problem = self.checked_schemas[key]
        if problem is not None:
            self.report(source, problem.code, str(problem), (*path, *problem.path))
            return self._schema_for("{}", {})
        return self._schema_for(key, schema)

    def _schema_for(self, key: str, schema: Mapping[str, Any]) -> Schema:
        compiled = self.schemas.get(key)
        if compiled is None:
            compiled = self.schemas[key] = Schema(schema)
        return compiled

    def check_fields(
        self,
        source: SourceFile | None,
        schema: Mapping[str, Any],
        paths: Iterable[tuple[str | int, ...]],
        at: PathKey,
        root: str,
        what: str,
    ) -> None:
        """Each `root.a.b` read by an expression must exist where the schema lists properties."""
        reported: set[str] = set()
        for field_path in paths:
            key = (id(schema), field_path)
            known = self.fields.get(key)
            if known is None:
                known = self.fields[key] = (schema, find_missing_field(schema, field_path))
            missing = known[1]
            if missing is None:
                continue
            dotted = ".".join(str(p) for p in (root, *field_path[: missing.depth + 1]))
            if dotted in reported:
                continue
            reported.add(dotted)
            self.report(
                source,
                "RY304",
                f"`{dotted}` is not a field of {what}",
                at,
                hint=did_you_mean(str(field_path[missing.depth]), missing.known, noun="fields"),
            )

    def violations(self, schema: Schema, instance: Any) -> list[Violation]:
        """Validate, remembering results: thousands of automations share a handful of
        (schema, value) pairs, and jsonschema is the slowest step of a large `validate`.
        A value the quick check passes needs neither jsonschema nor a key."""
        if schema.certainly_valid(instance):
            return []
        try:
            key = (id(schema), repr(instance))
        except Exception:  # a value whose repr fails is simply not remembered
            return schema.jsonschema_violations(instance)
        found = self.validated.get(key)
        if found is None:
            found = self.validated[key] = schema.jsonschema_violations(instance)
        return found

    # -- diagnostics -------------------------------------------------------------------------

    def report(
        self,
        source: SourceFile | None,
        code: str,
        message: str,
        path: Sequence[str | int],
        *,
        hint: str | None = None,
        key: bool = False,
        within: tuple[int, int] | None = None,
    ) -> None:
        if source is None:  # built-in definitions are correct by construction
            return
        self.diagnostics.append(
            source.diagnostic(code, message, path, hint=hint, key=key, within=within)
        )

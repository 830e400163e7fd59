"""Sandboxed Jinja2 templates that write values.

A string that is exactly one `{{ expression }}` renders to the expression's native value; any
other string renders to a string; a string without `{{`/`{%` is a literal and never touches
Jinja. Templates are analysed at compile time: the names they read, the payload fields they
use, and anything that reaches for sandbox escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateAssertionError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from rollout_yaml.config.suggest import did_you_mean
from rollout_yaml.expr.jmespath import JMESPathError, compile_query, iso8601, parse_datetime

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|%\}).)*)\}\}\s*$", re.S)
UNSAFE_ATTRIBUTES = frozenset(
    {
        "format",
        "format_map",
        "mro",
        "gi_frame",
        "gi_code",
        "f_globals",
        "func_globals",
        "func_code",
        "im_class",
    }
)
MAX_OUTPUT_CHARS = 1_000_000
_ANALYSED_ROOTS = frozenset({"payload", "input", "params"})


class TemplateProblem(ValueError):
    """A template that does not compile or is unsafe; `code` is the diagnostic to report."""

    def __init__(self, code: str, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.line = line


class RenderError(ValueError):
    """A template that failed while rendering (a missing field, a bad filter input)."""


class _Undefined(StrictUndefined):
    """Strict where a value is used (output, comparisons, loops), chainable where it is only
    read further: `payload.customer.name | default('guest')` works when `customer` is missing,
    and the error names the first missing field."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, _key: Any) -> Any:
        return self

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        if self._undefined_obj is not None and not isinstance(self._undefined_obj, _Undefined):
            return f"field `{self._undefined_name}` is missing (use `| default(...)` if optional)"
        return f"`{self._undefined_name}` is undefined"


class _Unset(Undefined):
    """A declared, optional blueprint param the consumer left out: `| default(...)` applies,
    text renders it as "", and a lone `{{ params.x }}` renders to null."""

    __slots__ = ()


class Params(dict[str, Any]):
    """A blueprint's params as templates see them. Reading a declared param that was not given
    is not an error (it is optional by the params schema); reading an undeclared one is."""

    def __init__(self, values: Mapping[str, Any], declared: frozenset[str] | set[str]) -> None:
        super().__init__(values)
        self.declared = frozenset(declared)

    def __missing__(self, key: str) -> Any:
        if key in self.declared:
            return _Unset(name=key)
        raise KeyError(key)


class _DataEnvironment(ImmutableSandboxedEnvironment):
    """Immutable (a template cannot `pop()` or `clear()` the payload it reads), and `a.b` on a
    mapping reads the key `b`, never a method: a field called `items` or `keys` means the
    field."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _jmespath(value: Any, expression: str) -> Any:
    return compile_query(expression).search(value)


def _iso8601(value: Any) -> str:
    return iso8601(parse_datetime(value))


def _unix(value: Any) -> int:
    return int(parse_datetime(value).timestamp())


_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def _money(value: Any, currency: str | None = None, places: int = 2) -> str:
    """`1234.5 | money('USD')` → `$1,234.50`; unknown currencies are written after the amount."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise RenderError(f"money: {value!r} is not a number") from exc
    text = f"{amount:,.{places}f}"
    if currency is None:
        return text
    symbol = _CURRENCY_SYMBOLS.get(currency.upper())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def _path_segment(value: Any) -> Any:
    """In a request path, each `{{ }}` becomes exactly one percent-encoded segment."""
    segment = quote("" if value is None else str(value), safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def make_environment(*, for_paths: bool = False) -> SandboxedEnvironment:
    env = _DataEnvironment(
        undefined=_Undefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_path_segment if for_paths else None,
    )
    env.globals.clear()  # no range(), lipsum, cycler…: templates only read the data they get
    env.filters.update(
        tojson=_tojson, jmespath=_jmespath, iso8601=_iso8601, unix=_unix, money=_money
    )
    return env


class Template:
    """One compiled template string."""

    __slots__ = ("_paths", "_render", "names", "native", "source")

    def __init__(
        self,
        source: str,
        render: Callable[[Mapping[str, Any]], Any] | None,
        *,
        native: bool,
        names: frozenset[str],
        paths: Mapping[str, tuple[tuple[str | int, ...], ...]],
    ) -> None:
        self.source = source
        self._render = render
        self.native = native
        self.names = names
        self._paths = paths

    def paths(self, root: str) -> tuple[tuple[str | int, ...], ...]:
        """Field paths read under a top-level name (`payload.customer.name` → customer, name)."""
        return self._paths.get(root, ())

    @property
    def is_literal(self) -> bool:
        return self._render is None

    def render(self, context: Mapping[str, Any]) -> Any:
        if self._render is None:
            return self.source
        try:
            value = self._render(context)
        except UndefinedError as exc:
            raise RenderError(str(exc)) from exc
        except SecurityError as exc:
            raise RenderError(f"refused by the sandbox: {exc}") from exc
        except RenderError:
            raise
        except Exception as exc:  # a filter given the wrong data, an index out of range…
            raise RenderError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(value, _Undefined):
            raise RenderError(value._undefined_message)
        if isinstance(value, Undefined):  # an optional param left out
            return None
        if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
            raise RenderError(f"template output is over {MAX_OUTPUT_CHARS} characters")
        return value

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


class TemplateCompiler:
    """Compiles template strings once each (identical strings share one compiled template)."""

    def __init__(self) -> None:
        self.env = make_environment()
        self.path_env = make_environment(for_paths=True)
        self._cache: dict[tuple[str, bool], Template] = {}

    def compile(self, source: str, *, path: bool = False) -> Template:
        """Compile once; with `path`, every expression's output is one URL-encoded segment."""
        cached = self._cache.get((source, path))
        if cached is not None:
            return cached
        template = self._compile(source, self.path_env if path else self.env, path)
        self._cache[(source, path)] = template
        return template

    def _compile(self, source: str, env: SandboxedEnvironment, path: bool) -> Template:
        if "{{" not in source and "{%" not in source and "{#" not in source:
            return Template(source, None, native=False, names=frozenset(), paths={})
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(
                "RY301", f"template syntax error: {exc.message}", exc.lineno
            ) from exc
        except Exception as exc:  # the parser's own limits (huge literals, deep nesting)
            raise TemplateProblem("RY301", f"template cannot compile: {exc}") from exc
        _check_safe(tree)
        names = frozenset(_read_names(tree))
        paths = {
            root: tuple(sorted(set(_paths_from(tree, root)), key=str))
            for root in names & _ANALYSED_ROOTS
        }
        single = None if path else _SINGLE_EXPRESSION.match(source)
        try:
            if single:
                expression = env.compile_expression(single.group("expr"), undefined_to_none=False)

                def render(ctx: Mapping[str, Any]) -> Any:
                    return expression(**ctx)

            else:
                compiled = env.from_string(tree)

                def render(ctx: Mapping[str, Any]) -> Any:
                    return compiled.render(ctx)
        except TemplateAssertionError as exc:
            raise TemplateProblem("RY306", self._unknown_filter(exc), exc.lineno or 1) from exc
        except TemplateSyntaxError as exc:
            raise TemplateProblem(
                "RY301", f"template syntax error: {exc.message}", exc.lineno
            ) from exc
        except Exception as exc:  # constant folding of e.g. `2**100000` fails here
            raise TemplateProblem("RY301", f"template cannot compile: {exc}") from exc
        self._check_filters(tree)
        return Template(source, render, native=bool(single), names=names, paths=paths)

    def _unknown_filter(self, exc: TemplateAssertionError) -> str:
        match = re.search(r"No (filter|test) named '([^']+)'", exc.message or "")
        if not match:
            return exc.message or "invalid template"
        known = self.env.filters if match.group(1) == "filter" else self.env.tests
        hint = did_you_mean(match.group(2), known, noun=f"{match.group(1)}s")
        return f"unknown {match.group(1)} `{match.group(2)}`" + (f"; {hint}" if hint else "")

    def _check_filters(self, tree: nodes.Template) -> None:
        for node in tree.find_all(nodes.Filter):
            if node.name == "jmespath" and node.args and isinstance(node.args[0], nodes.Const):
                try:
                    compile_query(str(node.args[0].value))
                except JMESPathError as exc:
                    raise TemplateProblem(exc.code, str(exc), node.lineno) from exc


def _check_safe(tree: nodes.Template) -> None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        attr: object = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            attr = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            for keyword in node.kwargs:
                if keyword.key == "attribute" and isinstance(keyword.value, nodes.Const):
                    attr = keyword.value.value
                    for part in str(attr).split("."):
                        _refuse_unsafe(part, node.lineno)
            if node.name != "attr" or not node.args:
                continue
            first = node.args[0]
            attr = first.value if isinstance(first, nodes.Const) else "<computed>"
            if not isinstance(first, nodes.Const):
                raise TemplateProblem(
                    "RY303", "the `attr` filter needs a literal name", node.lineno
                )
        if isinstance(attr, str):
            _refuse_unsafe(attr, node.lineno)


_ATTRIBUTE_FILTERS = frozenset(
    {
        "attr",
        "map",
        "sort",
        "groupby",
        "sum",
        "selectattr",
        "rejectattr",
        "unique",
        "min",
        "max",
        "dictsort",
    }
)


def _refuse_unsafe(attr: str, line: int) -> None:
    if attr.startswith("_") or attr in UNSAFE_ATTRIBUTES:
        raise TemplateProblem(
            "RY303", f"unsafe template: `{attr}` is not allowed (templates only read data)", line
        )


def _read_names(tree: nodes.Template) -> set[str]:
    """Top-level names a template reads (loop and `set` variables excluded)."""
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    if any(True for _ in tree.find_all(nodes.For)):
        stored.add("loop")  # Jinja's loop variable inside `{% for %}`
    return {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - stored


def _paths_from(tree: nodes.Template, root: str) -> Iterator[tuple[str | int, ...]]:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        parts: list[str | int] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                parts.append(current.attr)
            elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str | int):
                parts.append(current.arg.value)
            else:
                parts.clear()
            current = current.node
        if isinstance(current, nodes.Name) and current.name == root and parts:
            yield tuple(reversed(parts))

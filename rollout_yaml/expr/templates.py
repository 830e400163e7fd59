"""Sandboxed Jinja2 templates that write values.

A string that is exactly one `{{ expression }}` renders to the expression's native value; any
other string renders to a string; a string without `{{`/`{%` is a literal and never touches
Jinja. Templates are analysed at compile time: the names they read, the payload fields they
use, and anything that reaches for sandbox escapes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
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
MAX_RENDER_SECONDS = 0.25
"""A render runs on the event loop: one that takes longer (loops over loops of a big payload)
is stopped and fails its run, so it never stalls the daemon for longer than this."""
MAX_NUMBER_DIGITS = 4300  # Python's default int_max_str_digits
_CHECK_EVERY = 256  # loop iterations between two looks at the clock
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


class _Budget:
    """The deadline of the render in progress (in a context variable: renders are sync and
    never nest, but may run in several threads at once)."""

    __slots__ = ("deadline", "steps")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.steps = 0

    def spend(self) -> None:
        self.steps += 1
        if self.steps % _CHECK_EVERY == 0 and time.monotonic() > self.deadline:
            raise RenderError(
                f"the template took longer than {MAX_RENDER_SECONDS} s to render "
                "(loops over large data?)"
            )


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _guarded(iterable: Any) -> Iterator[Any]:
    """What every `{% for %}` iterates through (see `_guard_loops`)."""
    budget = _BUDGET.get()
    if budget is None:
        yield from iterable
        return
    for item in iterable:
        budget.spend()
        yield item


def _guard_loops(tree: nodes.Template) -> nodes.Template:
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "_guarded", [], [], None, None, lineno=loop.lineno)
    return tree


def _too_many_digits(base: int, exponent: int) -> bool:
    """Whether `base ** exponent` has more digits than Python writes (int_max_str_digits)."""
    return base.bit_length() * exponent * 0.30103 > MAX_NUMBER_DIGITS


def _sequence_size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


class _DataEnvironment(ImmutableSandboxedEnvironment):
    """Immutable (a template cannot `pop()` or `clear()` the payload it reads), and `a.b` on a
    mapping reads the key `b`, never a method: a field called `items` or `keys` means the
    field."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """`*` and `**` within the output cap: `'x' * 10**9` would build a gigabyte first."""
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                size = _sequence_size(sequence)
                if size is not None and isinstance(count, int) and size * count > MAX_OUTPUT_CHARS:
                    raise RenderError(f"`*` would build more than {MAX_OUTPUT_CHARS} items")
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and left not in (0, 1, -1)
            and right > 0
            and _too_many_digits(left, right)
        ):
            raise RenderError("`**` would build a number too large to write")
        return super().call_binop(context, operator, left, right)

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
        tojson=_tojson,
        jmespath=_jmespath,
        iso8601=_iso8601,
        unix=_unix,
        money=_money,
        _guarded=_guarded,
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
        budget = _BUDGET.set(_Budget(time.monotonic() + MAX_RENDER_SECONDS))
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
        finally:
            _BUDGET.reset(budget)
        if isinstance(value, _Undefined):
            raise RenderError(value._undefined_message)
        if isinstance(value, Undefined):  # an optional param left out
            return None
        if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
            raise RenderError(f"template output is over {MAX_OUTPUT_CHARS} characters")
        return value

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _bounded_text(chunks: Iterator[str]) -> str:
    """A text template's output, stopped once it passes MAX_OUTPUT_CHARS or its time."""
    budget = _BUDGET.get()
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise RenderError(f"template output is over {MAX_OUTPUT_CHARS} characters")
        parts.append(chunk)
        if budget is not None:
            budget.spend()
    return "".join(parts)


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
                lookup = _plain_lookup(env, single.group("expr"))

                def render(ctx: Mapping[str, Any]) -> Any:
                    if lookup is not None:
                        value = lookup(ctx)
                        if value is not _NOT_FOUND:
                            return value
                    return expression(**ctx)

            else:
                compiled = env.from_string(_guard_loops(tree))

                def render(ctx: Mapping[str, Any]) -> Any:
                    return _bounded_text(compiled.generate(ctx))
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


_NOT_FOUND = object()
_PLAIN_DICTS = (dict, Params)


def _plain_lookup(
    env: SandboxedEnvironment, expression: str
) -> Callable[[Mapping[str, Any]], Any] | None:
    """For `{{ a.b.c }}` and `{{ a.b | default(<literal>[, true|false]) }}`, the value read
    straight from plain dicts, as Jinja would give it when every field is there; `_NOT_FOUND`
    (then Jinja renders it) when one is missing or not a plain dict. Params and inputs are
    read this way thousands of times when a large project compiles."""
    try:
        body = env.parse("{{" + expression + "}}").body
    except Exception:
        return None
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    node = body[0].nodes[0]
    fallback: tuple[Any, bool] | None = None
    if isinstance(node, nodes.Filter):
        args = node.args
        if (
            node.name != "default"
            or node.node is None
            or node.kwargs
            or node.dyn_args is not None
            or node.dyn_kwargs is not None
            or not 1 <= len(args) <= 2
            or not all(isinstance(arg, nodes.Const) for arg in args)
            or (len(args) == 2 and not isinstance(args[1].value, bool))  # type: ignore[attr-defined]
        ):
            return None
        fallback = (args[0].value, len(args) == 2 and args[1].value)  # type: ignore[attr-defined]
        node = node.node
    parts: list[str] = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load" or not parts:
        return None
    root, path = node.name, tuple(reversed(parts))

    def lookup(ctx: Mapping[str, Any]) -> Any:
        value = ctx.get(root, _NOT_FOUND)
        for part in path:
            if value.__class__ not in _PLAIN_DICTS or part not in value:
                return _NOT_FOUND
            value = value[part]
        if fallback is not None and fallback[1] and not value:
            return fallback[0]  # `default(x, true)` also replaces what is empty or false
        return value

    return lookup


def _check_safe(tree: nodes.Template) -> None:
    """Refuse, before anything runs, what only a sandbox escape needs: private or unsafe
    attribute names (literal, or given to an attribute filter), names built at run time,
    methods that mutate, and templates that load other templates or files."""
    for power in tree.find_all(nodes.Pow):
        base, exponent = power.left, power.right
        if (
            isinstance(base, nodes.Const)
            and isinstance(exponent, nodes.Const)
            and isinstance(base.value, int)
            and isinstance(exponent.value, int)
            and exponent.value > 0
            and _too_many_digits(base.value, exponent.value)
        ):
            raise TemplateProblem("RY301", "template cannot compile: the number is too large")
    for loader in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        kind = type(loader).__name__.lower().replace("fromimport", "import")
        raise TemplateProblem(
            "RY303",
            f"unsafe template: `{{% {kind} %}}` is not allowed (templates only read data)",
            loader.lineno,
        )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Call)):
        attr: object = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const):
                attr = node.arg.value
            elif _builds_text(node.arg):
                raise TemplateProblem(
                    "RY303",
                    "unsafe template: a field name built at run time is not allowed "
                    "(write the name, e.g. `payload.name` or `payload['name']`)",
                    node.lineno,
                )
        elif isinstance(node, nodes.Call):
            if isinstance(node.node, nodes.Getattr) and node.node.attr in MUTATING_METHODS:
                raise TemplateProblem(
                    "RY303",
                    f"unsafe template: `{node.node.attr}()` changes data; templates only read it",
                    node.lineno,
                )
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            for keyword in node.kwargs:
                if keyword.key == "attribute" and isinstance(keyword.value, nodes.Const):
                    for part in str(keyword.value.value).split("."):
                        _refuse_unsafe(part, node.lineno)
            if node.name not in _POSITIONAL_ATTRIBUTE or not node.args:
                continue
            first = node.args[0]
            if not isinstance(first, nodes.Const):
                raise TemplateProblem(
                    "RY303", f"the `{node.name}` filter needs a literal name", node.lineno
                )
            for part in str(first.value).split("."):
                _refuse_unsafe(part, node.lineno)
        if isinstance(attr, str):
            _refuse_unsafe(attr, node.lineno)


MUTATING_METHODS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
    }
)
# Filters whose first positional argument is an attribute name.
_POSITIONAL_ATTRIBUTE = frozenset({"attr", "selectattr", "rejectattr", "groupby"})


def _builds_text(node: nodes.Node) -> bool:
    """Whether a subscript computes a string (`'__cla' ~ 'ss__'`, `'%s' % x`, `x | join`)
    rather than reading a value or counting (`items[loop.index0 + 1]`)."""
    if isinstance(node, nodes.Concat | nodes.Filter | nodes.Call | nodes.CondExpr):
        return True
    if isinstance(node, nodes.BinExpr):
        sides = (node.left, node.right)
        if any(isinstance(side, nodes.Const) and isinstance(side.value, str) for side in sides):
            return True
        return any(_builds_text(side) for side in sides)
    return False


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

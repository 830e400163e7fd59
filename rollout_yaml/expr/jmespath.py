"""JMESPath with rollout-yaml's extra functions, compiled once and analysed for field use."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jmespath
from jmespath import exceptions as jp_errors
from jmespath import functions, visitor
from jmespath.parser import ParsedResult

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

from rollout_yaml.config.suggest import did_you_mean

EXTRA_FUNCTIONS = (
    "now",
    "parse_date",
    "to_unix",
    "lower",
    "upper",
    "split",
    "replace",
    "from_json",
)


def parse_datetime(value: Any) -> datetime:
    """An ISO 8601 string (or unix seconds) → an aware datetime (naive means UTC)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso8601(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Functions(functions.Functions):
    @functions.signature()
    def _func_now(self) -> str:
        return iso8601(datetime.now(UTC))

    @functions.signature({"types": ["string", "number"]})
    def _func_parse_date(self, value: Any) -> str:
        return iso8601(parse_datetime(value))

    @functions.signature({"types": ["string", "number"]})
    def _func_to_unix(self, value: Any) -> int:
        return int(parse_datetime(value).timestamp())

    @functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, value: str, separator: str) -> list[str]:
        return value.split(separator)

    @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, value: str, old: str, new: str) -> str:
        return value.replace(old, new)

    @functions.signature({"types": ["string", "null"]})
    def _func_from_json(self, value: str | None) -> Any:
        """JSON carried in a string (`payload=<json>` form posts: Slack interactivity,
        GitHub's form content type); null when it is null or not JSON."""
        if value is None:
            return None
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None


_OPTIONS = jmespath.Options(custom_functions=_Functions())
KNOWN_FUNCTIONS = frozenset(
    name[len("_func_") :] for name in dir(_Functions) if name.startswith("_func_")
)


class _Scoped(visitor.TreeInterpreter):
    """A tree interpreter whose field lookups on the root document fall back to `scope`
    (also inside projections and filters over `[@]`, where the current value is the root)."""

    def __init__(self, root: Any, scope: Mapping[str, Any]) -> None:
        super().__init__(_OPTIONS)
        self._root = root
        self._scope = scope

    def visit_field(self, node: _TreeNode, value: Any) -> Any:
        found = super().visit_field(node, value)
        if found is None and value is self._root:
            return self._scope.get(node["value"])
        return found


class JMESPathError(ValueError):
    """A JMESPath expression that does not compile; `code` is the diagnostic to report,
    `offset` the 0-based character of the expression where it goes wrong (when known)."""

    def __init__(
        self,
        code: str,
        message: str,
        offset: int | None = None,
        hint: str | None = None,
        length: int = 1,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.offset = offset
        self.hint = hint
        self.length = length


class Query:
    """A compiled JMESPath expression; `search` never raises on missing data (it gives null)."""

    __slots__ = ("_parsed", "source")

    def __init__(self, source: str, parsed: ParsedResult) -> None:
        self.source = source
        self._parsed = parsed

    def search(self, data: Any, scope: Mapping[str, Any] | None = None) -> Any:
        """Evaluate over `data`. With `scope`, a top-level name `data` itself lacks (a null
        field of the document at the root) is looked up in `scope`: a webhook delivery's
        `headers` and `query` are read beside its body without changing the body."""
        if not scope:
            return self._parsed.search(data, options=_OPTIONS)
        return _Scoped(data, scope).visit(self._parsed.parsed, data)

    def is_true(self, data: Any) -> bool:
        """JMESPath truthiness: false, null, empty string/list/object are false."""
        value = self.search(data)
        if value is None or value is False:
            return False
        return not (isinstance(value, str | list | dict) and len(value) == 0)

    def field_paths(self, root: str) -> list[tuple[str | int, ...]]:
        """Paths read from the document's top-level field `root` (e.g. `payload.customer.name`)."""
        found: list[tuple[str | int, ...]] = []
        _collect(dict(self._parsed.parsed), root, found)
        return found

    def __repr__(self) -> str:
        return f"Query({self.source!r})"


def compile_query(source: str, cache: dict[str, Query] | None = None) -> Query:
    if cache is not None and source in cache:
        return cache[source]
    try:
        parsed = jmespath.compile(source)
    except (jp_errors.ParseError, jp_errors.LexerError) as exc:
        raise _syntax_error(source, exc) from exc
    except jp_errors.JMESPathError as exc:
        raise JMESPathError("RY302", f"invalid JMESPath {source!r}: {exc}") from exc
    for name in _function_names(dict(parsed.parsed)):
        if name not in KNOWN_FUNCTIONS:
            hint = did_you_mean(name, KNOWN_FUNCTIONS) or ""
            raise JMESPathError(
                "RY306",
                f"unknown JMESPath function `{name}()` in {source!r}"
                + (f"; {hint}" if hint else ""),
            )
    query = Query(source, parsed)
    if cache is not None:
        cache[source] = query
    return query


_CLOSING = {"[": "]", "(": ")", "{": "}"}


def _syntax_error(source: str, exc: jp_errors.JMESPathError) -> JMESPathError:
    """Our words for jmespath's parse and lexer errors: where (the column, also used to put
    the caret under it), what, and the usual fix."""
    position = getattr(exc, "lex_position", None)
    offset = position if isinstance(position, int) else None
    where = f" at column {offset + 1}" if offset is not None else ""
    token = getattr(exc, "token_value", None)
    kind = getattr(exc, "token_type", None)
    hint: str | None = None
    if isinstance(exc, jp_errors.IncompleteExpressionError):
        what = "the expression ends too early"
        unclosed = _unclosed(source)
        hint = (
            f"close the `{unclosed[1]}` opened at column {unclosed[0] + 1} with "
            f"`{_CLOSING[unclosed[1]]}`"
            if unclosed
            else "complete the expression: an operator needs a value on both sides"
        )
    elif isinstance(exc, jp_errors.LexerError):
        what = f"unexpected character `{token}`" if token else "unexpected character"
        hint = (
            "quote a field name that is not a plain identifier with double quotes "
            "(`\"my-field\"`) and a string with single quotes (`'text'`)"
        )
    elif kind == "NUMBER":
        what = f"a bare number `{token}`"
        hint = f"a number is a JSON literal in JMESPath: put it in backticks ({token} → `{token}`)"
    else:
        what = f"unexpected `{token}`" if token not in (None, "") else "unexpected token"
    length = len(str(token)) if token not in (None, "") else 1
    message = f"invalid JMESPath {source!r}{where}: {what}"
    return JMESPathError("RY302", message, offset, hint, length)


def _unclosed(source: str) -> tuple[int, str] | None:
    """The last bracket opened and never closed, outside quotes and backticks."""
    stack: list[tuple[int, str]] = []
    quote: str | None = None
    for index, char in enumerate(source):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif char in _CLOSING:
            stack.append((index, char))
        elif stack and char == _CLOSING[stack[-1][1]]:
            stack.pop()
    return stack[-1] if stack else None


def _function_names(node: dict[str, Any]) -> Iterator[str]:
    if node.get("type") == "function_expression":
        yield node["value"]
    for child in node.get("children", ()):
        if isinstance(child, dict):
            yield from _function_names(child)


_ROOT_CONTEXT_ONLY_FIRST = {
    "projection",
    "value_projection",
    "filter_projection",
    "flatten",
    "pipe",
    "index_expression",
}


def _chain(node: dict[str, Any]) -> list[str | int] | None:
    kind = node.get("type")
    if kind == "field":
        return [node["value"]]
    if kind == "subexpression":
        parts: list[str | int] = []
        for child in node["children"]:
            sub = _chain(child)
            if sub is None:
                head = _projection_head(child)
                return [*parts, *head] if (parts or head) else None
            parts.extend(sub)
        return parts
    if kind == "index_expression":
        left = _chain(node["children"][0])
        return None if left is None else [*left, 0]
    return None


def _projection_head(node: dict[str, Any]) -> list[str | int]:
    """The field a projection (`items[*].sku`, `items[?x]`, `items[]`) reads from its context."""
    if node.get("type") in ("projection", "filter_projection", "flatten", "value_projection"):
        left = node["children"][0] if node.get("children") else None
        if isinstance(left, dict):
            chain = _chain(left)
            if chain is not None:
                return chain
            return _projection_head(left)
    return []


def _collect(node: dict[str, Any], root: str, out: list[tuple[str | int, ...]]) -> None:
    chain = _chain(node)
    if chain and chain[0] == root and len(chain) > 1:
        out.append(tuple(chain[1:]))
        if node.get("type") in ("field", "subexpression"):
            return
    kind = node.get("type")
    children = [c for c in node.get("children", ()) if isinstance(c, dict)]
    if kind in _ROOT_CONTEXT_ONLY_FIRST or kind == "subexpression":
        children = children[:1]
    elif kind == "expref":
        children = []
    for child in children:
        _collect(child, root, out)

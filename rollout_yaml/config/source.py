"""YAML files read into plain data, with positions found again on demand.

Parsing keeps only the data; when a diagnostic needs a line and column, the file's node tree
(libyaml's marks) is composed once and walked along the data path. A valid project of thousands
of files thus pays nothing for positions it never reports.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rollout_yaml.config.diagnostics import Diagnostic, Related, Severity

_PLAIN = "!rollout-yaml/plain"
"""Our mark for an untagged plain scalar: typed later, only if it could be a number or bool."""

try:  # libyaml when available: the parser and composer run in C
    _Base: type[Any] = yaml.CBaseLoader
except AttributeError:  # pragma: no cover - pure-Python fallback
    _Base = yaml.BaseLoader


class _Loader(_Base):  # type: ignore[misc]
    """Composes without PyYAML's per-scalar regex resolution (a third of the parse time):
    plain scalars are marked and typed on demand by `_Builder`, with the same YAML 1.1 rules."""

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is SequenceNode else _MAP

    # The composer calls these two around every node to track paths for PyYAML's path
    # resolvers; `resolve` above never looks at paths, so they do nothing (a tenth of
    # composing a file).
    def descend_resolver(self, current_node: Node | None, current_index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers

PathKey = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_PLAIN_TAGS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class YamlProblem(Exception):
    """A file that cannot become data; carries a ready diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass(frozen=True, slots=True)
class Span:
    """A range of a file: 1-based line and column of its start, and just past its end."""

    line: int
    col: int
    end_line: int
    end_col: int


@dataclass
class SourceFile:
    """One project file: its display name, text, and the data it holds."""

    path: Path
    display: str
    text: str
    data: Any
    _root: Node | None = field(default=None, repr=False)

    def _node(self, path: Sequence[str | int], key: bool) -> Node | None:
        """The node `path` names (its key node with `key=True`), or the deepest one that exists.

        A path that goes deeper than the file does (a default, a missing field) resolves to the
        deepest node that exists, which is where a user would add the missing part.
        """
        if self._root is None:
            self._root = _compose(self.text)
        node = self._root
        if node is None:
            return None
        target = node
        for index, part in enumerate(path):
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            is_last = index == len(path) - 1
            target = key_node if (is_last and key and key_node) else node
        return target

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value at `path`, or of its key with `key=True`."""
        node = self._node(path, key)
        if node is None:
            return (1, 1)
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def span(
        self,
        path: Sequence[str | int],
        *,
        key: bool = False,
        within: tuple[int, int] | None = None,
    ) -> Span:
        """Where the value (or key) at `path` starts and ends: a scalar or a flow collection
        as a whole, a block collection as its first character (its lines are many).

        `within=(start, end)` narrows a scalar to characters `start:end` of its value (the
        column a JMESPath error names), where the value's text maps one to one onto the
        file's (plain and quoted scalars without escapes before it, literal blocks).
        """
        node = self._node(path, key)
        if node is None:
            return Span(1, 1, 1, 2)
        start, end = node.start_mark, node.end_mark
        if isinstance(node, ScalarNode) and within is not None:
            narrowed = self._within(node, *within)
            if narrowed is not None:
                return narrowed
        whole = isinstance(node, ScalarNode) or getattr(node, "flow_style", False)
        if whole and (end.line, end.column) > (start.line, start.column):
            return Span(start.line + 1, start.column + 1, end.line + 1, end.column + 1)
        return Span(start.line + 1, start.column + 1, start.line + 1, start.column + 2)

    def _within(self, node: ScalarNode, start: int, end: int) -> Span | None:
        lines = self.text.splitlines()
        first = node.start_mark
        value: str = node.value
        end = max(end, start + 1)
        if node.style in (None, "", "'", '"') and node.end_mark.line == first.line:
            raw = lines[first.line][first.column : node.end_mark.column]
            inner = raw if not node.style else raw[1:-1]
            shift = first.column + (1 if node.style else 0)
            upto = min(end, len(value))
            if inner[:upto] != value[:upto]:
                return None
            return Span(first.line + 1, shift + start + 1, first.line + 1, shift + end + 1)
        if node.style == "|":
            row = value.count("\n", 0, start)
            line_start = value.rfind("\n", 0, start) + 1
            line_end = value.find("\n", start)
            text = value[line_start : len(value) if line_end < 0 else line_end]
            number = first.line + 1 + row  # the indicator `|` is on the first line
            if number >= len(lines) or not lines[number].endswith(text) or not text:
                return None
            indent = len(lines[number]) - len(text)
            col = indent + start - line_start
            stop = min(indent + end - line_start, len(lines[number]))
            return Span(number + 1, col + 1, number + 1, max(stop, col + 1) + 1)
        return None

    def diagnostic(
        self,
        code: str,
        message: str,
        path: Sequence[str | int] = (),
        *,
        key: bool = False,
        hint: str | None = None,
        warning: bool = False,
        within: tuple[int, int] | None = None,
        related: tuple[Related, ...] = (),
    ) -> Diagnostic:
        span = self.span(path, key=key, within=within)
        return Diagnostic(
            code=code,
            message=message,
            file=self.display,
            line=span.line,
            col=span.col,
            severity=Severity.WARNING if warning else Severity.ERROR,
            hint=hint,
            end_line=span.end_line,
            end_col=span.end_col,
            related=related,
        )


def read_source(path: Path, display: str) -> SourceFile:
    """Read and parse one YAML file; raise YamlProblem with the first syntax or shape error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlProblem(Diagnostic("RY005", f"cannot read file: {exc}", display)) from exc
    return parse_source(text, path, display)


def parse_source(text: str, path: Path, display: str) -> SourceFile:
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_syntax_error(exc, text, display)) from exc
    builder = _Builder(display)
    data = builder.build(root) if root is not None else None
    return SourceFile(path=path, display=display, text=text, data=data, _root=None)


def _syntax_error(exc: yaml.MarkedYAMLError, text: str, display: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    tabs = _indentation_tabs(text, line)
    if tabs is not None:  # libyaml's words ("cannot start any token") never say "tab"
        start, end = tabs
        return Diagnostic(
            "RY001",
            "YAML syntax error: a tab in the indentation (YAML indents with spaces only)",
            display,
            line,
            start,
            hint=f"replace the tab at the start of line {line} with spaces",
            end_line=line,
            end_col=end,
        )
    problem = exc.problem or "invalid YAML"
    context = f" {exc.context}" if exc.context else ""
    return Diagnostic(
        "RY001",
        f"YAML syntax error: {problem}{context}",
        display,
        line,
        col,
        hint="check indentation, quoting and brackets on this line and the one above",
    )


def _indentation_tabs(text: str, line: int) -> tuple[int, int] | None:
    """The 1-based columns (start, just past the end) of the tabs in the indentation of
    `line`, if it has any."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return None
    content = lines[line - 1]
    indentation = content[: len(content) - len(content.lstrip(" \t"))]
    first = indentation.find("\t")
    if first < 0:
        return None
    last = indentation.rfind("\t")
    return first + 1, last + 2


def _compose(text: str) -> Node | None:
    return yaml.compose(text, Loader=_Loader)


def _child(node: Node, part: str | int) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        found: tuple[Node | None, Node] | None = None
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                merged = _merge_sources(value_node)
                for source in merged:
                    inner = _child(source, part)
                    if inner is not None and found is None:
                        found = inner
                continue
            if isinstance(key_node, ScalarNode) and key_node.value == part:
                return (key_node, value_node)
        return found
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return (None, node.value[part])
    return None


def _is_merge(node: Node) -> bool:
    return node.tag == _MERGE or (node.tag == _PLAIN and node.value == "<<")


@functools.lru_cache(maxsize=8192)  # keys and enum-like values repeat across thousands of files
def _implicit_tag(value: str) -> str:
    """The tag YAML 1.1 (PyYAML's SafeLoader) gives an untagged plain scalar."""
    for tag, pattern in _IMPLICIT.get(value[:1], ()):
        if pattern.match(value):
            return str(tag)
    return _STR


def _merge_sources(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [node]
    if isinstance(node, SequenceNode):
        return [n for n in node.value if isinstance(n, MappingNode)]
    return []


class _Builder:
    """Turns composed nodes into plain Python data, refusing duplicate keys and custom tags."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.constructor = SafeConstructor()

    def _problem(
        self,
        code: str,
        message: str,
        node: Node,
        hint: str | None = None,
        related: tuple[Related, ...] = (),
    ) -> YamlProblem:
        start, end = node.start_mark, node.end_mark
        return YamlProblem(
            Diagnostic(
                code,
                message,
                self.display,
                start.line + 1,
                start.column + 1,
                hint=hint,
                end_line=end.line + 1,
                end_col=end.column + 1,
                related=related,
            )
        )

    def build(self, node: Node) -> Any:
        kind = node.__class__
        if kind is ScalarNode:
            return self._scalar(node)  # type: ignore[arg-type]  # exactly a ScalarNode
        if kind is MappingNode:
            if node.tag != _MAP:
                self._plain_collection(node, _MAP)
            return self._mapping(node)  # type: ignore[arg-type]  # exactly a MappingNode
        if kind is SequenceNode:
            if node.tag != _SEQ:
                self._plain_collection(node, _SEQ)
            return [self.build(item) for item in node.value]
        return self._build_other(node)

    def _build_other(self, node: Node) -> Any:
        """`build` for nodes of subclasses (libyaml composes none)."""
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            self._plain_collection(node, _SEQ)
            return [self.build(item) for item in node.value]
        if isinstance(node, MappingNode):
            self._plain_collection(node, _MAP)
            return self._mapping(node)
        raise self._problem("RY006", f"unsupported YAML node {node.tag}", node)  # pragma: no cover

    def _plain_collection(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            raise self._problem(
                "RY006",
                f"unsupported YAML tag {node.tag!r}",
                node,
                hint="remove the tag; only plain strings, numbers, booleans, null, lists and maps",
            )

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _PLAIN:
            tag = node.tag = _implicit_tag(node.value)
        if tag in (_STR, _TIMESTAMP):
            return node.value  # dates stay the text the user wrote
        if tag in _PLAIN_TAGS:
            try:
                return self.constructor.construct_object(node)
            except ConstructorError as exc:  # pragma: no cover - resolver and constructor agree
                raise self._problem("RY001", str(exc), node) from exc
        raise self._problem(
            "RY006",
            f"unsupported YAML tag {tag!r}",
            node,
            hint="remove the tag; only plain strings, numbers, booleans, null, lists and maps",
        )

    def _mapping(self, node: MappingNode) -> dict[str, Any]:
        # The hot loop of reading a project: plain string keys and scalar values are built
        # inline; anything else takes the general path.
        result: dict[str, Any] = {}
        merged: dict[str, Any] | None = None
        for key_node, value_node in node.value:
            tag = key_node.tag
            if tag == _MERGE or (tag == _PLAIN and key_node.value == "<<"):
                if merged is None:
                    merged = {}
                for source in _merge_sources(value_node):
                    assert isinstance(source, MappingNode)
                    for k, v in self._mapping(source).items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._problem("RY102", "a mapping key must be a plain value", key_node)
            if tag == _PLAIN:
                tag = key_node.tag = _implicit_tag(key_node.value)
            key = key_node.value if tag == _STR else self._key(key_node)
            if key in result:
                raise self._duplicate(node, key, key_node)
            if value_node.__class__ is ScalarNode:
                tag = value_node.tag
                if tag == _PLAIN:
                    tag = value_node.tag = _implicit_tag(value_node.value)
                if tag in (_STR, _TIMESTAMP):
                    result[key] = value_node.value
                else:
                    result[key] = self._scalar(value_node)
            else:
                result[key] = self.build(value_node)
        if merged:
            for k, v in merged.items():
                result.setdefault(k, v)
        return result

    def _key(self, key_node: ScalarNode) -> str:
        key = self._scalar(key_node)
        if not isinstance(key, str):
            key = str(key).lower() if isinstance(key, bool) else str(key)
        return key

    def _duplicate(self, node: MappingNode, key: str, key_node: Node) -> YamlProblem:
        earlier = next(
            k
            for k, _ in node.value
            if isinstance(k, ScalarNode) and not _is_merge(k) and self._key(k) == key
        )
        start, end = earlier.start_mark, earlier.end_mark
        return self._problem(
            "RY002",
            f"duplicate key `{key}` (first defined on line {start.line + 1})",
            key_node,
            hint="remove one of the two; YAML would silently keep only the last",
            related=(
                Related(
                    "first defined here",
                    self.display,
                    start.line + 1,
                    start.column + 1,
                    end.line + 1,
                    end.column + 1,
                ),
            ),
        )

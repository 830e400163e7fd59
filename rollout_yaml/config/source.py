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

from rollout_yaml.config.diagnostics import Diagnostic, Severity

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


@dataclass
class SourceFile:
    """One project file: its display name, text, and the data it holds."""

    path: Path
    display: str
    text: str
    data: Any
    _root: Node | None = field(default=None, repr=False)

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value at `path`, or of its key with `key=True`.

        A path that goes deeper than the file does (a default, a missing field) resolves to the
        deepest node that exists, which is where a user would add the missing part.
        """
        if self._root is None:
            self._root = _compose(self.text)
        node = self._root
        if node is None:
            return (1, 1)
        mark = node.start_mark
        for index, part in enumerate(path):
            found = _child(node, part)
            if found is None:
                break
            key_node, node = found
            is_last = index == len(path) - 1
            mark = key_node.start_mark if (is_last and key and key_node) else node.start_mark
        return (mark.line + 1, mark.column + 1)

    def diagnostic(
        self,
        code: str,
        message: str,
        path: Sequence[str | int] = (),
        *,
        key: bool = False,
        hint: str | None = None,
        warning: bool = False,
    ) -> Diagnostic:
        line, col = self.locate(path, key=key)
        return Diagnostic(
            code=code,
            message=message,
            file=self.display,
            line=line,
            col=col,
            severity=Severity.WARNING if warning else Severity.ERROR,
            hint=hint,
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
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" {exc.context}" if exc.context else ""
        raise YamlProblem(
            Diagnostic(
                "RY001",
                f"YAML syntax error: {problem}{context}",
                display,
                line,
                col,
                hint="check indentation, quoting and brackets on this line and the one above",
            )
        ) from exc
    builder = _Builder(display)
    data = builder.build(root) if root is not None else None
    return SourceFile(path=path, display=display, text=text, data=data, _root=None)


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

    def _problem(self, code: str, message: str, node: Node, hint: str | None = None) -> YamlProblem:
        mark = node.start_mark
        return YamlProblem(
            Diagnostic(code, message, self.display, mark.line + 1, mark.column + 1, hint=hint)
        )

    def build(self, node: Node) -> Any:
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
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                for source in _merge_sources(value_node):
                    assert isinstance(source, MappingNode)
                    for k, v in self._mapping(source).items():
                        merged.setdefault(k, v)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._problem("RY102", "a mapping key must be a plain value", key_node)
            key = self._scalar(key_node)
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in result:
                raise self._problem(
                    "RY002",
                    f"duplicate key {key!r}",
                    key_node,
                    hint="remove one of the two; YAML would silently keep only the last",
                )
            result[key] = self.build(value_node)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result

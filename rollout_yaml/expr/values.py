"""Value trees: JSON-like structures whose strings are templates (request bodies, inputParams)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rollout_yaml.expr.templates import Template, TemplateCompiler

Tree = Any
"""A dict / list / scalar where each string became a `Template` (literal strings stay str)."""

PathKey = tuple[str | int, ...]


def compile_tree(
    value: Any,
    compiler: TemplateCompiler,
    on_error: Callable[[PathKey, Exception], None],
    path: PathKey = (),
) -> Tree:
    """Compile every string of `value`; report failures through `on_error` and keep going."""
    if isinstance(value, str):
        try:
            template = compiler.compile(value)
        except ValueError as exc:
            on_error(path, exc)
            return value
        return value if template.is_literal else template
    if isinstance(value, dict):
        return {k: compile_tree(v, compiler, on_error, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_tree(v, compiler, on_error, (*path, i)) for i, v in enumerate(value)]
    return value


def render_tree(tree: Tree, context: Mapping[str, Any], *, drop_null: bool = False) -> Any:
    """Render a tree; with `drop_null`, mapping keys whose value rendered to null are left out."""
    if isinstance(tree, Template):
        return tree.render(context)
    if isinstance(tree, dict):
        out = {}
        for key, sub in tree.items():
            value = render_tree(sub, context, drop_null=drop_null)
            if value is None and drop_null:
                continue
            out[key] = value
        return out
    if isinstance(tree, list):
        return [render_tree(v, context, drop_null=drop_null) for v in tree]
    return tree


def templates_in(tree: Tree, path: PathKey = ()) -> Iterator[tuple[PathKey, Template]]:
    if isinstance(tree, Template):
        yield path, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from templates_in(v, (*path, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from templates_in(v, (*path, i))


def names_in(tree: Tree) -> frozenset[str]:
    names: set[str] = set()
    for _, template in templates_in(tree):
        names.update(template.names)
    return frozenset(names)

"""`make run` installs only the runtime dependencies: everything the package imports must come
from them (or from what they require), never from the dev extra alone."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _runtime_closure(direct: list[str]) -> set[str]:
    """The distributions a plain install brings: the dependencies and theirs, with the extras
    asked for and the markers that hold on this interpreter."""
    seen: set[str] = set()
    todo = [Requirement(text) for text in direct]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        extras = frozenset(requirement.extras)
        for text in requires:
            sub = Requirement(text)
            if sub.marker and "extra" in str(sub.marker):
                if not any(sub.marker.evaluate({"extra": e}) for e in extras):
                    continue
                sub.marker = None
            todo.append(sub)
    return seen


def _imported_top_level() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in (REPO / "rollout_yaml").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def test_every_import_of_the_package_comes_with_a_plain_install() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    closure = _runtime_closure(project["dependencies"])
    providers = metadata.packages_distributions()
    missing = []
    for module, where in sorted(_imported_top_level().items()):
        if module == "rollout_yaml" or module in sys.stdlib_module_names:
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & closure:
            missing.append(f"{module} ({where.relative_to(REPO)}; from {sorted(dists) or '?'})")
    assert not missing, "imported but not brought by `dependencies`: " + ", ".join(missing)

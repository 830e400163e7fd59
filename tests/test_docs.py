"""The docs generated from the code are current, and every code the validator can emit is
documented."""

from __future__ import annotations

import re
from pathlib import Path

from rollout_yaml.config.codes import CODES
from rollout_yaml.config.docgen import diagnostics_markdown, reference_markdown

REPO = Path(__file__).resolve().parents[1]


def test_generated_docs_are_current() -> None:
    assert (REPO / "docs/diagnostics.md").read_text() == diagnostics_markdown(), "run make docs"
    assert (REPO / "docs/reference.md").read_text() == reference_markdown(), "run make docs"


def test_every_code_the_package_emits_is_documented() -> None:
    emitted: set[str] = set()
    for path in (REPO / "rollout_yaml").rglob("*.py"):
        if path.name == "codes.py":
            continue
        emitted.update(re.findall(r'"(RY\d{3})"', path.read_text()))
    assert emitted, "no codes found: the scan is broken"
    assert emitted <= set(CODES), f"undocumented: {sorted(emitted - set(CODES))}"


def test_readme_links_resolve() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        if "://" not in link:
            assert (REPO / link).exists(), link

"""`validate` compiling consumers in forked processes finds what one process finds, in the same
order: every broken consumer of the corpus, each in a consumer file of its own in one project,
compiled in one process and in three."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_broken_corpus import ACME, CASES, CONSUMER_CASES, Case, copy_base

from rollout_yaml.cli.validate import validate_project
from rollout_yaml.config.loader import load_environment
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiler import check_environment, collector_paused, compile_environment
from rollout_yaml.expr.context import CompileContext
from rollout_yaml.expr.parallel import THRESHOLD, processes_for


def _as_own_consumer(c: Case, index: int, acme: str) -> str | None:
    """The case's edits of acme's file, applied to a copy that is consumer `c<index>`."""
    if not c.edits or any(e.file != ACME or e.old is None for e in c.edits):
        return None
    text = acme.replace("consumer: acme\n", f"consumer: c{index}\n", 1)
    for edit in c.edits:
        assert edit.old is not None and isinstance(edit.new, str)
        if text.count(edit.old) != 1:
            return None
        text = text.replace(edit.old, edit.new)
    return text


@pytest.fixture(scope="module")
def many_broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    project = copy_base(tmp_path_factory.mktemp("many"))
    acme = (project / ACME).read_text()
    broken = 0
    for index, c in enumerate(CONSUMER_CASES):
        text = _as_own_consumer(c, index, acme)
        if text is not None:
            (project / ACME).with_name(f"c{index}.yaml").write_text(text)
            broken += 1
    return project, broken


def test_the_same_diagnostics_in_the_same_order_from_one_process_and_from_three(
    many_broken: tuple[Path, int],
) -> None:
    project, broken = many_broken
    assert broken >= 20  # the corpus's consumer mistakes, each in a file of its own
    layout = Layout(project)
    with collector_paused():
        config, _ = load_environment(layout, "dev", environ={})
        assert config is not None
        compiled, alone = compile_environment(config, CompileContext())
        forked, automations = check_environment(config, CompileContext(), 3)
    assert len({d.file for d in alone}) >= 20
    assert forked == alone
    assert automations == len(compiled.automations)


def test_validate_reports_the_same_with_consumers_compiled_in_three_processes(
    many_broken: tuple[Path, int],
) -> None:
    project, _ = many_broken
    one = validate_project(Layout(project), environ={}, compile_processes=1)
    three = validate_project(Layout(project), environ={}, compile_processes=3)
    assert three == one
    assert one[0] and one[1]["consumers"] > 20


@pytest.mark.parametrize("broken", [c for c in CASES if not c.bug][::7], ids=lambda c: c.id)
def test_a_broken_project_reports_the_same_from_two_processes(broken: Case, tmp_path: Path) -> None:
    project = copy_base(tmp_path)
    for edit in broken.edits:
        edit.apply(project)
    one = validate_project(Layout(project), envs=broken.envs, environ={}, compile_processes=1)
    two = validate_project(Layout(project), envs=broken.envs, environ={}, compile_processes=2)
    assert two == one and one[0]


def test_small_environments_are_compiled_in_this_process_large_ones_on_every_cpu() -> None:
    assert processes_for(THRESHOLD - 1) == 1
    cpus = min(os.cpu_count() or 1, 8)
    assert processes_for(THRESHOLD) == (cpus if cpus >= 2 else 1)


def test_files_read_in_the_worker_processes_report_what_one_process_reads(
    tmp_path: Path,
) -> None:
    """Each process reads, checks and compiles its own share of the consumer files: a file
    named twice, a file that is not YAML, a variable left unset, a wrong name and an unknown
    app are found as when one process reads every file, and the counts agree."""
    project = copy_base(tmp_path)
    acme = (project / ACME).read_text()
    folder = (project / ACME).parent
    for index in range(12):
        (folder / f"c{index:02}.yaml").write_text(
            acme.replace("consumer: acme\n", f"consumer: c{index:02}\n", 1)
        )
    (folder / "c03.yml").write_text(acme.replace("consumer: acme\n", "consumer: c03\n", 1))
    (folder / "c05.yaml").write_text("consumer: c05\nautomations: [\n")
    (folder / "c07.yaml").write_text(acme.replace("dev-shop-key", "").replace(":-", ""))
    (folder / "c08.yaml").write_text(acme.replace("consumer: acme\n", "consumer: other\n", 1))
    (folder / "c10.yaml").write_text(acme.replace("app: chat\n", "app: chatt\n", 1))
    one = validate_project(Layout(project), environ={}, compile_processes=1)
    for processes in (2, 3):
        assert validate_project(Layout(project), environ={}, compile_processes=processes) == one
    codes = {d.code for d in one[0] if "/consumers/c" in d.file}
    assert {"RY701", "RY501", "RY003", "RY201"} <= codes
    assert any(d.file.endswith("c05.yaml") and d.is_error for d in one[0])
    assert one[1]["consumers"] >= 12

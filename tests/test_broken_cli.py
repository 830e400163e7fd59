"""Broken projects through the real command line: exit codes and the three output formats.

The projects are copies of `tests/fixtures/base_project` with known mistakes (the same ones
`test_broken_corpus.py` locates by hand), checked here as a user and a CI job see them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parent / "fixtures" / "base_project"

FORMS = "connectors/forms.yaml"
GLOBEX = "environments/dev/consumers/globex.yaml"
ACME = "environments/dev/consumers/acme.yaml"
RELEASE_CHAT = "environments/prod/release/connectors/chat.yaml"
UNSET = "RY_BROKEN_CORPUS_NEVER_SET"

# (file, old, new): each `old` occurs once in the base file.
CONSUMER_TYPO = (GLOBEX, "    enabled: false\n", "    enabeld: false\n")  # RY101 at 22:5
CONNECTOR_TYPO = (FORMS, "    description: A form", "    descripton: A form")  # RY101 at 8:5
UNSET_VARIABLE = (ACME, '"${ACME_CHAT_TOKEN:-dev-chat-token}"', '"${' + UNSET + '}"')  # RY501 12:14
HAND_EDITED_RELEASE = (RELEASE_CHAT, "name: Chat\n", "name: Chat API\n")  # RY602 at 1:1
DEV_IGNORES_UNSET = (
    "environments/dev/environment.yaml",
    "runtime:\n",
    "validate: { ignore: [RY501] }\nruntime:\n",
)
SARIF_SCHEMA = Path(__file__).resolve().parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"

GITHUB_LINE = re.compile(r"^::(error|warning) file=[^,:]+,line=\d+,col=\d+::\[RY\d{3}\] \S.*$")


def make_project(root: Path, *edits: tuple[str, str, str]) -> Path:
    shutil.copytree(BASE, root)
    for file, old, new in edits:
        path = root / file
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, (file, old)
        path.write_text(text.replace(old, new), encoding="utf-8")
    return root


def validate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != UNSET}
    return subprocess.run(
        [sys.executable, "-m", "rollout_yaml", "validate", "--project", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# Projects by name (their edits), and runs by name (a project and the arguments). The command
# takes over a second to start, so the `runs` fixture starts every run of this module at once.
PROJECTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "valid": (),
    "two-typos": (CONSUMER_TYPO, CONNECTOR_TYPO),
    "typos-and-warning": (CONSUMER_TYPO, CONNECTOR_TYPO, UNSET_VARIABLE),
    "typo-and-warning": (CONSUMER_TYPO, UNSET_VARIABLE),
    "warning": (UNSET_VARIABLE,),
    "warning-dev-ignores": (UNSET_VARIABLE, DEV_IGNORES_UNSET),
    "edited-release": (HAND_EDITED_RELEASE,),
}
RUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "valid": ("valid", ("--strict",)),
    "text": ("two-typos", ()),
    "github": ("typos-and-warning", ("--format", "github")),
    "json": ("typo-and-warning", ("--format", "json")),
    "warning-text": ("warning", ()),
    "warning-strict": ("warning", ("--strict",)),
    "warning-json": ("warning", ("--format", "json")),
    "warning-github-strict": ("warning", ("--format", "github", "--strict")),
    "warning-env": ("warning", ("--env", "dev", "--format", "json")),
    "warning-ignored": ("warning", ("--ignore", "ry501", "--strict")),
    "warning-ignored-in-env": ("warning-dev-ignores", ("--strict",)),
    "warning-ignored-in-env-but-env": ("warning-dev-ignores", ("--env", "dev", "--format", "json")),
    "sarif": ("typos-and-warning", ("--format", "sarif")),
    "sarif-valid": ("valid", ("--format", "sarif")),
    "usage-ignore-an-error": ("two-typos", ("--ignore", "RY101")),
    "usage-ignore-unknown": ("two-typos", ("--ignore", "RY5O1")),
    "release": ("edited-release", ("--format", "json")),
    "release-dev-only": ("edited-release", ("--env", "dev", "--strict")),
    "unknown-env": ("valid", ("--env", "stagin", "--format", "github")),
    "usage-unknown-option": ("two-typos", ("--bogus",)),
    "usage-unknown-format": ("two-typos", ("--format", "xml")),
    "usage-env-and-all": ("two-typos", ("--env", "dev", "--all")),
}


@dataclass(frozen=True)
class Run:
    root: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    base = tmp_path_factory.mktemp("broken-cli")
    roots = {name: make_project(base / name, *edits) for name, edits in PROJECTS.items()}

    def run(name: str) -> Run:
        project, args = RUNS[name]
        done = validate(roots[project], *args)
        return Run(roots[project], done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(RUNS, pool.map(run, RUNS), strict=True))


def test_valid_project_exits_0_with_no_problems(runs: dict[str, Run]) -> None:
    result = runs["valid"]
    assert result.returncode == 0, result.output
    assert result.stdout.strip() == (
        "ok: 3 connectors, 2 blueprints, 2 environments (3 consumers, 7 automations): no problems"
    )


def test_errors_exit_1_and_text_shows_the_line_and_a_caret(runs: dict[str, Run]) -> None:
    result = runs["text"]
    assert result.returncode == 1, result.output
    lines = result.stdout.splitlines()
    for file, line, col, key in ((GLOBEX, 22, 5, "enabeld"), (FORMS, 8, 5, "descripton")):
        header = f"{file}:{line}:{col}: error[RY101] unknown key `{key}`"
        index = next((i for i, text in enumerate(lines) if text.startswith(header)), None)
        assert index is not None, f"no {header!r} in:\n{result.stdout}"
        source_line = (result.root / file).read_text().splitlines()[line - 1]
        gutter = f"{line:>5} | "
        assert lines[index + 1] == gutter + source_line
        caret = lines[index + 2]
        assert re.fullmatch(r" +\| +\^+", caret), caret
        assert caret.index("^") == len(gutter) + col - 1
        assert caret.count("^") == len(key), "the whole key is underlined"
        assert source_line[col - 1 :].startswith(key)
        assert lines[index + 3].strip().startswith("= help: did you mean")
        assert lines[index + 4].strip() == (
            "= see: docs/diagnostics.md#ry101 (`rollout-yaml explain RY101`)"
        )
    assert re.fullmatch(r"\d+ error\(s\), 0 warning\(s\)", lines[-1]), lines[-1]
    assert "ok:" not in result.output


def test_github_format_prints_one_workflow_command_per_diagnostic(runs: dict[str, Run]) -> None:
    result = runs["github"]
    assert result.returncode == 1, result.output
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    for line in lines:
        assert GITHUB_LINE.match(line), line
    expected = [
        f"::error file={GLOBEX},line=22,col=5::[RY101] unknown key `enabeld` in "
        "`automations.weekday-cleanup` (did you mean `enabled`?)",
        f"::error file={FORMS},line=8,col=5::[RY101] unknown key `descripton` in "
        "`triggers.form-submitted` (did you mean `description`?)",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in:\n{result.stdout}"
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"::warning file={ACME},line=12,col=14::[RY501] variable `{UNSET}` is not set"
    )


def test_json_format_is_parseable_with_every_field(runs: dict[str, Run]) -> None:
    result = runs["json"]
    assert result.returncode == 1, result.output
    report = json.loads(result.stdout)
    assert report["errors"] == 1 and report["warnings"] == 1, report
    by_code = {d["code"]: d for d in report["diagnostics"]}
    assert set(by_code) == {"RY101", "RY501"}
    for d in report["diagnostics"]:
        assert set(d) == {
            *("code", "message", "file", "line", "col", "severity", "hint"),
            *("end_line", "end_col"),
        }
    assert by_code["RY101"] == {
        "code": "RY101",
        "message": "unknown key `enabeld` in `automations.weekday-cleanup`",
        "file": GLOBEX,
        "line": 22,
        "col": 5,
        "end_line": 22,
        "end_col": 12,
        "severity": "error",
        "hint": "did you mean `enabled`?",
    }
    warning = by_code["RY501"]
    assert (warning["file"], warning["line"], warning["col"]) == (ACME, 12, 14)
    assert warning["severity"] == "warning"
    assert UNSET in warning["message"]


def test_warnings_alone_exit_0_and_strict_makes_them_fail(runs: dict[str, Run]) -> None:
    relaxed = runs["warning-text"]
    assert relaxed.returncode == 0, relaxed.output
    assert f"{ACME}:12:14: warning[RY501] variable `{UNSET}` is not set" in relaxed.stdout
    assert relaxed.stdout.splitlines()[-1] == "0 error(s), 1 warning(s)"
    assert relaxed.stderr.startswith("ok: ")

    strict = runs["warning-strict"]
    assert strict.returncode == 1, strict.output
    assert f"{ACME}:12:14: warning[RY501]" in strict.stdout
    assert "ok:" not in strict.output

    as_json = runs["warning-json"]
    assert as_json.returncode == 0, as_json.output
    assert json.loads(as_json.stdout)["warnings"] == 1
    assert runs["warning-github-strict"].returncode == 1


def test_a_hand_edited_release_fails_only_through_its_own_file(runs: dict[str, Run]) -> None:
    result = runs["release"]
    assert result.returncode == 1, result.output
    found = [
        (d["code"], d["file"], d["line"], d["col"])
        for d in json.loads(result.stdout)["diagnostics"]
    ]
    assert found == [("RY602", RELEASE_CHAT, 1, 1)]
    dev_only = runs["release-dev-only"]  # dev runs the live files, not the release
    assert dev_only.returncode == 0, dev_only.output


def test_unknown_environment_exits_1_with_ry603(runs: dict[str, Run]) -> None:
    result = runs["unknown-env"]
    assert result.returncode == 1, result.output
    assert result.stdout.startswith(
        "::error file=environments/stagin/environment.yaml,line=1,col=1::[RY603] "
    ), result.stdout


@pytest.mark.parametrize("name", [n for n in RUNS if n.startswith("usage-")])
def test_usage_errors_exit_2(runs: dict[str, Run], name: str) -> None:
    result = runs[name]
    assert result.returncode == 2, result.output
    assert result.stdout == ""
    assert "Usage:" in result.stderr


def test_an_unset_variable_is_an_error_for_the_environment_validated_with_env(
    runs: dict[str, Run],
) -> None:
    result = runs["warning-env"]  # as `run --env dev` refuses to start
    assert result.returncode == 1, result.output
    report = json.loads(result.stdout)
    (only,) = report["diagnostics"]
    assert (only["code"], only["severity"], only["file"], only["line"]) == (
        "RY501",
        "error",
        ACME,
        12,
    )
    assert only["message"] == f"variable `{UNSET}` is not set"


def test_all_environments_warn_with_what_run_would_do(runs: dict[str, Run]) -> None:
    result = runs["warning-text"]
    assert (
        f"warning[RY501] variable `{UNSET}` is not set: `run --env dev` would refuse to start"
        in result.stdout
    )


def test_ignore_leaves_warnings_out_but_never_errors(runs: dict[str, Run]) -> None:
    ignored = runs["warning-ignored"]
    assert ignored.returncode == 0, ignored.output  # --strict, and nothing left to fail on
    assert ignored.stdout.strip().endswith(": no problems")
    in_env = runs["warning-ignored-in-env"]
    assert in_env.returncode == 0, in_env.output
    assert in_env.stdout.strip().endswith(": no problems")
    # validating dev alone, the unset variable is an error: ignore lists do not apply
    alone = runs["warning-ignored-in-env-but-env"]
    assert alone.returncode == 1, alone.output
    assert [d["code"] for d in json.loads(alone.stdout)["diagnostics"]] == ["RY501"]
    for name, words in (
        ("usage-ignore-an-error", "RY101 is always an error"),
        ("usage-ignore-unknown", "unknown diagnostic code 'RY5O1'"),
    ):
        assert runs[name].returncode == 2, runs[name].output
        assert words in runs[name].stderr


def test_sarif_output_is_valid_sarif_2_1_0_with_spans_and_rules(runs: dict[str, Run]) -> None:
    from jsonschema import Draft4Validator

    schema = json.loads(SARIF_SCHEMA.read_text())
    for name in ("sarif", "sarif-valid"):
        result = runs[name]
        log = json.loads(result.stdout)
        errors = sorted(Draft4Validator(schema).iter_errors(log), key=str)
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    assert runs["sarif-valid"].returncode == 0
    result = runs["sarif"]
    assert result.returncode == 1, result.output
    (run,) = json.loads(result.stdout)["runs"]
    rules = run["tool"]["driver"]["rules"]
    # RY201: the broken connector's app is unknown to the automations using it
    assert [r["id"] for r in rules] == ["RY101", "RY201", "RY501"]
    assert rules[0]["shortDescription"]["text"] == "unknown key"
    assert rules[2]["defaultConfiguration"]["level"] == "warning"
    by_place = {
        (r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["ruleId"]): r
        for r in run["results"]
    }
    typo = by_place[(GLOBEX, "RY101")]
    assert typo["level"] == "error"
    assert typo["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 22,
        "startColumn": 5,
        "endLine": 22,
        "endColumn": 12,
    }
    assert rules[typo["ruleIndex"]]["id"] == "RY101"
    assert "did you mean `enabled`?" in typo["message"]["text"]
    assert by_place[(ACME, "RY501")]["level"] == "warning"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == result.root.resolve().as_uri() + "/"


def test_outside_a_project_every_command_exits_2_and_says_where_it_looked(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "not-a-project"
    (empty / "deeper").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "rollout_yaml", "validate"],
        cwd=empty / "deeper",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"error: no project here (looked for connectors/ or environments/ from "
        f"{(empty / 'deeper').resolve()} upwards)"
    )

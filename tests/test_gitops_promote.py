"""`promote` on a real git repository: what it writes, what it refuses and why, and that a frozen
release edited by hand fails validation (30-environments.md, "Releases and promotion")."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from gitops_repo import (
    cli,
    commit_all,
    copy_fixture,
    edit,
    git,
    init_repo,
    released_repo,
    snapshot,
)
from runner_env import SECRETS

PROD_ACME = "environments/prod/consumers/acme.yaml"
RELEASE = "environments/prod/release"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return released_repo(tmp_path)


def sources(project: Path) -> dict[str, bytes]:
    return {
        f"{folder}/{p.name}": p.read_bytes()
        for folder in ("connectors", "automations")
        for p in sorted((project / folder).glob("*.yaml"))
    }


def release_copies(project: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(project / RELEASE).items() if k != "release.yaml"}


# -- what promote writes -------------------------------------------------------------------------


def test_first_promotion_copies_byte_identical_files_and_records_hashes_and_commit(
    tmp_path: Path,
) -> None:
    repo = copy_fixture(tmp_path)
    init_repo(repo)
    source_commit = commit_all(repo, "project")
    assert cli(repo, "validate", "--env", "prod").returncode == 1  # RY601: no release yet

    done = cli(repo, "promote", "dev", "prod")

    assert done.returncode == 0, done.stdout + done.stderr
    assert release_copies(repo) == sources(repo)
    text = (repo / RELEASE / "release.yaml").read_text()
    manifest = yaml.safe_load(text)
    assert manifest["promoted_from"] == "dev"
    assert manifest["source_commit"] == source_commit
    assert re.search(r"^promoted_at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", text, re.MULTILINE)
    assert set(manifest["files"]) == set(sources(repo))
    assert all(digest.startswith("sha256:") for digest in manifest["files"].values())
    # consumers, settings and local state are never copied
    assert not (repo / RELEASE / "consumers").exists()
    assert not list((repo / RELEASE).rglob("environment.yaml"))
    assert cli(repo, "validate", "--all").returncode == 0


def test_a_compatible_change_is_promoted_and_the_copies_are_byte_identical(repo: Path) -> None:
    sink = repo / "connectors/sink.yaml"
    edit(sink, "version: 1.0.0", "version: 1.1.0")
    edit(
        sink,
        "        text: { type: string }\n",
        "        text: { type: string }\n        note: { type: string }\n",
    )
    sink.write_text(
        sink.read_text()
        + "  archive:\n"
        + "    name: Archive an order\n"
        + "    input_schema:\n"
        + "      {type: object, required: [order_id], properties: {order_id: {type: integer}}}\n"
        + "    request: { method: DELETE, path: '/orders/{{ input.order_id }}' }\n"
    )
    before = snapshot(repo / RELEASE)

    checked = cli(repo, "promote", "dev", "prod", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok: promoting dev to prod breaks nothing" in checked.stdout
    assert snapshot(repo / RELEASE) == before  # --check writes nothing

    done = cli(repo, "promote", "dev", "prod")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "+ action archive" in done.stdout
    assert "input_schema: new optional input `note`" in done.stdout
    assert release_copies(repo) == sources(repo)
    after = snapshot(repo / RELEASE)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"connectors/sink.yaml", "release.yaml"}  # only what changed is written
    assert cli(repo, "validate", "--all").returncode == 0
    git_changed = git(repo, "status", "--porcelain").splitlines()
    assert sorted(line[3:] for line in git_changed) == [
        "connectors/sink.yaml",
        f"{RELEASE}/connectors/sink.yaml",
        f"{RELEASE}/release.yaml",
    ]
    manifest = yaml.safe_load((repo / RELEASE / "release.yaml").read_text())
    assert manifest["source_commit"].endswith("-dirty")  # sink.yaml was not committed yet

    again = cli(repo, "promote", "dev", "prod")
    assert again.returncode == 0
    assert "nothing written" in again.stdout
    assert snapshot(repo / RELEASE) == after


def test_a_removed_file_leaves_the_release_and_the_manifest(repo: Path) -> None:
    (repo / "connectors/extra.yaml").write_text(
        "app: extra\nname: Extra\nversion: 0.1.0\nbase_url: https://extra.invalid\n"
    )
    assert cli(repo, "promote", "dev", "prod").returncode == 0
    assert (repo / RELEASE / "connectors/extra.yaml").is_file()
    (repo / "connectors/extra.yaml").unlink()

    done = cli(repo, "promote", "dev", "prod")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "- app extra 0.1.0 (removed)" in done.stdout
    assert not (repo / RELEASE / "connectors/extra.yaml").exists()
    manifest = yaml.safe_load((repo / RELEASE / "release.yaml").read_text())
    assert "connectors/extra.yaml" not in manifest["files"]
    assert cli(repo, "validate", "--env", "prod").returncode == 0


# -- what promote refuses ------------------------------------------------------------------------


def test_removing_an_action_a_prod_consumer_uses_is_refused_naming_its_file_and_line(
    repo: Path,
) -> None:
    sink = repo / "connectors/sink.yaml"
    text = sink.read_text()
    sink.write_text(text[: text.index("  post-message:")])
    assert cli(repo, "validate", "--env", "dev").returncode == 0  # dev alone is fine
    before = snapshot(repo / RELEASE)

    done = cli(repo, "promote", "dev", "prod")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "- action post-message" in done.stdout
    assert "refused: promoting dev to prod would break 1 prod automation(s)" in done.stdout
    assert (
        f"{PROD_ACME}:15:15: automation `orders-to-chat` of consumer `acme`: action removed: "
        "app `sink` has no action `post-message` [RY203]"
    ) in done.stdout
    assert "nothing written" in done.stdout
    assert snapshot(repo / RELEASE) == before
    assert git(repo, "status", "--porcelain", "--", "environments") == ""


def _remove_customer(repo: Path) -> None:
    edit(
        repo / "connectors/partner.yaml",
        "        customer: { type: object, properties: { name: { type: string } } }\n",
        "",
    )


def _require_channel(repo: Path) -> None:
    edit(
        repo / "connectors/sink.yaml",
        "{ type: object, required: [text], properties: { text: { type: string } } }",
        "{ type: object, required: [text, channel], properties: "
        "{ text: { type: string }, channel: { type: string } } }",
    )


def _basic_auth(repo: Path) -> None:
    edit(repo / "connectors/sink.yaml", "auth: { type: bearer }", "auth: { type: basic }")
    edit(  # dev's own consumer moves to the new auth, so dev still validates
        repo / "environments/dev/consumers/acme.yaml",
        'values: { token: "${ACME_SINK_TOKEN}" }',
        'values: { username: acme, password: "${ACME_SINK_TOKEN}" }',
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _remove_customer,
            [("orders-to-chat", 18, "RY304", "mapped payload field removed", "payload.customer")],
        ),
        (
            _require_channel,
            [("orders-to-chat", 18, "RY403", "new required input not given", "`channel`")],
        ),
        (
            _basic_auth,
            [
                (None, 5, "RY504", "credential fields changed", "missing field `password`"),
                (None, 5, "RY504", "credential fields changed", "missing field `username`"),
                (None, 5, "RY504", "credential fields changed", "no field `token`"),
                ("orders", 10, "RY604", "auth type changed", "from bearer to basic"),
                ("orders-to-chat", 16, "RY604", "auth type changed", "from bearer to basic"),
            ],
        ),
    ],
    ids=["payload-field-gone", "new-required-input", "auth-type-change"],
)
def test_each_kind_of_break_is_named_with_file_line_and_reason(
    repo: Path,
    change: Callable[[Path], None],
    expected: list[tuple[str | None, int, str, str, str]],
) -> None:
    change(repo)
    assert cli(repo, "validate", "--env", "dev").returncode == 0

    done = cli(repo, "promote", "dev", "prod", "--check", "--format", "json")

    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["source_errors"] == [] and report["written"] == []
    got = [
        (b["automation"], b["line"], b["code"], b["reason"], b["file"], b["message"])
        for b in report["broken"]
    ]
    assert len(got) == len(expected), got
    for (automation, line, code, reason, file, message), want in zip(got, expected, strict=True):
        assert (automation, line, code, reason, file) == (*want[:4], PROD_ACME)
        assert want[4] in message


def test_a_source_that_does_not_validate_is_refused(repo: Path) -> None:
    edit(repo / "automations/orders-to-sink.yaml", "action: deliver", "action: delivr")
    before = snapshot(repo / RELEASE)

    done = cli(repo, "promote", "dev", "prod")

    assert done.returncode == 1
    assert "automations/orders-to-sink.yaml:" in done.stdout and "RY203" in done.stdout
    assert "refused: dev does not validate" in done.stdout
    assert snapshot(repo / RELEASE) == before


def test_bad_targets_are_usage_errors(repo: Path) -> None:
    live = cli(repo, "promote", "prod", "dev")
    assert live.returncode == 2
    assert "`dev` runs `release: live`" in live.stderr
    unknown = cli(repo, "promote", "dev", "staging")
    assert unknown.returncode == 2 and "no environment `staging`" in unknown.stderr
    assert cli(repo, "diff", "dev", "dev").returncode == 2


# -- hand edits ----------------------------------------------------------------------------------


def test_a_hand_edited_release_fails_validation_until_promoted_again(repo: Path) -> None:
    copy = repo / RELEASE / "connectors/sink.yaml"
    edit(copy, "path: /messages", "path: /messages-hotfix")

    done = cli(repo, "validate", "--env", "prod", "--format", "github")

    assert done.returncode == 1
    assert (
        f"::error file={RELEASE}/connectors/sink.yaml,line=1,col=1::[RY602] "
        f"{RELEASE}/connectors/sink.yaml was edited by hand"
    ) in done.stdout
    assert cli(repo, "promote", "dev", "prod", "--check").returncode == 0  # dev is what counts
    repaired = cli(repo, "promote", "dev", "prod")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "~connectors/sink.yaml" in repaired.stdout
    assert copy.read_bytes() == (repo / "connectors/sink.yaml").read_bytes()
    assert cli(repo, "validate", "--env", "prod").returncode == 0


def test_an_edited_manifest_fails_validation(repo: Path) -> None:
    manifest = repo / RELEASE / "release.yaml"
    text = manifest.read_text()
    digest = yaml.safe_load(text)["files"]["connectors/sink.yaml"]
    manifest.write_text(text.replace(digest, "sha256:" + "0" * 64))

    done = cli(repo, "validate", "--env", "prod")

    assert done.returncode == 1
    assert f"{RELEASE}/connectors/sink.yaml" in done.stdout and "RY602" in done.stdout


# -- on a terminal -------------------------------------------------------------------------------


def _on_terminal(project: Path, *args: str, answer: bytes) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin and stdout; answer its prompt."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "rollout_yaml", *args, "--project", str(project)],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, **SECRETS},
    )
    os.close(child)
    seen = b""
    answered = False
    deadline = time.time() + 60
    while time.time() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(main, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    os.close(main)
    return process.wait(30), seen.decode(errors="replace")


def test_on_a_terminal_promote_asks_first_and_no_writes_nothing(repo: Path) -> None:
    edit(repo / "connectors/sink.yaml", "version: 1.0.0", "version: 1.0.1")
    before = snapshot(repo / RELEASE)

    code, shown = _on_terminal(repo, "promote", "dev", "prod", answer=b"n\n")

    assert "Write environments/prod/release/? [y/N]" in shown
    assert code == 1 and "nothing written" in shown
    assert snapshot(repo / RELEASE) == before

    code, shown = _on_terminal(repo, "promote", "dev", "prod", answer=b"y\n")
    assert code == 0, shown
    assert (repo / RELEASE / "connectors/sink.yaml").read_bytes() == (
        repo / "connectors/sink.yaml"
    ).read_bytes()


def test_yes_skips_the_question_on_a_terminal(repo: Path) -> None:
    edit(repo / "connectors/sink.yaml", "version: 1.0.0", "version: 1.0.1")
    code, shown = _on_terminal(repo, "promote", "dev", "prod", "--yes", answer=b"n\n")
    assert code == 0, shown
    assert "[y/N]" not in shown
    assert "version: 1.0.1" in (repo / RELEASE / "connectors/sink.yaml").read_text()


def test_a_frozen_source_promotes_its_release_not_the_working_tree(repo: Path) -> None:
    staging = repo / "environments/staging"
    staging.mkdir()
    (staging / "environment.yaml").write_text(
        (repo / "environments/prod/environment.yaml").read_text().replace("prod", "staging")
    )
    assert cli(repo, "promote", "dev", "staging").returncode == 0
    edit(repo / "connectors/sink.yaml", "version: 1.0.0", "version: 1.5.0")  # not in staging

    diffed = cli(repo, "diff", "staging", "prod")
    assert diffed.returncode == 0
    assert (
        diffed.stdout.strip() == "staging → prod: no change (prod already runs what staging runs)"
    )
    done = cli(repo, "promote", "staging", "prod")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "version: 1.0.0" in (repo / RELEASE / "connectors/sink.yaml").read_text()
    manifest = yaml.safe_load((repo / RELEASE / "release.yaml").read_text())
    assert manifest["promoted_from"] == "staging"  # a new source is a new manifest
    assert cli(repo, "promote", "dev", "prod").returncode == 0
    assert "version: 1.5.0" in (repo / RELEASE / "connectors/sink.yaml").read_text()


def test_a_manifest_listing_a_file_outside_the_release_fails_validation(repo: Path) -> None:
    manifest = repo / RELEASE / "release.yaml"
    manifest.write_text(
        manifest.read_text() + '  ../consumers/acme.yaml: "sha256:' + "0" * 64 + '"\n'
    )
    done = cli(repo, "validate", "--env", "prod")
    assert done.returncode == 1
    assert f"{RELEASE}/release.yaml:" in done.stdout
    assert "lists ../consumers/acme.yaml, which is not a connector or blueprint file" in done.stdout

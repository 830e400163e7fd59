"""One consumer changed in place of a whole compile: the result is what compiling everything
again gives (the full compile is the oracle), and the match index updated for the changed
automations is the index built from scratch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runner_env import SECRETS, compile_env, copy_project

from rollout_yaml.config.loader import load_consumer_file
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.matching import MatchIndex
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.incremental import compile_consumer_file, with_automations

SINK = "http://127.0.0.1:9"


def shape(env: CompiledEnvironment) -> dict[tuple[str, str], tuple[object, ...]]:
    """What an automation does, comparable across compiles."""
    return {
        ref: (a.enabled, a.trigger_app, a.trigger_key, a.action_app, a.action_key, a.name)
        for ref, a in env.automations.items()
    }


def index_shape(index: MatchIndex) -> dict[tuple[str, str, str], list[str]]:
    return {k: sorted(a.key for a in v) for k, v in index.by_trigger.items()}


def test_a_saved_consumer_file_compiles_to_what_a_full_compile_gives(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    before = compile_env(project, SINK)
    path = project / "environments/test/consumers/acme.yaml"
    path.write_text(
        path.read_text().replace("  orders-to-sink:\n", "  renamed:\n    enabled: false\n")
        + "  more:\n    trigger: { app: partner, trigger: order-created }\n"
        "    action: { app: sink, action: post-message, credential: sink,"
        ' input: { text: "x {{ payload.order_id }}" } }\n'
    )
    loaded, diagnostics = load_consumer_file(
        Layout(project), "test", path, {**SECRETS, "SINK_URL": SINK}
    )
    assert loaded is not None and not diagnostics
    changed, change, found = compile_consumer_file(before, loaded)
    assert changed is not None and not [d for d in found if d.is_error]
    full = compile_env(project, SINK)
    assert ("acme", "renamed") in full.automations and (
        "acme",
        "orders-to-sink",
    ) not in full.automations
    assert shape(changed) == shape(full)
    assert changed.consumers.keys() == full.consumers.keys()
    updated = MatchIndex.build(before).changed(*change)
    assert index_shape(updated) == index_shape(MatchIndex.build(full))


def test_a_consumer_file_with_an_error_changes_nothing(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    before = compile_env(project, SINK)
    path = project / "environments/test/consumers/acme.yaml"
    path.write_text(path.read_text().replace("action: deliver", "action: delivr"))
    loaded, _ = load_consumer_file(Layout(project), "test", path, {**SECRETS, "SINK_URL": SINK})
    assert loaded is not None
    changed, change, found = compile_consumer_file(before, loaded)
    assert changed is None and change == ((), ())
    assert [d.code for d in found if d.is_error] == ["RY203"]


def test_automations_put_and_dropped_update_the_index_as_a_rebuild_would(tmp_path: Path) -> None:
    env = compile_env(copy_project(tmp_path), SINK)
    base = env.automations[("acme", "orders-to-sink")]
    copies: list[CompiledAutomation] = [
        dataclasses.replace(base, key=f"copy-{n}", enabled=n % 2 == 0) for n in range(4)
    ]
    index = MatchIndex.build(env)
    grown, change = with_automations(env, copies)
    index = index.changed(*change)
    assert index_shape(index) == index_shape(MatchIndex.build(grown))
    paused = dataclasses.replace(copies[0], enabled=False)
    shrunk, change = with_automations(
        grown, [paused], drop=[("acme", "copy-2"), ("globex", "orders-to-chat")]
    )
    index = index.changed(*change)
    assert index_shape(index) == index_shape(MatchIndex.build(shrunk))
    assert ("globex", "partner", "order-created") not in index.by_trigger
    assert [a.key for a in index.automations("acme", "partner", "order-created")] == [
        "orders-to-sink"
    ]


def test_poll_groups_updated_for_the_changed_automations_are_the_groups_rebuilt(
    tmp_path: Path,
) -> None:
    from poll_env import automation, trigger, write_automations, write_shop

    from rollout_yaml.engine.polls import PollGroups

    project = copy_project(tmp_path)
    write_shop(project, "http://127.0.0.1:9", {"items": trigger("link")})
    write_automations(
        project,
        {
            "a": automation("items"),
            "b": automation("items"),  # a's group: same trigger, credential and input
            "c": automation("items", tag="vip"),
        },
    )
    env = compile_env(project, SINK)
    groups = PollGroups.build(env)
    assert sorted(len(g.automations) for g in groups.groups.values()) == [1, 2]
    a, c = env.automations[("acme", "a")], env.automations[("acme", "c")]
    steps = [
        ([dataclasses.replace(a, key="d")], []),  # joins a's group
        ([dataclasses.replace(c, enabled=False)], []),  # its group goes
        ([], [("acme", "a"), ("acme", "b")]),
        ([dataclasses.replace(c, key="e", trigger_input={"tag": "new"})], []),
    ]
    for put, drop in steps:
        env, (removed, added) = with_automations(env, put, drop)
        groups = groups.changed(env, removed, added)
        rebuilt = PollGroups.build(env).groups
        assert {k: g.refs for k, g in groups.groups.items()} == {
            k: g.refs for k, g in rebuilt.items()
        }

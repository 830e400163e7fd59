"""Stateful property-based tests of the automation API (`/v1/automations` and
`/admin/v1/automations`): hypothesis drives two consumers and the admin through random
sequences of creates (from a blueprint with valid and invalid params, inline where
`self_service` allows it and where it does not, over `max_automations`), PUTs with the right
and a stale `If-Match`, PATCHes of `enabled`, `params` and `custom_data`, DELETEs, writes to a
consumer file's automation, reads and pushed events, against the real API, the real runtime
and a real SQLite file (and PostgreSQL). A model of what must be stored is kept alongside, and
after every step:

- no answer is a 5xx;
- each answer's status is the one the model predicts (201, 200, 204, 404, 409, 412, 422);
- a refused write stores nothing: the lists equal the model;
- `version` goes up by exactly one per successful write, and never otherwise;
- every listed automation is `ready` or `invalid`;
- a consumer never sees another's automation (404);
- what GET answers equals the model (`enabled`, `params`, `custom_data`, `version`);
- a pushed event makes exactly one run per enabled automation, none for a disabled or
  deleted one;
- a consumer file's automation is read-only: every write to it is a 409.

Fixed seeds (`derandomize`), bounded examples and steps: this runs in `make test`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import event
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from machines import CHAT_BLUEPRINT, NO_SHRINKING, run_machine
from server_harness import LiveEnvironment

CONSUMERS = ("acme", "globex")
FILE_KEYS = {"acme": "orders-to-sink", "globex": "orders-to-chat"}
KEYS = ("k1", "k2", "k3")
MAX_AUTOMATIONS = 3  # per consumer over /v1; the admin is not limited
SELF_SERVICE = (
    f"self_service: {{ blueprints: all, inline: false, max_automations: {MAX_AUTOMATIONS} }}\n"
)

# Params: valid ones, and each kind of mistake validate reports (missing, misspelt, wrong type).
# (a consumer file cannot hold control characters: RY001, so good params have none)
CHANNELS = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=8)
GOOD_PARAMS = st.fixed_dictionaries({"channel": CHANNELS})
BAD_PARAMS = st.sampled_from([{}, {"chanel": "C1"}, {"channel": 5}, {"channel": "C1", "x": 1}])
CUSTOM_DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
WAYS = st.sampled_from(["consumer", "admin"])
# The key a change is made to: mostly one that exists (else the changes that succeed are rare)
TARGETS = st.sampled_from(["existing"] * 6 + list(KEYS))
GOOD = st.sampled_from([True, True, True, False])  # mostly valid: writes that succeed


@dataclass(frozen=True)
class Expected:
    """What the model says one API automation is."""

    inline: bool
    params: dict[str, Any] | None  # a blueprint's; None for an inline one
    enabled: bool
    custom_data: Any
    version: int


def inline_body(good: bool) -> dict[str, Any]:
    action = "post-message" if good else "post-mesage"  # RY: no such action, did you mean
    return {
        "trigger": {"app": "partner", "trigger": "order-created"},
        "action": {"app": "sink", "action": action, "credential": "sink", "input": {"text": "x"}},
    }


def blueprint_body(params: dict[str, Any]) -> dict[str, Any]:
    return {"blueprint": "order-to-chat", "params": params, "credentials": {"action": "sink"}}


def project_for(environment: LiveEnvironment) -> None:
    root = environment.project
    (root / "automations").mkdir(exist_ok=True)
    (root / "automations" / "order-to-chat.yaml").write_text(CHAT_BLUEPRINT)
    settings_file = root / "environments" / "test" / "environment.yaml"
    settings_file.write_text(settings_file.read_text() + SELF_SERVICE)


class Automations(RuleBasedStateMachine):
    """One environment per example, on `database` (set by the test functions below)."""

    database: str | None = None
    tmp: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        environment = LiveEnvironment(self.tmp, database=self.database)
        project_for(environment)
        self.live = environment.__enter__()
        # One client each, kept open: a new client per request costs more than the request
        self.clients = {c: self.live.client(c) for c in CONSUMERS}
        self.admin = self.live.client(admin=True)
        self.model: dict[str, dict[str, Expected]] = {c: {} for c in CONSUMERS}
        self.events = itertools.count()

    def teardown(self) -> None:
        for client in [*self.clients.values(), self.admin]:
            client.close()
        self.live.__exit__(None, None, None)

    # -- helpers ----------------------------------------------------------------------------

    def _send(self, consumer: str, way: str, method: str, key: str | None, **kw: Any) -> Any:
        if way == "admin":
            path = "/admin/v1/automations" + (f"/{consumer}/{key}" if key else "")
            if key is None:
                kw["json"] = {**kw["json"], "consumer": consumer}
            answer = self.admin.request(method, path, **kw)
        else:
            path = "/v1/automations" + (f"/{key}" if key else "")
            answer = self.clients[consumer].request(method, path, **kw)
        assert answer.status_code < 500, answer.text
        return answer

    def _expect(self, answer: Any, status: int) -> None:
        assert answer.status_code == status, (status, answer.status_code, answer.text)
        event(f"{answer.request.method} {status}")  # --hypothesis-show-statistics
        if status == 422:
            details = answer.json()["error"]["details"]
            assert details and all({"code", "message", "path", "help"} <= set(d) for d in details)

    def _written(self, answer: Any, consumer: str, key: str, expected: Expected) -> None:
        """A write's answer shows what the model now holds, with its version as the ETag."""
        body = answer.json()
        assert answer.headers["ETag"] == f'"{expected.version}"'
        self._same(body, expected)
        self.model[consumer][key] = expected

    def _same(self, view: dict[str, Any], expected: Expected) -> None:
        assert view["source"] == "api", view
        assert view["status"] in ("ready", "invalid"), view
        assert view["version"] == expected.version, (view, expected)
        assert view["enabled"] is expected.enabled, (view, expected)
        assert view["custom_data"] == expected.custom_data, (view, expected)
        if expected.params is not None:
            assert view["definition"]["params"] == expected.params, (view, expected)
        else:
            assert "params" not in view["definition"] and "trigger" in view["definition"], view

    def _target(self, consumer: str, key: str) -> str:
        if key != "existing":
            return key
        return min(self.model[consumer], default=KEYS[0])

    # -- writes ---------------------------------------------------------------------------

    @initialize(params=GOOD_PARAMS, custom_data=CUSTOM_DATA)
    def one_each(self, params: dict[str, Any], custom_data: Any) -> None:
        """Each consumer starts with one automation, so changes that succeed are common."""
        for consumer in CONSUMERS:
            self.create(consumer, "k1", "consumer", False, True, params, {}, None, custom_data)

    @rule(
        consumer=st.sampled_from(CONSUMERS),
        key=st.sampled_from(KEYS),
        way=WAYS,
        inline=st.booleans(),
        good=GOOD,
        params=GOOD_PARAMS,
        bad=BAD_PARAMS,
        enabled=st.none() | st.booleans(),
        custom_data=st.none() | CUSTOM_DATA,
    )
    def create(
        self,
        consumer: str,
        key: str,
        way: str,
        inline: bool,
        good: bool,
        params: dict[str, Any],
        bad: dict[str, Any],
        enabled: bool | None,
        custom_data: Any,
    ) -> None:
        chosen = params if good else bad
        body = inline_body(good) if inline else blueprint_body(chosen)
        body = {"key": key, **body, "custom_data": custom_data}
        if enabled is not None:
            body["enabled"] = enabled
        answer = self._send(consumer, way, "POST", None, json=body)
        # The order of the checks (engine/automations.py `create`)
        if way == "consumer" and inline:
            return self._expect(answer, 422)  # self_service.inline is false
        if key in self.model[consumer]:
            return self._expect(answer, 409)
        if way == "consumer" and len(self.model[consumer]) >= MAX_AUTOMATIONS:
            return self._expect(answer, 422)
        if not good:
            return self._expect(answer, 422)
        self._expect(answer, 201)
        expected = Expected(
            inline, None if inline else chosen, enabled is not False, custom_data, 1
        )
        self._written(answer, consumer, key, expected)

    @rule(
        consumer=st.sampled_from(CONSUMERS),
        key=TARGETS,
        way=WAYS,
        if_match=st.sampled_from(["right", "right", "stale", "none", "star"]),
        good=GOOD,
        params=GOOD_PARAMS,
        bad=BAD_PARAMS,
        custom_data=st.none() | CUSTOM_DATA,
    )
    def put(
        self,
        consumer: str,
        key: str,
        way: str,
        if_match: str,
        good: bool,
        params: dict[str, Any],
        bad: dict[str, Any],
        custom_data: Any,
    ) -> None:
        key = self._target(consumer, key)
        current = self.model[consumer].get(key)
        version = current.version if current else 1
        headers = {
            "right": {"If-Match": f'"{version}"'},
            "stale": {"If-Match": str(version + 1)},
            "none": {},
            "star": {"If-Match": "*"},
        }[if_match]
        chosen = params if good else bad
        body = {**blueprint_body(chosen), "custom_data": custom_data}
        answer = self._send(consumer, way, "PUT", key, json=body, headers=headers)
        if current is None:
            return self._expect(answer, 404)
        if if_match == "stale":
            return self._expect(answer, 412)
        if not good:
            return self._expect(answer, 422)
        self._expect(answer, 200)
        expected = Expected(False, chosen, True, custom_data, current.version + 1)
        self._written(answer, consumer, key, expected)

    @rule(
        consumer=st.sampled_from(CONSUMERS),
        key=TARGETS,
        way=WAYS,
        stale=st.sampled_from([False, False, False, True]),
        enabled=st.none() | st.booleans(),
        params=st.none() | GOOD_PARAMS | BAD_PARAMS,
        custom_data=st.sampled_from(["absent"]) | CUSTOM_DATA,
    )
    def patch(
        self,
        consumer: str,
        key: str,
        way: str,
        stale: bool,
        enabled: bool | None,
        params: dict[str, Any] | None,
        custom_data: Any,
    ) -> None:
        key = self._target(consumer, key)
        current = self.model[consumer].get(key)
        body: dict[str, Any] = {}
        if enabled is not None:
            body["enabled"] = enabled
        if params is not None:
            body["params"] = params
        if custom_data != "absent":
            body["custom_data"] = custom_data
        headers = {"If-Match": str(current.version + 1)} if current and stale else {}
        answer = self._send(consumer, way, "PATCH", key, json=body, headers=headers)
        if current is None:
            return self._expect(answer, 404)
        if stale:
            return self._expect(answer, 412)
        if params is not None and current.inline:
            return self._expect(answer, 422)  # params belong to blueprint automations
        if params is not None and not _good_params(params):
            return self._expect(answer, 422)
        self._expect(answer, 200)
        expected = replace(
            current,
            enabled=current.enabled if enabled is None else enabled,
            params=current.params if params is None else params,
            custom_data=current.custom_data if custom_data == "absent" else custom_data,
            version=current.version + 1,
        )
        self._written(answer, consumer, key, expected)

    @rule(consumer=st.sampled_from(CONSUMERS), key=TARGETS, way=WAYS)
    def delete(self, consumer: str, key: str, way: str) -> None:
        key = self._target(consumer, key)
        answer = self._send(consumer, way, "DELETE", key)
        if key not in self.model[consumer]:
            return self._expect(answer, 404)
        self._expect(answer, 204)
        del self.model[consumer][key]

    @rule(
        consumer=st.sampled_from(CONSUMERS),
        way=WAYS,
        method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]),
    )
    def write_a_file_automation(self, consumer: str, way: str, method: str) -> None:
        key = FILE_KEYS[consumer]
        body = blueprint_body({"channel": "C1"})
        if method == "POST":
            answer = self._send(consumer, way, method, None, json={"key": key, **body})
        elif method == "PATCH":
            answer = self._send(consumer, way, method, key, json={"enabled": False})
        elif method == "PUT":
            answer = self._send(consumer, way, method, key, json=body)
        else:
            answer = self._send(consumer, way, method, key)
        self._expect(answer, 409)
        [detail] = answer.json()["error"]["details"]
        assert detail["file"] == f"environments/test/consumers/{consumer}.yaml", detail

    @rule(consumer=st.sampled_from(CONSUMERS), total=st.sampled_from([1, 20]))
    def push(self, consumer: str, total: int) -> None:
        event = f"event-{next(self.events)}"
        body = {
            "app": "partner",
            "trigger": "order-created",
            "id": event,
            "payload": {"order_id": 7, "total": total},
        }
        answer = self.clients[consumer].post("/v1/events", json=body)
        assert answer.status_code == 202, answer.text
        listed = self.admin.get("/admin/v1/runs", params={"consumer": consumer, "limit": 500})
        assert listed.status_code == 200, listed.text
        made = [
            r["automation"]
            for r in listed.json()["runs"]
            if r["consumer"] == consumer and r["event"]["key"] == event
        ]
        enabled = [k for k, e in self.model[consumer].items() if e.enabled]
        assert sorted(made) == sorted([FILE_KEYS[consumer], *enabled]), (made, self.model)
        filtered = 1 if consumer == "acme" and total < 10 else 0  # the file's filter
        assert answer.json()["runs_queued"] == len(made) - filtered, answer.text

    # -- what always holds ------------------------------------------------------------------

    @invariant()
    def the_lists_are_the_model(self) -> None:
        everyone = self.admin.get("/admin/v1/automations")
        assert everyone.status_code == 200, everyone.text
        for consumer in CONSUMERS:
            answer = self.clients[consumer].get("/v1/automations")
            assert answer.status_code == 200, answer.text
            views = {v["key"]: v for v in answer.json()["automations"]}
            assert views.pop(FILE_KEYS[consumer])["source"] == "file"
            assert set(views) == set(self.model[consumer]), (views, self.model[consumer])
            for key, view in views.items():
                self._same(view, self.model[consumer][key])
            mine = {
                v["key"]
                for v in everyone.json()["automations"]
                if v["consumer"] == consumer and v["source"] == "api"
            }
            assert mine == set(self.model[consumer])

    @invariant()
    def each_sees_only_its_own(self) -> None:
        for consumer, other in (CONSUMERS, CONSUMERS[::-1]):
            client = self.clients[consumer]
            for key in set(self.model[other]) - set(self.model[consumer]):
                self._expect(client.get(f"/v1/automations/{key}"), 404)
                self._expect(client.patch(f"/v1/automations/{key}", json={}), 404)
            for key, expected in self.model[consumer].items():
                answer = client.get(f"/v1/automations/{key}")
                self._expect(answer, 200)
                self._same(answer.json(), expected)


def _good_params(params: dict[str, Any]) -> bool:
    return set(params) == {"channel"} and isinstance(params["channel"], str)


def test_automation_api_invariants_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> None:
    run_machine(Automations, tmp_path_factory, examples=15, steps=12, phases=NO_SHRINKING)


def test_automation_api_invariants_on_postgresql(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_machine(
        Automations, tmp_path_factory, examples=4, steps=12, postgres=True, phases=NO_SHRINKING
    )

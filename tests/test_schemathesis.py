"""Schemathesis over `/openapi.json` against the real daemon (`rollout-yaml run`): every
documented operation, with valid and invalid inputs and the consumer's or the admin's token,
must never answer a 5xx and always answer what the document says (status codes, content
types, headers, bodies). Bounded examples and a fixed seed keep it in `make test`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from app_server import Answer, AppServer
from daemon_proc import Daemon, consumer_token
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Unsatisfiable
from runner_env import SECRETS, copy_project
from schemathesis.checks import not_a_server_error
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    sink = AppServer().start()
    sink.default = Answer(200, {"received": True, "ok": True})
    project = copy_project(Path(tmp_path_factory.mktemp("schemathesis")))
    running = Daemon(project, sink.url).start()
    yield running
    running.stop()
    sink.stop()


def exercise(api: Any, operation: Any, headers: dict[str, str]) -> None:
    """Schemathesis' three phases on one operation: the document's examples, coverage of each
    parameter's boundaries and invalid values, then EXAMPLES generated requests (valid and
    not); each answer checked."""

    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    test = create_test(
        operation=operation,
        test_func=check,
        config=HypothesisTestConfig(
            project=api.config,
            modes=list(HypothesisTestMode),
            settings=settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # no shrinking: report, do not dwell
            ),
        ),
    )
    test()


def test_the_api_keeps_its_document_and_never_fails(daemon: Daemon) -> None:
    """Every operation, with data that fits its schema and data that does not."""
    api = schemathesis.openapi.from_url(f"{daemon.url}/openapi.json")
    admin = {"Authorization": f"Bearer {SECRETS['ROLLOUT_ADMIN_TOKEN']}"}
    consumer = {"Authorization": f"Bearer {consumer_token('acme', ttl=3600)}"}
    failures: list[str] = []
    for found in api.get_all_operations():
        operation = found.ok()
        headers = admin if operation.path.startswith("/admin") else consumer
        try:
            exercise(api, operation, headers)
        except Unsatisfiable:
            continue  # nothing to vary (no parameters, no body)
        except Exception as exc:  # every operation's failure, reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)

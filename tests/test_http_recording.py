"""`http/recording.py`: what an attempt stores of its request and response. Secrets replaced,
credential headers masked whatever their case (keeping the scheme), bodies cut at 64 KiB with
a note of their size."""

from __future__ import annotations

from rollout_yaml.http.recording import MAX_BODY, request_record, response_record
from rollout_yaml.http.request import PreparedRequest

SECRET = "tok-3f9a1c"
SECRETS = frozenset({SECRET})


def test_a_request_is_recorded_with_secrets_replaced_and_credential_headers_masked() -> None:
    request = PreparedRequest(
        method="POST",
        url=f"https://app.test/hooks/{SECRET}",
        path="/hooks",
        query=[("key", SECRET), ("page", "2")],
        headers={
            "Authorization": f"Bearer {SECRET}",
            "X-API-Key": SECRET,
            "cookie": "session=abc",
            "X-Trace": f"id {SECRET}",
            "Accept": "application/json",
        },
        json_body={"note": f"uses {SECRET}", "n": 1},
        has_json=True,
    )
    record = request_record(request, SECRETS)
    assert record == {
        "method": "POST",
        "url": "https://app.test/hooks/***?key=***&page=2",
        "headers": {
            "Authorization": "Bearer ***",
            "X-API-Key": "***",
            "cookie": "***",
            "X-Trace": "id ***",
            "Accept": "application/json",
        },
        "body": '{"note":"uses ***","n":1}',
    }
    assert SECRET not in str(record)


def test_a_response_is_recorded_redacted_and_cut_at_64_kib() -> None:
    body = (f"{SECRET} " + "x" * (MAX_BODY + 100)).encode()
    record = response_record(
        502, {"Set-Cookie": "a=b", "Content-Type": "text/plain", "X-Echo": SECRET}, body, SECRETS
    )
    assert record["status"] == 502
    assert record["headers"] == {"Set-Cookie": "***", "Content-Type": "text/plain", "X-Echo": "***"}
    text = record["body"]
    assert text.startswith("*** xxx") and SECRET not in text
    assert len(text) < MAX_BODY + 100
    assert text.endswith(f"… [truncated, {len(body) - len(SECRET) + 3} characters]")
    assert text[:MAX_BODY].endswith("x") and len(text.split("…")[0]) == MAX_BODY
    short = response_record(200, {}, b"\xff ok", SECRETS)
    assert short == {"status": 200, "headers": {}, "body": "\ufffd ok"}
    assert response_record(204, {}, None, SECRETS)["body"] is None

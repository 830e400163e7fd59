"""`redact` (config/secrets.py) is the one place secrets are replaced, and it knows every
spelling a secret takes on its way to an App and back: as written, percent-encoded in a path
or query (either hex case), form-encoded with `+`, and inside JSON strings."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus, urlencode

import pytest

from rollout_yaml.config.secrets import REDACTED, redact, redact_value

SECRET = 'Sx+7/Yq=&Zp é"\\1'
SECRETS = frozenset({SECRET})


def spelled(secret: str) -> list[str]:
    """Where a secret can show up, computed with the standard library, not our code."""
    return [
        secret,
        quote(secret, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),
        quote(secret),
        quote_plus(secret),
        urlencode({"k": secret}).split("=", 1)[1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
    ]


@pytest.mark.parametrize("spelling", spelled(SECRET))
def test_every_spelling_is_redacted_inside_text(spelling: str) -> None:
    text = f"before {spelling} after"
    assert redact(text, SECRETS) == f"before {REDACTED} after"


def test_a_json_document_holding_the_secret_in_several_spellings() -> None:
    document = json.dumps({"url": f"/x?k={quote_plus(SECRET)}", "raw": SECRET, "n": 1})
    cleaned = redact(document, SECRETS)
    assert json.loads(cleaned) == {"url": "/x?k=***", "raw": "***", "n": 1}


def test_redact_value_keeps_values_without_secrets_as_they_are() -> None:
    value = {"a": [1, 2.5, True, None, "plain"]}
    assert redact_value(value, SECRETS) is value
    assert redact_value({"a": [f"x {SECRET}"]}, SECRETS) == {"a": ["x ***"]}


def test_short_values_are_left_alone() -> None:
    assert redact("a b c", frozenset({"a", "b c"})) == "a b c"

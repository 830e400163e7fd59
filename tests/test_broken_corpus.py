"""The corpus of broken projects: one mistake per case, each reported with its exact place.

Every case copies `tests/fixtures/base_project` (a small valid project), applies its mistake
(a text replacement, a new content, a deleted file) AND a second, fixed, unrelated mistake in
another file, validates once, and checks that both are reported with the exact code, file, line
and column: one broken file must never hide another's diagnostics.

Expected lines and columns are computed by hand from the YAML (1-based; a value's position is
where the value starts, a quoted value at its opening quote; unknown keys point at the key).

Run `python tests/test_broken_corpus.py` to rewrite the base project's frozen release after
editing its connectors or blueprints.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollout_yaml.cli.validate import validate_project
from rollout_yaml.config.codes import CODES
from rollout_yaml.config.diagnostics import Diagnostic, Severity
from rollout_yaml.config.loader import file_digest
from rollout_yaml.config.project import Layout

BASE = Path(__file__).resolve().parent / "fixtures" / "base_project"

SHOP = "connectors/shop.yaml"
CHAT = "connectors/chat.yaml"
FORMS = "connectors/forms.yaml"
ORDER_BP = "automations/order-to-chat.yaml"
FORM_BP = "automations/form-to-chat.yaml"
DEV = "environments/dev/environment.yaml"
ACME = "environments/dev/consumers/acme.yaml"
GLOBEX = "environments/dev/consumers/globex.yaml"
PROD = "environments/prod/environment.yaml"
PROD_ACME = "environments/prod/consumers/acme.yaml"
RELEASE_DIR = "environments/prod/release"
RELEASE = f"{RELEASE_DIR}/release.yaml"


# -- how a case changes the base project ----------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """`old` given: replace its single occurrence by `new`. Else write `new`, or delete."""

    file: str
    old: str | None = None
    new: str | bytes | None = None

    def apply(self, root: Path) -> None:
        path = root / self.file
        if self.old is not None:
            text = path.read_text(encoding="utf-8")
            assert text.count(self.old) == 1, f"{self.file}: {self.old!r} must occur once"
            assert isinstance(self.new, str)
            path.write_text(text.replace(self.old, self.new), encoding="utf-8")
        elif self.new is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(self.new, bytes):
                path.write_bytes(self.new)
            else:
                path.write_text(self.new, encoding="utf-8")


def replace(file: str, old: str, new: str) -> Edit:
    return Edit(file, old, new)


def write(file: str, content: str | bytes) -> Edit:
    return Edit(file, None, content)


def delete(file: str) -> Edit:
    return Edit(file)


@dataclass(frozen=True)
class Expect:
    code: str
    file: str
    line: int
    col: int
    text: str | None = None
    """A substring of the message or the hint."""
    end_col: int | None = None
    """Where the underlined span ends (the column just past it), when the case says."""
    hint: str | None = None
    """A substring of the hint, when the case says."""
    first: tuple[int, int] | None = None
    """The related place (line, col) the diagnostic points back at (a duplicate's first key)."""
    alone: bool = False
    """The mistake is reported once: the case's file gets no other diagnostic."""

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.code == "RY501" else Severity.ERROR


@dataclass(frozen=True)
class Case:
    id: str
    edits: tuple[Edit, ...]
    expect: Expect
    envs: tuple[str, ...] | None = None
    bug: str | None = None
    """A validator bug this case shows: the case is a strict xfail until it is fixed."""

    @property
    def files(self) -> set[str]:
        return {e.file for e in self.edits}


def case(
    id: str,
    edits: Edit | Sequence[Edit],
    code: str,
    file: str,
    line: int,
    col: int,
    text: str | None = None,
    *,
    envs: tuple[str, ...] | None = None,
    bug: str | None = None,
    end_col: int | None = None,
    hint: str | None = None,
    first: tuple[int, int] | None = None,
    alone: bool = False,
) -> Case:
    edits = (edits,) if isinstance(edits, Edit) else tuple(edits)
    expect = Expect(code, file, line, col, text, end_col, hint, first, alone)
    return Case(id, edits, expect, envs, bug)


# -- the companion mistake, in a different file from the case's -----------------------------------

# A typo'd key in a consumer's inline automation.
CONSUMER_TYPO = case(
    "companion-consumer",
    replace(GLOBEX, "    enabled: false\n", "    enabeld: false\n"),
    "RY101",
    GLOBEX,
    22,
    5,
    "did you mean `enabled`?",
)
# A typo'd key in a connector's trigger.
CONNECTOR_TYPO = case(
    "companion-connector",
    replace(FORMS, "    description: A form", "    descripton: A form"),
    "RY101",
    FORMS,
    8,
    5,
    "did you mean `description`?",
)


def companion_for(c: Case) -> Case:
    """The consumer typo, unless the case edits dev (a broken dev environment.yaml currently
    hides dev's consumers: see `environment-broken-hides-consumers`) or validates only some
    environments: then the connector typo."""
    if c.envs is not None or any(f.startswith("environments/dev/") for f in c.files):
        return CONNECTOR_TYPO
    return CONSUMER_TYPO


# -- the corpus -----------------------------------------------------------------------------------

CHAT_JSON = '      json: { channel: "{{ input.channel }}", text: "{{ input.text }}" }\n'
CHAT_PATH = '      path: "/channels/{{ input.channel }}"'
ACME_TEXT = 'text: "Big order {{ payload.order_id }}: {{ payload.total }}"'
ORDER_CHANNEL = '    channel: "{{ params.channel }}"\n'
FORM_TEXT = "    text: \"New {{ payload.form_id }} by {{ payload.email | default('someone') }}\"\n"

CONNECTOR_CASES = [
    case(
        "connector-yaml-syntax",
        replace(CHAT, "name: Chat\n", "name: Chat: API\n"),
        "RY001",
        CHAT,
        2,
        11,
        "mapping values",
    ),
    case(
        "connector-duplicate-key",
        replace(SHOP, "    name: New Order\n", "    name: New Order\n    name: Newer Order\n"),
        "RY002",
        SHOP,
        30,
        5,
        "duplicate key `name` (first defined on line 29)",
        end_col=9,
        first=(29, 5),
    ),
    case(
        "connector-name-mismatch",
        replace(CHAT, "app: chat\n", "app: chatt\n"),
        "RY003",
        CHAT,
        1,
        6,
        "does not match the file name",
    ),
    case(
        "connector-not-a-mapping",
        write(FORMS, "- app: forms\n- name: Forms\n"),
        "RY004",
        FORMS,
        1,
        1,
    ),
    case(
        "connector-utf16",
        write(CHAT, "app: chat\nname: Chat\n".encode("utf-16")),
        "RY005",
        CHAT,
        1,
        1,
        "cannot read",
    ),
    case(
        "connector-python-tag",
        replace(CHAT, "name: Chat\n", "name: !!python/name:os.system\n"),
        "RY006",
        CHAT,
        2,
        7,
        "unsupported YAML tag",
    ),
    case(
        "connector-unknown-key-poll",
        replace(SHOP, "      items: orders\n", "      itmes: orders\n"),
        "RY101",
        SHOP,
        42,
        7,
        "did you mean `items`?",
    ),
    case(
        "connector-unknown-key-auth",
        replace(SHOP, "  fields:\n", "  feilds:\n"),
        "RY101",
        SHOP,
        7,
        3,
        "did you mean `fields`?",
    ),
    case(
        "connector-unknown-key-paginate",
        replace(SHOP, 'next: "meta.next"', 'nxt: "meta.next"'),
        "RY101",
        SHOP,
        41,
        52,
        "did you mean `next`?",
    ),
    case(
        "connector-unknown-key-in-test",
        replace(SHOP, "    response: {", "    respons: {"),
        "RY101",
        SHOP,
        61,
        5,
        "did you mean `response`?",
    ),
    case(
        "connector-typo-in-union-tag",
        replace(SHOP, "{ type: cursor,", "{ tpye: cursor,"),
        "RY101",
        SHOP,
        41,
        19,
        "did you mean `type`?",
    ),
    case(
        "connector-wrong-type",
        replace(CHAT, "max_attempts: 3,", "max_attempts: three,"),
        "RY102",
        CHAT,
        8,
        26,
    ),
    case(
        "connector-missing-field",
        replace(CHAT, "    name: Archive Channel\n", ""),
        "RY103",
        CHAT,
        27,
        5,
        "missing required field `name`",
    ),
    case(
        "connector-base-url-missing",
        replace(CHAT, "base_url: https://chat.example/api\n", ""),
        "RY103",
        CHAT,
        17,  # the first request that needs it
        5,
        "missing `base_url`: action `post-message` sends a request",
        end_col=12,
    ),
    case(
        "connector-hmac-without-header",
        replace(SHOP, "        header: X-Shop-Signature\n", ""),
        "RY103",
        SHOP,
        51,
        9,
        "needs `header:`",
    ),
    case(
        "connector-api-key-not-applied",
        replace(SHOP, '  headers:\n    X-Api-Key: "{{ credential.api_key }}"\n', ""),
        "RY103",
        SHOP,
        6,
        3,
        "`headers:` or `query:`",
    ),
    case(
        "connector-auth-label-without-test",
        replace(CHAT, "  type: bearer\n", "  type: bearer\n  label: team\n"),
        "RY103",
        CHAT,
        6,
        3,
        "auth `label` reads the answer of `auth.test`",
    ),
    case(
        "connector-auth-label-jmespath",
        replace(
            CHAT,
            "  type: bearer\n",
            '  type: bearer\n  test: { request: { path: /me } }\n  label: "team["\n',
        ),
        "RY302",
        CHAT,
        8,
        16,  # the caret at the column JMESPath names (6), inside the quoted value at 10
        "'team[' at column 6: the expression ends too early",
    ),
    case(
        "connector-auth-test-template-name",
        replace(
            CHAT,
            "  type: bearer\n",
            '  type: bearer\n  test:\n    request: { path: "/me/{{ inputs.x }}" }\n',
        ),
        "RY305",
        CHAT,
        8,
        22,
        "`inputs` is not available in this template",
        hint="did you mean `input`?",
    ),
    case(
        "connector-invalid-method",
        replace(CHAT, "      method: POST\n", "      method: FETCH\n"),
        "RY104",
        CHAT,
        19,
        15,
        "'POST'",
    ),
    case(
        "connector-invalid-semver",
        replace(FORMS, "version: 0.3.0", "version: v0.3.0"),
        "RY104",
        FORMS,
        3,
        10,
    ),
    case(
        "connector-invalid-enum",
        replace(SHOP, "algorithm: sha256", "algorithm: sha384"),
        "RY104",
        SHOP,
        53,
        20,
        "'sha512'",
    ),
    case(
        "connector-invalid-auth-type",
        replace(CHAT, "  type: bearer", "  type: token"),
        "RY104",
        CHAT,
        6,
        9,
        "'bearer'",
    ),
    case(
        "connector-poll-too-often",
        replace(SHOP, "      every: 5m\n", "      every: 500ms\n"),
        "RY104",
        SHOP,
        37,
        7,
        "at least 1s",
    ),
    case(
        "connector-bad-duration",
        replace(SHOP, "      every: 5m\n", "      every: 5 minutes\n"),
        "RY105",
        SHOP,
        37,
        14,
        "invalid duration",
    ),
    case(
        "connector-duration-without-unit",
        replace(CHAT, "      timeout: 10s\n", "      timeout: 10\n"),
        "RY105",
        CHAT,
        22,
        16,
        "invalid duration",
    ),
    case(
        "connector-bad-action-key",
        replace(CHAT, "  archive-channel:\n", "  Archive_Channel:\n"),
        "RY106",
        CHAT,
        26,
        3,
        "`archive-channel`",
    ),
    case(
        "connector-two-trigger-kinds",
        replace(FORMS, "    push: {}\n", "    push: {}\n    schedule: { every: 1h }\n"),
        "RY107",
        FORMS,
        7,
        5,
        "push, schedule",
    ),
    case(
        "connector-no-trigger-kind",
        replace(FORMS, "    push: {}\n", ""),
        "RY107",
        FORMS,
        7,
        5,
        "got none",
    ),
    case(
        "connector-json-and-form",
        replace(CHAT, CHAT_JSON, CHAT_JSON + "      form: { text: hi }\n"),
        "RY107",
        CHAT,
        19,
        7,
        "json, form",
    ),
    case(
        "connector-test-unknown-trigger",
        replace(SHOP, "    trigger: new-order\n", "    trigger: new-ordr\n"),
        "RY202",
        SHOP,
        60,
        14,
        "did you mean `new-order`?",
    ),
    case(
        "connector-unresolved-ref",
        replace(
            SHOP,
            'Order Paid\n    payload_schema: { $ref: "#/schemas/order" }',
            'Order Paid\n    payload_schema: { $ref: "#/schemas/ordr" }',
        ),
        "RY207",
        SHOP,
        48,
        29,
        "#/schemas/ordr",
    ),
    case(
        "connector-reserved-app",
        write(
            "connectors/schedule.yaml",
            "app: schedule\nname: My schedule\nversion: 1.0.0\nbase_url: https://s.example\n",
        ),
        "RY209",
        "connectors/schedule.yaml",
        1,
        6,
        "built-in",
    ),
    case(
        "connector-template-syntax",
        replace(CHAT, CHAT_PATH, '      path: "/channels/{{ input.channel }"'),
        "RY301",
        CHAT,
        35,
        13,
    ),
    case(
        "connector-jmespath-syntax",
        replace(SHOP, "      items: orders\n", '      items: "orders[?"\n'),
        "RY302",
        SHOP,
        42,
        23,  # the caret at the column JMESPath names (9), inside the quoted value at 14
        "'orders[?' at column 9: the expression ends too early",
        hint="close the `[` opened at column 7 with `]`",
    ),
    case(
        "connector-format-escape",
        replace(CHAT, 'text: "{{ input.text }}" }', "text: \"{{ '{}'.format(input.text) }}\" }"),
        "RY303",
        CHAT,
        21,
        53,
        "`format`",
    ),
    case(
        "connector-unknown-input-field",
        replace(CHAT, CHAT_PATH, '      path: "/channels/{{ input.chanel }}"'),
        "RY304",
        CHAT,
        35,
        13,
        "input.chanel",
    ),
    case(
        "connector-env-in-template",
        replace(SHOP, "{{ app.vars.api_version }}", "{{ env.API_VERSION }}"),
        "RY305",
        SHOP,
        4,
        11,
        "`env`",
    ),
    case(
        "connector-unknown-jmespath-function",
        replace(SHOP, 'cursor: "max_by(', 'cursor: "maxby('),
        "RY306",
        SHOP,
        44,
        15,
        "maxby",
    ),
    case(
        "connector-invalid-json-schema",
        replace(FORMS, "email: { type: string }", "email: { type: strin }"),
        "RY401",
        FORMS,
        14,
        24,
    ),
    case(
        "connector-defined-twice",
        write(
            "connectors/chat.yml",
            "app: chat\nname: Chat\nversion: 2.0.1\nbase_url: https://chat.example/api\n",
        ),
        "RY701",
        "connectors/chat.yml",
        1,
        1,
        "defined twice",
    ),
]

BLUEPRINT_CASES = [
    case(
        "blueprint-duplicate-key",
        replace(FORM_BP, "  app: chat\n", "  app: chat\n  app: chat\n"),
        "RY002",
        FORM_BP,
        14,
        3,
        "duplicate key `app`",
        first=(13, 3),
    ),
    case(
        "blueprint-name-mismatch",
        replace(FORM_BP, "blueprint: form-to-chat", "blueprint: form2chat"),
        "RY003",
        FORM_BP,
        1,
        12,
        "form-to-chat",
    ),
    case(
        "blueprint-unknown-key",
        replace(ORDER_BP, "  trigger: new-order\n", "  triger: new-order\n"),
        "RY101",
        ORDER_BP,
        11,
        3,
        "did you mean `trigger`?",
    ),
    case(
        "blueprint-missing-name",
        replace(FORM_BP, "name: Announce form submissions\n", ""),
        "RY103",
        FORM_BP,
        1,
        1,
        "`name`",
    ),
    case(
        "blueprint-unknown-app",
        replace(ORDER_BP, "  app: chat\n", "  app: chta\n"),
        "RY201",
        ORDER_BP,
        14,
        8,
        "did you mean `chat`?",
    ),
    case(
        "blueprint-unknown-trigger",
        replace(FORM_BP, "  trigger: form-submitted", "  trigger: form-sent"),
        "RY202",
        FORM_BP,
        10,
        12,
    ),
    case(
        "blueprint-unknown-action",
        replace(ORDER_BP, "  action: post-message", "  action: send-message"),
        "RY203",
        ORDER_BP,
        15,
        11,
    ),
    case(
        "blueprint-template-syntax",
        replace(ORDER_BP, "{{ payload.order_id }} from", "{{ payload.order_id } from"),
        "RY301",
        ORDER_BP,
        18,
        11,
    ),
    case(
        "blueprint-mro-escape",
        replace(ORDER_BP, ORDER_CHANNEL, "    channel: \"{{ ''.__class__.__mro__ }}\"\n"),
        "RY303",
        ORDER_BP,
        17,
        14,
        "unsafe template",
    ),
    case(
        "blueprint-unknown-payload-field",
        replace(ORDER_BP, "payload.customer.name", "payload.customer.nmae"),
        "RY304",
        ORDER_BP,
        18,
        11,
        "did you mean `name`?",
    ),
    case(
        "blueprint-unknown-param",
        replace(ORDER_BP, "{{ params.channel }}", "{{ params.chanel }}"),
        "RY304",
        ORDER_BP,
        17,
        14,
        "params.chanel",
    ),
    case(
        "blueprint-filter-unknown-payload-field",
        replace(FORM_BP, "payload.email != `null`", "payload.emial != `null`"),
        "RY304",
        FORM_BP,
        11,
        9,
        "payload.emial",
    ),
    case(
        "blueprint-credential-in-template",
        replace(ORDER_BP, "{{ params.channel }}", "{{ credential.channel }}"),
        "RY305",
        ORDER_BP,
        17,
        14,
        "never see credentials",
    ),
    case(
        "blueprint-payload-in-trigger-input",
        replace(ORDER_BP, '"{{ params.status }}"', '"{{ payload.total }}"'),
        "RY305",
        ORDER_BP,
        12,
        20,
        "`payload`",
    ),
    case(
        "blueprint-filter-jmespath-syntax",
        replace(FORM_BP, '"payload.email != `null`"', '"payload.email !="'),
        "RY302",
        FORM_BP,
        11,
        26,
        "at column 17: the expression ends too early",
        hint="an operator needs a value on both sides",
    ),
    case(
        "blueprint-unknown-filter",
        replace(FORM_BP, "default('someone')", "defualt('someone')"),
        "RY306",
        FORM_BP,
        17,
        11,
        "defualt",
    ),
    case(
        "blueprint-invalid-params-schema",
        replace(ORDER_BP, "  required: [channel]\n", "  required: channel\n"),
        "RY401",
        ORDER_BP,
        5,
        13,
    ),
    case(
        "blueprint-literal-input-fails-schema",
        replace(ORDER_BP, ORDER_CHANNEL, "    channel: general\n"),
        "RY402",
        ORDER_BP,
        17,
        14,
        "does not match",
    ),
    case(
        "blueprint-unknown-input",
        replace(
            FORM_BP,
            '    channel: "{{ params.channel }}"\n',
            '    colour: red\n    channel: "{{ params.channel }}"\n',
        ),
        "RY402",
        FORM_BP,
        16,
        5,
        "has no input `colour`",
    ),
    case(
        "blueprint-required-input-missing",
        replace(FORM_BP, FORM_TEXT, ""),
        "RY403",
        FORM_BP,
        16,
        5,
        "requires input `text`",
    ),
    case(
        "blueprint-defined-twice",
        write("automations/form-to-chat.yml", "blueprint: form-to-chat\n"),
        "RY701",
        "automations/form-to-chat.yml",
        1,
        1,
        "defined twice",
    ),
]

CONSUMER_CASES = [
    case(
        "consumer-yaml-syntax",
        replace(ACME, "name: ACME Corp\n", "name: ACME: Corp\n"),
        "RY001",
        ACME,
        2,
        11,
    ),
    case(
        "consumer-tab-indentation",
        replace(ACME, "    filter:", "\tfilter:"),
        "RY001",
        ACME,
        24,
        1,
        "a tab in the indentation (YAML indents with spaces only)",
        end_col=2,
        hint="replace the tab at the start of line 24 with spaces",
    ),
    case(
        "consumer-duplicate-key-in-flow-mapping",
        replace(ACME, "{ channel: C0999, text:", "{ channel: C0999, channel: C1, text:"),
        "RY002",
        ACME,
        29,
        32,
        "duplicate key `channel`",
        first=(29, 16),
    ),
    case(
        "consumer-duplicate-key",
        replace(
            ACME, "  acme-shop:\n    app: shop\n", "  acme-shop:\n    app: shop\n    app: chat\n"
        ),
        "RY002",
        ACME,
        6,
        5,
        "duplicate key `app` (first defined on line 5)",
        first=(5, 5),
    ),
    case(
        "consumer-name-mismatch",
        replace(GLOBEX, "consumer: globex\n", "consumer: globexx\n"),
        "RY003",
        GLOBEX,
        1,
        11,
        "globex",
    ),
    case(
        "consumer-not-a-mapping",
        write(PROD_ACME, "just a string\n"),
        "RY004",
        PROD_ACME,
        1,
        1,
        "consumer",
    ),
    case(
        "consumer-custom-tag",
        replace(ACME, "      store: acme\n", "      store: !secret acme\n"),
        "RY006",
        ACME,
        7,
        14,
        "!secret",
    ),
    case(
        "consumer-unknown-key-inline",
        replace(ACME, "    filter:", "    fitler:"),
        "RY101",
        ACME,
        24,
        5,
        "did you mean `filter`?",
    ),
    case(
        "consumer-unknown-key-blueprint-automation",
        replace(ACME, "    params: { channel: C0123", "    parmas: { channel: C0123"),
        "RY101",
        ACME,
        16,
        5,
        "did you mean `params`?",
    ),
    case(
        "consumer-invalid-consumer-key",
        write("environments/prod/consumers/acme corp.yaml", "consumer: acme corp\n"),
        "RY104",
        "environments/prod/consumers/acme corp.yaml",
        1,
        11,
        "pattern",
    ),
    case(
        "consumer-wrong-type",
        replace(PROD_ACME, "    stored: true\n", "    stored: yes please\n"),
        "RY102",
        PROD_ACME,
        11,
        13,
    ),
    case(
        "consumer-missing-trigger-key",
        replace(ACME, "      trigger: new-order\n", ""),
        "RY103",
        ACME,
        20,
        7,
        "missing required field `trigger`",
    ),
    case(
        "consumer-bad-credential-key",
        replace(ACME, "  acme-chat:\n", "  Acme_Chat:\n"),
        "RY106",
        ACME,
        9,
        3,
        "`acme-chat`",
    ),
    case(
        "consumer-credential-unknown-app",
        replace(ACME, "  acme-chat:\n    app: chat\n", "  acme-chat:\n    app: chatt\n"),
        "RY201",
        ACME,
        10,
        10,
        "did you mean `chat`?",
    ),
    case(
        "consumer-unknown-trigger",
        replace(ACME, "      trigger: new-order\n", "      trigger: new-ordr\n"),
        "RY202",
        ACME,
        21,
        16,
        "did you mean `new-order`?",
    ),
    case(
        "consumer-unknown-action",
        replace(GLOBEX, "      action: archive-channel", "      action: archive-chanel"),
        "RY203",
        GLOBEX,
        29,
        15,
        "did you mean `archive-channel`?",
    ),
    case(
        "consumer-unknown-credential",
        replace(ACME, "      credential: acme-chat\n", "      credential: globex-chat\n"),
        "RY204",
        ACME,
        28,
        19,
        "no credential `globex-chat`",
    ),
    case(
        "consumer-credential-of-another-app",
        replace(ACME, "action: acme-chat }", "action: acme-shop }"),
        "RY205",
        ACME,
        17,
        48,
        "for app `shop`",
    ),
    case(
        "consumer-unknown-blueprint",
        replace(PROD_ACME, "    blueprint: form-to-chat", "    blueprint: form-to-slack"),
        "RY206",
        PROD_ACME,
        18,
        16,
        "form-to-slack",
    ),
    case(
        "consumer-inline-credential-required",
        replace(ACME, "      credential: acme-shop\n", ""),
        "RY208",
        ACME,
        20,
        7,
        "needs a credential",
    ),
    case(
        "consumer-blueprint-credential-required",
        replace(PROD_ACME, "{ trigger: acme-shop, action: acme-chat }", "{ action: acme-chat }"),
        "RY208",
        PROD_ACME,
        16,
        18,
        "credentials: {trigger",
    ),
    case(
        "consumer-template-syntax",
        replace(GLOBEX, '"Paid: {{ payload.order_id }}"', '"Paid: {{ payload.order_id }"'),
        "RY301",
        GLOBEX,
        20,
        15,
    ),
    case(
        "consumer-filter-jmespath-syntax",
        replace(
            ACME, '    filter: "to_number(payload.total) > `1000`"', '    filter: "payload.total >"'
        ),
        "RY302",
        ACME,
        24,
        29,
        "'payload.total >' at column 16: the expression ends too early",
    ),
    case(
        "consumer-filter-bare-number",
        replace(ACME, "> `1000`", "> 1000"),
        "RY302",
        ACME,
        24,
        41,  # column 28 of the expression, which starts at 14
        "at column 28: a bare number `1000`",
        end_col=45,
        hint="put it in backticks (1000 → `1000`)",
        alone=True,
    ),
    case(
        "consumer-class-escape",
        replace(ACME, ACME_TEXT, 'text: "{{ payload.total.__class__ }}"'),
        "RY303",
        ACME,
        29,
        38,
        "__class__",
    ),
    *[
        case(
            f"consumer-sandbox-escape-{name}",
            replace(ACME, ACME_TEXT, f'text: "{template}"'),
            "RY303",
            ACME,
            29,
            38,
            text,
        )
        for name, template, text in (
            ("built-name", "{{ payload['__cla' ~ 'ss__'] }}", "built at run time"),
            ("selectattr", "{{ payload.items | selectattr('__class__') | list }}", "__class__"),
            ("groupby", "{{ payload.items | groupby('__class__') }}", "__class__"),
            ("mutating-method", "{{ [].pop() }}", "`pop()` changes data"),
            ("include", "{% include '/etc/passwd' %}", "`{% include %}` is not allowed"),
        )
    ],
    case(
        "consumer-unknown-payload-field",
        replace(ACME, "Big order {{ payload.order_id }}", "Big order {{ payload.order_idd }}"),
        "RY304",
        ACME,
        29,
        38,
        "did you mean `order_id`?",
    ),
    case(
        "consumer-credential-in-template",
        replace(ACME, ACME_TEXT, 'text: "{{ credential.token }}"'),
        "RY305",
        ACME,
        29,
        38,
        "never see credentials",
    ),
    case(
        "consumer-payload-in-trigger-input",
        replace(ACME, "input: { limit: 50 }", 'input: { limit: "{{ payload.total }}" }'),
        "RY305",
        ACME,
        23,
        23,
        "`payload`",
    ),
    case(
        "consumer-unknown-jmespath-function",
        replace(ACME, "to_number(", "to_numbr("),
        "RY306",
        ACME,
        24,
        13,
        "to_numbr",
    ),
    case(
        "consumer-trigger-input-wrong-type",
        replace(ACME, "input: { limit: 50 }", "input: { limit: lots }"),
        "RY402",
        ACME,
        23,
        23,
        "'lots'",
    ),
    case(
        "consumer-trigger-input-out-of-range",
        replace(ACME, "input: { limit: 50 }", "input: { limit: 500 }"),
        "RY402",
        ACME,
        23,
        23,
        "maximum",
    ),
    case(
        "consumer-unknown-action-input",
        replace(ACME, "{ channel: C0999, text:", "{ channel: C0999, colour: red, text:"),
        "RY402",
        ACME,
        29,
        32,
        "has no input `colour`",
    ),
    case(
        "consumer-action-input-pattern",
        replace(ACME, "{ channel: C0999,", "{ channel: general,"),
        "RY402",
        ACME,
        29,
        25,
        "does not match",
    ),
    case(
        "consumer-blueprint-param-wrong-type",
        replace(PROD_ACME, "params: { channel: C0123 }", "params: { channel: 123 }"),
        "RY402",
        PROD_ACME,
        15,
        24,
        "param `channel` of blueprint `order-to-chat` must be a string, got 123 (an integer)",
        end_col=27,
        alone=True,  # not again as the action input `channel` it renders into
    ),
    case(
        "consumer-unknown-param-of-a-closed-blueprint",
        [
            replace(
                ORDER_BP,
                "    status: { type: string }\n",
                "    status: { type: string }\n  additionalProperties: false\n",
            ),
            replace(ACME, "status: open }", "state: open }"),
        ],
        "RY402",
        ACME,
        16,
        31,
        "blueprint `order-to-chat` has no param `state`",
        hint="did you mean `status`?",
        alone=True,  # not again in jsonschema's words ("Additional properties ...")
    ),
    case(
        "consumer-param-fails-trigger-input-schema",
        replace(ACME, "status: open }", "status: weird }"),
        "RY402",
        ACME,
        16,
        39,
        "'weird' is not one of",
    ),
    case(
        "consumer-unknown-trigger-input",
        replace(ACME, "input: { limit: 50 }", "input: { limt: 50 }"),
        "RY402",
        ACME,
        23,
        16,
        "limt",
    ),
    case(
        "consumer-unknown-blueprint-param",
        replace(ACME, "status: open }", "state: open }"),
        "RY402",
        ACME,
        16,
        31,
        "state",
    ),
    case(
        "consumer-required-input-missing",
        replace(ACME, ", " + ACME_TEXT + " }", " }"),
        "RY403",
        ACME,
        29,
        14,
        "requires input `text`",
    ),
    case(
        "consumer-required-param-missing",
        replace(ACME, "params: { channel: C0123, status: open }", "params: { status: open }"),
        "RY403",
        ACME,
        16,
        13,
        "blueprint `order-to-chat` requires param `channel`",
        hint="add `channel:` under params",
    ),
    case(
        "consumer-unset-variable",
        replace(ACME, '"${ACME_CHAT_TOKEN:-dev-chat-token}"', '"${ACME_CHAT_TOKEN}"'),
        "RY501",
        ACME,
        12,
        14,
        "ACME_CHAT_TOKEN",
    ),
    case(
        "consumer-literal-api-key",
        replace(ACME, '      api_key: "${ACME_SHOP_KEY:-dev-shop-key}"', "      api_key: shk_123"),
        "RY502",
        ACME,
        8,
        16,
        "`api_key` is a secret",
    ),
    case(
        "consumer-literal-bearer-token",
        replace(ACME, '      token: "${ACME_CHAT_TOKEN:-dev-chat-token}"', "      token: xoxb-1"),
        "RY502",
        ACME,
        12,
        14,
        "`token` is a secret",
    ),
    case(
        "consumer-values-and-stored",
        replace(ACME, "    app: chat\n    values:", "    app: chat\n    stored: true\n    values:"),
        "RY503",
        ACME,
        10,
        5,
        "not both",
    ),
    case(
        "consumer-neither-values-nor-stored",
        replace(PROD_ACME, "    stored: true\n", ""),
        "RY503",
        PROD_ACME,
        10,
        5,
        "not neither",
    ),
    case(
        "consumer-credential-field-missing",
        replace(ACME, "      store: acme\n", ""),
        "RY504",
        ACME,
        7,
        7,
        "missing field `store`",
    ),
    case(
        "consumer-credential-field-unknown",
        replace(ACME, '      token: "${', '      tokn: "${'),
        "RY504",
        ACME,
        12,
        7,
        "did you mean `token`?",
    ),
    case(
        "consumer-defined-twice",
        write("environments/prod/consumers/acme.yml", "consumer: acme\n"),
        "RY701",
        "environments/prod/consumers/acme.yml",
        1,
        1,
        "defined twice",
    ),
]

ENVIRONMENT_CASES = [
    case(
        "environment-yaml-syntax",
        replace(DEV, "  port: 8080\n", "  port: 8080: 9090\n"),
        "RY001",
        DEV,
        6,
        13,
    ),
    case(
        "environment-duplicate-key",
        replace(DEV, "  workers: 4\n", "  workers: 4\n  workers: 8\n"),
        "RY002",
        DEV,
        20,
        3,
        "duplicate key `workers` (first defined on line 19)",
        first=(19, 3),
    ),
    case(
        "environment-name-mismatch",
        replace(DEV, "environment: dev\n", "environment: develop\n"),
        "RY003",
        DEV,
        1,
        14,
        "`dev`",
    ),
    case(
        "environment-not-a-mapping",
        write(DEV, "- environment: dev\n- release: live\n"),
        "RY004",
        DEV,
        1,
        1,
    ),
    case(
        "environment-custom-tag",
        replace(DEV, "database: sqlite\n", "database: !env DATABASE_URL\n"),
        "RY006",
        DEV,
        3,
        11,
        "!env",
    ),
    case(
        "environment-unknown-key",
        replace(DEV, "  workers: 4", "  wrokers: 4"),
        "RY101",
        DEV,
        19,
        3,
        "did you mean `workers`?",
    ),
    case(
        "environment-unknown-app-setting",
        replace(DEV, "  shop:\n    vars:", "  shop:\n    varz:"),
        "RY101",
        DEV,
        14,
        5,
        "did you mean `vars`?",
    ),
    case(
        "environment-wrong-type", replace(DEV, "  port: 8080", "  port: eighty"), "RY102", DEV, 6, 9
    ),
    case(
        "environment-missing-name",
        replace(DEV, "environment: dev\n", ""),
        "RY103",
        DEV,
        1,
        1,
        "`environment`",
    ),
    case(
        "environment-invalid-release",
        replace(DEV, "release: live", "release: thawed"),
        "RY104",
        DEV,
        2,
        10,
        "'frozen'",
    ),
    case(
        "environment-workers-out-of-range",
        replace(DEV, "  workers: 4", "  workers: 0"),
        "RY104",
        DEV,
        19,
        12,
    ),
    case(
        "environment-bad-duration",
        replace(DEV, "{ runs: 7d,", "{ runs: 7 days,"),
        "RY105",
        DEV,
        21,
        22,
        "invalid duration",
    ),
    case(
        "environment-duration-without-unit",
        replace(DEV, "  poll_floor: 1s", "  poll_floor: 1"),
        "RY105",
        DEV,
        20,
        15,
        "invalid duration",
    ),
    case(
        "environment-bad-app-key", replace(DEV, "  chat:\n", "  Chat_App:\n"), "RY106", DEV, 16, 3
    ),
    case(
        "environment-unknown-app",
        replace(DEV, "  chat:\n", "  chatt:\n"),
        "RY210",
        DEV,
        16,
        3,
        "did you mean `chat`?",
    ),
    case(
        "environment-unset-variable",
        replace(DEV, '"${ROLLOUT_JWT_SECRET:-dev-jwt-secret}"', '"${ROLLOUT_JWT_SECRET}"'),
        "RY501",
        DEV,
        9,
        15,
        "ROLLOUT_JWT_SECRET",
    ),
    case(
        "environment-literal-encryption-key",
        replace(
            DEV,
            'encryption_key: "${ROLLOUT_ENCRYPTION_KEY:-dev-encryption-key}"',
            "encryption_key: abc123",
        ),
        "RY502",
        DEV,
        11,
        17,
        "`encryption_key`",
    ),
    case(
        "environment-literal-webhook-secret",
        replace(
            DEV,
            '    webhook_secret: "${SHOP_WEBHOOK_SECRET:-dev-webhook-secret}"',
            "    webhook_secret: whsec_literal",
        ),
        "RY502",
        DEV,
        15,
        21,
        "`apps.shop.webhook_secret`",
    ),
    case(
        "environment-literal-oauth-secret",
        replace(
            DEV,
            "    base_url: http://127.0.0.1:9000\n",
            "    base_url: http://127.0.0.1:9000\n"
            "    oauth: { client_id: abc, client_secret: s3cr3t }\n",
        ),
        "RY502",
        DEV,
        18,
        45,
        "client_secret",
    ),
    case(
        "environment-literal-admin-token-prod",
        replace(
            PROD,
            '  admin_token: "${ROLLOUT_ADMIN_TOKEN:-prod-admin-token}"',
            "  admin_token: tok_123",
        ),
        "RY502",
        PROD,
        10,
        16,
        "`auth.admin_token`",
    ),
    case(
        "environment-unknown",
        (),
        "RY603",
        "environments/stagin/environment.yaml",
        1,
        1,
        "`dev`",
        envs=("stagin",),
    ),
    case(
        "environment-frozen-without-release",
        write("environments/staging/environment.yaml", "environment: staging\nrelease: frozen\n"),
        "RY601",
        "environments/staging/release/release.yaml",
        1,
        1,
        "rollout-yaml promote",
    ),
    case(
        "environment-broken-hides-consumers",
        [
            replace(DEV, "  port: 8080\n", "  port: 8080: 9090\n"),
            replace(ACME, "    filter:", "    fitler:"),
        ],
        "RY101",
        ACME,
        24,
        5,
        "did you mean `filter`?",
    ),
]

RELEASE_CASES = [
    case("release-missing", delete(RELEASE), "RY601", RELEASE, 1, 1, "rollout-yaml promote"),
    case(
        "release-listed-file-missing",
        delete(f"{RELEASE_DIR}/connectors/forms.yaml"),
        "RY601",
        RELEASE,
        8,
        3,
        "connectors/forms.yaml",
    ),
    case(
        "release-edited-by-hand",
        replace(f"{RELEASE_DIR}/connectors/chat.yaml", "name: Chat\n", "name: Chat API\n"),
        "RY602",
        f"{RELEASE_DIR}/connectors/chat.yaml",
        1,
        1,
        "edited by hand",
    ),
    case(
        "release-unlisted-file",
        write(
            f"{RELEASE_DIR}/automations/extra.yaml",
            "blueprint: extra\nname: Extra\n"
            "trigger: { app: forms, trigger: form-submitted }\n"
            "action: { app: chat, action: archive-channel, input: { channel: C1 } }\n",
        ),
        "RY602",
        f"{RELEASE_DIR}/automations/extra.yaml",
        1,
        1,
        "not part of the release",
    ),
    case(
        "release-yaml-syntax",
        replace(RELEASE, "promoted_from: dev\n", "promoted_from: dev: x\n"),
        "RY001",
        RELEASE,
        1,
        19,
    ),
    case(
        "release-unknown-key",
        replace(RELEASE, "source_commit:", "source_comit:"),
        "RY101",
        RELEASE,
        3,
        1,
        "did you mean `source_commit`?",
    ),
    case(
        "release-missing-field",
        replace(RELEASE, 'promoted_at: "2026-01-15T10:00:00Z"\n', ""),
        "RY103",
        RELEASE,
        1,
        1,
        "`promoted_at`",
    ),
    case(
        "release-bad-digest",
        replace(
            RELEASE,
            'automations/form-to-chat.yaml: "sha256:',
            'automations/form-to-chat.yaml: "md5:',
        ),
        "RY104",
        RELEASE,
        5,
        34,
    ),
]

CASES = CONNECTOR_CASES + BLUEPRINT_CASES + CONSUMER_CASES + ENVIRONMENT_CASES + RELEASE_CASES


def _param(c: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
    return pytest.param(c, id=c.id, marks=marks)


# -- helpers --------------------------------------------------------------------------------------


def copy_base(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(BASE, project)
    return project


def _show(diagnostics: Sequence[Diagnostic]) -> str:
    return (
        "\n".join(
            f"  {d.code} {d.file}:{d.line}:{d.col} [{d.severity.value}] {d.message} | {d.hint}"
            for d in diagnostics
        )
        or "  (no diagnostics)"
    )


def assert_reported(diagnostics: Sequence[Diagnostic], expect: Expect) -> None:
    where = (expect.code, expect.file, expect.line, expect.col)
    found = [d for d in diagnostics if (d.code, d.file, d.line, d.col) == where]
    assert found, (
        f"expected {expect.code} at {expect.file}:{expect.line}:{expect.col}; got:\n"
        + _show(diagnostics)
    )
    assert any(d.severity is expect.severity for d in found), _show(found)
    if expect.text is not None:
        assert any(expect.text in d.message or expect.text in (d.hint or "") for d in found), (
            f"{expect.text!r} in neither message nor hint:\n" + _show(found)
        )
    if expect.hint is not None:
        assert any(expect.hint in (d.hint or "") for d in found), _show(found)
    if expect.end_col is not None:
        assert any((d.end_line, d.end_col) == (expect.line, expect.end_col) for d in found), [
            (d.end_line, d.end_col) for d in found
        ]
    if expect.first is not None:
        assert any(
            [(r.file, r.line, r.col) for r in d.related] == [(expect.file, *expect.first)]
            for d in found
        ), [d.related for d in found]
    if expect.alone:
        in_file = [d for d in diagnostics if d.file == expect.file]
        assert len(in_file) == 1, "one mistake, one diagnostic:\n" + _show(in_file)


def release_manifest(release_dir: Path) -> str:
    lines = [
        "promoted_from: dev",
        'promoted_at: "2026-01-15T10:00:00Z"',
        "source_commit: 1a2b3c4",
        "files:",
    ]
    for path in sorted(release_dir.glob("*/*.yaml")):
        lines.append(f'  {path.relative_to(release_dir).as_posix()}: "{file_digest(path)}"')
    return "\n".join(lines) + "\n"


# -- tests ----------------------------------------------------------------------------------------


def test_base_project_is_valid_without_any_warning() -> None:
    diagnostics, counts = validate_project(Layout(BASE), environ={})
    assert diagnostics == [], _show(diagnostics)
    assert counts == {
        "connectors": 3,
        "blueprints": 2,
        "environments": 2,
        "consumers": 3,
        "automations": 7,
    }


def test_base_release_is_a_byte_identical_copy_with_its_digests() -> None:
    release = BASE / RELEASE_DIR
    copies = sorted(p.relative_to(release).as_posix() for p in release.glob("*/*.yaml"))
    assert copies == sorted(
        p.relative_to(BASE).as_posix()
        for p in [*BASE.glob("connectors/*.yaml"), *BASE.glob("automations/*.yaml")]
    )
    for relative in copies:
        assert (release / relative).read_bytes() == (BASE / relative).read_bytes(), (
            f"{relative} differs from its release copy: run `python {Path(__file__).name}`"
        )
    assert (release / "release.yaml").read_text() == release_manifest(release)


def test_corpus_covers_every_code_and_is_well_formed() -> None:
    assert len(CASES) >= 45
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    promote_only = {"RY604"}  # found by `promote`, not `validate`: test_gitops_promote.py
    assert set(CODES) - promote_only == {c.expect.code for c in CASES}
    for c in CASES:
        assert companion_for(c).expect.file not in c.files, c.id
    # every kind of file gets broken
    touched = {e.file for c in CASES for e in c.edits}
    for kind in ("connectors/", "automations/", "/consumers/", "/environment.yaml", "/release/"):
        assert any(kind in f for f in touched), kind


def test_a_connector_that_sends_no_request_needs_no_base_url(tmp_path: Path) -> None:
    project = copy_base(tmp_path)
    replace(FORMS, "base_url: https://forms.example/api\n", "").apply(project)  # push only
    for release_copy in (project / RELEASE_DIR / FORMS,):
        release_copy.write_bytes((project / FORMS).read_bytes())
    release = project / RELEASE_DIR
    (release / "release.yaml").write_text(release_manifest(release))
    diagnostics, _ = validate_project(Layout(project), environ={})
    assert diagnostics == [], _show(diagnostics)


def test_companions_alone_are_reported(tmp_path: Path) -> None:
    project = copy_base(tmp_path)
    for companion in (CONSUMER_TYPO, CONNECTOR_TYPO):
        for edit in companion.edits:
            edit.apply(project)
    diagnostics, _ = validate_project(Layout(project), environ={})
    assert_reported(diagnostics, CONSUMER_TYPO.expect)
    assert_reported(diagnostics, CONNECTOR_TYPO.expect)


@pytest.mark.parametrize("broken", [_param(c) for c in CASES])
def test_broken_project_reports_both_mistakes(broken: Case, tmp_path: Path) -> None:
    project = copy_base(tmp_path)
    companion = companion_for(broken)
    for edit in (*broken.edits, *companion.edits):
        edit.apply(project)
    diagnostics, _ = validate_project(Layout(project), envs=broken.envs, environ={})
    assert_reported(diagnostics, companion.expect)
    assert_reported(diagnostics, broken.expect)


# -- a failing offline test names the file, line and column of what failed --------------------

TEST_FAILURES = [
    pytest.param(
        replace(SHOP, "expect_payloads: [ { order_id: 1,", "expect_payloads: [ { order_id: 2,"),
        f"FAIL  {SHOP}:59:5 :: new order maps the customer",
        f"{SHOP}:62:5: payloads",
        '"order_id": 2',
        id="connector-trigger-test",
    ),
    pytest.param(
        replace(ORDER_BP, 'text: "Order 7 from Ann: 9.50" }', 'text: "Order 7 from Bob: 9.50" }'),
        f"FAIL  {ORDER_BP}:20:5 :: renders the message",
        f"{ORDER_BP}:23:5: action input",
        "Order 7 from Ann",
        id="blueprint-test",
    ),
    pytest.param(
        [
            replace(
                ORDER_BP,
                "tests:\n",
                "tests:\n  - name: first\n    params: { channel: C1 }\n"
                "    payload: { order_id: 1, total: '1', customer: { name: A } }\n"
                "    expect_filtered: true\n",
            ),
        ],
        f"FAIL  {ORDER_BP}:20:5 :: first",
        f"{ORDER_BP}:23:5: filtered",
        "expected: true",
        id="second-test-of-a-file",
    ),
]


@pytest.mark.parametrize(("edits", "header", "place", "text"), TEST_FAILURES)
def test_a_failing_offline_test_shows_file_line_and_column(
    edits: Edit | list[Edit], header: str, place: str, text: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from rollout_yaml.cli.run_tests import test as test_command

    project = copy_base(tmp_path)
    for edit in edits if isinstance(edits, list) else [edits]:
        edit.apply(project)
    result = CliRunner().invoke(test_command, ["--project", str(project)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert header in lines, result.output
    after = lines[lines.index(header) + 1 :]
    assert after[0].strip().startswith(place), result.output
    assert any(text in line for line in after[:3]), result.output


if __name__ == "__main__":  # rewrite the base project's frozen release
    release = BASE / RELEASE_DIR
    for folder in ("connectors", "automations"):
        shutil.rmtree(release / folder, ignore_errors=True)
        (release / folder).mkdir(parents=True)
        for source in sorted((BASE / folder).glob("*.yaml")):
            shutil.copyfile(source, release / folder / source.name)
    (release / "release.yaml").write_text(release_manifest(release))
    print(f"rewrote {release}")

"""The catalogue of diagnostic codes: stable, searchable, each with a bad and a good example.

`docs/diagnostics.md` is generated from this table (`make docs`); a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    title: str
    explanation: str
    bad: str
    good: str
    warns: bool = False
    """Can be a warning (`--ignore` and `validate.ignore` silence those); else always an error."""


_CODES = [
    # RY0xx: reading files
    Code(
        "RY001",
        "YAML syntax error",
        "The file is not valid YAML.",
        "app: slack\nname: [Slack",
        "app: slack\nname: Slack",
    ),
    Code(
        "RY002",
        "duplicate key",
        "A mapping holds the same key twice; YAML would silently keep "
        "the last one, so rollout-yaml refuses it.",
        "app: slack\nname: Slack\nname: Slack API",
        "app: slack\nname: Slack API",
    ),
    Code(
        "RY003",
        "name does not match the file",
        "`app`, `blueprint`, `consumer` and `environment` must equal the file (or folder) name, "
        "so that a name is found where a reader looks for it.",
        "# connectors/slack.yaml\napp: slak",
        "# connectors/slack.yaml\napp: slack",
    ),
    Code(
        "RY004",
        "not a mapping",
        "Every project file is a YAML mapping at its top level.",
        "- app: slack",
        "app: slack",
    ),
    Code(
        "RY005",
        "unreadable file",
        "The file cannot be read or is not UTF-8.",
        "(a file saved as UTF-16)",
        "(the same file saved as UTF-8)",
    ),
    Code(
        "RY006",
        "unsupported YAML tag",
        "Only plain YAML values are allowed: custom tags such as `!!python/object` are refused.",
        "name: !!python/name:os.system",
        "name: Slack",
    ),
    # RY1xx: shape of a file
    Code(
        "RY101",
        "unknown key",
        "Every key of every file is checked; an unknown key is most often "
        "a typo, and the message suggests the nearest known key.",
        "triggers:\n  new-order:\n    nmae: New Order",
        "triggers:\n  new-order:\n    name: New Order",
    ),
    Code(
        "RY102",
        "wrong type",
        "The value has the wrong type for its field.",
        "runtime:\n  workers: many",
        "runtime:\n  workers: 32",
    ),
    Code(
        "RY103",
        "missing required field",
        "A field that must be given is missing.",
        "app: slack\nbase_url: https://slack.com/api",
        "app: slack\nname: Slack\nversion: 1.0.0\nbase_url: https://slack.com/api",
    ),
    Code(
        "RY104",
        "invalid value",
        "The value is of the right type but not allowed (an unknown "
        "choice, a bad pattern, out of range, a bad version or URL).",
        "request:\n  method: FETCH",
        "request:\n  method: GET",
    ),
    Code(
        "RY105",
        "invalid duration",
        "Durations are a number and a unit: `ms`, `s`, `m`, `h`, `d`.",
        "timeout: 30 seconds",
        "timeout: 30s",
    ),
    Code(
        "RY106",
        "invalid key",
        "Keys of apps, triggers, actions, blueprints and automations are "
        "`[a-z0-9][a-z0-9-]*`; consumer keys also allow `A-Z . _ : @`.",
        "actions:\n  Send_Message: ...",
        "actions:\n  send-message: ...",
    ),
    Code(
        "RY107",
        "conflicting fields",
        "Fields that exclude each other are given together, or none "
        "of a required set is given (a trigger needs exactly one of `poll`, `webhook`, `push`, "
        "`schedule`; a request at most one of `json`, `form`, `body`).",
        "new-order:\n  name: New Order\n  push: {}\n  poll: {every: 5m, request: {path: /o}}",
        "new-order:\n  name: New Order\n  push: {}",
    ),
    # RY2xx: references
    Code(
        "RY201",
        "unknown app",
        "No connector defines this app.",
        "trigger: {app: shopfy, trigger: new-order}",
        "trigger: {app: shopify, trigger: new-order}",
    ),
    Code(
        "RY202",
        "unknown trigger",
        "The app has no trigger of that key.",
        "trigger: {app: shopify, trigger: new-ordr}",
        "trigger: {app: shopify, trigger: new-order}",
    ),
    Code(
        "RY203",
        "unknown action",
        "The app has no action of that key.",
        "action: {app: slack, action: send-msg}",
        "action: {app: slack, action: send-channel-message}",
    ),
    Code(
        "RY204",
        "unknown credential",
        "The consumer has no credential of that key (a consumer may only use its own credentials).",
        "credential: globex-slack",
        "credential: acme-slack",
    ),
    Code(
        "RY205",
        "credential of another app",
        "The credential belongs to a different app than the trigger or action using it.",
        "action: {app: slack, credential: acme-shop}",
        "action: {app: slack, credential: acme-slack}",
    ),
    Code(
        "RY206",
        "unknown blueprint",
        "No file in `automations/` defines this blueprint.",
        "blueprint: new-order-to-slak",
        "blueprint: new-order-to-slack",
    ),
    Code(
        "RY207",
        "unresolved $ref",
        "A `$ref` must point into the connector's `schemas:` as `#/schemas/<name>`.",
        "payload_schema: {$ref: '#/schemas/ordr'}",
        "payload_schema: {$ref: '#/schemas/order'}",
    ),
    Code(
        "RY208",
        "credential required",
        "The app authenticates its requests, so the trigger or "
        "action needs a credential (or a blueprint automation a `credentials:` entry).",
        "action: {app: slack, action: send-channel-message, input: {...}}",
        "action: {app: slack, action: send-channel-message, credential: acme-slack, input: {...}}",
    ),
    Code(
        "RY209",
        "reserved app",
        "`schedule` is the built-in app and cannot be redefined.",
        "# connectors/schedule.yaml\napp: schedule",
        "# connectors/timer.yaml\napp: timer",
    ),
    Code(
        "RY210",
        "settings for an unknown app",
        "`environment.yaml` configures an app that no connector defines.",
        "apps:\n  slak: {...}",
        "apps:\n  slack: {...}",
    ),
    # RY3xx: expressions
    Code(
        "RY301",
        "template syntax error",
        "A Jinja template does not compile.",
        "text: 'Order {{ payload.id }'",
        "text: 'Order {{ payload.id }}'",
    ),
    Code(
        "RY302",
        "JMESPath syntax error",
        "A JMESPath expression does not compile.",
        "items: 'orders[?'",
        "items: orders",
    ),
    Code(
        "RY303",
        "unsafe template",
        "Templates may not reach for underscore attributes, "
        "`format`/`mro` and other sandbox escapes; they only read data.",
        "text: \"{{ ''.__class__.__mro__ }}\"",
        "text: '{{ payload.text }}'",
    ),
    Code(
        "RY304",
        "unknown payload field",
        "The mapping reads a payload field that the trigger's `payload_schema` does not list.",
        "text: '{{ payload.costumer.name }}'",
        "text: '{{ payload.customer.name }}'",
    ),
    Code(
        "RY305",
        "name not available here",
        "A template uses a name that this place does not "
        "provide (automations never see `credential`; a trigger's input cannot read `payload`).",
        "input: {text: '{{ credential.token }}'}",
        "input: {text: '{{ payload.text }}'}",
    ),
    Code(
        "RY306",
        "unknown filter or function",
        "A template uses a filter, or a JMESPath expression a function, that does not exist.",
        "text: '{{ payload.total | moneyy }}'",
        "text: '{{ payload.total | money }}'",
    ),
    # RY4xx: schemas and inputs
    Code(
        "RY401",
        "invalid JSON Schema",
        "A schema (`input_schema`, `payload_schema`, `params`, "
        "auth `fields`) is not valid JSON Schema.",
        "input_schema: {type: strin}",
        "input_schema: {type: string}",
    ),
    Code(
        "RY402",
        "input does not match its schema",
        "A literal input or param value is not "
        "allowed by the trigger's or action's `input_schema` or the blueprint's `params`.",
        "input: {limit: lots}",
        "input: {limit: 50}",
    ),
    Code(
        "RY403",
        "required input missing",
        "The action's `input_schema` requires an input (or "
        "the blueprint a param) that the automation does not give.",
        "input: {channel: C1}",
        "input: {channel: C1, text: 'New order'}",
    ),
    # RY5xx: secrets and credentials
    Code(
        "RY501",
        "unset variable",
        "`${NAME}` is neither in the environment nor in a `secrets.files` file. One rule for "
        "`run` and `validate`: it is an error for the environment being run or validated with "
        "`--env` (`run` refuses to start); `validate --all` reports every environment's as a "
        "warning saying what `run` would do. An environment whose secrets exist only on its "
        "hosts sets `validate: { ignore: [RY501] }` so that `validate --all` in CI stays quiet.",
        "token: ${SLACK_TOKN}",
        "token: ${SLACK_TOKEN}",
        warns=True,
    ),
    Code(
        "RY502",
        "literal secret",
        "A secret field must come from `${VAR}`, never be written in a file that lives in git.",
        "access_token: shpat_123",
        "access_token: ${ACME_SHOP_TOKEN}",
    ),
    Code(
        "RY503",
        "credential values and stored",
        "A credential is either `stored: true` (kept in "
        "the database) or has `values:`, not both and not neither.",
        "acme-slack: {app: slack, stored: true, values: {token: x}}",
        "acme-slack: {app: slack, stored: true}",
    ),
    Code(
        "RY504",
        "credential field missing or unknown",
        "A credential's `values` must give every field the app's auth requires and no other.",
        "values: {shop: acme}",
        "values: {shop: acme, access_token: ${ACME_SHOP_TOKEN}}",
    ),
    # RY6xx: environments and releases
    Code(
        "RY601",
        "release missing",
        "A `release: frozen` environment runs `release/`, written by "
        "`rollout-yaml promote`; it is missing or incomplete.",
        "release: frozen  # no release/",
        "rollout-yaml promote dev prod",
    ),
    Code(
        "RY602",
        "release edited by hand",
        "A file of a frozen release no longer matches the "
        "sha256 recorded in `release/release.yaml`.",
        "(an edit inside release/)",
        "(edit connectors/, then promote again)",
    ),
    Code(
        "RY603",
        "unknown environment",
        "No `environments/<env>/environment.yaml` exists.",
        "rollout-yaml validate --env stagin",
        "rollout-yaml validate --env staging",
    ),
    Code(
        "RY604",
        "promotion changes an App's auth type",
        "Reported by `promote` (and `promote --check`): the source environment's connector "
        "authenticates differently from the one the target runs, so every credential the "
        "target's consumers hold for that App (stored tokens included) stops fitting, and each "
        "automation using one would break.",
        "# connectors/slack.yaml in dev\nauth: { type: oauth2, ... }  # prod runs type: bearer",
        "# keep slack's auth; add the new one as connectors/slack-v2.yaml, move consumers over",
    ),
    # RY7xx: uniqueness
    Code(
        "RY701",
        "defined twice",
        "The same app, blueprint or consumer is defined by two files "
        "(e.g. `slack.yaml` and `slack.yml`).",
        "connectors/slack.yaml + connectors/slack.yml",
        "connectors/slack.yaml",
    ),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}
WARNING_CODES = frozenset(c.code for c in _CODES if c.warns)


def ignorable(value: str) -> str:
    """A code that `--ignore` and `validate.ignore` may silence, normalised (`ry501` → `RY501`);
    ValueError with the reason otherwise."""
    from rollout_yaml.config.suggest import did_you_mean

    code = value.strip().upper()
    if code.isdigit():
        code = f"RY{code}"
    if code not in CODES:
        hint = did_you_mean(code, CODES, noun="codes")
        raise ValueError(f"unknown diagnostic code {value!r}" + (f"; {hint}" if hint else ""))
    if code not in WARNING_CODES:
        raise ValueError(
            f"{code} is always an error, and errors cannot be ignored (codes that can be "
            f"warnings: {', '.join(sorted(WARNING_CODES))})"
        )
    return code

"""The files `rollout-yaml init` writes: the smallest project that validates, tests and runs."""

from __future__ import annotations

FILES: dict[str, str] = {
    ".gitignore": ".venv/\n.rollout/\n.env\n",
    "connectors/myapp.yaml": """\
# yaml-language-server: $schema=../.schemas/connector.schema.json
app: myapp
name: My App
version: 0.1.0
base_url: "https://api.myapp.example/v1"
auth:
  type: bearer
triggers:
  contact-created:
    name: Contact Created
    description: Pushed by our backend to POST /v1/events when a contact signs up.
    payload_schema:
      type: object
      required: [id, email]
      properties:
        id: { type: string }
        email: { type: string }
        name: { type: string }
    push: {}
actions:
  add-note:
    name: Add Note
    input_schema:
      type: object
      required: [contact_id, text]
      properties:
        contact_id: { type: string }
        text: { type: string, maxLength: 5000 }
    request:
      method: POST
      path: "/contacts/{{ input.contact_id }}/notes"
      json: { body: "{{ input.text }}" }
    output: "{ note_id: id }"
tests:
  - name: add-note sends the note
    action: add-note
    input: { contact_id: c_1, text: Welcome! }
    expect_request:
      method: POST
      path: /contacts/c_1/notes
      json: { body: Welcome! }
    response: { id: n_9 }
    expect_output: { note_id: n_9 }
""",
    "automations/welcome-note.yaml": """\
# yaml-language-server: $schema=../.schemas/blueprint.schema.json
blueprint: welcome-note
name: Add a welcome note to every new contact
params:
  type: object
  properties:
    greeting: { type: string }
trigger:
  app: myapp
  trigger: contact-created
action:
  app: myapp
  action: add-note
  input:
    contact_id: "{{ payload.id }}"
    text: >-
      {{ params.greeting | default('Welcome', true) }},
      {{ payload.name | default('friend') }}!
tests:
  - name: greets by name
    params: { greeting: Hello }
    payload: { id: c_1, email: ada@example.com, name: Ada }
    expect_input: { contact_id: c_1, text: "Hello, Ada!" }
""",
    "environments/dev/environment.yaml": """\
# yaml-language-server: $schema=../../.schemas/environment.schema.json
environment: dev
release: live
database: sqlite
server: { host: 127.0.0.1, port: 8080 }   # add public_url: where other Apps reach this daemon
auth:
  jwt_secret: "${ROLLOUT_JWT_SECRET:-dev-only-jwt-secret-change-me}"
  admin_token: "${ROLLOUT_ADMIN_TOKEN:-dev-only-admin-token}"
runtime:
  dry_run: true
""",
    "environments/dev/consumers/first-customer.yaml": """\
# yaml-language-server: $schema=../../../.schemas/consumer.schema.json
consumer: first-customer
name: Our first customer
credentials:
  myapp:
    app: myapp
    values:
      token: "${FIRST_CUSTOMER_TOKEN:-dev-token}"
automations:
  welcome:
    blueprint: welcome-note
    params: { greeting: Hi }
    credentials: { action: myapp }
""",
}

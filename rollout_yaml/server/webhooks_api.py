"""`POST /webhooks/{app}/{trigger}/{hookId}`: deliveries from third-party Apps.

No token: the hookId (128 random bits) finds the automation, and the trigger's `verify`
scheme proves the sender. The body is read raw, within `runtime.limits.max_payload_bytes`,
because signatures cover the exact bytes sent.
"""

# No `from __future__ import annotations`: FastAPI reads the handler's annotations.
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.webhooks import Delivery, query_fields
from rollout_yaml.server import reads
from rollout_yaml.server.body import read_limited
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import ErrorOut


class WebhookAccepted(BaseModel):
    event_ids: list[str]
    runs_queued: int


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "The body is neither JSON, form fields nor text"),
        (401, "The signature does not verify, or its timestamp is outside the tolerance"),
        (404, "No active webhook at this URL"),
        (413, "The body exceeds runtime.limits.max_payload_bytes"),
        (422, "An event's payload does not match the trigger's payload_schema"),
        (503, "The secret to verify with is not available (credential not connected)"),
    )
}


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(tags=["webhooks"], responses=_ERRORS)

    @api.post(
        "/webhooks/{app}/{trigger}/{hook_id}",
        response_model=WebhookAccepted,
        summary="A delivery from a third-party App (answered after it is stored)",
        description='Slack\'s `url_verification` request is answered with `{"challenge": …}`.',
    )
    async def receive(app: str, trigger: str, hook_id: str, request: Request) -> JSONResponse:
        limit = runtime.config.current.settings.runtime.limits.max_payload_bytes
        body = await read_limited(request, limit)
        delivery = Delivery(
            app, trigger, hook_id, dict(request.headers), body, query_fields(request.url.query)
        )
        return JSONResponse(reads.delivery_answer(await runtime.receive_webhook(delivery)))

    return api

"""`GET /admin/v1/notifications`: the partner notifications (`notify:`) and their delivery,
newest first, behind the environment's admin token."""

# No `from __future__ import annotations`: FastAPI reads the query aliases from the live
# annotations.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.consumer_api import Cursor, Limit
from rollout_yaml.server.deps import admin_auth
from rollout_yaml.server.responses import JSONResponse
from rollout_yaml.server.schemas import ERRORS, NotificationList
from rollout_yaml.server.views import iso
from rollout_yaml.store.records import Notification, NotificationQuery, NotificationStatus

Status = Annotated[
    Literal["pending", "delivered", "failing"] | None,
    Query(description="Only notifications of this delivery status"),
]
Type = Annotated[str | None, Query(description="Only notifications of this type")]


def notification_view(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "type": notification.type,
        "status": str(notification.status),
        "attempts": notification.attempts,
        "created_at": iso(notification.created_at),
        "delivered_at": iso(notification.delivered_at),
        "next_attempt_at": iso(notification.next_attempt_at),
        "last_error": notification.last_error,
        "payload": notification.payload,
    }


def router(runtime: Runtime) -> APIRouter:
    api = APIRouter(
        prefix="/admin/v1",
        tags=["admin"],
        responses=ERRORS,
        dependencies=[Depends(admin_auth(runtime))],
    )

    @api.get(
        "/notifications",
        response_model=NotificationList,
        summary="Partner notifications, newest first, with their delivery status",
    )
    async def list_notifications(
        status: Status = None, type: Type = None, limit: Limit = 50, cursor: Cursor = None
    ) -> JSONResponse:
        query = NotificationQuery(
            status=NotificationStatus(status) if status else None,
            type=type or None,
            before_id=cursor or None,
            limit=limit + 1,
        )
        found = await runtime.store.list_notifications(query)
        page = found[:limit]
        return JSONResponse(
            {
                "notifications": [notification_view(n) for n in page],
                "next_cursor": page[-1].id if len(found) > limit and page else None,
            }
        )

    return api

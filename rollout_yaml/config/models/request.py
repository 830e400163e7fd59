"""HTTP request templates, retry policies and pagination, shared by actions, polls and hooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.types import Duration

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Request(Model):
    """An HTTP request; every string in it is a template rendered per request."""

    method: Method = "GET"
    path: str = ""
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, Any] | None = None
    body: str | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Request:
        given = [
            name
            for name, value in (("json", self.json_body), ("form", self.form), ("body", self.body))
            if value is not None
        ]
        if len(given) > 1:
            raise PydanticCustomError(
                "RY107",
                "a request has at most one of json, form, body; got {given}",
                {"given": ", ".join(given)},
            )
        return self


class RetryPolicy(Model):
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    on_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [429, 500, 502, 503, 504]
    )
    backoff: Literal["exponential", "constant"] = "exponential"
    base: Duration = 1.0
    max: Duration = 300.0


class RequestDefaults(Model):
    """Merged into every request of a connector."""

    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration = 30.0
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    error: str | None = None


class _Pages(Model):
    max_pages: Annotated[int, Field(ge=1, le=10_000)] = 50


class LinkHeaderPaging(_Pages):
    type: Literal["link_header"]


class NextUrlPaging(_Pages):
    type: Literal["next_url"]
    next: str


class CursorPaging(_Pages):
    type: Literal["cursor"]
    param: str
    next: str


class PagePaging(_Pages):
    type: Literal["page"]
    param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: Annotated[int, Field(ge=1)] | None = None


class OffsetPaging(_Pages):
    type: Literal["offset"]
    param: str = "offset"
    size_param: str | None = None
    size: Annotated[int, Field(ge=1)] = 100


Paginate = Annotated[
    LinkHeaderPaging | NextUrlPaging | CursorPaging | PagePaging | OffsetPaging,
    Field(discriminator="type"),
]


class RateLimit(Model):
    """At most `requests` sends in any window of `per`, counted per credential (shared by every
    replica on PostgreSQL); a send over the limit waits for a slot, it does not fail."""

    requests: Annotated[int, Field(ge=1)]
    per: Duration

    @model_validator(mode="after")
    def _positive_window(self) -> RateLimit:
        if self.per <= 0:
            raise PydanticCustomError("RY104", "rate_limit `per` must be longer than 0s", {})
        return self

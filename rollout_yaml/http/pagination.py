"""The request sequence of one poll: each next request is built from the previous page
(`link_header`, `next_url`, `cursor`, `page`, `offset`), until the last page, `max_pages`,
or a page token / next URL seen twice in the same poll (an API going round in a loop).

A next URL (from a Link header or the body) may only lead to the scheme, host and port of the
first request; it is sent as the App wrote it, with the credential's query parameters added
when it lacks them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from rollout_yaml.config.models.request import (
    CursorPaging,
    LinkHeaderPaging,
    NextUrlPaging,
    OffsetPaging,
    PagePaging,
    Paginate,
)
from rollout_yaml.expr.jmespath import Query
from rollout_yaml.http.request import PreparedRequest


class PaginationError(ValueError):
    """The App's answer cannot lead to a next page (a next URL on another host, …)."""


LAST_PAGE = "last page"
MAX_PAGES = "max_pages reached"
LOOP = "a page token or next URL came back twice"
SINGLE = "not paginated"


def next_link(headers: Mapping[str, str]) -> str | None:
    """The `rel="next"` target of the RFC 8288 Link headers, parsed by httpx. Several `Link`
    headers are one list of links (`httpx.Headers.get` joins them with commas, as RFC 9110
    allows for this field)."""
    value = headers.get("link")
    if not value:
        return None
    links = httpx.Response(200, headers={"link": value}).links
    found = links.get("next")
    return found.get("url") if found else None


def _with_param(request: PreparedRequest, name: str, value: Any) -> PreparedRequest:
    query = [(k, v) for k, v in request.query if k != name]
    query.append((name, str(value)))
    return dataclasses.replace(request, query=query)


class Paginator:
    """One poll's pages: `first()` once, then `next()` after each page until it gives None;
    `stopped` then says why."""

    def __init__(
        self,
        spec: Paginate | None,
        next_query: Query | None,
        auth_query: dict[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.next_query = next_query
        self.auth_query = {k: str(v) for k, v in (auth_query or {}).items() if v is not None}
        self.pages = 0
        self.stopped: str | None = None
        self._seen: set[str] = set()
        self._number = 0  # page: the page number sent; offset: the offset sent

    def first(self, request: PreparedRequest) -> PreparedRequest:
        spec = self.spec
        if isinstance(spec, PagePaging):
            self._number = spec.start
            request = _with_param(request, spec.param, spec.start)
            if spec.size_param and spec.size:
                request = _with_param(request, spec.size_param, spec.size)
        elif isinstance(spec, OffsetPaging):
            self._number = 0
            request = _with_param(request, spec.param, 0)
            if spec.size_param:
                request = _with_param(request, spec.size_param, spec.size)
        return request

    def next(
        self, request: PreparedRequest, headers: Mapping[str, str], body: Any, item_count: int
    ) -> PreparedRequest | None:
        """The request for the page after `request`'s answer, or None (see `stopped`)."""
        self.pages += 1
        spec = self.spec
        if spec is None:
            return self._stop(SINGLE)
        following: PreparedRequest | None
        if isinstance(spec, LinkHeaderPaging | NextUrlPaging):
            target = next_link(headers) if isinstance(spec, LinkHeaderPaging) else self._token(body)
            if not target:
                return self._stop(LAST_PAGE)
            url = urljoin(request.full_url(), target)
            if url in self._seen:
                return self._stop(LOOP)
            self._seen.add(url)
            following = self._follow(request, url)
        elif isinstance(spec, CursorPaging):
            token = self._token(body)
            if not token:
                return self._stop(LAST_PAGE)
            if token in self._seen:
                return self._stop(LOOP)
            self._seen.add(token)
            following = _with_param(request, spec.param, token)
        elif isinstance(spec, PagePaging):
            if item_count == 0 or (spec.size is not None and item_count < spec.size):
                return self._stop(LAST_PAGE)
            self._number += 1
            following = _with_param(request, spec.param, self._number)
        else:
            assert isinstance(spec, OffsetPaging)
            if item_count == 0 or item_count < spec.size:
                return self._stop(LAST_PAGE)
            # advance by what came back: an App that ignores the size and sends more would
            # otherwise have the next page repeat items
            self._number += item_count
            following = _with_param(request, spec.param, self._number)
        if self.pages >= spec.max_pages:
            return self._stop(MAX_PAGES)
        return following

    def _stop(self, why: str) -> PreparedRequest | None:
        self.stopped = why
        return None

    def _token(self, body: Any) -> str | None:
        if self.next_query is None or body is None or isinstance(body, str):
            return None
        value = self.next_query.search(body)
        if value is None or value == "" or isinstance(value, dict | list | bool):
            return None
        return str(value)

    def _follow(self, request: PreparedRequest, url: str) -> PreparedRequest:
        first, following = urlsplit(request.url), urlsplit(url)
        if (following.scheme, following.netloc) != (first.scheme, first.netloc):
            raise PaginationError(
                f"the next page URL leads to {following.scheme}://{following.netloc}, "
                f"not to the App's {first.scheme}://{first.netloc}"
            )
        present = {k for k, _ in parse_qsl(following.query, keep_blank_values=True)}
        missing = [(k, v) for k, v in self.auth_query.items() if k not in present]
        return dataclasses.replace(request, url=url, path=following.path, query=missing)

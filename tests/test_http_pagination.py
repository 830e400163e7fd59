"""The next-request rules of each pagination type, on prepared requests (the real-server tests
are in test_engine_poller.py)."""

from __future__ import annotations

import pytest

from rollout_yaml.config.models.request import (
    CursorPaging,
    LinkHeaderPaging,
    NextUrlPaging,
    OffsetPaging,
    PagePaging,
)
from rollout_yaml.expr.jmespath import compile_query
from rollout_yaml.http.pagination import (
    LAST_PAGE,
    LOOP,
    MAX_PAGES,
    PaginationError,
    Paginator,
    next_link,
)
from rollout_yaml.http.request import PreparedRequest

FIRST = PreparedRequest(
    "GET",
    "https://api.example.com/v1/items",
    "/v1/items",
    [("limit", "2"), ("api_key", "k-123")],
    {"Accept": "application/json"},
)


def test_link_header_next_among_several_links() -> None:
    header = (
        '<https://api.example.com/v1/items?page_info=p1>; rel="previous", '
        '<https://api.example.com/v1/items?page_info=p3&limit=2>; rel="next"'
    )
    assert next_link({"link": header}) == "https://api.example.com/v1/items?page_info=p3&limit=2"
    assert next_link({"link": '<https://x/a>; rel="prev"'}) is None
    assert next_link({}) is None


def test_a_next_url_is_sent_as_written_with_missing_auth_query_added() -> None:
    pager = Paginator(
        NextUrlPaging(type="next_url", next="next"), compile_query("next"), {"api_key": "k-123"}
    )
    nxt = pager.next(FIRST, {}, {"next": "/v1/items?cursor=a%2Fb&limit=2"}, 2)
    assert nxt is not None
    assert nxt.full_url() == "https://api.example.com/v1/items?cursor=a%2Fb&limit=2&api_key=k-123"
    assert nxt.headers == FIRST.headers
    again = pager.next(nxt, {}, {"next": "/v1/items?cursor=c&api_key=k-123"}, 2)
    assert again is not None
    assert again.full_url() == "https://api.example.com/v1/items?cursor=c&api_key=k-123"


def test_a_next_url_on_another_host_or_scheme_is_refused() -> None:
    for url in ("https://evil.example.com/v1/items", "http://api.example.com/v1/items"):
        pager = Paginator(NextUrlPaging(type="next_url", next="next"), compile_query("next"))
        with pytest.raises(PaginationError):
            pager.next(FIRST, {}, {"next": url}, 2)


def test_a_link_seen_twice_stops_with_loop() -> None:
    pager = Paginator(LinkHeaderPaging(type="link_header"), None)
    link = {"link": '<https://api.example.com/v1/items?p=2>; rel="next"'}
    second = pager.next(FIRST, link, [], 2)
    assert second is not None
    assert pager.next(second, link, [], 2) is None and pager.stopped == LOOP


def test_cursor_replaces_its_parameter_and_keeps_the_rest() -> None:
    pager = Paginator(
        CursorPaging(type="cursor", param="after", next="paging.next.after"),
        compile_query("paging.next.after"),
    )
    nxt = pager.next(FIRST, {}, {"paging": {"next": {"after": 42}}}, 2)
    assert nxt is not None and nxt.query == [("limit", "2"), ("api_key", "k-123"), ("after", "42")]
    nxt2 = pager.next(nxt, {}, {"paging": {"next": {"after": "43"}}}, 2)
    assert nxt2 is not None and dict(nxt2.query)["after"] == "43"
    assert pager.next(nxt2, {}, {"paging": {}}, 2) is None and pager.stopped == LAST_PAGE


def test_page_numbers_from_start_until_a_short_page() -> None:
    pager = Paginator(PagePaging(type="page", param="p", start=0, size_param="n", size=2), None)
    first = pager.first(FIRST)
    assert dict(first.query) == {"limit": "2", "api_key": "k-123", "p": "0", "n": "2"}
    second = pager.next(first, {}, [1, 2], 2)
    assert second is not None and dict(second.query)["p"] == "1"
    assert pager.next(second, {}, [3], 1) is None and pager.stopped == LAST_PAGE


def test_offset_advances_by_the_items_received_and_max_pages_stops() -> None:
    pager = Paginator(
        OffsetPaging(type="offset", param="o", size_param="n", size=2, max_pages=2), None
    )
    first = pager.first(FIRST)
    assert dict(first.query)["o"] == "0"
    second = pager.next(first, {}, [1, 2, 3], 3)  # the App sent more than asked
    assert second is not None and dict(second.query)["o"] == "3"
    assert pager.next(second, {}, [4, 5], 2) is None and pager.stopped == MAX_PAGES


def test_without_paginate_one_request() -> None:
    pager = Paginator(None, None)
    assert pager.first(FIRST) is FIRST
    assert pager.next(FIRST, {}, [1, 2], 2) is None

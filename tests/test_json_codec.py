"""The intake codec's nesting limit, checked against a plain recursive definition of depth on
generated documents: wide ones (many brackets, shallow) and deep ones around the limit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollout_yaml.json_codec import MAX_DEPTH, JSONRejected, loads


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def nested(levels: int, leaf: Any, as_object: bool) -> Any:
    for level in range(levels):
        leaf = {f"k{level}": leaf} if as_object and level % 2 else [leaf]
    return leaf


scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)
wide = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=60,
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A wide document, optionally with a chain near the limit hung somewhere inside it."""
    doc = draw(wide)
    levels = draw(st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3))
    chain = nested(levels, draw(scalars), draw(st.booleans()))
    if draw(st.booleans()):
        return doc
    return {"doc": doc, "chain": chain} if draw(st.booleans()) else [doc, chain]


@settings(max_examples=300, deadline=None)
@given(documents())
def test_a_document_is_refused_exactly_when_it_nests_deeper_than_the_limit(doc: Any) -> None:
    data = orjson.dumps(doc)
    if depth(doc) > MAX_DEPTH:
        with pytest.raises(JSONRejected, match=f"deeper than {MAX_DEPTH}") as refused:
            loads(data)
        assert refused.value.path.startswith("$") and refused.value.path.count("[") >= 1
    else:
        assert loads(data) == doc


def test_a_wide_document_with_many_brackets_is_read() -> None:
    rows = [{"id": n, "tags": [{"name": "a"}], "lines": [[n]]} for n in range(500)]
    assert loads(orjson.dumps({"rows": rows})) == {"rows": rows}

"""Hypothesis strategies more than one test file draws from."""

from __future__ import annotations

from hypothesis import strategies as st

ODD_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
"""Valid JSON that is unusual: unicode of every plane (no lone surrogates: they are not JSON
text), big and negative numbers, empty keys and strings, nesting well within the limit."""

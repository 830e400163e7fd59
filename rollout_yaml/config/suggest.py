""" "Did you mean …?" for names a user mistyped."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str], *, noun: str = "") -> str | None:
    """A one-line fix: the nearest candidate, else the list of what is allowed (when short)."""
    names = sorted(set(candidates))
    match = closest(word, names)
    if match:
        return f"did you mean `{match}`?"
    if not names:
        return None
    listed = ", ".join(f"`{n}`" for n in names[:12]) + (", …" if len(names) > 12 else "")
    return f"known {noun or 'names'}: {listed}"

"""The daemon's long-lived objects kept out of Python's cyclic garbage collector.

A running daemon holds its compiled configuration, the app and every imported module for as
long as it runs. Python's oldest-generation collection walks all of them each time it runs:
on the `e2e` workload that was two pauses of the event loop in 12 s, of up to 128 ms each,
every request in flight waiting them out. Frozen after start (`gc.freeze`), they are skipped;
the same collections took 7 to 9 ms.

A reload makes the previous configuration garbage, and frozen garbage in reference cycles
would never be freed: each reload unfreezes, collects once (one pause, at a moment that
already costs a compile), and freezes what is live then.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then keep everything alive out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()

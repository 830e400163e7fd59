"""The daemon's heap settling: live objects leave the collector's walk, garbage does not stay."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from rollout_yaml.daemon import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_settling_keeps_live_objects_out_of_collections() -> None:
    kept = _Node()
    gc.collect()
    assert any(o is kept for o in gc.get_objects(generation=2))  # walked by every collection
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects(generation=2))  # collections skip it


def test_a_configuration_dropped_after_settling_is_freed_at_the_next_settle() -> None:
    previous = _Node()  # live when the daemon settled: frozen
    gone = weakref.ref(previous)
    heap.settle()
    del previous  # a reload replaced it
    gc.collect()
    assert gone() is not None  # frozen: no collection frees it on its own
    heap.settle()
    assert gone() is None

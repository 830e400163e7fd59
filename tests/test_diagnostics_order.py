"""Findings at one place come out in one order: `validate`'s output is diffed in CI and
pasted into reviews, so it must not change between two runs of the same project."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from rollout_yaml.config.diagnostics import Diagnostic, sorted_unique
found = [Diagnostic("RY101", f"unknown key `{name}`", "connectors/shop.yaml", 4, 3)
         for name in ("retries", "timeout_ms", "verbs", "hedaers", "bsae_url", "pathh")]
print([d.message for d in sorted_unique(found)])
"""


def test_findings_at_one_place_come_out_in_the_same_order_whatever_the_hash_seed() -> None:
    orders = set()
    for seed in range(8):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        )
        orders.add(done.stdout)
    assert len(orders) == 1, orders

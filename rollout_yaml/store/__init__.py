"""The environment's database: events, runs, attempts, poll state, stored credentials, leases.

The engine talks to the `Store` protocol (`base.py`); `sqlite.py` is the embedded default.
"""

"""The engine: triggers, matching, runs — and the offline tests that exercise the same code."""

"""The HTTP API served by `rollout-yaml run`: consumer, admin, Rollout-compatible, health."""

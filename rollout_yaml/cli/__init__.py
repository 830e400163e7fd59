"""The `rollout-yaml` command line (click)."""

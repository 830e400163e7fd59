"""rollout-yaml: a GitOps-native runner for embedded integrations."""

__version__ = "0.1.0"

"""Prometheus metrics of one runner, in a registry of its own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "rollout_events_received",
            "Trigger events accepted",
            ["app", "trigger"],
            registry=self.registry,
        )
        self.runs = Counter(
            "rollout_runs_finished",
            "Runs that reached a status",
            ["status"],
            registry=self.registry,
        )
        self.action_seconds = Histogram(
            "rollout_action_duration_seconds",
            "Time of one action attempt",
            ["app", "action"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.runs_claimed = Counter(
            "rollout_runs_claimed",
            "Runs taken over from the database: left by a runner that stopped or died",
            registry=self.registry,
        )
        self.claims = Counter(
            "rollout_claims",
            "Claim rounds: queries for due runs nobody holds (one per interval when idle, "
            "back to back while a backlog drains)",
            registry=self.registry,
        )
        self.leases_lost = Counter(
            "rollout_leases_lost",
            "Queued runs dropped because another runner claimed them after their lease expired",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "rollout_queue_depth", "Runs waiting for a worker", registry=self.registry
        )
        self.generation = Gauge(
            "rollout_config_generation", "Active configuration generation", registry=self.registry
        )
        self.polls = Counter(
            "rollout_polls",
            "Polls of poll groups, by outcome (ok, failed)",
            ["app", "trigger", "outcome"],
            registry=self.registry,
        )
        self.polls_failing = Gauge(
            "rollout_poll_groups_failing",
            "Poll groups whose last poll failed",
            registry=self.registry,
        )
        self.poll_lag = Gauge(
            "rollout_poll_lag_seconds",
            "How long after it was due the latest poll of a trigger started",
            ["app", "trigger"],
            registry=self.registry,
        )
        self.automations_invalid = Gauge(
            "rollout_automations_invalid",
            "Automations created over the API that no longer compile (kept, not run)",
            registry=self.registry,
        )
        self.reload_failures = Counter(
            "rollout_reload_failures", "Rejected configurations", registry=self.registry
        )
        self.token_requests = Counter(
            "rollout_oauth_token_requests",
            "OAuth2 token requests by grant (authorization_code, refresh_token, "
            "client_credentials) and outcome (ok, refused, unavailable)",
            ["app", "grant", "outcome"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "rollout_notifications_sent",
            "Partner notification deliveries by type and outcome (delivered, failed)",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.notifications_undelivered = Gauge(
            "rollout_notifications_undelivered",
            "Partner notifications stored and not delivered yet (pending or failing)",
            registry=self.registry,
        )
        self.connect_events = Counter(
            "rollout_connect_events",
            "Events Rollout's embedded components report (`analytics.logEvent`), by type",
            ["event"],
            registry=self.registry,
        )

"""GitOps between environments: what promoting one to another changes (`diff`), whether it
breaks the target's automations, and writing the target's frozen release (`promote`)."""

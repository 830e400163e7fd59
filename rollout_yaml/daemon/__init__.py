"""The daemon: serve HTTP, run workers, watch files and reload, drain on SIGTERM."""

"""Step executors, one module per step kind that acts outside the daemon (exec, http, sleep)."""

"""Playbook runs: durable, leased, resumable execution (the runner) of the runs the remediate stage stores."""

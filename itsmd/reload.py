"""Configuration reload: all or nothing. What can change while running is swapped at once; the rest needs a
restart, and asking for it fails the reload with a problem while the running configuration stays."""

from __future__ import annotations

from itsmd.config import Config

# Settings a running daemon cannot adopt: they shape sockets, files and pools made at start.
_RESTART_ONLY = ("listen", "tls", "database", "storage", "limits", "scaleout")


def restart_needed(running: Config, new: Config) -> list[str]:
    """The problems that keep `new` from being adopted without a restart (none: it can be)."""
    where = str(new.path) if new.path else "(defaults)"
    problems = [
        f"{where}: {name}: changing it needs a restart (the running value is kept)"
        for name in _RESTART_ONLY
        if getattr(running, name) != getattr(new, name)
    ]
    return problems

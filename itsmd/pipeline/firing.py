"""The firing episodes the pipeline knows: a write-through cache that lets a repeat skip the database read.

Nearly every delivered alert repeats an episode that is already firing (Alertmanager re-sends each group every
`group_interval`, HA pairs send it twice). Merging such a repeat needs only the open episode's state, which the
pipeline itself wrote last; keeping it in memory removes one query per alert and makes a repeat's cost
independent of how many alerts and incidents are stored.

Rules that keep it correct (the database stays the truth):
* Only the writer thread changes entries, and only for episodes with a stored id that are firing.
* An entry is added or replaced by a pipeline step just before its transaction commits; when that transaction
  fails the pipeline calls `clear()`, so nothing uncommitted survives.
* Any other write that ends or changes a firing episode's state (expiry, a resolve) `forget`s it; forgetting is
  always safe (the next delivery reads the database).
* Entries hold state only (no labels, annotations, URL or key) and are trusted for merging (status, times,
  occurrences) only: their incident_id and symptom may be out of date (attach and merge move alerts between
  incidents without the pipeline), so a step that needs those reads the database (resolves always do).
* The size is bounded: past `capacity` entries the cache is emptied and refills from the database on demand.
"""

from __future__ import annotations

from collections.abc import Iterable

from itsmd.core.alert import Status
from itsmd.core.episode import Episode


class FiringEpisodes:
    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._open: dict[str, Episode] = {}

    def __len__(self) -> int:
        return len(self._open)

    def get(self, fingerprint: str) -> Episode | None:
        return self._open.get(fingerprint)

    def record(self, episodes: Iterable[Episode]) -> None:
        """Remember the stored, firing episodes among `episodes`; forget the fingerprints of the others."""
        for ep in episodes:
            if ep.status == Status.FIRING and ep.id is not None and ep.id > 0:
                self._open[ep.fingerprint] = _slim(ep)
            else:
                self._open.pop(ep.fingerprint, None)
        if len(self._open) > self._capacity:
            self._open.clear()

    def forget(self, fingerprints: Iterable[str]) -> None:
        for fp in fingerprints:
            self._open.pop(fp, None)

    def clear(self) -> None:
        self._open.clear()


def _slim(ep: Episode) -> Episode:
    """The state merging needs, without the content (labels, annotations, URL, key): ~250 bytes an entry, so
    100,000 firing alerts cost ~25 MB. Built directly: dataclasses.replace is slow on this path."""
    return Episode(
        ep.id, ep.fingerprint, None, None, ep.status, ep.starts_at, ep.ends_at, ep.expires_at, None,
        ep.first_seen_at, ep.last_seen_at, ep.occurrences, ep.rule, None, None, ep.incident_id, ep.symptom,
        ep.muted_by,
    )

"""Timeline records (incidents and problems alike) as the API shows them."""

from __future__ import annotations

from typing import Any

from itsmd.core.timestamp import format_time


def event_json(r: dict[str, Any]) -> dict[str, Any]:
    return {"at": format_time(r["at"]), "actor": r["actor"], "action": r["action"], "reason": r["reason"],
            "data": r["data"]}

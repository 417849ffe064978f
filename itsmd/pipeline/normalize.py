"""Normalize stage: a request body becomes a Delivery of checked alerts; single bad alerts are quarantined."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

import orjson

from itsmd.core.alert import IncomingAlert, Rejected, from_push, from_webhook
from itsmd.errors import BadRequest, PayloadTooLarge
from itsmd.pipeline.delivery import Delivery


def _scrub(value: Any) -> Any:
    """Lone surrogates (valid JSON escapes, invalid text) become U+FFFD, as Alertmanager does."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    return value


def parse_json(body: bytes) -> Any:
    """JSON with Alertmanager's leniency: last duplicate key wins, invalid UTF-8 becomes U+FFFD."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return _scrub(json.loads(body.decode("utf-8", "replace"), parse_constant=_not_json))
    except (ValueError, RecursionError) as e:
        raise BadRequest(f"body is not valid JSON: {str(e)[:200]}") from e


def _not_json(constant: str) -> NoReturn:
    """NaN, Infinity and -Infinity are not JSON (Python's json reads them unless told not to)."""
    raise ValueError(f"{constant} is not a JSON value")


def _collect(
    raws: list[Any], convert: Callable[[Any], IncomingAlert], max_alerts: int
) -> tuple[list[IncomingAlert], list[tuple[str, Any]]]:
    if len(raws) > max_alerts:
        raise PayloadTooLarge(f"{len(raws)} alerts in one request; the limit is {max_alerts}")
    good: list[IncomingAlert] = []
    bad: list[tuple[str, Any]] = []
    for i, raw in enumerate(raws):
        try:
            good.append(convert(raw))
        except Rejected as e:
            bad.append((f"alerts[{i}]: {e}", raw))
    return good, bad


def webhook(doc: Any, now: datetime, max_alerts: int) -> Delivery:
    """An Alertmanager webhook body (version 4)."""
    if not isinstance(doc, dict):
        raise BadRequest("webhook body must be a JSON object")
    version = doc.get("version")
    if version is not None and version != "4":
        raise BadRequest(f"unsupported webhook version {str(version)[:20]!r}; itsmd reads version 4")
    raws = doc.get("alerts")
    if not isinstance(raws, list):
        raise BadRequest("webhook body must have an 'alerts' list")
    good, bad = _collect(raws, lambda raw: from_webhook(raw, now), max_alerts)
    truncated = doc.get("truncatedAlerts")
    group_key = doc.get("groupKey")
    return Delivery(
        alerts=good,
        truncated=truncated if isinstance(truncated, int) and truncated > 0 else 0,
        group_key=group_key if isinstance(group_key, str) else None,
        rejected=bad,
    )


def push(doc: Any, now: datetime, resolve_timeout: float, max_alerts: int) -> Delivery:
    """The alert list Prometheus pushes to /api/v2/alerts."""
    if not isinstance(doc, list):
        raise BadRequest("body must be a JSON list of alerts")
    good, bad = _collect(doc, lambda raw: from_push(raw, now, resolve_timeout), max_alerts)
    return Delivery(alerts=good, rejected=bad)

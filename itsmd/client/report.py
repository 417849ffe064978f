"""`itsmd report summary|mttr|recurring`: a report document as a table, CSV, JSON or Markdown.

The document is the API's (§1.6 item 17), read from the database (`-c`) or the daemon (`--url`). Tables and
Markdown show durations humanised and rates as percentages; CSV keeps the raw numbers (seconds, fractions 0..1).
Alert text (signatures, alert names) is escaped for the terminal, Markdown and spreadsheets alike.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import orjson

from itsmd.client.text import escape, plain
from itsmd.core.report import duration

FORMATS = ("table", "csv", "json", "markdown")
ALL = "all"  # the group (and week) of the whole period

Row = dict[str, Any]
_STATS = ("mean", "median", "p90", "n")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.1f}%"


class Column:
    def __init__(self, header: str, value: Callable[[Row], Any], shown: Callable[[Any], str] = plain) -> None:
        self.header, self.value, self.shown = header, value, shown


def _stat(block: str, key: str) -> Column:
    def value(row: Row) -> Any:
        return (row.get(block) or {}).get(key)

    return Column(f"{block.upper()} {key.upper()}", value, plain if key == "n" else duration)


def _key(name: str, shown: Callable[[Any], str] = plain) -> Column:
    return Column(name.upper().replace("_", " "), lambda row: row.get(name), shown)


def _summary_columns(doc: dict[str, Any]) -> list[Column]:
    cols = [_key("group"), _key("incidents"), _key("alerts")]
    cols += [_stat(b, k) for b in ("mtta", "mttr") for k in _STATS]
    cols += [_stat("mtbf", "mean"), _key("unrestored")]
    cols += [_key(r, percent) for r in ("auto_remediation_rate", "self_healed_rate", "playbook_success_rate",
                                        "dedup_ratio", "noise_reduction")]
    cols += [_breaches(p, target) for p in doc.get("sla_breaches", {}) for target in ("ack", "restore")]
    return cols


def _breaches(priority: str, target: str) -> Column:
    def value(row: Row) -> Any:
        return row["sla_breaches"].get(priority, {}).get(target)

    return Column(f"SLA {priority} {target.upper()}", value)


def summary_rows(doc: dict[str, Any]) -> list[Row]:
    return [{"group": ALL, **doc}, *({"group": g, **v} for g, v in doc.get("by", {}).items())]


def mttr_rows(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [{"group": ALL, "week": ALL, "mttr": doc["mttr"], "mtta": doc["mtta"]}]
    rows += [{"group": ALL, "week": w, **v} for w, v in doc.get("weeks", {}).items()]
    for g, v in doc.get("by", {}).items():
        rows.append({"group": g, "week": ALL, "mttr": v["mttr"], "mtta": v["mtta"]})
        rows += [{"group": g, "week": w, **wv} for w, wv in v.get("weeks", {}).items()]
    return rows


_MTTR_COLUMNS = [_key("group"), _key("week"), *(_stat(b, k) for b in ("mttr", "mtta") for k in _STATS)]
_RECURRING_COLUMNS = [
    Column("SIGNATURE", lambda r: r.get("signature")), _key("problem_id"), _key("incidents"),
    _key("downtime", duration), _key("last_seen_at"), _key("known_error"),
]
_NOISIEST_COLUMNS = [_key("alertname"), _key("deliveries"), _key("episodes")]


def tabulate(kind: str, doc: dict[str, Any]) -> tuple[list[Column], list[Row]]:
    if kind == "summary":
        return _summary_columns(doc), summary_rows(doc)
    if kind == "mttr":
        return _MTTR_COLUMNS, mttr_rows(doc)
    return _RECURRING_COLUMNS, list(doc.get("items", []))


def _raw(value: Any) -> str:
    """A CSV cell: numbers as they are, text that a spreadsheet would run as a formula quoted with `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = orjson.dumps(value).decode()
    text = str(value)
    return "'" + text if isinstance(value, str) and text.startswith(_FORMULA) else text


def _md(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escape(text))


def _aligned(columns: Sequence[Column], rows: Sequence[Row], out: TextIO) -> None:
    cells = [[c.shown(c.value(r)) for c in columns] for r in rows]
    widths = [max([len(c.header), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.header.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _markdown_table(columns: Sequence[Column], rows: Sequence[Row], out: TextIO) -> None:
    out.write("| " + " | ".join(c.header for c in columns) + " |\n")
    out.write("|" + "|".join("---" for _ in columns) + "|\n")
    for r in rows:
        out.write("| " + " | ".join(_md(c.shown(c.value(r))) for c in columns) + " |\n")


_TITLES = {"summary": "Incident summary", "mttr": "MTTR and MTTA", "recurring": "Recurring problems"}


def write(kind: str, doc: dict[str, Any], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    columns, rows = tabulate(kind, doc)
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow([c.header.lower().replace(" ", "_") for c in columns])
        w.writerows([_raw(c.value(r)) for c in columns] for r in rows)
        return
    period = f"{plain(doc.get('from'))} .. {plain(doc.get('to'))}"
    if fmt == "markdown":
        out.write(f"# {_TITLES[kind]}\n\n{_md(period)}\n\n")
        _markdown_table(columns, rows, out)
        if doc.get("noisiest"):
            out.write("\n## Noisiest alerts\n\n")
            _markdown_table(_NOISIEST_COLUMNS, doc["noisiest"], out)
        return
    out.write(f"{_TITLES[kind]}: {period}\n")
    _aligned(columns, rows, out)
    if doc.get("noisiest"):
        out.write("\nNoisiest alerts\n")
        _aligned(_NOISIEST_COLUMNS, doc["noisiest"], out)

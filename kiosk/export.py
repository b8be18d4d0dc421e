"""Entries as operators take them away: the public JSON form and CSV rows for Excel.
Shared by the operator API and `kiosk export`."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Iterable, Iterator

from .model import CONFIRMED, OUTCOMES, VALID, final_decision, iso, parse_iso

CSV_COLUMNS = ("id", "time", "decision", "reasons", "holder", "format", "kind", "status", "app", "family",
               "rssi", "override", "override_reason", "direction")


def bound(value: str | None, tz, end: bool = False) -> str | None:
    """A from/to bound as ISO UTC text: a date means local midnight (a `to` date includes
    that whole day), anything else is read as an ISO-8601 time. ValueError when neither."""
    if not value:
        return None
    if len(value) == 10:
        day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta())
        return iso(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())
    return iso(parse_iso(value))


DECISIONS = OUTCOMES          # the name the export's callers use


def totals(items: list[dict]) -> dict:
    """Entries, final decisions (a guard's override counts), share with the app confirmed and
    with a valid declaration."""
    n = len(items)
    finals = [final_decision(d) for d in items]
    return {"entries": n, **{k: finals.count(k) for k in DECISIONS},
            "app_confirmed_share": round(sum((d.get("ble") or {}).get("outcome") == CONFIRMED
                                             for d in items) / n, 4) if n else 0.0,
            "valid_declaration_share": round(sum((d.get("declaration") or {}).get("status") == VALID
                                                 for d in items) / n, 4) if n else 0.0}


def daily_summary(docs: list[dict], tz) -> dict:
    """The daily report's numbers: `totals`, overall and by local hour."""
    by_hour: dict[int, list] = {}
    for d in docs:
        by_hour.setdefault(datetime.fromtimestamp(parse_iso(d["time"]), tz).hour, []).append(d)
    return {**totals(docs), "by_hour": [{"hour": h, **totals(by_hour[h])} for h in sorted(by_hour)]}


def public(entry: dict) -> dict:
    """An entry as operators get it (the payload fingerprint stays on the kiosk)."""
    return {k: v for k, v in entry.items() if k != "fingerprint"}


def csv_row(entry: dict, tz) -> list:
    """An entry as a CSV row (CSV_COLUMNS): `decision` is the final one, with the override's
    action and reason beside it."""
    override = entry.get("override") or {}
    rssi = entry["ble"].get("rssi")
    return [entry["id"], datetime.fromtimestamp(parse_iso(entry["time"]), tz).strftime("%Y-%m-%d %H:%M:%S"),
            final_decision(entry), "; ".join(entry["reasons"]), entry["declaration"].get("holder") or "",
            entry["declaration"]["format"], entry["declaration"].get("kind") or "", entry["declaration"]["status"],
            entry["ble"]["outcome"], entry["ble"].get("family") or "", "" if rssi is None else rssi,
            override.get("action", ""), override.get("reason", ""), entry["direction"]]


def csv_chunks(rows: Iterable[list], header: Iterable[str], chunk: int = 64 * 1024) -> Iterator[str]:
    """CSV text for Excel: a UTF-8 BOM first (else Excel misreads Vietnamese), CRLF line ends,
    fields quoted when they hold commas, quotes or line breaks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield "\ufeff"
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > chunk:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()

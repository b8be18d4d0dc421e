"""What an entry means to its readers, the same on the kiosk and the central: the filters and
their local-day date rules, the decision as finally taken, Excel-safe CSV and the daily report.

Pure: entries (their JSON form, Entry.to_json) and a time zone in, values out.

Over the house's ~300 lines: the filters, the CSV and the report are the one definition of
what an entry means to a reader; kiosk and central must not drift apart.
"""
from __future__ import annotations

import csv
import html
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

# final_decision: a guard's allow or deny replaces the door's; an exit (taken only for someone
# let in) stands for allow. Every filter, CSV row and report figure here reads it.
from .model import (
    ALLOW,
    CONFIRMED,
    LIKELY,
    NOT_DETECTED,
    OUTCOMES,
    PRESENCE_OUTCOMES,
    REVIEW,
    STATUSES,
    VALID,
    final_decision,
    iso,
    parse_iso,
)
from .names import normalise

__all__ = ["BadParameter", "Filters", "bound", "day_bound", "page_limit", "cursor_param", "final_decision", "fold",
           "nfc_entry", "public", "totals", "CSV_COLUMNS", "csv_row", "safe_cell", "csv_chunks", "daily_report",
           "report_csv", "report_html", "report_table", "shown_cell", "shown_rows", "LANGUAGES"]

DECISIONS = OUTCOMES
MAX_ARG_CHARS = 100             # a text parameter (site, kiosk, q); ids and names are shorter


class BadParameter(ValueError):
    """A query parameter that cannot be read; the message names it (an API answers 400)."""


# -- names ----------------------------------------------------------------------------------
def fold(text: str | None) -> str:
    """Text as a search compares it: NFC, case folded, Vietnamese diacritics removed (đ -> d)."""
    return normalise(text) if text else ""


def nfc_entry(entry: dict) -> dict:
    """`entry` with its holder's name in NFC (one spelling per name, whatever the phone sent)."""
    declaration = entry.get("declaration")
    if not isinstance(declaration, dict):
        return entry
    holder = declaration.get("holder")
    if not isinstance(holder, str) or unicodedata.is_normalized("NFC", holder):
        return entry
    return {**entry, "declaration": {**declaration, "holder": unicodedata.normalize("NFC", holder)}}


def public(entry: Mapping) -> dict:
    """An entry as operators get it (the payload fingerprint stays with the kiosk's records)."""
    return {k: v for k, v in entry.items() if k != "fingerprint"}


# -- filters --------------------------------------------------------------------------------
def bound(value: str | None, tz, end: bool = False) -> str | None:
    """A from/to bound as ISO UTC text: a date (YYYY-MM-DD) means local midnight in `tz` (a
    `to` date includes that whole day), anything else is read as an ISO-8601 time (local in
    `tz` when it names no zone). ValueError when neither."""
    if not value:
        return None
    if len(value) > 40:
        raise ValueError(value)
    if len(value) == 10:
        return day_bound(date.fromisoformat(value), tz, end)
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return iso((t if t.tzinfo else t.replace(tzinfo=tz)).timestamp())


def day_bound(day: date, tz, end: bool = False) -> str:
    """Local midnight of `day` in `tz` as ISO UTC text; with `end`, the midnight after it."""
    day = day + (timedelta(days=1) if end else timedelta())
    return iso(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def page_limit(value: str | None, default: int, most: int) -> int:
    """The `limit` parameter: a whole number from 1, cut to `most`; `default` when absent."""
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 12) or int(value) < 1:
        raise BadParameter(f"limit must be a whole number from 1 to {most}")
    return min(int(value), most)


# A ULID: 26 Crockford base32 characters, the first at most 7 (48 bits of milliseconds).
_ENTRY_ID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def cursor_param(value: str | None) -> str | None:
    """The `cursor` parameter: an entry id (the next_cursor of an earlier page) or None."""
    if value is None:
        return None
    if not _ENTRY_ID.fullmatch(value):
        raise BadParameter("cursor must be a next_cursor from an earlier page")
    return value


def _text_param(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if not value:
        return None
    if len(value) > MAX_ARG_CHARS or any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise BadParameter(f"{name} must be printable text of at most {MAX_ARG_CHARS} characters")
    return value


@dataclass(frozen=True)
class Filters:
    """The entry filters of both APIs.

    :param since: ISO UTC text, inclusive; None = from the start.
    :param until: ISO UTC text, exclusive; None = to the end.
    :param decision: the final decision (after overrides).
    :param app: the contact-tracing app's presence outcome.
    :param status: the declaration's status.
    :param q: text in the holder's name, folded (case and diacritics).
    :param site: the site id (the central holds many).
    :param kiosk: the kiosk id.
    """
    since: str | None = None
    until: str | None = None
    decision: str | None = None
    app: str | None = None
    status: str | None = None
    q: str = ""
    site: str | None = None
    kiosk: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str], tz) -> Filters:
        """Filters from query parameters (from, to, decision, app, status, q, site, kiosk), the
        dates local days in `tz`. BadParameter names the first one that cannot be read."""
        edges = []
        for name, end in (("from", False), ("to", True)):
            value = args.get(name)
            try:
                edges.append(bound(value, tz, end))
            except (ValueError, OverflowError, OSError):   # OverflowError, OSError: past year 9999
                raise BadParameter(f"{name} must be a date (YYYY-MM-DD, a local day) or an ISO-8601 time, "
                                   f"not {str(value)[:40]!r}") from None
        choices = {}
        for name, allowed in (("decision", DECISIONS), ("app", PRESENCE_OUTCOMES), ("status", STATUSES)):
            value = args.get(name) or None
            if value is not None and value not in allowed:
                raise BadParameter(f"{name} must be one of {', '.join(allowed)}")
            choices[name] = value
        q = _text_param(args, "q")
        return cls(edges[0], edges[1], q=fold(q), site=_text_param(args, "site"), kiosk=_text_param(args, "kiosk"),
                   **choices)

    def match(self, d: Mapping) -> bool:
        """Whether entry `d` passes every filter, its time included."""
        return ((self.since is None or d["time"] >= self.since) and (self.until is None or d["time"] < self.until)
                and (self.site is None or d["site"] == self.site) and (self.kiosk is None or d["kiosk"] == self.kiosk)
                and self.match_content(d))

    def match_content(self, d: Mapping) -> bool:
        """Whether entry `d` passes the filters other than time, site and kiosk (the ones a
        store cannot index)."""
        return ((self.decision is None or final_decision(d) == self.decision)
                and (self.app is None or d["ble"]["outcome"] == self.app)
                and (self.status is None or d["declaration"]["status"] == self.status)
                and (not self.q or self.q in fold(d["declaration"].get("holder"))))


# -- CSV for Excel ----------------------------------------------------------------------------
CSV_COLUMNS = ("id", "time", "decision", "reasons", "holder", "format", "kind", "status", "app", "family",
               "rssi", "override", "override_reason", "direction")

# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell Excel shows as text: text starting like a formula gets a leading apostrophe
    (OWASP's rule). Numbers stay numbers (a negative RSSI is not a formula)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(entry: Mapping, tz) -> list:
    """An entry as a row of CSV_COLUMNS, its time local in `tz`; the decision is the final one."""
    override = entry.get("override") or {}
    rssi = entry["ble"].get("rssi")
    return [entry["id"], datetime.fromtimestamp(parse_iso(entry["time"]), tz).strftime("%Y-%m-%d %H:%M:%S"),
            final_decision(entry), "; ".join(entry["reasons"]), entry["declaration"].get("holder") or "",
            entry["declaration"]["format"], entry["declaration"].get("kind") or "", entry["declaration"]["status"],
            entry["ble"]["outcome"], entry["ble"].get("family") or "", "" if rssi is None else rssi,
            override.get("action", ""), override.get("reason") or "", entry["direction"]]


def csv_chunks(rows: Iterable[list], header: Iterable[str], chunk: int = 64 * 1024) -> Iterator[str]:
    """CSV text for Excel: a UTF-8 BOM first (else Excel misreads Vietnamese), CRLF line ends,
    fields quoted when they hold commas, quotes or line breaks, every cell through safe_cell.

    :param chunk: characters gathered before a piece is handed out.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    yield "\ufeff"
    writer.writerow([safe_cell(c) for c in header])
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
        if buffer.tell() > chunk:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# -- the daily report ---------------------------------------------------------------------------
OVERRIDE_ACTIONS = ("allow", "deny", "exit")
APP_OUTCOMES = (CONFIRMED, LIKELY, NOT_DETECTED)


def _visitor(d: Mapping) -> str:
    # The fingerprint is keyed per kiosk (each kiosk has its own key), so the same code at two
    # kiosks counts twice; an entry without one (an import of the public form) is its own visitor.
    return f"{d['kiosk']}\n{d['fingerprint']}" if d.get("fingerprint") else f"entry\n{d['id']}"


def _share(count: int, n: int) -> float:
    return round(count / n, 4) if n else 0.0


def totals(items: list[Mapping]) -> dict:
    n = len(items)
    final = [final_decision(d) for d in items]
    actions = [(d.get("override") or {}).get("action") for d in items]
    apps = [(d.get("ble") or {}).get("outcome") for d in items]
    symptoms: dict[str, int] = {}
    for d in items:
        for flag in (d.get("declaration") or {}).get("flags") or ():
            symptoms[flag] = symptoms.get(flag, 0) + 1
    app_share = {k: _share(apps.count(k), n) for k in APP_OUTCOMES}
    return {
        "entries": n,
        "admitted": sum(f == ALLOW and d["direction"] == "in" for f, d in zip(final, items, strict=True)),
        **{k: final.count(k) for k in DECISIONS},
        "sent_to_review": sum(d["decision"] == REVIEW for d in items),
        "overrides": {k: actions.count(k) for k in OVERRIDE_ACTIONS},
        "exits": sum(a == "exit" or d["direction"] == "out" for a, d in zip(actions, items, strict=True)),
        "unique_visitors": len({_visitor(d) for d in items}),
        "app_share": app_share,
        "app_confirmed_share": app_share[CONFIRMED],
        "valid_declaration_share": _share(sum((d.get("declaration") or {}).get("status") == VALID for d in items), n),
        "with_symptoms": sum(bool((d.get("declaration") or {}).get("flags")) for d in items),
        "symptoms": dict(sorted(symptoms.items())),
    }


def daily_report(docs: Iterable[Mapping], day: date, tz, site: str, kiosks: Iterable[str] | None = None) -> dict:
    """The daily report of `site` for the local `day`: the figures of the day and of each local
    hour, decisions as finally taken (model.final_decision).

    :param docs: the day's entries (JSON form); those outside the day are counted all the same.
    :param tz: the local time zone (a tzinfo) the hours are counted in.
    :param kiosks: the site's kiosks to name; None = the kiosks of `docs`.
    :returns: a JSON-ready dict: date, site, kiosks, the totals (entries, admitted, allow, deny,
        review, sent_to_review, overrides by action, exits, unique_visitors, app_share by outcome,
        app_confirmed_share, valid_declaration_share, with_symptoms, symptoms by flag) and
        by_hour, a list of the same totals with the local hour, hours without entries left out.
    """
    docs = list(docs)
    by_hour: dict[int, list] = {}
    for d in docs:
        by_hour.setdefault(datetime.fromtimestamp(parse_iso(d["time"]), tz).hour, []).append(d)
    names = sorted(set(kiosks) if kiosks is not None else {d["kiosk"] for d in docs})
    return {"date": day.isoformat(), "site": site, "kiosks": names, **totals(docs),
            "by_hour": [{"hour": h, **totals(by_hour[h])} for h in sorted(by_hour)]}


LANGUAGES = ("vi", "en")
LABELS = {
    "vi": {"title": "Báo cáo hằng ngày điểm kiểm dịch", "site": "Điểm kiểm dịch", "date": "Ngày",
           "kiosks": "Máy kiểm tra", "hour": "Giờ", "total": "Tổng", "entries": "Lượt quét",
           "admitted": "Số người được vào", "allow": "Cho vào (quyết định cuối)", "deny": "Từ chối",
           "review": "Chưa quyết định", "sent_to_review": "Chuyển bảo vệ xem xét",
           "override_allow": "Bảo vệ cho vào", "override_deny": "Bảo vệ từ chối", "override_exit": "Bảo vệ cho ra",
           "exits": "Lượt ra", "unique_visitors": "Số người khác nhau",
           "app_confirmed": "Tỷ lệ có ứng dụng (xác nhận)", "app_likely": "Tỷ lệ có ứng dụng (có thể)",
           "app_not_detected": "Tỷ lệ không thấy ứng dụng", "valid_declaration": "Tỷ lệ khai báo hợp lệ",
           "with_symptoms": "Khai báo có triệu chứng", "symptoms": "Triệu chứng đã khai", "none": "không có"},
    "en": {"title": "Checkpoint daily report", "site": "Site", "date": "Date", "kiosks": "Kiosks", "hour": "Hour",
           "total": "Total", "entries": "Scans", "admitted": "People admitted", "allow": "Allowed (final)",
           "deny": "Denied", "review": "Undecided", "sent_to_review": "Sent to the guard",
           "override_allow": "Guard allowed", "override_deny": "Guard denied", "override_exit": "Guard let out",
           "exits": "Exits", "unique_visitors": "Unique visitors",
           "app_confirmed": "Share with the app (confirmed)", "app_likely": "Share with the app (likely)",
           "app_not_detected": "Share without the app", "valid_declaration": "Share with a valid declaration",
           "with_symptoms": "Declared symptoms", "symptoms": "Symptoms declared", "none": "none"},
}
# The report's columns: (label key, the value of a totals dict).
_COLUMNS: tuple[tuple[str, Callable[[Mapping], Any]], ...] = (
    ("entries", lambda t: t["entries"]), ("admitted", lambda t: t["admitted"]), ("allow", lambda t: t["allow"]),
    ("deny", lambda t: t["deny"]), ("review", lambda t: t["review"]), ("sent_to_review", lambda t: t["sent_to_review"]),
    ("override_allow", lambda t: t["overrides"]["allow"]), ("override_deny", lambda t: t["overrides"]["deny"]),
    ("override_exit", lambda t: t["overrides"]["exit"]), ("exits", lambda t: t["exits"]),
    ("unique_visitors", lambda t: t["unique_visitors"]),
    ("app_confirmed", lambda t: t["app_share"]["confirmed"]), ("app_likely", lambda t: t["app_share"]["likely"]),
    ("app_not_detected", lambda t: t["app_share"]["not_detected"]),
    ("valid_declaration", lambda t: t["valid_declaration_share"]), ("with_symptoms", lambda t: t["with_symptoms"]),
)


def report_table(report: Mapping, language: str = "vi") -> tuple[list[str], list[list]]:
    """The report as a table: (header, a row per hour then the total row), labels in `language`."""
    words = LABELS.get(language, LABELS["vi"])
    header = [words["hour"]] + [words[key] for key, _ in _COLUMNS]
    rows = [[h["hour"]] + [value(h) for _, value in _COLUMNS] for h in report["by_hour"]]
    rows.append([words["total"]] + [value(report) for _, value in _COLUMNS])
    return header, rows


def shown_cell(value: Any, language: str = "vi") -> str:
    """A report table's cell as a person reads it: a share as a percentage (a decimal comma
    in Vietnamese), a count as it is. The CSV keeps the plain numbers."""
    if isinstance(value, float):
        text = f"{value * 100:.1f}%"
        return text.replace(".", ",") if language == "vi" else text
    return str(value)


def shown_rows(rows: list[list], language: str = "vi") -> list[list[str]]:
    """report_table's rows as a page shows them: the hour as "06:00", every other cell by shown_cell."""
    return [[f"{r[0]:02d}:00" if isinstance(r[0], int) else str(r[0])] + [shown_cell(v, language) for v in r[1:]]
            for r in rows]


def report_csv(report: Mapping, language: str = "vi") -> bytes:
    """The report's CSV for Excel (UTF-8 with a BOM, CRLF): the operator APIs' and the mail's."""
    header, rows = report_table(report, language)
    return "".join(csv_chunks(rows, header)).encode("utf-8")


def report_html(report: Mapping, language: str = "vi") -> str:
    """The report as a printable HTML page (A4, no script), labels in `language`."""
    words = LABELS.get(language, LABELS["vi"])
    esc = html.escape
    header, rows = report_table(report, language)

    symptoms = ", ".join(f"{esc(k)}: {v}" for k, v in report["symptoms"].items()) or words["none"]
    return "\n".join([
        "<!doctype html>", f'<html lang="{esc(language)}"><head><meta charset="utf-8">',
        f"<title>{esc(words['title'])} {esc(report['site'])} {esc(report['date'])}</title>",
        "<style>@page{size:A4 landscape;margin:12mm}body{font:11pt sans-serif}"
        "table{border-collapse:collapse;font-size:9pt}th,td{border:1px solid #888;padding:2px 4px;text-align:right}"
        "th{background:#eee}</style></head><body>",
        f"<h1>{esc(words['title'])}</h1>",
        f"<p>{esc(words['site'])}: <b>{esc(report['site'])}</b> &middot; {esc(words['date'])}: "
        f"<b>{esc(report['date'])}</b> &middot; {esc(words['kiosks'])}: {esc(', '.join(report['kiosks']) or '-')}</p>",
        f"<p>{esc(words['symptoms'])}: {symptoms}</p>",
        "<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>",
        *("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in shown_rows(rows, language)),
        "</tbody></table></body></html>", ""])

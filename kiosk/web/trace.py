"""Contact tracing on the kiosk's own log: GET /api/v1/trace for a tracer token only.

A tracer token (`web.tracer_tokens`, SHA-256 digests like the operators') is a credential of
its own: an operator token gets 403. Every query (a name search or a trace) is appended to
the audit file `trace-audit.jsonl` in the data folder, fsynced, before the answer leaves:
who, when, for whom, the reason typed in and how many were listed. Answers are never cached.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request

from .. import names, trace, trace_columns
from ..export import csv_chunks
from ..model import iso, parse_iso, text_problem
from ..store.audit import append_audit, read_audit
from .params import is_entry_id, trace_page
from .ratelimit import RateLimit

bp = Blueprint("trace", __name__, url_prefix="/api/v1")
log = logging.getLogger("kiosk.trace")

MAX_REASON = 200            # characters of the reason typed in
MAX_QUERY = 100             # characters of a name search
MAX_ID = 20                 # characters of an ID number (CCCD: 12 digits; passports fewer)
MAX_AUDIT_LIST = 1000       # audit records per GET /trace/audit
MAX_PEOPLE = 50             # people per name search


class BadRequest(ValueError):
    pass


def _kiosk():
    return current_app.extensions["kiosk"]


def _digests(setting: str) -> list[tuple[str, str]]:
    out = []
    for item in _kiosk().settings[setting]:
        name, _, digest = item.rpartition(":")
        out.append((name or digest[:8], digest.lower()))
    return out


def _who(token: str, setting: str) -> str | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    who = None
    for name, allowed in _digests(setting):           # every digest compared, no early exit
        if hmac.compare_digest(digest, allowed) and token:
            who = name
    return who


def init_app(app) -> None:
    """The trace routes' own rate limit (web.rate_limit a minute per address), apart from the
    operator API's: neither role's requests use up the other's."""
    app.extensions["trace_rate"] = RateLimit(app.extensions["kiosk"].settings["web.rate_limit"])


@bp.before_request
def require_tracer():
    if not current_app.extensions["trace_rate"].allow(request.remote_addr or ""):
        return jsonify(error="too many requests: wait a minute"), 429
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    who = _who(token, "web.tracer_tokens")
    if who is None:
        if token and _who(token, "web.operator_tokens"):
            return jsonify(error="contact tracing needs a tracer token; an operator token is not one"), 403
        return jsonify(error="a valid tracer token is required"), 401
    g.tracer = who
    if request.content_length or request.headers.get("Transfer-Encoding"):
        return jsonify(error="the trace API takes no request body"), 413
    return None


@bp.after_request
def never_cached(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(BadRequest)
def bad_request(e):
    return jsonify(error=str(e)), 400


def _text(name: str, most: int, required: bool = False) -> str | None:
    value = request.args.get(name)
    if not value:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if len(value) > most or text_problem(value):
        raise BadRequest(f"{name} must be printable text of at most {most} characters")
    return value


def _number(name: str, default: float, low: float, high: float) -> float:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number from {low:g} to {high:g}") from None
    if not low <= number <= high:          # NaN fails too
        raise BadRequest(f"{name} must be a number from {low:g} to {high:g}")
    return number


def audit(record: dict) -> None:
    """Append one query to the audit file (fsynced): no answer without its record."""
    append_audit(_kiosk().data_dir, record)
    log.info("trace by %s: %s: %d listed", record["who"], record["kind"], record["listed"])


@bp.get("/trace")
def trace_view():
    """Search people by name (`q`), or trace the person of an entry (`entry`)."""
    kiosk = _kiosk()
    settings = kiosk.settings
    reason = _text("reason", MAX_REASON, required=True)
    query, entry_id, id_number = _text("q", MAX_QUERY), request.args.get("entry"), _text("id_number", MAX_ID)
    if sum(x is not None for x in (query, entry_id, id_number)) != 1:
        raise BadRequest("give one of q (a name to search), id_number (an ID number declared on the form) "
                         "or entry (the id of the traced person's entry)")
    days = _number("days", settings["trace.window_days"], 1, settings["store.retention_days"])
    min_overlap = _number("min_overlap", settings["trace.min_overlap"], 0, 1440) * 60
    now = kiosk.clock.now()
    until = now
    if request.args.get("until"):
        try:
            until = min(parse_iso(_text("until", 40)), now)
        except (ValueError, OverflowError, OSError):
            raise BadRequest("until must be an ISO-8601 time") from None
    since = until - days * 86400
    default_stay, max_stay = settings["trace.default_stay"] * 3600, settings["trace.max_stay"] * 3600
    base = {"who": g.tracer, "at": iso(now), "reason": reason, "from": iso(since), "to": iso(until)}
    if query is not None or id_number is not None:
        # The window's tracing rows (names, times, ids) as arrays, not its entries
        # (docs/performance.md).
        cols = kiosk.log.trace_columns(since=iso(since - max_stay), until=iso(until))
    if query is not None:
        people = [{k: p[k] for k in ("holder", "last_seen", "last_entry")}
                  for p in trace_columns.people_named(cols, query, MAX_PEOPLE)]
        audit({**base, "kind": "search", "for": query, "listed": len(people)})
        return jsonify(people=people)
    if id_number is not None:
        # Entries carry no ID number: the form's declarations under its keyed hash give the
        # names, and the names the people (the ID number itself is neither kept nor logged).
        id_hash = kiosk.id_hash(id_number)
        declared = {d["name"] for d in kiosk.log.declarations_since(iso(since - 86400)) if d.get("id_hash") == id_hash}
        people = [{k: p[k] for k in ("holder", "last_seen", "last_entry")}
                  for p in trace_columns.people_named(cols, "", 10_000)
                  if any(names.same(p["holder"], n) for n in declared)]
        audit({**base, "kind": "search", "for": f"id_hash:{id_hash[:8]}", "listed": len(people)})
        return jsonify(people=people[:MAX_PEOPLE])
    if not is_entry_id(entry_id):
        raise BadRequest("entry must be an entry id")
    try:
        limit, offset = trace_page(request.args)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    export = request.args.get("format") == "csv"
    target = kiosk.log.trace_row(entry_id)          # read off the writer (the door's appends)
    if target is None:
        return jsonify(error="no such entry"), 404
    # The window's tracing rows (the log's tracing projection) as arrays, not its entries:
    # the same stays and contacts as trace.query_rows, Contact objects made for the page
    # only; the CSV holds every contact (docs/performance.md).
    cols = kiosk.log.trace_columns(since=iso(since - max_stay), until=iso(until))
    mine, total, found = trace_columns.query_columns(cols, target.person, target.site, since, until,
                                                     default_stay, max_stay, min_overlap,
                                                     None if export else limit, 0 if export else offset)
    declarations = kiosk.log.declarations_since(iso(since - 86400))
    found = [c._replace(phone=trace.phone_for(c.holder, declarations, names.same))
             for c in found]
    holder = target.holder
    audit({**base, "kind": "trace", "for": f"{entry_id} {holder or ''}".strip(), "listed": total})
    if export:
        tz = ZoneInfo(settings["timezone"])
        response = Response(csv_chunks((trace.csv_row(c, tz) for c in found), trace.CSV_COLUMNS),
                            mimetype="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = "attachment; filename=contacts.csv"
        return response
    return jsonify(site=target.site, entry=entry_id, holder=holder, window={"from": iso(since), "to": iso(until)},
                   min_overlap_minutes=min_overlap / 60, stays=[s.to_json() for s in mine], total=total,
                   contacts=[c.to_json() for c in found])


@bp.get("/trace/audit")
def trace_audit():
    """The latest tracing queries (who, when, for whom, why), newest first."""
    value = request.args.get("limit", "100")
    if not (value.isascii() and value.isdigit() and len(value) <= 6) or not 1 <= int(value) <= MAX_AUDIT_LIST:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_AUDIT_LIST}")
    return jsonify(queries=read_audit(_kiosk().data_dir, int(value)))


__all__ = ["bp", "init_app"]

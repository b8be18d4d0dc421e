"""The operator API on the LAN: token-protected entries (JSON, CSV), daily report, health.

Tokens are configured as SHA-256 hex digests (`web.operator_tokens`, optionally
"name:digest" to name the operator in the log), compared in constant time; a request
without a valid one gets 401 and no data. One address may make `web.rate_limit` requests
a minute. Every export of personal data is logged: who, when, which range, how many.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..export import CSV_COLUMNS, DECISIONS, bound, csv_chunks, csv_row, daily_summary, public
from ..model import PRESENCE_OUTCOMES, STATUSES, final_decision
from .openapi import SPEC
from .params import is_entry_id
from .ratelimit import RateLimit

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger("kiosk.export")



class BadRequest(ValueError):
    pass


def _kiosk():
    return current_app.extensions["kiosk"]


def _operators() -> list[tuple[str, str]]:
    out = []
    for item in _kiosk().settings["web.operator_tokens"]:
        name, _, digest = item.rpartition(":")
        out.append((name or digest[:8], digest.lower()))
    return out


def init_app(app) -> None:
    """Per-app state: the rate limit by client address."""
    app.extensions["api_rate"] = RateLimit(app.extensions["kiosk"].settings["web.rate_limit"])


@bp.before_request
def require_token():
    if request.endpoint == "api.openapi":
        return None
    if not current_app.extensions["api_rate"].allow(request.remote_addr or ""):
        return jsonify(error="too many requests: wait a minute"), 429
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    digest = hashlib.sha256(token.encode()).hexdigest()
    who = None
    for name, allowed in _operators():            # every digest compared, no early exit
        if hmac.compare_digest(digest, allowed) and token:
            who = name
    if who is None:
        return jsonify(error="a valid operator token is required"), 401
    g.operator = who
    # Checked after the token: no route takes a body, and none is parsed.
    if request.content_length or request.headers.get("Transfer-Encoding"):
        return jsonify(error="the operator API takes no request body"), 413
    cursor = request.args.get("cursor")
    if cursor is not None and not is_entry_id(cursor):
        raise BadRequest("cursor must be a next_cursor from an earlier page")


@bp.errorhandler(BadRequest)
def bad_request(e):
    return jsonify(error=str(e)), 400


def _bound(value: str | None, tz, end: bool = False) -> str | None:
    try:
        return bound(value, tz, end)
    except (ValueError, OverflowError, OSError):      # OverflowError: a day past 9999-12-31
        raise BadRequest(f"{value!r} is not a date (YYYY-MM-DD) or an ISO-8601 time") from None


def _filters():
    args = request.args
    tz = ZoneInfo(_kiosk().settings["timezone"])
    since, until = _bound(args.get("from"), tz), _bound(args.get("to"), tz, end=True)
    decision, app, status = args.get("decision"), args.get("app"), args.get("status")
    for value, allowed, name in ((decision, DECISIONS, "decision"), (app, PRESENCE_OUTCOMES, "app"),
                                 (status, STATUSES, "status")):
        if value is not None and value not in allowed:
            raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    text = (args.get("q") or "").casefold()

    def match(d: dict) -> bool:
        return ((decision is None or final_decision(d) == decision)
                and (app is None or d["ble"]["outcome"] == app)
                and (status is None or d["declaration"]["status"] == status)
                and (not text or text in (d["declaration"].get("holder") or "").casefold()))
    return match, since, until


def _limit(default: int, most: int) -> int:
    try:
        return max(1, min(int(request.args.get("limit", default)), most))
    except ValueError:
        raise BadRequest("limit must be a whole number") from None


@bp.get("/entries")
def entries():
    match, since, until = _filters()
    limit = _limit(100, 1000)
    page = _kiosk().log.search(match=match, since=since, until=until, after_id=request.args.get("cursor"),
                                limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    log.info("export by %s: entries json from=%s to=%s cursor=%s: %d", g.operator, since, until,
             request.args.get("cursor"), len(page))
    return jsonify(entries=[public(d) for d in page], next_cursor=page[-1]["id"] if more else None)


def _csv(rows, header) -> Response:
    return Response(csv_chunks(rows, header), mimetype="text/csv; charset=utf-8")


@bp.get("/entries.csv")
def entries_csv():
    match, since, until = _filters()
    tz = ZoneInfo(_kiosk().settings["timezone"])
    docs = _kiosk().log.entries(match=match, since=since, until=until)
    operator = g.operator

    def rows():
        # Streamed as read (a day at a time), beside the entry log's writer: a long export
        # neither holds the range in memory nor holds up the door.
        n = 0
        try:
            for d in docs:
                n += 1
                yield csv_row(d, tz)
        finally:
            docs.close()
            log.info("export by %s: entries csv from=%s to=%s: %d", operator, since, until, n)
    response = _csv(rows(), CSV_COLUMNS)
    response.headers["Content-Disposition"] = "attachment; filename=entries.csv"
    return response


def daily_report(docs: list[dict], day: date, tz) -> dict:
    settings = _kiosk().settings
    return {"date": day.isoformat(), "site": settings["site.id"], "kiosk": settings["kiosk.id"],
            **daily_summary(docs, tz)}


@bp.get("/reports/daily")
def report():
    kiosk = _kiosk()
    tz = ZoneInfo(kiosk.settings["timezone"])
    try:
        day = date.fromisoformat(request.args.get("date") or datetime.fromtimestamp(kiosk.clock.now(), tz).date().isoformat())
    except ValueError:
        raise BadRequest("date must be YYYY-MM-DD") from None
    since, until = _bound(day.isoformat(), tz), _bound(day.isoformat(), tz, end=True)
    result = daily_report(kiosk.log.search(since=since, until=until, limit=1_000_000), day, tz)
    if request.args.get("format") == "csv":
        columns = ("hour", "entries", *DECISIONS, "app_confirmed_share", "valid_declaration_share")
        rows = [[r[c] for c in columns] for r in result["by_hour"]]
        rows.append(["total"] + [result[c] for c in columns[1:]])
        return _csv(rows, columns)
    return jsonify(result)


@bp.get("/health")
def health():
    return jsonify(_kiosk().health())


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)

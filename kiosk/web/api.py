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

from ..entries import (
    CSV_COLUMNS,
    LANGUAGES,
    BadParameter,
    Filters,
    bound,
    csv_chunks,
    csv_row,
    daily_report,
    page_limit,
    public,
    report_csv,
    report_html,
)
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


def _filters() -> Filters:
    try:
        return Filters.from_args(request.args, ZoneInfo(_kiosk().settings["timezone"]))
    except BadParameter as e:
        raise BadRequest(str(e)) from None


def _limit(default: int, most: int) -> int:
    try:
        return page_limit(request.args.get("limit"), default, most)
    except BadParameter as e:
        raise BadRequest(str(e)) from None


@bp.get("/entries")
def entries():
    filters = _filters()
    since, until = filters.since, filters.until
    limit = _limit(100, 1000)
    page = _kiosk().log.search(match=filters.match, since=since, until=until, after_id=request.args.get("cursor"),
                                limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    log.info("export by %s: entries json from=%s to=%s cursor=%s: %d", g.operator, since, until,
             request.args.get("cursor"), len(page))
    return jsonify(entries=[public(d) for d in page], next_cursor=page[-1]["id"] if more else None)


# content_type, not mimetype: Flask adds "; charset=utf-8" to a text mimetype itself.
CSV_TYPE = "text/csv; charset=utf-8"


def _csv(rows, header) -> Response:
    return Response(csv_chunks(rows, header), content_type=CSV_TYPE)


@bp.get("/entries.csv")
def entries_csv():
    filters = _filters()
    since, until = filters.since, filters.until
    tz = ZoneInfo(_kiosk().settings["timezone"])
    docs = _kiosk().log.entries(match=filters.match, since=since, until=until)
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


@bp.get("/reports/daily")
def report():
    kiosk = _kiosk()
    settings = kiosk.settings
    tz = ZoneInfo(settings["timezone"])
    try:
        today = datetime.fromtimestamp(kiosk.clock.now(), tz).date().isoformat()
        day = date.fromisoformat(request.args.get("date") or today)
        since, until = bound(day.isoformat(), tz), bound(day.isoformat(), tz, end=True)
    except (ValueError, OverflowError, OSError):      # OverflowError, OSError: a day past 9999-12-31
        raise BadRequest("date must be YYYY-MM-DD") from None
    fmt, language = request.args.get("format") or "json", request.args.get("language") or settings["report.language"]
    if fmt not in REPORT_FORMATS:
        raise BadRequest(f"format must be one of {', '.join(REPORT_FORMATS)}")
    if language not in LANGUAGES:
        raise BadRequest(f"language must be one of {', '.join(LANGUAGES)}")
    docs = kiosk.log.entries(since=since, until=until)
    try:
        result = daily_report(docs, day, tz, settings["site.id"], [settings["kiosk.id"]])
    finally:
        docs.close()
    return report_response(result, fmt, language)


REPORT_FORMATS = ("json", "csv", "html")


def report_response(result: dict, fmt: str, language: str) -> Response:
    """The daily report as JSON, CSV (an attachment) or a printable HTML page."""
    if fmt == "csv":
        response = Response(report_csv(result, language), content_type=CSV_TYPE)
        response.headers["Content-Disposition"] = f"attachment; filename=bao-cao-{result['date']}.csv"
        return response
    if fmt == "html":
        return Response(report_html(result, language), content_type="text/html; charset=utf-8")
    return jsonify(result)


@bp.get("/health")
def health():
    return jsonify(_kiosk().health())


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)

"""The central server's Flask app: kiosks POST batches, operators read entries."""
from __future__ import annotations

import json
import logging
import time
from datetime import date
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request, stream_with_context
from sqlalchemy import String
from werkzeug.exceptions import HTTPException

from .. import syncproto
from ..config import SETTINGS
from ..entries import (
    CSV_COLUMNS,
    LANGUAGES,
    BadParameter,
    Filters,
    bound,
    csv_chunks,
    csv_row,
    cursor_param,
    daily_report,
    page_limit,
    public,
)
from ..model import MAX_ENTRY_BYTES, entry_problem, text_problem
from ..web.api import REPORT_FORMATS, report_response
from . import db
from .openapi import SPEC as CENTRAL_SPEC

bp = Blueprint("central", __name__, url_prefix="/api/v1")
log = logging.getLogger("kiosk.central.export")
CSV_TYPE = "text/csv; charset=utf-8"    # content_type: Flask adds a charset to a bare text mimetype
DEFAULT_TZ = "Asia/Ho_Chi_Minh"


def _upper_bound(name: str) -> float:
    """The upper bound of kiosk setting `name` (config.SETTINGS)."""
    bounds = next(s for s in SETTINGS if s.name == name).bounds
    if bounds is None:
        raise LookupError(f"setting {name} has no bounds")
    return bounds[1]


def _stored_length(column: str) -> int:
    """How many characters the central stores in the text column `column` of entries."""
    kind = db.entries.c[column].type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"entries.{column} is not text of a bounded length")
    return kind.length


# The largest batch a kiosk sends is its `sync.batch_size` at the top of its bounds.
MAX_BATCH_ENTRIES = int(_upper_bound("sync.batch_size"))
# Characters each required column holds: a longer value gets a 400, rather than a database error.
STORED_LENGTHS = {k: _stored_length(k) for k in db.REQUIRED}
# Bytes of an ingest body: the entries at a generous budget each, and the envelope around them.
MAX_BODY_BYTES = MAX_BATCH_ENTRIES * MAX_ENTRY_BYTES + 4096
MAX_LIST_LIMIT = 10_000         # entries per GET /entries (a larger limit is cut to this)
MAX_SCAN = 50_000               # rows one GET /entries reads at most (a page may end short, with a next_cursor)
MAX_ARG_CHARS = 100             # a site, kiosk or time-zone parameter (the id columns hold 100)


def create_app(db_url: str = "sqlite:///central.db", engine=None, timezone: str = DEFAULT_TZ,
               language: str = "vi", max_scan: int = MAX_SCAN, reports=None) -> Flask:
    """The central's app on the database at `db_url` (or an engine already connected).

    :param timezone: the zone of local days (from/to dates, the daily report) when a request
        names none in `tz`.
    :param language: the daily report's labels by default (vi, en).
    :param max_scan: rows one GET /entries reads at most before it answers a short page.
    :param reports: the report settings (report_mail.CentralReports): the report page's 'send now'.
    """
    from . import pages

    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    app = Flask(__name__)
    app.config["KIOSK_TZ"] = ZoneInfo(timezone)
    app.config["KIOSK_REPORT_LANGUAGE"] = language
    app.config["KIOSK_MAX_SCAN"] = max_scan
    # Werkzeug answers 413 from the Content-Length header, before reading the body.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["central_db"] = engine if engine is not None else db.connect(db_url)
    app.register_blueprint(bp)
    # The operators' pages, with the session (cookie flags, secret from the database).
    pages.init_app(app, app.extensions["central_db"], reports, timezone)
    from .trace import bp as trace_bp

    app.register_blueprint(trace_bp)

    @app.errorhandler(HTTPException)
    def _error(e):
        if request.blueprint == "pages":
            return pages.error_page(e)
        response = e.get_response()        # keeps headers such as Allow on a 405
        response.data = json.dumps({"error": e.description})
        response.content_type = "application/json"
        return response

    @app.errorhandler(BadParameter)
    def _bad_parameter(e):
        return jsonify(error=str(e)), 400

    @app.errorhandler(Exception)
    def _unexpected(e):
        current_app.logger.exception("%s %s failed", request.method, request.path)
        return jsonify(error="internal error"), 500

    return app


def _engine():
    return current_app.extensions["central_db"]


def _require(role: str):
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    cred = db.find_credential(_engine(), token) if token else None
    if cred is None or cred["role"] != role:
        abort(401, description="a valid token is required")
    g.credential = cred
    return cred


@bp.post("/ingest")
def ingest():
    # The token is a header: without a valid one the body is never read. (waitress receives a
    # whole request before the app runs, so the body limit, not this order, bounds the bytes.)
    cred = _require("kiosk")
    raw = request.get_data(cache=False)         # 413 past MAX_CONTENT_LENGTH, unread
    now = time.time()
    problem = syncproto.check(cred["token_hash"].encode(), request.headers.get("X-Kiosk-Timestamp"),
                              request.headers.get("X-Kiosk-Signature"), raw, now)
    if problem:
        abort(401, description=problem)
    try:
        body = json.loads(raw) if request.is_json else None
    except (ValueError, RecursionError):        # RecursionError: arrays nested thousands deep
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
        abort(400, description="body must be {\"kiosk\": ..., \"entries\": [...]}")
    batch = body["entries"]
    if len(batch) > MAX_BATCH_ENTRIES:
        abort(413, description=f"at most {MAX_BATCH_ENTRIES} entries per batch")
    refusal = _batch_refusal(batch, cred)
    if refusal:
        status, answer = refusal
        return jsonify(answer), status
    try:
        stored, duplicate = db.ingest(_engine(), batch, request.headers["X-Kiosk-Signature"], now,
                                      syncproto.MAX_SKEW)
    except db.Replay:
        abort(409, description="this batch was already received (a replay)")
    except db.ForeignEntries:
        abort(403, description="entry ids of another kiosk or site: the batch is refused")
    status = db.clean_status(body.get("status"))
    if status is not None and cred["site"]:
        db.put_kiosk_status(_engine(), cred["name"], cred["site"], status)
    return jsonify(stored=stored, duplicate=duplicate)


def _batch_refusal(batch: list, cred) -> tuple[int, dict] | None:
    """(status, answer) for the first entry the central must not store, or None. A 400 names
    the entry and the field, so a kiosk (or its operator) can find the one that blocks."""
    for e in batch:
        problem = entry_problem(e)
        entry_id = e.get("id") if isinstance(e, dict) and isinstance(e.get("id"), str) else None
        label = repr(entry_id[:40]) if entry_id else "without an id"
        if problem:
            field, what = problem
            return 400, {"error": f"entry {label}: {field}: {what}", "entry": entry_id, "field": field}
        too_long = [k for k in db.REQUIRED if len(e[k]) > STORED_LENGTHS[k]]
        if too_long:
            return 400, {"error": f"entry {label}: {', '.join(too_long)} longer than the central stores",
                         "entry": entry_id, "field": too_long[0]}
        if e["kiosk"] != cred["name"] or (cred["site"] and e["site"] != cred["site"]):
            return 403, {"error": "entries must come from the kiosk and site of the token", "entry": entry_id}
    return None


def _tz():
    """The time zone of local days: the `tz` parameter, else the central's own."""
    name = request.args.get("tz")
    if not name:
        return current_app.config["KIOSK_TZ"]
    try:
        if len(name) > MAX_ARG_CHARS or text_problem(name):
            raise ValueError(name)
        return ZoneInfo(name)
    # ZoneInfoNotFoundError is a KeyError; ValueError: a path-like or unprintable name.
    except (ValueError, KeyError, OSError):
        raise BadParameter("tz must be a time zone name (Asia/Ho_Chi_Minh)") from None


def _filters() -> Filters:
    return Filters.from_args(request.args, _tz())


def _matching(filters: Filters, after_id: str | None = None, sites=None):
    """The entries passing `filters`, oldest first: site, kiosk, time, cursor and the
    operator's sites in SQL, the rest (final decision, app, status, folded name) on the rows
    as they are read."""
    rows = db.iter_entries(_engine(), filters.site, filters.kiosk, filters.since, filters.until, after_id,
                           sites=sites)
    return (d for d in rows if filters.match_content(d))


@bp.get("/entries")
def entries():
    """Entries in id order, a page at a time, filtered as the kiosk's operator API filters."""
    cred = _require("operator")
    filters = _filters()
    _require_site(cred, filters.site)
    limit = page_limit(request.args.get("limit"), 1000, MAX_LIST_LIMIT)
    rows = db.iter_entries(_engine(), filters.site, filters.kiosk, filters.since, filters.until,
                           cursor_param(request.args.get("cursor")), sites=db.allowed_sites(cred))
    page, next_cursor = [], None
    for scanned, d in enumerate(rows, 1):
        if filters.match_content(d):
            if len(page) == limit:
                next_cursor = page[-1]["id"]
                break
            page.append(d)
        if scanned == current_app.config["KIOSK_MAX_SCAN"]:
            # A filter few rows pass: answer a short (even empty) page and where to go on,
            # rather than hold the request and a thread while the whole table is read.
            next_cursor = d["id"]
            break
    rows.close()
    log.info("export by %s: entries json site=%s from=%s to=%s: %d", g.credential["name"], filters.site,
             filters.since, filters.until, len(page))
    return jsonify(entries=[public(d) for d in page], next_cursor=next_cursor)


@bp.get("/entries.csv")
def entries_csv():
    """The same entries as CSV for Excel, streamed."""
    cred = _require("operator")
    filters, tz = _filters(), _tz()
    _require_site(cred, filters.site)
    who = g.credential["name"]

    def rows():
        n = 0
        try:
            for d in _matching(filters, sites=db.allowed_sites(cred)):
                n += 1
                yield csv_row(d, tz)
        finally:
            log.info("export by %s: entries csv site=%s from=%s to=%s: %d", who, filters.site, filters.since,
                     filters.until, n)
    response = Response(stream_with_context(csv_chunks(rows(), CSV_COLUMNS)), content_type=CSV_TYPE)
    response.headers["Content-Disposition"] = "attachment; filename=entries.csv"
    return response




def _require_site(cred, site: str | None) -> None:
    """403 when the operator's credential may not read `site` (None: no site named; the
    query is then kept to the credential's sites)."""
    if site is not None and not db.may_read(cred, site):
        abort(403, description="this credential may not read that site")




@bp.get("/reports/daily")
def daily():
    """The per-site daily report across the site's kiosks (local day in `tz`): JSON, CSV, HTML."""
    cred = _require("operator")
    site = Filters.from_args({"site": request.args.get("site")}, None).site
    if not site:
        raise BadParameter("site is required")
    _require_site(cred, site)
    tz = _tz()
    day_text = request.args.get("date", "")
    try:
        if len(day_text) != 10:
            raise ValueError(day_text)
        day = date.fromisoformat(day_text)
        since, until = bound(day_text, tz), bound(day_text, tz, end=True)
    # OverflowError and OSError: a day at the end of time.
    except (ValueError, OverflowError, OSError):
        raise BadParameter("date must be YYYY-MM-DD") from None
    fmt = request.args.get("format") or "json"
    language = request.args.get("language") or current_app.config["KIOSK_REPORT_LANGUAGE"]
    if fmt not in REPORT_FORMATS:
        raise BadParameter(f"format must be one of {', '.join(REPORT_FORMATS)}")
    if language not in LANGUAGES:
        raise BadParameter(f"language must be one of {', '.join(LANGUAGES)}")
    report = daily_report(db.iter_entries(_engine(), site=site, since=since, until=until), day, tz, site)
    return report_response(report, fmt, language)     # the kiosk API's answer, the same bytes


@bp.get("/openapi.json")
def openapi():
    """The central's OpenAPI document (no token: it holds no data)."""
    return jsonify(CENTRAL_SPEC)


@bp.get("/health")
def health():
    """Up; and how many site-days' daily reports missed their deadline (unsent since)."""
    from .report_mail import missed

    return jsonify(status="ok", reports_missed=len(missed(_engine())))


@bp.get("/reports/sends")
def report_sends():
    """The daily report's sent state per site and day (latest 14 days), and the missed ones."""
    from .report_mail import missed, recent_sends

    allowed = db.allowed_sites(_require("operator"))
    return jsonify(sends=[r for r in recent_sends(_engine()) if allowed is None or r["site"] in allowed],
                   missed=[r for r in missed(_engine()) if allowed is None or r["site"] in allowed])

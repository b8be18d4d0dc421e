"""The central server's Flask app: kiosks POST batches, operators read entries."""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timezone

from flask import Blueprint, Flask, abort, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import syncproto
from ..config import SETTINGS
from ..model import MAX_ENTRY_BYTES, entry_problem, iso, text_problem

from . import db

bp = Blueprint("central", __name__, url_prefix="/api/v1")

# The largest batch a kiosk sends is its `sync.batch_size` at the top of its bounds.
MAX_BATCH_ENTRIES = int(next(s for s in SETTINGS if s.name == "sync.batch_size").bounds[1])
# Bytes of an ingest body: the entries at a generous budget each, and the envelope around them.
MAX_BODY_BYTES = MAX_BATCH_ENTRIES * MAX_ENTRY_BYTES + 4096
MAX_LIST_LIMIT = 10_000         # entries per GET /entries (a larger limit is cut to this)
MAX_ARG_CHARS = 100             # a site, kiosk or time-zone parameter (the id columns hold 100)


def create_app(db_url: str = "sqlite:///central.db", engine=None) -> Flask:
    """The central's app on the database at `db_url` (or an engine already connected)."""
    app = Flask(__name__)
    # Werkzeug answers 413 from the Content-Length header, before reading the body.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["central_db"] = engine if engine is not None else db.connect(db_url)
    app.register_blueprint(bp)
    from .trace import bp as trace_bp

    app.register_blueprint(trace_bp)

    @app.errorhandler(HTTPException)
    def _error(e):
        response = e.get_response()        # keeps headers such as Allow on a 405
        response.data = json.dumps({"error": e.description})
        response.content_type = "application/json"
        return response

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
        too_long = [k for k in db.REQUIRED if len(e[k]) > db.entries.c[k].type.length]
        if too_long:
            return 400, {"error": f"entry {label}: {', '.join(too_long)} longer than the central stores",
                         "entry": entry_id, "field": too_long[0]}
        if e["kiosk"] != cred["name"] or (cred["site"] and e["site"] != cred["site"]):
            return 403, {"error": "entries must come from the kiosk and site of the token", "entry": entry_id}
    return None


@bp.get("/entries")
def entries():
    """Entries in id order, filtered by site, kiosk and UTC time (from inclusive, to exclusive)."""
    _require("operator")
    return jsonify(entries=db.list_entries(_engine(), _text_arg("site"), _text_arg("kiosk"),
                                           _time_arg("from"), _time_arg("to"), _limit_arg(1000)))


@bp.get("/reports/daily")
def daily():
    """The per-site daily report across the site's kiosks (local day in `tz`)."""
    from zoneinfo import ZoneInfo

    from ..export import bound, daily_summary

    _require("operator")
    site = _text_arg("site")
    if not site:
        abort(400, description="site is required")
    tz_name = _text_arg("tz") or "Asia/Ho_Chi_Minh"
    day_text = request.args.get("date", "")
    try:
        tz = ZoneInfo(tz_name)
        if len(day_text) > 10:
            raise ValueError(day_text)
        day = date.fromisoformat(day_text)
        since, until = bound(day.isoformat(), tz), bound(day.isoformat(), tz, end=True)
    # ZoneInfoNotFoundError is a KeyError; OverflowError and OSError: a day at the end of time.
    except (ValueError, KeyError, OverflowError, OSError):
        abort(400, description="date must be YYYY-MM-DD and tz a time zone name")
    docs = db.list_entries(_engine(), site=site, since=since, until=until, limit=10_000_000)
    kiosks = sorted({d["kiosk"] for d in docs})
    return jsonify(date=day.isoformat(), site=site, kiosks=kiosks, **daily_summary(docs, tz))


@bp.get("/health")
def health():
    """Up; and how many site-days' daily reports missed their deadline (unsent since)."""
    from .report_mail import missed

    return jsonify(status="ok", reports_missed=len(missed(_engine())))


@bp.get("/reports/sends")
def report_sends():
    """The daily report's sent state per site and day (latest 14 days), and the missed ones."""
    from .report_mail import missed, recent_sends

    _require("operator")
    return jsonify(sends=recent_sends(_engine()), missed=missed(_engine()))


def _text_arg(name: str) -> str | None:
    """A text query parameter, None when absent or empty; 400 when unprintable or too long."""
    value = request.args.get(name)
    if not value:
        return None
    if len(value) > MAX_ARG_CHARS or text_problem(value):
        abort(400, description=f"{name} must be printable text of at most {MAX_ARG_CHARS} characters")
    return value


def _time_arg(name: str) -> str | None:
    """An ISO-8601 date or time parameter as the stored UTC text (no zone given = UTC)."""
    value = request.args.get(name)
    if not value:
        return None
    try:
        if len(value) > 40:
            raise ValueError(value)
        t = datetime.fromisoformat(value)
        return iso((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp())
    except (ValueError, OverflowError, OSError):
        abort(400, description=f"{name} must be an ISO-8601 date or time (2026-11-23, 2026-11-23T08:00:00+07:00)")


def _limit_arg(default: int) -> int:
    """The limit parameter: a whole number from 1; above MAX_LIST_LIMIT it is cut to it."""
    value = request.args.get("limit")
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 12) or int(value) < 1:
        abort(400, description=f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}")
    return min(int(value), MAX_LIST_LIMIT)

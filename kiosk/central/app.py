"""The central server's Flask app: kiosks POST batches, operators read entries."""
from __future__ import annotations

import time

from flask import Blueprint, Flask, abort, current_app, g, jsonify, request

from .. import syncproto

from . import db

bp = Blueprint("central", __name__, url_prefix="/api/v1")


def create_app(db_url: str = "sqlite:///central.db", engine=None) -> Flask:
    app = Flask(__name__)
    app.extensions["central_db"] = engine if engine is not None else db.connect(db_url)
    app.register_blueprint(bp)

    @app.errorhandler(400)
    @app.errorhandler(401)
    @app.errorhandler(403)
    @app.errorhandler(409)
    def _error(e):
        return jsonify(error=e.description), e.code

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
    cred = _require("kiosk")
    raw = request.get_data(cache=True)
    now = time.time()
    problem = syncproto.check(cred["token_hash"].encode(), request.headers.get("X-Kiosk-Timestamp"),
                              request.headers.get("X-Kiosk-Signature"), raw, now)
    if problem:
        abort(401, description=problem)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
        abort(400, description="body must be {\"kiosk\": ..., \"entries\": [...]}")
    batch = body["entries"]
    for e in batch:
        if not isinstance(e, dict) or any(not isinstance(e.get(k), str) for k in db.REQUIRED):
            abort(400, description=f"each entry needs text fields {', '.join(db.REQUIRED)}")
        too_long = [k for k in db.REQUIRED if len(e[k]) > db.entries.c[k].type.length]
        if too_long:
            abort(400, description=f"entry {e['id'][:40]!r}: {', '.join(too_long)} longer than the central stores")
        if e["kiosk"] != cred["name"] or (cred["site"] and e["site"] != cred["site"]):
            abort(403, description="entries must come from the kiosk and site of the token")
    try:
        stored, duplicate = db.ingest(_engine(), batch, request.headers["X-Kiosk-Signature"], now,
                                      syncproto.MAX_SKEW)
    except db.Replay:
        abort(409, description="this batch was already received (a replay)")
    return jsonify(stored=stored, duplicate=duplicate)


@bp.get("/entries")
def entries():
    _require("operator")
    args = request.args
    limit = min(int(args.get("limit", 1000)), 10000)
    return jsonify(entries=db.list_entries(_engine(), args.get("site"), args.get("kiosk"),
                                           args.get("from"), args.get("to"), limit))


@bp.get("/reports/daily")
def daily():
    """The per-site daily report across the site's kiosks (local day in `tz`)."""
    from datetime import date
    from zoneinfo import ZoneInfo

    from ..export import bound, daily_summary

    _require("operator")
    args = request.args
    site = args.get("site")
    if not site:
        abort(400, description="site is required")
    try:
        tz = ZoneInfo(args.get("tz", "Asia/Ho_Chi_Minh"))
        day = date.fromisoformat(args.get("date", ""))
    except (ValueError, KeyError):
        abort(400, description="date must be YYYY-MM-DD and tz a time zone name")
    docs = db.list_entries(_engine(), site=site, since=bound(day.isoformat(), tz),
                           until=bound(day.isoformat(), tz, end=True), limit=10_000_000)
    kiosks = sorted({d["kiosk"] for d in docs})
    return jsonify(date=day.isoformat(), site=site, kiosks=kiosks, **daily_summary(docs, tz))


@bp.get("/health")
def health():
    return jsonify(status="ok")

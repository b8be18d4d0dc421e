"""The operator API on the LAN: token-protected entries and health."""
from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, abort, current_app, jsonify, request

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _kiosk():
    return current_app.extensions["kiosk"]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@bp.before_request
def require_token():
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    digest = token_digest(token)
    # Compare against every configured digest in constant time; no early exit.
    ok = False
    for allowed in _kiosk().settings["web.operator_tokens"]:
        ok |= hmac.compare_digest(digest, allowed.lower())
    if not token or not ok:
        return jsonify(error="a valid operator token is required"), 401


@bp.get("/entries")
def entries():
    args = request.args
    try:
        limit = max(1, min(int(args.get("limit", 1000)), 10000))
    except ValueError:
        abort(400)
    return jsonify(entries=_kiosk().log.query(args.get("from"), args.get("to"), limit))


@bp.get("/health")
def health():
    return jsonify(_kiosk().health())

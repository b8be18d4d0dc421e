"""The guard's touchscreen: the latest decision, recent entries, today's counts, health, and
the guard's overrides; live over server-sent events. Served to the kiosk's own browser only
(loopback) unless `web.guard_from_lan` says otherwise."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import queue
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from ..events import CLOSED
from ..model import parse_iso
from .i18n import LANGUAGES, OVERRIDE_REASONS, catalogue, reason_text

bp = Blueprint("guard", __name__)

HEARTBEAT = 5.0      # seconds between health updates (and keep-alives) on the SSE stream
MIN_FREE_MB = 200
# Each open stream holds one of the web server's 8 threads (checkpoint.py) for as long as it
# lasts; past this many, a screen is answered 503 and its EventSource retries, so the pages and
# the operator API always keep threads (bench/soak.py: 20 screens starved them, 30 s pulls).
MAX_STREAMS = 4


def _kiosk():
    return current_app.extensions["kiosk"]


@bp.before_request
def only_the_kiosks_own_screen():
    if _kiosk().settings["web.guard_from_lan"]:
        return None
    try:
        if ipaddress.ip_address(request.remote_addr or "0.0.0.0").is_loopback:
            return None
    except ValueError:
        pass
    abort(403)


def _lang() -> str:
    lang = request.args.get("lang") or request.cookies.get("lang") or _kiosk().settings["web.language"]
    return lang if lang in LANGUAGES else LANGUAGES[0]


def view(entry: dict, tz, words: dict) -> dict:
    """What the screen shows of an entry (no fingerprint, no raw data), in the guard's words."""
    local = datetime.fromtimestamp(parse_iso(entry["time"]), tz)
    declaration = entry["declaration"]
    override = entry.get("override")
    return {"id": entry["id"], "time": local.strftime("%H:%M:%S"), "decision": entry["decision"],
            "holder": declaration.get("holder"),
            "format": words.get(f"format_{declaration['format']}", declaration["format"]),
            "kind": words.get(f"kind_{declaration.get('kind') or 'none'}", ""),
            "status": words.get(f"status_{declaration['status']}", declaration["status"]),
            "app": entry["ble"]["outcome"], "family": entry["ble"].get("family"),
            "reasons": entry["reasons"], "reasons_text": [reason_text(r, words) for r in entry["reasons"]],
            "override": override["action"] if override else None}


def health_view(kiosk, words: dict) -> list[dict]:
    """The health strip: each part with one line, red (ok=False) with its cause."""
    tz = ZoneInfo(kiosk.settings["timezone"])
    h = kiosk.health()
    now = kiosk.clock.now()
    last = kiosk.presence.last_heard
    ble_quiet = last is None or now - last > 60
    sync = h["sync"]
    trust_state, trust_days = kiosk.verifier.trust_state(now)
    if trust_state == "none":
        trust_text = words["trust_none"]
    elif trust_state == "old":
        trust_text = words["trust_old"].replace("{n}", str(round(trust_days)))
    else:
        trust_text = words["trust_ok"].replace("{n}", f"{len(kiosk.verifier.trust)}, {trust_days:.1f} d")
    items = [
        ("camera", h["camera"] == "ok",
         (f"{h['camera_fps']:.0f} fps" if h["camera_fps"] else words["ok"]) if h["camera"] == "ok" else h["camera"]),
        ("ble", h["ble"] in ("ok", "starting") and not ble_quiet,
         (h["ble"] if h["ble"] not in ("ok", "starting") else
          (words["ble_quiet"] if ble_quiet else words["ok"]))),
        ("sync", not sync["enabled"] or not sync["error"],
         (f"{sync['backlog']} {words['backlog']}"
          + (f" · {datetime.fromtimestamp(sync['last_success'], tz).strftime('%H:%M')}" if sync["last_success"] else "")
          + (f" · {sync['error'][:60]}" if sync["error"] else ""))
         if sync["enabled"] else words["sync_off"]),
        ("log", h["log"] == "ok" and not h["not_logged"],
         (words["log_damaged"].replace("{n}", str(sum(d["records_lost"] for d in h["log_damage"])))
          if h["log_damage"] and kiosk.log.error is None else h["log"])
         + (f" · {h['log_held']} {words['backlog']}" if h["log_held"] else "")
         + (f" · {h['not_logged']} {words['not_logged']}" if h["not_logged"] else "")),
        ("trust_list", h["trust_list"].startswith("ok"), trust_text),
        ("disk", h["disk_free_mb"] >= MIN_FREE_MB, f"{h['disk_free_mb']} MB"),
    ]
    return [{"key": k, "label": words[k], "ok": ok, "text": text} for k, ok, text in items]


@bp.get("/")
def index():
    kiosk = _kiosk()
    lang = _lang()
    words = catalogue(lang)
    tz = ZoneInfo(kiosk.settings["timezone"])
    recent = [view(e, tz, words) for e in kiosk.log.recent(20)]
    response = current_app.make_response(render_template(
        "guard.html", words=words, lang=lang, other_lang=[x for x in LANGUAGES if x != lang][0],
        recent=recent, latest=recent[0] if recent else None,
        counts=kiosk.log.today_counts(kiosk.clock.now(), tz), health=health_view(kiosk, words),
        words_json=json.dumps(words, ensure_ascii=False), reasons=OVERRIDE_REASONS,
        clear_after=kiosk.settings["web.clear_after"], pin=bool(kiosk.settings["web.guard_pin_sha256"])))
    response.set_cookie("lang", lang, samesite="Strict")
    return response


@bp.post("/guard/override")
def override():
    kiosk = _kiosk()
    body = request.get_json(silent=True) or {}
    digest = kiosk.settings["web.guard_pin_sha256"]
    if digest:
        given = hashlib.sha256(str(body.get("pin", "")).encode()).hexdigest()
        if not hmac.compare_digest(given, digest.lower()):
            return jsonify(error="wrong_pin"), 403
    action, reason = body.get("action"), body.get("reason")
    if action not in kiosk.OVERRIDES or reason not in OVERRIDE_REASONS:
        return jsonify(error="action must be allow, deny or exit, with a reason from the list"), 400
    updated = kiosk.override(str(body.get("entry_id", "")), action, reason)
    if updated is None:
        return jsonify(error="no such entry"), 404
    return jsonify(ok=True, override=updated["override"])


@bp.get("/events")
def events():
    kiosk = _kiosk()
    streams = current_app.extensions["guard_streams"]
    if not streams.acquire(blocking=False):
        return Response(f"retry: {int(HEARTBEAT * 1000)}\n\n", status=503, mimetype="text/event-stream",
                        headers={"Retry-After": str(int(HEARTBEAT))})
    words = catalogue(_lang())
    tz = ZoneInfo(kiosk.settings["timezone"])
    subscription = kiosk.bus.subscribe()

    def stream():
        try:
            yield "retry: 2000\n\n"
            next_health = 0.0
            while not kiosk.bus.closed:
                if time.monotonic() >= next_health:
                    next_health = time.monotonic() + HEARTBEAT
                    yield f"event: health\ndata: {json.dumps(health_view(kiosk, words), ensure_ascii=False)}\n\n"
                try:
                    item = subscription.get(timeout=max(0.0, next_health - time.monotonic()))
                except queue.Empty:
                    continue
                if item is CLOSED:
                    break
                kind, data = item
                if kind == "entry":
                    data = view(data, tz, words)
                    yield f"event: entry\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                elif kind == "health":
                    next_health = 0.0              # a part failed: show it now
        finally:
            kiosk.bus.unsubscribe(subscription)

    response = Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    # On close, not in the generator's finally: a stream whose client left before its first
    # byte is closed without ever starting the generator.
    response.call_on_close(streams.release)
    return response

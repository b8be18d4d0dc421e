"""The guard's touchscreen: the latest decision, recent entries, today's counts, health, and
the guard's overrides; live over server-sent events. Served to the kiosk's own browser only
(loopback) unless `web.guard_from_lan` says otherwise."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import queue
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from ..events import CLOSED
from ..model import parse_iso
from .i18n import LANGUAGES, OVERRIDE_REASONS, catalogue, reason_text
from .params import host_allowed, is_entry_id
from .ratelimit import PinLockout, StreamSlots

bp = Blueprint("guard", __name__)
log = logging.getLogger("kiosk.guard")

HEARTBEAT = 5.0      # seconds between health updates (and keep-alives) on the SSE stream
MIN_FREE_MB = 200
# Wrong PINs: 3 free tries, then 30 s, 60 s, ... up to 15 min per further wrong PIN; a
# 4-digit PIN then takes about 50 days to guess at even odds (96 tries a day).
PIN_FREE_TRIES, PIN_LOCK_FIRST, PIN_LOCK_MOST = 3, 30.0, 900.0


def init_app(app) -> None:
    """Per-app state: the open guard screens and the PIN lockout."""
    settings = app.extensions["kiosk"].settings
    app.extensions["guard_streams"] = StreamSlots(settings["web.max_streams"], settings["web.max_streams_per_client"])
    app.extensions["guard_pin"] = PinLockout(PIN_FREE_TRIES, PIN_LOCK_FIRST, PIN_LOCK_MOST)


def _kiosk():
    return current_app.extensions["kiosk"]


@bp.before_request
def only_the_kiosks_own_screen():
    if not host_allowed(request.host, _kiosk().settings["web.allowed_hosts"]):
        return jsonify(error="unknown host name (web.allowed_hosts)"), 400
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
        ("report", h["report"]["ok"], _report_text(h["report"], words, tz)),
        # People inside by this kiosk's log ("Đang trong khu vực: 134"); "?" while unreadable.
        ("inside_now", True, "?" if h["inside_now"] is None else str(h["inside_now"])),
    ]
    return [{"key": k, "label": words[k], "ok": ok, "text": text} for k, ok, text in items]


def _report_text(report: dict, words: dict, tz) -> str:
    """The daily report's line: who sends it, or this kiosk's send of the current cycle."""
    if report["by"] != "kiosk":
        return words["report_" + report["by"]]
    day = report["day"][8:10] + "/" + report["day"][5:7]
    if report["state"] == "sent":
        return words["report_sent"].replace("{n}", day) + " " + datetime.fromtimestamp(
            parse_iso(report["sent_at"]), tz).strftime("%H:%M")
    if report["state"] == "missed":
        return words["report_missed"].replace("{n}", day)
    return words["report_due"].replace("{n}", day) + (f" · {report['error'][:60]}" if report.get("error") else "")


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
    digest = kiosk.settings["web.guard_pin_sha256"]
    lockout = current_app.extensions["guard_pin"]
    if digest:
        # Locked: refused before the body (and the PIN in it) is even parsed.
        wait = math.ceil(lockout.wait())
        if wait:
            return jsonify(error="pin_locked", retry_after=wait), 429, {"Retry-After": str(wait)}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="the body must be a JSON object"), 400
    if digest:
        given = hashlib.sha256(str(body.get("pin", "")).encode()).hexdigest()
        if not hmac.compare_digest(given, digest.lower()):
            locked = lockout.failed()
            log.warning("wrong guard PIN from %s (%d in a row)%s", request.remote_addr, lockout.failures,
                        f"; overrides locked for {locked:.0f} s" if locked else "")
            return jsonify(error="wrong_pin"), 403
        lockout.succeeded()
    action, reason, entry_id = body.get("action"), body.get("reason"), body.get("entry_id")
    if action not in kiosk.OVERRIDES or reason not in OVERRIDE_REASONS:
        return jsonify(error="action must be allow, deny or exit, with a reason from the list"), 400
    if not is_entry_id(entry_id):
        return jsonify(error="entry_id must be an entry's id (26 characters)"), 400
    updated = kiosk.override(entry_id, action, reason)
    if updated is None:
        return jsonify(error="no such entry"), 404
    return jsonify(ok=True, override=updated["override"])


@bp.get("/events")
def events():
    kiosk = _kiosk()
    words = catalogue(_lang())
    tz = ZoneInfo(kiosk.settings["timezone"])
    slots = current_app.extensions["guard_streams"]
    address = request.remote_addr or ""

    def stream():
        # Admitted when waitress starts sending (a stream never started holds nothing); a
        # newer screen over the bound ends this one, which the browser retries in 2 s.
        subscription = kiosk.bus.subscribe()
        slot = slots.open(address, lambda: _wake(subscription))
        try:
            yield "retry: 2000\n\n"
            next_health = 0.0
            while not kiosk.bus.closed and not slot.ended.is_set():
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
            slots.close(slot)
            kiosk.bus.unsubscribe(subscription)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _wake(subscription: queue.Queue) -> None:
    """Interrupt a stream waiting on its subscription (it then sees its slot has ended)."""
    try:
        subscription.put_nowait(CLOSED)
    except queue.Full:           # it has events to send: it checks its slot before waiting again
        pass

"""The guard's touchscreen: the latest decision, recent entries, today's counts, health, and
the guard's overrides; live over server-sent events. Served to the kiosk's own browser only
(loopback) unless `web.guard_from_lan` says otherwise.

Over the house's ~300 lines: the page, the event stream, the health strip's words and the
override's two steps (open the dialog, apply) share the guard's catalogue and checks.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import queue
import secrets
import threading
import time
from collections import OrderedDict
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from ..events import CLOSED
from ..exc import OverrideRefused
from ..health import State
from ..model import ALLOW, NOT_DETECTED, OVERRIDE_REASONS, final_decision, parse_iso
from .i18n import LANGUAGES, catalogue, reason_text, word
from .params import host_allowed, is_entry_id
from .ratelimit import PinLockout, StreamSlots

bp = Blueprint("guard", __name__)
log = logging.getLogger("kiosk.guard")

HEARTBEAT = 5.0      # seconds between health updates (and keep-alives) on the SSE stream
# Wrong PINs: 3 free tries, then 30 s, 60 s, ... up to 15 min per further wrong PIN; a
# 4-digit PIN then takes about 50 days to guess at even odds (96 tries a day).
PIN_FREE_TRIES, PIN_LOCK_FIRST, PIN_LOCK_MOST = 3, 30.0, 900.0
MAX_LOCKS = 16       # override dialogs opened and not yet used; the oldest is forgotten first


def init_app(app) -> None:
    """Per-app state: the open guard screens and the PIN lockout."""
    settings = app.extensions["kiosk"].settings
    app.extensions["guard_streams"] = StreamSlots(settings["web.max_streams"], settings["web.max_streams_per_client"])
    app.extensions["guard_pin"] = PinLockout(PIN_FREE_TRIES, PIN_LOCK_FIRST, PIN_LOCK_MOST)
    app.extensions["guard_locks"] = DialogLocks(MAX_LOCKS)
    app.extensions["guard_app_qr"] = app_install_qr(settings["web.app_install_url"])


class DialogLocks:
    """Override dialogs the screen has opened: a random key per dialog, bound to one entry and
    one action. An override must bring the key of the dialog it was chosen in, so what the
    guard read ("Cho Trần Thị Bình vào?") is what the server does, whatever came since.

    :param int most: dialogs remembered at once; the oldest is forgotten first.
    """

    def __init__(self, most: int):
        self.most = most
        self._locks: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._mutex = threading.Lock()

    def open(self, entry_id: str, action: str) -> str:
        """A new dialog's key for `action` on `entry_id`."""
        key = secrets.token_urlsafe(16)
        with self._mutex:
            self._locks[key] = (entry_id, action)
            while len(self._locks) > self.most:
                self._locks.popitem(last=False)
        return key

    def holds(self, key, entry_id: str, action: str) -> bool:
        """Whether `key` is an open dialog for `action` on `entry_id`."""
        with self._mutex:
            return isinstance(key, str) and self._locks.get(key) == (entry_id, action)

    def close(self, key: str) -> None:
        with self._mutex:
            self._locks.pop(key, None)


def app_install_qr(url: str) -> str:
    """The app's install page as an inline SVG QR code, drawn here: the screen loads nothing
    from the internet, and a code straight to the official page keeps visitors off the
    look-alike apps ('Bluzone') many installed by mistake in 2020."""
    import segno

    # Dark on white with the standard 4-module quiet zone: phone cameras read it off a dark screen.
    return segno.make(url, error="m").svg_inline(scale=4, dark="#000", light="#fff")


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


# Reasons the screen says another way: the app line states the fact to the guard and the
# visitor gets a prompt, so the reason list does not repeat it.
_APP_REASONS = ("app_not_detected", "app_likely")


def view(entry: dict, tz, words: dict) -> dict:
    """What the screen shows of an entry (no fingerprint, no raw data), in the guard's words."""
    local = datetime.fromtimestamp(parse_iso(entry["time"]), tz)
    declaration = entry["declaration"]
    override = entry.get("override")
    app = entry["ble"]["outcome"]
    prompt = None
    if "app_not_detected" in entry["reasons"]:
        prompt = "install"
    elif "app_likely" in entry["reasons"]:
        prompt = "foreground"
    # `decision` is the final one (a guard's override counts): the panel's colour, the recent
    # list and the counts; `door_decision` is the door's own, shown beside an override.
    return {"id": entry["id"], "time": local.strftime("%H:%M:%S"), "decision": final_decision(entry),
            "door_decision": entry["decision"],
            "holder": declaration.get("holder"),
            "format": word(words, "format_", declaration["format"]),
            "kind": words.get(f"kind_{declaration.get('kind') or 'none'}", ""),
            "status": word(words, "status_", declaration["status"]),
            "app": app, "app_text": words.get(app) or words[NOT_DETECTED], "family": entry["ble"].get("family"),
            "reasons": entry["reasons"],
            "reasons_text": [reason_text(r, words) for r in entry["reasons"] if r not in _APP_REASONS],
            "prompt": prompt,
            "override": override["action"] if override else None,
            "override_reason": words.get(override.get("reason") or "", override.get("reason")) if override else None}


def health_view(kiosk, words: dict) -> list[dict]:
    """The health strip: each part with one line in the guard's words, red (ok=False) with
    its cause. The technical detail stays in the journal and the operator API."""
    return health_lines(kiosk.parts(), words, ZoneInfo(kiosk.settings["timezone"]))


# Faults with a banner, and its weight: "alert" (red) when the door itself is affected,
# "warn" (amber) when a check is weaker and the guard makes up for it.
BANNERS = (("log", "log_unavailable", "alert"), ("ble", "ble_down", "warn"),
           ("trust_list", "trust_old", "warn"), ("trust_list", "trust_none", "warn"),
           ("clock", "clock_unsynced", "warn"))


def faults(parts: dict, words: dict) -> dict:
    """What takes the screen: the main panel's camera message (None when the camera works)
    and a banner per fault that changes what the guard must do."""
    camera = parts["camera"]
    return {"camera_down": words["camera_down"] if camera.state is State.DOWN else None,
            "banners": [{"key": cause, "level": level, "text": words[f"banner_{cause}"]}
                        for part, cause, level in BANNERS if parts[part].cause == cause]}


def health_lines(parts: dict, words: dict, tz) -> list[dict]:
    """Health lines for a guard from typed parts (kiosk.health.Health by part name)."""
    return [{"key": name, "label": words[f"part_{name}"], "ok": h.ok, "state": h.state.value,
             "text": part_text(h, words, tz)} for name, h in parts.items()]


def part_text(h, words: dict, tz) -> str:
    """One part's state in the guard's words: its cause's phrase, or what is fine about it."""
    f = h.figures
    if h.part == "sync" and h.cause != "sync_off":
        last = (datetime.fromtimestamp(f["last_success"], tz).strftime("%H:%M")
                if f.get("last_success") else None)
        text = (phrase(words, h.cause) if h.cause else words["sync_ok"])
        text += f" · {words['backlog'].replace('{n}', str(f['backlog']))}" if f.get("backlog") is not None else ""
        return text + (f" · {words['sync_last'].replace('{n}', last)}" if last else "")
    if h.part == "report":
        return _report_text(h, words, tz)
    if h.part == "inside_now":
        # People inside by this kiosk's log ("Đang trong khu vực: 134"); "?" while unreadable.
        return "?" if h.figures.get("count") is None else str(h.figures["count"])
    if h.cause:
        text = phrase(words, h.cause, **{k: _figure(v, words) for k, v in f.items()})
        if h.part == "log" and h.cause != "log_held" and f.get("held"):
            text += " · " + phrase(words, "log_held", held=f["held"])
        if h.part == "log" and h.cause != "log_not_logged" and f.get("not_logged"):
            text += " · " + phrase(words, "log_not_logged", not_logged=f["not_logged"])
        return text
    if h.part == "camera" and f.get("fps"):
        return words["camera_fps"].replace("{n}", f"{f['fps']:.0f}")
    if h.part == "trust_list":
        return words["trust_ok"].replace("{signers}", str(f["signers"])).replace("{days}", _figure(f["days"], words))
    if h.part == "disk":
        return words["disk_free"].replace("{gb}", _figure(f["gb"], words))
    return words["ok"]


def _figure(value, words: dict) -> str:
    """A number as the screen's language writes it (Vietnamese: a decimal comma)."""
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", words["decimal_mark"])
    return str(value)


def phrase(words: dict, cause: str, **figures) -> str:
    """A health cause in the guard's words; an unknown cause gets the generic phrase."""
    text = words.get(f"cause_{cause}") or words["cause_unknown"]
    for k, v in figures.items():
        text = text.replace("{" + k + "}", str(v))
    return text


def _report_text(h, words: dict, tz) -> str:
    """The daily report's line: who sends it, or this kiosk's send of the current cycle."""
    f = h.figures
    if f["by"] != "kiosk":
        return words["report_" + f["by"]]
    day = (f.get("day") or "")[8:10] + "/" + (f.get("day") or "")[5:7]
    if h.cause == "report_missed":
        return words["report_missed"].replace("{n}", day)
    if f.get("state") == "sent" and f.get("sent_at"):
        return words["report_sent"].replace("{n}", day) + " " + datetime.fromtimestamp(
            parse_iso(f["sent_at"]), tz).strftime("%H:%M")
    return words["report_due"].replace("{n}", day) + (" · " + words["cause_report_retrying"] if h.cause else "")


@bp.get("/")
def index():
    kiosk = _kiosk()
    lang = _lang()
    words = catalogue(lang)
    tz = ZoneInfo(kiosk.settings["timezone"])
    recent = [view(e, tz, words) for e in kiosk.log.recent(20)]
    parts = kiosk.parts()
    response = current_app.make_response(render_template(
        "guard.html", words=words, lang=lang, other_lang=[x for x in LANGUAGES if x != lang][0],
        recent=recent, latest=recent[0] if recent else None,
        counts=kiosk.log.today_counts(kiosk.clock.now(), tz), health=health_lines(parts, words, tz),
        faults=faults(parts, words), app_qr=current_app.extensions["guard_app_qr"],
        words_json=json.dumps(words, ensure_ascii=False), reasons=OVERRIDE_REASONS,
        clear_after=kiosk.settings["web.clear_after"], pin=bool(kiosk.settings["web.guard_pin_sha256"])))
    response.set_cookie("lang", lang, samesite="Strict")
    return response


def _refuse(status: int, code: str, words: dict, **more):
    """A refused override: its code, and the message the screen shows (in its language)."""
    text = words.get(f"override_{code}", code)
    for name, value in more.items():
        text = text.replace("{" + name + "}", str(value))
    return jsonify(error=code, message=text, **more), status


def _overridable(kiosk, entry_id: str, action: str, words: dict):
    """The entry if `action` may be taken on it now, else a refusal: no such entry (404), older
    than web.override_window (409), an exit for someone never let in (409)."""
    entry = kiosk.log.get(entry_id)
    if entry is None:
        return None, _refuse(404, "no_entry", words)
    window = kiosk.settings["web.override_window"]
    if kiosk.clock.now() - parse_iso(entry["time"]) > window:
        return None, _refuse(409, "too_old", words, n=f"{window:.0f}")
    if action == "exit" and final_decision(entry) != ALLOW:
        return None, _refuse(409, "not_admitted", words)
    return entry, None


def _override_body(words: dict):
    """The JSON object of an override request with a known action and a well-formed entry id,
    or a 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, (jsonify(error="the body must be a JSON object"), 400)
    if body.get("action") not in OVERRIDE_REASONS:
        return None, _refuse(400, "bad_action", words)
    if not is_entry_id(body.get("entry_id")):
        return None, (jsonify(error="entry_id must be an entry's id (26 characters)"), 400)
    return body, None


def _pin_off(kiosk) -> bool:
    return not kiosk.settings["web.guard_pin_sha256"] and kiosk.settings["web.guard_pin_required"]


@bp.post("/guard/override/open")
def open_override():
    """Open an override dialog: only on the latest decision (the one on the screen), within
    web.override_window. Answers the dialog's words and the key its choice must bring."""
    kiosk = _kiosk()
    words = catalogue(_lang())
    body, refused = _override_body(words)
    if refused:
        return refused
    if _pin_off(kiosk):
        return _refuse(403, "no_pin", words)
    entry_id, action = body["entry_id"], body["action"]
    latest = kiosk.log.recent(1)
    if not latest or latest[0]["id"] != entry_id:
        return _refuse(409, "not_latest", words)
    entry, refused = _overridable(kiosk, entry_id, action, words)
    if refused:
        return refused
    shown = view(entry, ZoneInfo(kiosk.settings["timezone"]), words)
    holder = shown["holder"] or words["unknown_holder"]
    return jsonify(lock=current_app.extensions["guard_locks"].open(entry_id, action), entry=shown,
                   question=words[f"question_{action}"].replace("{name}", holder),
                   reasons=[{"key": r, "text": words[r]} for r in OVERRIDE_REASONS[action]])


@bp.post("/guard/override")
def override():
    """The guard's choice in an open dialog: PIN, then the dialog's key, then the entry's age
    and the reason's fit; the door moves only when all hold."""
    kiosk = _kiosk()
    words = catalogue(_lang())
    digest = kiosk.settings["web.guard_pin_sha256"]
    lockout = current_app.extensions["guard_pin"]
    if digest:
        # Locked: refused before the body (and the PIN in it) is even parsed.
        wait = math.ceil(lockout.wait())
        if wait:
            return jsonify(error="pin_locked", retry_after=wait,
                           message=words["override_pin_locked"].replace("{n}", str(wait))), 429, \
                {"Retry-After": str(wait)}
    body, refused = _override_body(words)
    if refused:
        return refused
    if _pin_off(kiosk):
        return _refuse(403, "no_pin", words)
    if digest:
        given = hashlib.sha256(str(body.get("pin", "")).encode()).hexdigest()
        if not hmac.compare_digest(given, digest.lower()):
            locked = lockout.failed()
            log.warning("wrong guard PIN from %s (%d in a row)%s", request.remote_addr, lockout.failures,
                        f"; overrides locked for {locked:.0f} s" if locked else "")
            return jsonify(error="wrong_pin", message=words["wrong_pin"]), 403
        lockout.succeeded()
    entry_id, action, reason = body["entry_id"], body["action"], body.get("reason")
    locks = current_app.extensions["guard_locks"]
    if not locks.holds(body.get("lock"), entry_id, action):
        return _refuse(409, "not_locked", words)
    if reason not in OVERRIDE_REASONS[action]:
        return _refuse(400, "bad_reason", words)
    _, refused = _overridable(kiosk, entry_id, action, words)
    if refused:
        return refused
    # No accounts on the screen: what identifies the actor is the PIN (or its absence) and
    # the address the screen spoke from.
    who = f"guard screen {request.remote_addr}" + (" with PIN" if digest else " without PIN")
    try:
        updated = kiosk.override(entry_id, action, reason, who)
    except OverrideRefused as e:
        return _refuse(409 if e.code == "not_admitted" else 400, e.code, words)
    if updated is None:
        return _refuse(404, "no_entry", words)
    locks.close(body["lock"])
    return jsonify(ok=True, override=updated["override"],
                   entry=view(updated, ZoneInfo(kiosk.settings["timezone"]), words))


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
                    parts = kiosk.parts()
                    yield f"event: health\ndata: {json.dumps(health_lines(parts, words, tz), ensure_ascii=False)}\n\n"
                    yield f"event: faults\ndata: {json.dumps(faults(parts, words), ensure_ascii=False)}\n\n"
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

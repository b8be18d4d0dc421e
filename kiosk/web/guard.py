"""The guard's touchscreen: the latest decision, recent entries, health; live over SSE."""
from __future__ import annotations

import json
import queue
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, render_template, request

from ..events import CLOSED
from ..model import parse_iso
from .i18n import CATALOGUE

bp = Blueprint("guard", __name__)

HEARTBEAT = 15.0     # seconds between SSE comments, so proxies and browsers keep the stream


def _kiosk():
    return current_app.extensions["kiosk"]


def _view(entry: dict, tz) -> dict:
    """What the screen shows of an entry (no fingerprint, no raw data)."""
    local = datetime.fromtimestamp(parse_iso(entry["time"]), tz)
    return {"id": entry["id"], "time": local.strftime("%H:%M:%S"), "decision": entry["decision"],
            "holder": entry["declaration"].get("holder"), "format": entry["declaration"]["format"],
            "status": entry["declaration"]["status"], "app": entry["ble"]["outcome"],
            "family": entry["ble"].get("family"), "reasons": entry["reasons"]}


@bp.get("/")
def index():
    kiosk = _kiosk()
    lang = request.args.get("lang", kiosk.settings["web.language"])
    words = CATALOGUE.get(lang, CATALOGUE["vi"])
    tz = ZoneInfo(kiosk.settings["timezone"])
    recent = [_view(e, tz) for e in kiosk.log.recent(20)]
    return render_template("guard.html", words=words, lang=lang, recent=recent,
                           latest=recent[0] if recent else None,
                           counts=kiosk.log.today_counts(kiosk.clock.now(), tz),
                           health=kiosk.health(), words_json=json.dumps(words, ensure_ascii=False))


@bp.get("/events")
def events():
    kiosk = _kiosk()
    tz = ZoneInfo(kiosk.settings["timezone"])
    subscription = kiosk.bus.subscribe()

    def stream():
        try:
            yield "retry: 2000\n\n"
            while not kiosk.bus.closed:
                try:
                    item = subscription.get(timeout=HEARTBEAT)
                except queue.Empty:
                    yield ": ping\n\n"
                    continue
                if item is CLOSED:
                    break
                kind, data = item
                if kind == "entry":
                    data = _view(data, tz)
                yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
        finally:
            kiosk.bus.unsubscribe(subscription)

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

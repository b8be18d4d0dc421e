"""The kiosk's health as the guard's strip, the operator API and the central read it: each
part's typed state (kiosk.health.Health) gathered from a running Kiosk, the health document,
the status a sync batch carries, and CPU seconds by stage. Reads only; decides nothing."""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import replace

from .exc import StoreUnavailable
from .health import Health, State, clock_health, disk_health, report_health, trust_list_health

BLE_QUIET_AFTER = 60.0           # seconds without any advertisement before Bluetooth counts as quiet


def parts(kiosk) -> dict[str, Health]:
    """Each part's typed state, by part name (health.PARTS order)."""
    now = kiosk.clock.now()
    parts = {"camera": replace(kiosk.camera_health, figures={"fps": round(kiosk.camera_fps, 1)})
             if kiosk.camera_health.ok else kiosk.camera_health}
    ble_status = kiosk.scanner.status()
    last = kiosk.presence.last_heard
    if ble_status == "starting":
        parts["ble"] = Health("ble", State.DEGRADED, "ble_starting", ble_status)
    elif ble_status != "ok":
        parts["ble"] = Health("ble", State.DOWN, "ble_down", ble_status)
    elif last is None or now - last > BLE_QUIET_AFTER:
        parts["ble"] = Health("ble", State.DEGRADED, "ble_quiet",
                              f"no advertisement for {BLE_QUIET_AFTER:.0f} s")
    else:
        parts["ble"] = Health("ble", figures={"heard": kiosk.presence.heard})
    parts["sync"] = _sync(kiosk)
    parts["log"] = _log(kiosk)
    state, days = kiosk.verifier.trust_state(now)
    parts["trust_list"] = trust_list_health(state, days, len(kiosk.verifier.trust))
    parts["disk"] = disk_health(shutil.disk_usage(kiosk.data_dir).free)
    parts["clock"] = clock_health(kiosk.clock_state())
    parts["report"] = report_health(report_state(kiosk))
    inside = kiosk.inside_now()
    # Not a fault either way: the count of people on site by this kiosk's log (contact tracing).
    parts["inside_now"] = Health("inside_now", State.OK, None, f"{inside} inside" if inside is not None else "unknown",
                             {"count": inside})
    return parts


def _sync(kiosk) -> Health:
    if kiosk.sync is None:
        return Health("sync", State.OK, "sync_off", "sync.url is empty: entries stay on this kiosk")
    try:
        backlog = kiosk.log.backlog()
    except StoreUnavailable:
        backlog = None
    figures = {"backlog": backlog, "last_success": kiosk.sync.last_success, "refused": kiosk.sync.refused}
    if kiosk.sync.last_error:
        return Health("sync", State.DEGRADED, "sync_failing", kiosk.sync.last_error, figures)
    if kiosk.sync.refused:
        return Health("sync", State.DEGRADED, "sync_refused",
                      f"{kiosk.sync.refused} entries refused by the central", figures)
    return Health("sync", State.OK, None, "ok", figures)


def _log(kiosk) -> Health:
    figures = {"held": len(kiosk.log.hold), "not_logged": kiosk.not_logged}
    if kiosk.log.error is not None:
        return Health("log", State.DOWN, "log_unavailable", str(kiosk.log.error), figures)
    damage = list(kiosk.log.damage)
    if damage:
        lost = sum(d.records_lost for d in damage)
        return Health("log", State.DEGRADED, "log_damaged",
                      f"recovered from damage: {lost} records lost, damaged files kept (log_damage)",
                      {**figures, "lost": lost})
    if kiosk.not_logged:
        return Health("log", State.DEGRADED, "log_not_logged",
                      f"{kiosk.not_logged} scans could not be logged", figures)
    if kiosk.log.hold:
        return Health("log", State.DEGRADED, "log_held", f"{len(kiosk.log.hold)} entries held in memory", figures)
    return Health("log", State.OK, None, "ok", figures)


def document(kiosk) -> dict:
    """The operator API's health document: the typed parts under "parts", and the
    one-line fields older readers use."""
    states = parts(kiosk)
    try:
        backlog = kiosk.log.backlog()
    except StoreUnavailable:
        backlog = None
    camera = states["camera"]
    log = states["log"]
    return {
        "camera": ("ok" if camera.ok else "starting" if camera.cause == "camera_starting"
                   else f"offline: {camera.detail}"),
        "camera_fps": round(kiosk.camera_fps, 1),
        "ble": kiosk.scanner.status(),
        "ble_heard": kiosk.presence.heard,
        "log": ("ok" if log.cause in (None, "log_held", "log_not_logged") else
                f"unavailable: {log.detail}" if log.cause == "log_unavailable" else log.detail),
        "log_damage": [d.to_json() for d in list(kiosk.log.damage)],
        "log_held": len(kiosk.log.hold),
        "not_logged": kiosk.not_logged,
        "sync": {"enabled": kiosk.sync is not None, "backlog": backlog,
                 "last_success": kiosk.sync.last_success if kiosk.sync else None,
                 "error": kiosk.sync.last_error if kiosk.sync else None,
                 "refused": kiosk.sync.refused if kiosk.sync else 0},
        "disk_free_mb": states["disk"].figures["mb"],
        "trust_list": states["trust_list"].detail,
        "clock": kiosk.clock_health(),
        "door": kiosk.signals.door,
        "scans": kiosk.scans,
        "report": report_state(kiosk),
        "parts": {name: h.to_json() for name, h in states.items()},
        "inside_now": kiosk.inside_now(),
        "frames_decoded": kiosk.frames_decoded,
        "cpu_seconds": cpu_seconds(kiosk),
    }


def sync_status(kiosk) -> dict:
    """What the central's kiosk page shows of this kiosk: version, entries not yet at the
    central (the sync worker leaves out the batch it sends), and its parts in a line
    ("camera ok · ble ble_quiet · log ok · clock ok": a part's cause code, or its state)."""
    from . import __version__

    try:
        backlog = kiosk.log.backlog()
    except StoreUnavailable:
        backlog = None
    states = parts(kiosk)
    status = {"version": __version__,
              "health": " · ".join(f"{name} {h.cause or h.state.value}"
                                   for name, h in states.items() if name in ("camera", "ble", "log", "clock"))}
    if backlog is not None:
        status["backlog"] = backlog
    return status


def report_state(kiosk) -> dict:
    from .mail import who_sends

    if kiosk.reporter is None:
        return {"by": who_sends(kiosk.settings), "ok": True}
    try:
        return {"by": "kiosk", **kiosk.reporter.status()}
    except OSError as e:
        return {"by": "kiosk", "ok": False, "state": "unknown", "error": str(e)}


# Threads by the stage of the door they serve (their names are set where they start).
STAGES = {"camera": "camera", "camera-grabber": "grab", "ble": "ble", "entry-log": "store", "web": "web",
          "form": "web", "sync": "sync", "housekeeping": "store"}


def cpu_seconds(kiosk) -> dict:
    """CPU seconds used since start: by step of the camera thread (grab, gray, zbar,
    zxing, finder, straighten, scan), by the threads of the other stages (ble, store,
    web with waitress's workers, sync), and by the whole process."""
    out = {stage: round(seconds, 3) for stage, seconds in kiosk.decoder.cpu.items()}
    for thread in threading.enumerate():
        stage = "web" if thread.name.startswith("waitress-") else STAGES.get(thread.name)
        if stage is None or thread.ident is None:
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, ProcessLookupError):      # the thread ended meanwhile
            continue
        key = f"{stage} thread"
        out[key] = round(out.get(key, 0.0) + seconds, 3)
    out["process"] = round(time.process_time(), 3)
    return out

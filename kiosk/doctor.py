"""`kiosk doctor`: check a kiosk's parts one by one and say how to fix what fails.

Each check returns (status, what was found, how to fix it); FAIL makes the exit code 1,
WARN does not. The checks use the same backends and code as the door.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .health import MIN_FREE_MB

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Finding:
    name: str
    status: str
    found: str
    fix: str = ""


def check_camera(settings, clock, seconds: float = 2.0) -> Finding:
    from .camera import open_source
    from .exc import KioskError

    backend = settings["camera.backend"]
    try:
        source = open_source(settings, clock)
        source.open()
    except KioskError as e:
        return Finding("camera", FAIL, f"{backend}: {e}", _camera_fix(backend))
    frames, start = 0, time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            if source.read(timeout=0.5) is not None:
                frames += 1
    except KioskError as e:
        if not frames:
            return Finding("camera", FAIL, f"{backend}: {e}", _camera_fix(backend))
    finally:
        source.close()
    fps = frames / max(time.monotonic() - start, 1e-6)
    if frames == 0:
        return Finding("camera", FAIL, f"{backend}: no frame in {seconds:.0f} s", _camera_fix(backend))
    status = OK if fps >= 5 else WARN
    return Finding("camera", status, f"{backend}: {fps:.1f} frames/s",
                   "" if status == OK else "below 5 frames/s: lower camera.width/height or check USB bandwidth")


def _camera_fix(backend: str) -> str:
    return {"opencv": "check the USB cable and camera.device (v4l2-ctl --list-devices); the user needs the video group",
            "picamera2": "check the ribbon cable and camera_auto_detect=1 in config.txt; libcamera-hello lists cameras",
            "replay": "check camera.replay_path"}.get(backend, "")


def check_decoder(settings) -> Finding:
    from .camera.decoder import QRDecoder
    from .demo.scene import visitor_frame

    text = "KP1:DOCTOR-TEST-PATTERN"
    start = time.perf_counter()
    found = QRDecoder(settings["decoder.max_payload"]).decode(visitor_frame(text, angle=12))
    ms = (time.perf_counter() - start) * 1000
    if found != [text.encode()]:
        return Finding("decoder", FAIL, "the test pattern was not read", "reinstall libzbar0 (apt install libzbar0)")
    return Finding("decoder", OK, f"test pattern read in {ms:.0f} ms")


def check_ble(settings, clock, seconds: float = 3.0) -> Finding:
    from .ble import open_source
    from .exc import KioskError
    from .model import Advertisement

    try:
        source = open_source(settings, clock)
    except KioskError as e:
        return Finding("bluetooth", FAIL, str(e), "pip install 'kiosk[pi]' on the Pi")
    heard: list[Advertisement] = []
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(heard.append, stop), daemon=True)
    thread.start()
    stop.wait(seconds)
    status_line = source.status()
    stop.set()
    thread.join(5)
    if heard:
        return Finding("bluetooth", OK, f"{settings['ble.backend']}: {len(heard)} advertisements in {seconds:.0f} s")
    if status_line not in ("ok", "starting"):
        return Finding("bluetooth", FAIL, status_line, status_line.split(": ", 1)[-1])
    return Finding("bluetooth", WARN, f"{settings['ble.backend']}: scanning, but nothing heard in {seconds:.0f} s",
                   "bring a phone with Bluezone near, or check the adapter: bluetoothctl show")


def check_gpio(settings) -> Finding:
    from .signals import DoorSignals

    try:
        signals = DoorSignals.from_settings(settings)
    except Exception as e:  # gpiozero raises many kinds: pins in use, no factory, no permission
        return Finding("gpio", FAIL, f"{type(e).__name__}: {e}",
                       "another process holds the pins (stop kiosk.service first) or the user is not in the gpio group")
    factory = type(signals.factory).__name__ if signals.factory else "gpiozero default"
    signals.close()
    pins = ", ".join(f"{k} {settings[k]}" for k in ("door.relay_pin", "signals.green_pin", "signals.red_pin",
                                                     "signals.buzzer_pin", "signals.exit_button_pin",
                                                     "signals.door_contact_pin") if settings[k])
    return Finding("gpio", OK, f"{factory}: {pins} free")


def check_disk(settings, min_free_mb: int = MIN_FREE_MB) -> Finding:
    folder = Path(settings["data_dir"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder) as f:
            f.write(b"doctor")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return Finding("disk", FAIL, f"{folder} is not writable: {e.strerror or e}",
                       "give the kiosk user the data folder (StateDirectory=kiosk in kiosk.service)")
    free = shutil.disk_usage(folder).free // 2**20
    if free < min_free_mb:
        return Finding("disk", FAIL, f"{free} MB free in {folder}", "free space, or move data_dir to a larger disk")
    return Finding("disk", OK, f"{free} MB free in {folder}")


def check_clock(settings, clock, run=subprocess.run) -> Finding:
    """Whether the door may trust the clock: what NTP says through timedatectl (systemd-
    timesyncd or chrony), and whether the clock reads earlier than this release's build
    date or the newest entry in the log (clock.judge, as the door judges it)."""
    # Declarations' validity depends on the clock: a Pi has no battery-backed RTC.
    from .clock import BEHIND, SYNCED, UNKNOWN, judge, ntp_synchronised
    from .model import id_time, iso
    from .store.days import newest_id

    try:
        newest = newest_id(Path(settings["data_dir"]) / "log")
    except Exception as e:               # the log's own check is the disk's; say it and go on
        newest, unreadable = None, f" (entry log unreadable: {e})"
    else:
        unreadable = ""
    floor = id_time(newest) if newest else 0.0
    state = judge(clock.now(), ntp_synchronised(run), floor, settings["clock.require_sync"])
    found = f"{state.status}: {state.detail}; reads {iso(state.now)}{unreadable}"
    if state.status == SYNCED:
        return Finding("clock", OK, found)
    if state.status == BEHIND:
        return Finding("clock", FAIL, found, "connect the network so that NTP sets the clock "
                       "(timedatectl timesync-status), or set it by hand: timedatectl set-time")
    if state.status == UNKNOWN and state.trusted:
        return Finding("clock", WARN, found + " (trusted: clock.require_sync = false)",
                       "install systemd-timesyncd or chrony")
    return Finding("clock", FAIL, found + "; DCC and site-pass times go to review",
                   "connect the network and check systemd-timesyncd (timedatectl timesync-status)")


def check_central(settings) -> Finding:
    import requests

    url = settings["sync.url"]
    if not url:
        return Finding("central", WARN, "sync.url is empty: entries stay on this kiosk", "set sync.url and sync.token")
    from . import syncproto

    body, headers = syncproto.signed_request(settings["sync.token"], {"kiosk": settings["kiosk.id"], "entries": []})
    try:
        r = requests.post(url.rstrip("/") + "/api/v1/ingest", data=body, headers=headers, timeout=5,
                          verify=settings["sync.ca_bundle"] or True)
    except requests.RequestException as e:
        return Finding("central", FAIL, f"{url} unreachable: {type(e).__name__}",
                       "check the network and sync.url (curl it from the Pi)")
    if r.status_code == 401:
        return Finding("central", FAIL, f"{url} refused this kiosk's token",
                       "kiosk-central add-kiosk on the central, then set sync.token")
    if r.status_code != 200:
        return Finding("central", FAIL, f"{url} answered {r.status_code}", "look at the central's log")
    return Finding("central", OK, f"{url} reachable, credential accepted")


def check_trust(settings, clock) -> Finding:
    from .declarations import Verifier

    try:
        verifier = Verifier.from_settings(settings)
    except Exception as e:
        return Finding("trust list", FAIL, f"unreadable: {e}", "kiosk trust update --url ...")
    from .health import trust_list_health

    h = trust_list_health(*verifier.trust_state(clock.now()), len(verifier.trust))
    # No list is a warning (a site may take only its own passes); an old one fails, as
    # every EU DCC then waits for a guard.
    status = {None: OK, "trust_none": WARN, "trust_old": FAIL}[h.cause]
    return Finding("trust list", status, h.detail, "" if h.ok else "kiosk trust update --url ...")


def run_checks(settings, clock) -> list[Finding]:
    return [check_camera(settings, clock), check_decoder(settings), check_ble(settings, clock),
            check_gpio(settings), check_disk(settings), check_clock(settings, clock), check_central(settings),
            check_trust(settings, clock)]

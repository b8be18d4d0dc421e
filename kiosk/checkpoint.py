"""The composition root: builds every part from settings, runs the threads, wires the flow.

camera thread: frame -> QR payloads -> once per presentation -> handle_scan
BLE thread:    advertisement -> presence tracker
handle_scan:   verify + presence + reuse -> policy -> signals, entry log, event bus, sync
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from . import ble, camera, policy
from .ble.presence import PresenceTracker
from .clock import OffsetFileClock, SystemClock
from .declarations import Verifier, sitepass
from .events import EventBus
from .exc import BackendUnavailable, CameraFault, StoreUnavailable
from .model import DENY, REVIEW, Decision, Entry, Scan, iso, new_id
from .signals import DoorSignals
from .store import EntryLog
from .sync import SyncWorker

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0
APPEND_TIMEOUT = 2.0             # seconds the door waits for the entry log before failing safe
NOT_LOGGED = "not_logged"        # the reason shown when an entry could not be logged
HOUSEKEEPING_INTERVAL = 60.0     # seconds


def load_secret(path: Path) -> bytes:
    """A 32-byte secret kept in `path` (created 0600 on first use)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret)
        return secret


class Kiosk:
    """One checkpoint: a camera, a BLE scanner, a door, a log, a screen and a sync."""

    def __init__(self, settings, clock=None):
        self.settings = settings
        if clock is None and settings["clock.offset_file"]:
            clock = OffsetFileClock(settings["clock.offset_file"])
        self.clock = clock or SystemClock()
        self.data_dir = Path(settings["data_dir"])
        self.data_dir.mkdir(parents=True, exist_ok=True)
        from .camera.decoder import PresentationFilter, QRDecoder

        self.camera = camera.open_source(settings, self.clock)
        self.decoder = QRDecoder(settings["decoder.max_payload"])
        self.presentations = PresentationFilter(settings["decoder.cooldown"])
        self.scanner = ble.open_source(settings, self.clock)
        self.presence = PresenceTracker.from_settings(settings)
        self.verifier = Verifier.from_settings(settings)
        self.rules = policy.Rules.from_settings(settings)
        self.signals = DoorSignals.from_settings(settings)
        self.log = EntryLog(self.data_dir / "log", settings["store.retention_days"],
                            unsynced_max_days=settings["store.unsynced_max_days"],
                            reuse_window=settings["policy.reuse_window"],
                            hold_bytes=int(settings["store.hold_mb"] * 2**20))
        self.sync = SyncWorker.from_settings(settings, self.log, self.clock)
        self.bus = EventBus()
        self._fingerprint_key = load_secret(self.data_dir / "fingerprint.key")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = None
        self._form_server = None
        self.camera_status = "starting"
        self.camera_fps = 0.0
        self.scans = 0
        self.not_logged = 0       # scans whose entry could not be logged (the door stayed shut)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.log.start()
        for name, target in (("camera", self._camera_loop), ("ble", self._ble_loop),
                             ("housekeeping", self._housekeeping_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.sync is not None:
            self.sync.start()
        self._start_web()

    def _start_web(self) -> None:
        from .serving import BackgroundServer
        from .web import create_app

        # Each open screen (SSE stream) holds one of the threads.
        self.web_app = create_app(self)
        self._server = BackgroundServer(self.web_app, self.settings["web.host"],
                                        self.settings["web.port"], threads=8).start()
        if self.settings["sitepass.signing_key"]:
            from .web.form import create_form_app

            key = sitepass.load_private_key(self.settings["sitepass.signing_key"])
            # Its own listener: phones on the LAN reach the form and nothing else.
            self._form_server = BackgroundServer(create_form_app(self, key), self.settings["form.host"],
                                                 self.settings["form.port"], threads=4, name="form").start()

    @property
    def form_url(self) -> str | None:
        return self._form_server.url if self._form_server else None

    @property
    def web_url(self) -> str:
        return self._server.url

    def stop(self) -> None:
        self._stop.set()
        self.bus.close()
        if self.sync is not None:
            self.sync.stop(JOIN_TIMEOUT)
        for server in (self._server, self._form_server):
            if server is not None:
                server.stop(JOIN_TIMEOUT)
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        self.log.stop(JOIN_TIMEOUT)
        self.signals.close()

    def stalled(self) -> list[str]:
        """Names of the threads the door depends on that have died."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if not self.log.alive:
            dead.append("entry-log")
        return dead

    def __enter__(self) -> "Kiosk":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- threads --------------------------------------------------------------------------
    def _camera_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self.camera.open()
                self.camera_status = "ok"
                backoff = 0.5
                last_frame = time.monotonic()
                window_start, frames = last_frame, 0
                while not self._stop.is_set():
                    frame = self.camera.read(timeout=0.5)
                    now = time.monotonic()
                    if frame is None:
                        stall = self.camera.stall_after
                        if stall is not None and now - last_frame > stall:
                            raise CameraFault(f"no frame for {stall:.0f} s")
                        continue
                    last_frame = now
                    self.handle_frame(frame)
                    frames += 1
                    if now - window_start >= 2.0:      # effective frames decoded per second
                        self.camera_fps = frames / (now - window_start)
                        window_start, frames = now, 0
            except (CameraFault, BackendUnavailable) as e:
                self.camera_status = f"offline: {e}"
                self.camera_fps = 0.0
                logger.warning("camera offline (%s); retrying in %.1f s", e, backoff)
                self.bus.publish("health", self.health())
            finally:
                self.camera.close()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, 10.0)

    def _ble_loop(self) -> None:
        def deliver(advert):
            try:
                self.presence.record(advert)
            except Exception:
                logger.exception("could not handle an advertisement from %s", advert.addr)
        self.scanner.run(deliver, self._stop)

    def _housekeeping_loop(self) -> None:
        """Write entries held in memory once the disk takes them again; purge old entries daily."""
        last_purge = None
        while not self._stop.wait(0 if last_purge is None else HOUSEKEEPING_INTERVAL):
            try:
                if self.log.error is not None:
                    self.log.retry()
                now = self.clock.now()
                if last_purge is None or now - last_purge >= 86400:
                    removed = self.log.purge(now)
                    last_purge = now
                    if removed:
                        logger.info("purged %d entries older than %d days", removed, self.log.retention_days)
            except StoreUnavailable as e:
                logger.warning("housekeeping: %s", e)

    # -- the flow -----------------------------------------------------------------------
    def handle_frame(self, frame) -> list[Entry]:
        payloads = self.decoder.decode(frame.image)
        entries = []
        for payload in self.presentations.new(payloads, frame.t):
            try:
                entries.append(self.handle_scan(Scan(payload, frame.t)))
            except Exception:
                # One bad scan must not stop the camera thread; the payload is not logged.
                logger.exception("failed to handle a %d-byte scan", len(payload))
        return entries

    def id_hash(self, id_number: str) -> str:
        """A keyed hash of an ID number, to match a PC-Covid QR with today's declaration."""
        return self.fingerprint(b"id:" + id_number.strip().upper().encode())

    def declaration_today(self, id_number: str, at: float) -> dict | None:
        """The latest declaration made on this site's form under `id_number` since local
        midnight before `at` (UNIX seconds), or None."""
        tz = ZoneInfo(self.settings["timezone"])
        midnight = datetime.fromtimestamp(at, tz).replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            return self.log.find_declaration(self.id_hash(id_number), iso(midnight.timestamp()),
                                             writer_timeout=APPEND_TIMEOUT)
        except StoreUnavailable as e:
            logger.warning("today's declarations not read: %s", e)
            return None

    def fingerprint(self, payload: bytes) -> str:
        """A keyed hash of the payload: lets the kiosk see reuse without keeping the code."""
        return hmac.new(self._fingerprint_key, payload, hashlib.sha256).hexdigest()[:32]

    def handle_scan(self, scan: Scan) -> Entry:
        """One visitor at the door, in order: verify the code (an identity-only QR is completed
        by today's declaration, by the policy's rule); ask whether the app is near and when
        the code was last shown; the policy decides; the door shows it; the entry is logged;
        the guard's screen hears of it; the sync is nudged."""
        self.scans += 1
        declaration = policy.with_todays_declaration(
            self.verifier.verify(scan.payload, scan.t),
            lambda id_number: self.declaration_today(id_number, scan.t), self.rules)
        presence = self.presence.at(scan.t)
        fingerprint = self.fingerprint(scan.payload)
        direction = self.rules.direction
        shown_ago = self.log.shown_ago(fingerprint, scan.t) if self.rules.watches_reuse else None
        decision = policy.decide(declaration, presence, shown_ago, self.rules)
        entry = Entry(id=new_id(scan.t), site=self.settings["site.id"], kiosk=self.settings["kiosk.id"],
                      t=scan.t, direction=direction, declaration=declaration.summary(),
                      fingerprint=fingerprint, ble=presence.summary(), decision=decision.outcome,
                      reasons=decision.reasons)
        logger.info("%s: %s %s, app %s, reasons: %s", decision.outcome.upper(), declaration.format,
                 declaration.status, presence.outcome, ", ".join(decision.reasons) or "none")
        # Logged (on disk, or held in memory) before the door moves: a door that opened for
        # an entry nobody can find afterwards is what a checkpoint must not do.
        try:
            self.log.append(entry, timeout=APPEND_TIMEOUT)
        except StoreUnavailable as e:
            self.not_logged += 1
            logger.error("entry %s NOT LOGGED (%d so far): %s; the door stays shut, the guard decides",
                         entry.id, self.not_logged, e)
            decision = Decision(REVIEW, (*decision.reasons, NOT_LOGGED))
            entry = replace(entry, decision=decision.outcome, reasons=decision.reasons)
            self.bus.publish("health", self.health())
        self.signals.show(decision, f"entry {entry.id}")
        self.bus.publish("entry", entry.to_json())
        if self.sync is not None:
            self.sync.nudge()
        return entry

    OVERRIDES = ("allow", "deny", "exit")

    def override(self, entry_id: str, action: str, reason: str, who: str = "guard") -> dict | None:
        """A guard's decision on an entry: allow anyway (opens the door), deny, or mark the
        holder's exit (opens the door for them to leave). Logged on the entry."""
        if action not in self.OVERRIDES:
            raise ValueError(f"unknown override {action!r}")
        record = {"action": action, "reason": reason[:200], "by": who, "at": iso(self.clock.now())}
        updated = self.log.set_override(entry_id, record)
        if updated is None:
            return None
        if action in ("allow", "exit"):
            self.signals.open_door(f"override {action} of entry {entry_id}")
        else:
            self.signals.show(Decision(DENY))
        logger.info("override %s on %s by %s: %s", action, entry_id, who, reason)
        self.bus.publish("entry", updated)
        if self.sync is not None:
            self.sync.nudge()
        return updated

    # -- health ---------------------------------------------------------------------------
    def _trust_list_health(self) -> str:
        state, days = self.verifier.trust_state(self.clock.now())
        if state == "none":
            return "none: DCCs cannot be verified (kiosk trust update)"
        if state == "old":
            return f"out of date: {days:.0f} days old"
        return f"ok: {len(self.verifier.trust)} signers, {days:.1f} days old"

    def health(self) -> dict:
        try:
            backlog = self.log.backlog()
        except StoreUnavailable:
            backlog = None
        disk = shutil.disk_usage(self.data_dir)
        damage = [d.to_json() for d in list(self.log.damage)]
        if self.log.error is not None:
            log_state = f"unavailable: {self.log.error}"
        elif damage:
            log_state = (f"recovered from damage: {sum(d['records_lost'] for d in damage)} records "
                         f"lost, damaged files kept (log_damage)")
        else:
            log_state = "ok"
        return {
            "camera": self.camera_status,
            "camera_fps": round(self.camera_fps, 1),
            "ble": self.scanner.status(),
            "ble_heard": self.presence.heard,
            "log": log_state,
            "log_damage": damage,
            "log_held": len(self.log.hold),
            "not_logged": self.not_logged,
            "sync": {"enabled": self.sync is not None, "backlog": backlog,
                     "last_success": self.sync.last_success if self.sync else None,
                     "error": self.sync.last_error if self.sync else None},
            "disk_free_mb": disk.free // 2**20,
            "trust_list": self._trust_list_health(),
            "door": self.signals.door,
            "scans": self.scans,
        }

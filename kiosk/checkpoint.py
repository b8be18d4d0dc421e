"""The composition root: builds every part from settings, runs the threads, wires the flow.

camera thread: frame -> QR payloads -> once per presentation -> handle_scan
BLE thread:    advertisement -> presence tracker
handle_scan:   verify + presence + reuse -> policy -> signals, entry log, event bus, sync

About 400 lines, over the house's ~300: the one class that builds the parts, runs the camera,
BLE and housekeeping threads and holds the door's two sequences (a scan, an override). What it
reports about itself lives in kiosk/checkup.py; the rules it applies, in kiosk/policy.py.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from . import ble, camera, checkup, heap, policy
from .ble.presence import PresenceTracker
from .clock import BEHIND, ClockWatch, EntryStamps, OffsetFileClock, SystemClock
from .declarations import Verifier, sitepass
from .events import EventBus
from .exc import BackendUnavailable, CameraFault, OverrideRefused, StoreUnavailable
from .health import Health, State
from .model import (
    ALLOW,
    DENY,
    MAX_TEXT,
    OVERRIDE_ACTIONS,
    OVERRIDE_REASONS,
    REVIEW,
    Decision,
    Entry,
    Scan,
    final_decision,
    iso,
)
from .signals import DoorSignals
from .store import EntryLog
from .sync import SyncWorker

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 5.0
APPEND_TIMEOUT = 2.0             # seconds the door waits for the entry log before failing safe
NOT_LOGGED = "not_logged"        # the reason shown when an entry could not be logged
HOUSEKEEPING_INTERVAL = 60.0     # seconds
TRACE_WARM_INTERVAL = 3600.0     # seconds between tracing projection warm-ups (Kiosk._warm_trace)


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
        self.decoder = QRDecoder(settings["decoder.max_payload"], climb_every=settings["decoder.climb_every"])
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
        if self.sync is not None:
            self.sync.status = self.sync_status
        from .mail import kiosk_reporter

        self.reporter = kiosk_reporter(settings, self.clock, lambda since, until: self.log.search(
            since=since, until=until, limit=10_000_000), self.data_dir)
        self.bus = EventBus()
        # Ids and stamps continue from the newest entry (seeded at start), and the clock is
        # not trusted while it reads earlier than that entry (clock.py).
        self.stamps = EntryStamps()
        self.clock_watch = ClockWatch(self.clock, lambda: self.stamps.newest, settings["clock.require_sync"],
                                      settings["clock.check_interval"], on_change=self._clock_changed)
        self._fingerprint_key = load_secret(self.data_dir / "fingerprint.key")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = None
        self._form_server = None
        self.camera_health = Health("camera", State.DEGRADED, "camera_starting", "starting")
        self.camera_fps = 0.0
        self.frames_decoded = 0
        self.scans = 0
        self.not_logged = 0       # scans whose entry could not be logged (the door stayed shut)
        self._inside_memo: tuple[int, float] | None = None     # (people inside, time.monotonic())

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.log.start()
        self.stamps.seed(self.log.newest_id())
        self.clock_watch.start()
        for name, target in (("camera", self._camera_loop), ("ble", self._ble_loop),
                             ("housekeeping", self._housekeeping_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.sync is not None:
            self.sync.start()
        self._start_web()

    def _start_web(self) -> None:
        from . import web
        from .serving import BackgroundServer

        settings = self.settings
        # Each open screen (SSE stream) holds one of the threads; web.max_streams (below
        # web.threads, config.load checks) keeps threads for the pages and the API.
        self.web_app = web.create_app(self)
        self._server = BackgroundServer(self.web_app, settings["web.host"], settings["web.port"],
                                        threads=settings["web.threads"], max_body=web.MAX_BODY,
                                        channel_timeout=settings["web.idle_timeout"]).start()
        if settings["sitepass.signing_key"]:
            from .web import form

            key = sitepass.load_private_key(settings["sitepass.signing_key"])
            # Its own listener: phones on the LAN reach the form and nothing else.
            self._form_server = BackgroundServer(form.create_form_app(self, key), settings["form.host"],
                                                 settings["form.port"], threads=4, name="form",
                                                 max_body=form.MAX_BODY,
                                                 channel_timeout=settings["form.idle_timeout"]).start()

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
        self.clock_watch.stop(JOIN_TIMEOUT)
        self.log.stop(JOIN_TIMEOUT)
        self.signals.close()

    def stalled(self) -> list[str]:
        """Names of the threads the door depends on that have died."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if not self.log.alive:
            dead.append("entry-log")
        return dead

    def __enter__(self) -> Kiosk:
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
                self.camera_health = Health("camera")
                backoff = 0.5
                last_frame = time.monotonic()
                window_start, frames = last_frame, 0
                max_fps = self.settings["decoder.max_fps"]
                while not self._stop.is_set():
                    cpu = time.thread_time()
                    frame = self.camera.read(timeout=0.5)
                    self.decoder.cpu["grab"] += time.thread_time() - cpu
                    now = time.monotonic()
                    if frame is None:
                        stall = self.camera.stall_after
                        if stall is not None and now - last_frame > stall:
                            raise CameraFault(f"no frame for {stall:.0f} s")
                        continue
                    last_frame = now
                    self.handle_frame(frame)
                    frames += 1
                    self.frames_decoded += 1
                    if now - window_start >= 2.0:      # effective frames decoded per second
                        self.camera_fps = frames / (now - window_start)
                        window_start, frames = now, 0
                    if max_fps:
                        # The frames that come while waiting are skipped by the source
                        # (newest frame only), so the cap leaves the CPU to others.
                        self._stop.wait(max(0.0, now + 1 / max_fps - time.monotonic()))
            except (CameraFault, BackendUnavailable) as e:
                self.camera_health = Health("camera", State.DOWN, "camera_offline", str(e))
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
        """Write entries held in memory once the disk takes them again; purge old entries daily;
        send the daily report when due; give the heap's free pages back."""
        last_purge, last_warm, first = None, None, True
        while not self._stop.wait(0 if first else HOUSEKEEPING_INTERVAL):
            first = False
            try:
                if self.log.error is not None:
                    self.log.retry()
                now = self.clock.now()
                if last_warm is None or time.monotonic() - last_warm >= TRACE_WARM_INTERVAL:
                    last_warm = time.monotonic()
                    self._warm_trace(now)
                # A clock far ahead would purge entries still within retention: no purge
                # while NTP has not set it. One behind purges less, which is safe.
                clock = self.clock_watch.state(now)
                purge_safe = clock.trusted or clock.status == BEHIND
                if purge_safe and (last_purge is None or now - last_purge >= 86400):
                    removed = self.log.purge(now)
                    last_purge = now
                    if removed:
                        logger.info("purged %d entries older than %d days", removed, self.log.retention_days)
            except StoreUnavailable as e:
                logger.warning("housekeeping: %s", e)
            if self.reporter is not None:
                try:
                    self.reporter.tick()      # at most one SMTP attempt (mail.SMTP_TIMEOUT)
                except Exception:
                    logger.exception("daily report: unexpected failure")
            # Free heap pages back to the system once a minute (0.4 ms at 100 MB): screens
            # coming and going leave freed memory in glibc's arenas otherwise (kiosk/heap.py).
            heap.release_free_memory()

    def _warm_trace(self, now: float) -> None:
        """Have the tracing projections of a trace's window built ahead of a tracer's query
        (at start, then hourly): the closed days a start finds without one, or changed
        since, are parsed by a child process, not on the query's clock (3.4-4.3 s for a
        window at 100k on the Pi 4 model, docs/performance.md)."""
        days = self.settings["trace.window_days"] + 1
        reach = self.settings["trace.max_stay"] * 3600
        try:
            built = self.log.warm_trace(iso(now - days * 86400 - reach), iso(now))
        except Exception as e:      # an optimisation only: housekeeping goes on without it
            logger.warning("tracing projections not built ahead: %s", e)
            return
        if built:
            logger.info("tracing projections built ahead for %d days", len(built))

    # -- the flow -----------------------------------------------------------------------
    def handle_frame(self, frame) -> list[Entry]:
        payloads = self.decoder.decode(frame.image)
        entries = []
        cpu = time.thread_time()
        # Absence is a duration: measured on the monotonic clock, a wall-clock step between
        # two frames of one presentation neither splits it nor joins two.
        for payload in self.presentations.new(payloads, frame.t if frame.mono is None else frame.mono):
            try:
                entries.append(self.handle_scan(Scan(payload, frame.t)))
            except Exception:
                # One bad scan must not stop the camera thread; the payload is not logged.
                logger.exception("failed to handle a %d-byte scan", len(payload))
        if entries:
            self.decoder.cpu["scan"] += time.thread_time() - cpu
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
        clock = self.clock_watch.state(scan.t)
        decision = policy.decide(declaration, presence, shown_ago, self.rules, clock.trusted)
        t, entry_id, moved = self.stamps.issue(scan.t)
        entry = Entry(id=entry_id, site=self.settings["site.id"], kiosk=self.settings["kiosk.id"],
                      t=t, direction=direction, declaration=declaration.summary(),
                      fingerprint=fingerprint, ble=presence.summary(), decision=decision.outcome,
                      reasons=decision.reasons, clock_unsynced=moved or not clock.trusted)
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

    OVERRIDES = OVERRIDE_ACTIONS

    def override(self, entry_id: str, action: str, reason: str, who: str = "guard") -> dict | None:
        """A guard's decision on an entry: allow anyway (opens the door), deny, or mark the
        holder's exit (opens the door for them to leave). Logged on the entry beside the
        door's own decision, which it keeps (model.final_decision reads both).

        :param str reason: one of model.OVERRIDE_REASONS[action].
        :param str who: what identifies the actor (the screen has no accounts).
        :returns: the entry as now stored, or None if there is no such entry.
        :raises OverrideRefused: `bad_reason` (a reason from another action's list),
            `not_admitted` (an exit for someone the door and the guard never let in).
        """
        if action not in self.OVERRIDES:
            raise ValueError(f"unknown override {action!r}")
        if reason not in OVERRIDE_REASONS[action]:
            raise OverrideRefused("bad_reason", f"{reason!r} is not a reason to {action}")
        entry = self.log.get(entry_id)
        if entry is None:
            return None
        if action == "exit" and final_decision(entry) != ALLOW:
            raise OverrideRefused("not_admitted", f"{entry_id} was never let in")
        record = {"action": action, "reason": reason, "by": who[:MAX_TEXT], "at": iso(self.clock.now())}
        updated = self.log.set_override(entry_id, record)
        if updated is None:
            return None
        if action in (ALLOW, "exit"):
            self.signals.open_door(f"override {action} of entry {entry_id}")
        else:
            self.signals.show(Decision(DENY))
        logger.info("override %s on %s by %s: %s", action, entry_id, who, reason)
        self.bus.publish("entry", updated)
        if self.sync is not None:
            self.sync.nudge()
        return updated

    # -- health ---------------------------------------------------------------------------
    def _clock_changed(self, state) -> None:
        if state.trusted:
            logger.info("clock %s: %s", state.status, state.detail)
        else:
            logger.warning("clock %s: %s; DCC and site-pass times go to review, entries are marked "
                           "clock_unsynced", state.status, state.detail)
        if self._threads:                  # started: the screens hear of it
            self.bus.publish("health", self.health())

    def clock_health(self) -> dict:
        """The clock's part of the health: status (synced | unsynced | unknown | behind),
        trusted, detail (one line), now and floor (ISO UTC)."""
        return self.clock_watch.state().to_json()

    def clock_state(self) -> str:
        """"ok" or "unsynced": whether the clock can be trusted for validity checks, as the
        door judges it (kiosk.clock.ClockWatch: NTP's answer, the build date, the newest entry)."""
        return "ok" if self.clock_watch.state().trusted else "unsynced"

    def parts(self) -> dict[str, Health]:
        """Each part's typed state, by part name (health.PARTS order): kiosk.checkup.parts."""
        return checkup.parts(self)

    def health(self) -> dict:
        """The operator API's health document (kiosk.checkup.document)."""
        return checkup.document(self)

    def sync_status(self) -> dict:
        """What a sync batch tells the central of this kiosk (kiosk.checkup.sync_status)."""
        return checkup.sync_status(self)

    # Seconds a count of people inside is reused: every health (each guard screen's 5-second
    # heartbeat, /api/v1/health) asks, and at 100k entries over 28 days a count reads a day of
    # entries (245 ms measured under load, docs/performance.md).
    INSIDE_REFRESH = 30.0

    def inside_now(self) -> int | None:
        """How many people are inside by this kiosk's log: stays going on now (an entry with
        no exit counts for trace.default_stay); None while the log cannot be read. Counted
        again at most every INSIDE_REFRESH seconds."""
        from . import trace_columns

        memo = self._inside_memo
        if memo is not None and time.monotonic() - memo[1] < self.INSIDE_REFRESH:
            return memo[0]
        now = self.clock.now()
        default_stay, max_stay = self.settings["trace.default_stay"] * 3600, self.settings["trace.max_stay"] * 3600
        try:
            cols = self.log.trace_columns(since=iso(now - max_stay), until=iso(now + 1))
        except (StoreUnavailable, OSError):
            return None
        count = trace_columns.inside_count(cols, now, default_stay, max_stay)
        self._inside_memo = (count, time.monotonic())
        return count

    def cpu_seconds(self) -> dict:
        """CPU seconds since start by stage (kiosk.checkup.cpu_seconds)."""
        return checkup.cpu_seconds(self)

"""The central's daily reports by email: one per configured site, across the site's kiosks;
the sent state in the database (`report_sends`, unique per site and day).

Settings come from a small TOML file (`kiosk-central serve --report-config`), with the
kiosk's own `report.*` names and a table of recipients per site:

    timezone = "Asia/Ho_Chi_Minh"
    [report]
    from = "kiem-dich@example.vn"
    smtp_host = "smtp.example.vn"
    smtp_password_file = "/etc/kiosk-central/smtp-password"
    [sites."nha-may-1"]
    to = ["ytdp@example.gov.vn"]
    language = "vi"                # optional, else report.language
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import config
from ..exc import ConfigError
from ..mail import (
    MISSED,
    SMTP_TIMEOUT,
    DailyReporter,
    MailSettings,
    Schedule,
    SentLedger,
    build_report,
    day_bounds,
    deliver,
)
from . import db

logger = logging.getLogger(__name__)

# Seconds a process may hold a site-day's send: longer than one SMTP attempt (each step's timeout).
CLAIM_SECONDS = 4 * int(SMTP_TIMEOUT)
TICK = 60.0                      # seconds between looks at the schedule (as the kiosk's housekeeping)
# The kiosk's names that mean the same at the central; report.to is per site, and
# report.when_synced is a kiosk's choice.
CENTRAL_NAMES = {"timezone"} | {s.name for s in config.SETTINGS if s.name.startswith("report.")} \
    - {"report.to", "report.when_synced"}
SITE_KEYS = {"to", "language"}


@dataclass(frozen=True)
class CentralReports:
    """The central's report settings: the schedule, and each site's mail settings."""
    schedule: Schedule
    sites: dict[str, MailSettings]


def load_config(path: str | Path) -> CentralReports:
    """Read the report TOML; ConfigError names the file and the key."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    sites = table.pop("sites", {})
    flat = {}
    for key, value in table.items():
        for name, v in (((f"{key}.{k}", v) for k, v in value.items()) if isinstance(value, dict) else [(key, value)]):
            if name not in CENTRAL_NAMES:
                raise ConfigError(f"{path}: {name}: unknown setting here")
            flat[name] = v
    if not isinstance(sites, dict) or not sites:
        raise ConfigError(f"{path}: sites: at least one [sites.\"SITE\"] table with `to` is required")
    try:
        settings = config.load(env={}, base=config.defaults(), overrides=flat)
        schedule = Schedule.from_settings(settings)
        mails = {}
        for site, entry in sites.items():
            unknown = set(entry) - SITE_KEYS if isinstance(entry, dict) else {"(not a table)"}
            if unknown or not entry.get("to"):
                raise ConfigError(f"sites.{site}: `to` (a list of addresses) is required; unknown: "
                                  f"{', '.join(sorted(unknown)) or 'none'}")
            site_settings = config.load(env={}, base=settings, overrides={
                "report.to": entry["to"], "report.language": entry.get("language", settings["report.language"])})
            mails[site] = MailSettings.from_settings(site_settings)
    except ConfigError as e:
        raise ConfigError(f"{path}: {str(e).removeprefix('override: ')}") from None
    return CentralReports(schedule, mails)


class DbLedger(SentLedger):
    """The sent state in the central's database: one row per (site, day), committed (on
    SQLite with synchronous=FULL) before `put` returns."""

    def __init__(self, engine):
        self.engine = engine

    def get(self, site: str, day: date) -> dict | None:
        with self.engine.connect() as conn:
            body = conn.execute(select(db.report_sends.c.record).where(
                db.report_sends.c.site == site, db.report_sends.c.day == day.isoformat())).scalar()
        return json.loads(body) if body is not None else None

    def put(self, site: str, day: date, record: dict) -> None:
        t = db.report_sends
        values = {"state": record["state"], "message_id": record.get("message_id"),
                  "updated_at": record.get("updated_at") or db.now_iso(), "sent_at": record.get("sent_at"),
                  "record": json.dumps(record, ensure_ascii=False)}
        where = (t.c.site == site, t.c.day == day.isoformat())
        with self.engine.begin() as conn:
            if conn.execute(update(t).where(*where).values(**values)).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(insert(t).values(site=site, day=day.isoformat(), **values))
            except IntegrityError:          # another process inserted it first: the unique key decides
                conn.execute(update(t).where(*where).values(**values))


    @contextmanager
    def claim(self, site: str, day: date, wait: bool = True) -> Iterator[bool]:
        """A lease of CLAIM_SECONDS on (site, day) in `report_claims`: the database's primary
        key lets one process of several in; a holder that died loses it when it runs out."""
        t = db.report_claims
        holder = secrets.token_hex(16)
        deadline = time.monotonic() + (CLAIM_SECONDS if wait else 0)
        while not self._take(site, day, holder):
            if time.monotonic() >= deadline:
                yield False
                return
            time.sleep(1.0)
        try:
            yield True
        finally:
            with self.engine.begin() as conn:
                conn.execute(delete(t).where(t.c.site == site, t.c.day == day.isoformat(), t.c.holder == holder))

    def _take(self, site: str, day: date, holder: str) -> bool:
        t = db.report_claims
        now = int(time.time())
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(t).values(site=site, day=day.isoformat(), holder=holder,
                                                  until=now + CLAIM_SECONDS))
                return True
            except IntegrityError:
                taken = conn.execute(update(t).where(t.c.site == site, t.c.day == day.isoformat(), t.c.until < now)
                                     .values(holder=holder, until=now + CLAIM_SECONDS))
                return taken.rowcount == 1


def site_report(engine, site: str, day: date, tz) -> dict:
    """The report of `site` for local `day`, across every kiosk that synced entries of it."""
    since, until = day_bounds(day, tz)
    # Read a chunk at a time; the report's kiosks are those with entries that day.
    return build_report(db.iter_entries(engine, site=site, since=since, until=until), day, tz, site, None)


def reporters(engine, reports: CentralReports, clock, deliver=deliver) -> list[DailyReporter]:
    """A DailyReporter per configured site, on the database's ledger."""
    ledger = DbLedger(engine)
    tz = reports.schedule.tz
    return [DailyReporter(mail, reports.schedule, ledger, site, partial(site_report, engine, site, tz=tz),
                          clock, deliver)
            for site, mail in reports.sites.items()]


def missed(engine) -> list[dict]:
    """Sites and days whose report missed its deadline and was not sent since, newest first."""
    t = db.report_sends
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.site, t.c.day, t.c.updated_at).where(t.c.state == MISSED)
                            .order_by(t.c.day.desc()).limit(100)).mappings().all()
    return [dict(r) for r in rows]


def recent_sends(engine, days: int = 14) -> list[dict]:
    """The ledger's records of the latest `days` days, newest first."""
    t = db.report_sends
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.site, t.c.day, t.c.record).order_by(t.c.day.desc(), t.c.site)
                            .limit(days * 100)).mappings().all()
    return [{"site": r["site"], "day": r["day"], **json.loads(r["record"])} for r in rows]


class ReportThread:
    """Ticks every site's reporter each TICK seconds in the serve process, until stopped."""

    def __init__(self, site_reporters: list[DailyReporter], interval: float = TICK):
        self.reporters, self.interval = site_reporters, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="daily-report", daemon=True)

    def start(self) -> ReportThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            for reporter in self.reporters:
                try:
                    reporter.tick()
                except Exception:
                    logger.exception("daily report of %s: unexpected failure", reporter.site)
            if self._stop.wait(self.interval):
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

"""The daily report by email: rendered in the province's language, handed to an SMTP server
once a day before the deadline, and remembered durably once the server accepted it.

Who sends: a kiosk that syncs to a central leaves it to the central (per site), unless
`report.when_synced`; a lone kiosk sends its own. The scheduled send on local day D at
`report.send_at` carries the report of day D-1 (a whole day), and retries with backoff until
`report.deadline` of day D. The sent state lives in a `SentLedger`: a JSON file on the kiosk,
a table in the central's database.

Over the house's ~300 lines: rendering, the SMTP hand-over, the schedule and the sent
ledger are one promise (sent once, provably, by the deadline), kept in one place.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import smtplib
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as day_time
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

from .entries import LABELS, daily_report, day_bound, report_csv
from .exc import ConfigError, KioskError, ReportNotSent
from .files import write_atomically
from .model import iso

__all__ = ["MailSettings", "Schedule", "Cycle", "build_report", "day_bounds", "render", "message_id", "compose",
           "deliver", "send_report", "AlreadySent", "SentLedger", "FileLedger", "DailyReporter", "kiosk_reporter",
           "who_sends"]

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0          # seconds per SMTP connection: a stuck server must not hold the retries
FIRST_BACKOFF = 60.0         # seconds before the first retry (the kiosk's housekeeping tick)
MAX_BACKOFF = 600.0          # seconds: at least 5 attempts fit in the default hour to the deadline
SENT, SENDING, FAILED, MISSED = "sent", "sending", "failed", "missed"
LEDGER_FILE = "report-sent.json"      # in the kiosk's data folder


# -- settings -----------------------------------------------------------------------------
def _clock_time(text: str, name: str) -> day_time:
    try:
        hours, minutes = text.split(":")
        return day_time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{name}: expected a local time HH:MM, got {text!r}") from None


@dataclass(frozen=True)
class MailSettings:
    """Where and how the report goes: the `report.*` settings, checked.

    :param to: recipient addresses; empty = no mail.
    :param smtp_port: TCP port of the mail server.
    :param timeout: seconds an SMTP connection may take, each step.
    """
    to: tuple[str, ...]
    sender: str
    language: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_user: str = ""
    smtp_password_file: str = ""
    smtp_ca_bundle: str = ""
    timeout: float = SMTP_TIMEOUT

    @classmethod
    def from_settings(cls, settings, to: list[str] | None = None, language: str | None = None) -> MailSettings:
        """The mail settings of `settings`; `to` and `language` replace the settings' own
        (the central's per-site recipients). ConfigError names the key that is wrong."""
        recipients = tuple(settings["report.to"] if to is None else to)
        for address in recipients:
            if "@" not in parseaddr(address)[1]:
                raise ConfigError(f"report.to: not an email address: {address!r}")
        if recipients and not settings["report.smtp_host"]:
            raise ConfigError("report.smtp_host: required when report.to is set")
        if recipients and "@" not in parseaddr(settings["report.from"])[1]:
            raise ConfigError(f"report.from: an email address is required, got {settings['report.from']!r}")
        if settings["report.smtp_user"] and not settings["report.smtp_password_file"]:
            raise ConfigError("report.smtp_password_file: required with report.smtp_user")
        return cls(to=recipients, sender=settings["report.from"], language=language or settings["report.language"],
                   smtp_host=settings["report.smtp_host"], smtp_port=settings["report.smtp_port"],
                   smtp_security=settings["report.smtp_security"], smtp_user=settings["report.smtp_user"],
                   smtp_password_file=settings["report.smtp_password_file"],
                   smtp_ca_bundle=settings["report.smtp_ca_bundle"])

    @property
    def enabled(self) -> bool:
        return bool(self.to)

    def password(self) -> str | None:
        """The password from `smtp_password_file` (one line), or None without a user."""
        if not self.smtp_user:
            return None
        try:
            password = Path(self.smtp_password_file).read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ReportNotSent(f"password file {self.smtp_password_file}: {getattr(e, 'strerror', e)}") from None
        if not password.isascii():
            # smtplib's AUTH PLAIN and LOGIN encode the password as ASCII (UnicodeEncodeError).
            raise ReportNotSent(f"password file {self.smtp_password_file}: smtplib logs in with ASCII "
                                f"passwords only")
        return password


@dataclass(frozen=True)
class Cycle:
    """One day's send: the report of `day`, due from `opens` to `closes` (UNIX seconds)."""
    day: date
    opens: float
    closes: float


@dataclass(frozen=True)
class Schedule:
    """When the report goes: daily at `send_at`, accepted by `deadline` (local times in `tz`)."""
    send_at: day_time
    deadline: day_time
    tz: tzinfo

    @classmethod
    def from_settings(cls, settings) -> Schedule:
        from zoneinfo import ZoneInfo

        send_at = _clock_time(settings["report.send_at"], "report.send_at")
        deadline = _clock_time(settings["report.deadline"], "report.deadline")
        if deadline <= send_at:
            raise ConfigError(f"report.deadline: {settings['report.deadline']} must come after "
                              f"report.send_at {settings['report.send_at']} on the same day")
        return cls(send_at, deadline, ZoneInfo(settings["timezone"]))

    def cycle(self, now: float) -> Cycle:
        """The latest cycle opened at or before `now` (UNIX seconds)."""
        local = datetime.fromtimestamp(now, self.tz)
        send_day = local.date() if local.time() >= self.send_at else local.date() - timedelta(days=1)
        return Cycle(send_day - timedelta(days=1),
                     datetime.combine(send_day, self.send_at, self.tz).timestamp(),
                     datetime.combine(send_day, self.deadline, self.tz).timestamp())


# -- the report and the message -----------------------------------------------------------
def build_report(docs, day: date, tz, site: str, kiosks: list[str] | None) -> dict:
    """The daily report of `site` for local `day` (entries.daily_report, the operator APIs' own);
    `kiosks` None = the kiosks of `docs`."""
    return daily_report(docs, day, tz, site, kiosks)


def day_bounds(day: date, tz) -> tuple[str, str]:
    """The local day as (from, to) ISO UTC text, to exclusive."""
    return day_bound(day, tz), day_bound(day, tz, end=True)


WORDS = {
    "vi": {"subject": "Báo cáo điểm kiểm dịch {site} ngày {day}",
           "intro": "Báo cáo hằng ngày của điểm kiểm dịch {site}, ngày {day}.",
           "kiosks": "Máy kiểm tra", "entries": "Tổng lượt quét", "overrides": "Bảo vệ thay đổi quyết định",
           "app": "Tỷ lệ có ứng dụng (Bluezone/PC-Covid)", "likely": "có thể", "not_detected": "không thấy",
           "busiest": "Giờ đông nhất",
           "attached": "Số liệu theo từng giờ trong tệp CSV đính kèm.",
           "footer": "Thư này do máy kiểm dịch gửi tự động; xin đừng trả lời."},
    "en": {"subject": "Checkpoint report {site} for {day}",
           "intro": "Daily report of checkpoint {site}, {day}.",
           "kiosks": "Kiosks", "entries": "Scans", "overrides": "Guard overrides",
           "app": "Share with the app (Bluezone/PC-Covid)", "likely": "likely", "not_detected": "not detected",
           "busiest": "Busiest hour",
           "attached": "Figures by hour are in the attached CSV file.",
           "footer": "Sent automatically by the checkpoint kiosk; please do not reply."},
}


def _date_text(day: date, language: str) -> str:
    return day.strftime("%d/%m/%Y") if language == "vi" else day.isoformat()


def render(report: dict, language: str) -> tuple[str, str, bytes]:
    """The mail of a daily report: (subject, plain-text body, CSV attachment bytes).

    The one seam between what the report says and how it travels: the CSV is the operator
    APIs' daily-report CSV (entries.report_csv: a row per hour, then the total, labels in
    `language`; UTF-8 with a BOM for Excel).
    """
    words = WORDS.get(language, WORDS["vi"])
    day = date.fromisoformat(report["date"])
    fill = {"site": report["site"], "day": _date_text(day, language)}
    busiest = max(report["by_hour"], key=lambda r: r["entries"], default=None)

    def share(x: float) -> str:          # Vietnamese writes a decimal comma: 71,4%
        text = f"{x * 100:.1f}%"
        return text.replace(".", ",") if language == "vi" else text
    labels = LABELS.get(language, LABELS["vi"])
    overrides = report["overrides"]
    symptoms = ", ".join(f"{flag} ({n})" for flag, n in report["symptoms"].items()) or labels["none"]
    lines = [words["intro"].format(**fill), "",
             f"{words['kiosks']}: {', '.join(report.get('kiosks') or []) or '-'}",
             f"{words['entries']}: {report['entries']}",
             f"{labels['admitted']}: {report['admitted']}",
             f"{labels['deny']}: {report['deny']}",
             f"{labels['sent_to_review']}: {report['sent_to_review']}",
             f"{words['overrides']}: {overrides['allow'] + overrides['deny'] + overrides['exit']} "
             f"({labels['override_allow']} {overrides['allow']}, {labels['override_deny']} {overrides['deny']}, "
             f"{labels['override_exit']} {overrides['exit']})",
             f"{labels['exits']}: {report['exits']}",
             f"{labels['unique_visitors']}: {report['unique_visitors']}",
             f"{words['app']}: {share(report['app_share']['confirmed'])} ({words['likely']} "
             f"{share(report['app_share']['likely'])}, "
             f"{words['not_detected']} {share(report['app_share']['not_detected'])})",
             f"{labels['valid_declaration']}: {share(report['valid_declaration_share'])}",
             f"{labels['with_symptoms']}: {report['with_symptoms']} ({symptoms})"]
    if busiest:
        lines.append(f"{words['busiest']}: {busiest['hour']:02d}:00 ({busiest['entries']})")
    lines += ["", words["attached"], "", "-- ", words["footer"], ""]
    return words["subject"].format(**fill), "\n".join(lines), report_csv(report, language)


def message_id(site: str, day: date, sender: str, generation: int = 0) -> str:
    """A Message-ID fixed by (site, day): a send repeated after a crash carries the same one,
    so the receiving side can tell the duplicate. `generation` > 0 for a deliberate resend."""
    digest = hashlib.sha256(f"{site}\0{day.isoformat()}\0{generation}".encode()).hexdigest()[:16]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "kiosk.invalid"
    return f"<daily-report.{day.isoformat()}.{digest}@{domain}>"


def compose(mail: MailSettings, rendered: tuple[str, str, bytes], site: str, day: date, mid: str,
            now: float) -> EmailMessage:
    """The email: UTF-8 subject and body, the CSV attached as `bao-cao-SITE-DAY.csv`."""
    subject, text, attachment = rendered
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    msg["Date"] = format_datetime(datetime.fromtimestamp(now).astimezone())
    msg["Message-ID"] = mid
    msg.set_content(text)
    safe_site = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in site)[:40]
    msg.add_attachment(attachment, maintype="text", subtype="csv",
                       filename=f"bao-cao-{safe_site}-{day.isoformat()}.csv")
    return msg


def deliver(mail: MailSettings, msg: EmailMessage) -> dict:
    """Hand `msg` to the SMTP server; return the recipients it refused (some may be).

    :raises ReportNotSent: the server took nothing (refused, unreachable, TLS or login failed).
    """
    context = ssl.create_default_context(cafile=mail.smtp_ca_bundle or None)
    password = mail.password()
    try:
        if mail.smtp_security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(mail.smtp_host, mail.smtp_port, timeout=mail.timeout, context=context)
        else:
            smtp = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=mail.timeout)
        with smtp:
            smtp.ehlo()
            if mail.smtp_security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if mail.smtp_user and password is not None:     # password() is None only without a user
                smtp.login(mail.smtp_user, password)
            return smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as e:
        raise ReportNotSent(f"every recipient refused: {_short(e.recipients)}") from None
    except smtplib.SMTPResponseException as e:
        raise ReportNotSent(f"{mail.smtp_host}:{mail.smtp_port} answered {e.smtp_code} "
                            f"{_short(e.smtp_error)}") from None
    except (smtplib.SMTPException, OSError) as e:
        raise ReportNotSent(f"{mail.smtp_host}:{mail.smtp_port}: {type(e).__name__}: {e}") from None


def _short(value) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text[:200]


# -- the sent state -----------------------------------------------------------------------
class SentLedger:
    """Where the state of each (site, day) send is kept, durably. A ledger *must* provide
    `get` and `put`; it *may* provide `claim` (one sender at a time for a site and day).

    A record: state (sending, sent, failed, missed), message_id, attempts, updated_at,
    sent_at, error.
    """

    def get(self, site: str, day: date) -> dict | None:
        raise NotImplementedError

    def put(self, site: str, day: date, record: dict) -> None:
        """Store `record` for (site, day), replacing the one there; durable when it returns."""
        raise NotImplementedError

    @contextmanager
    def claim(self, site: str, day: date, wait: bool = True) -> Iterator[bool]:
        """Yield True while this process is the only sender; False when another is (wait=False)."""
        yield True


class FileLedger(SentLedger):
    """The kiosk's sent state: one JSON file in its data folder, read afresh on every `get`
    (`kiosk report send` writes it beside a running kiosk), guarded by an flock."""

    KEEP_DAYS = 60

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            # Written atomically, so this is not a torn write: keep it aside and start again,
            # which at worst sends a day's report a second time.
            aside = self.path.with_name(self.path.name + ".damaged")
            os.replace(self.path, aside)
            logger.error("report ledger %s unreadable; kept as %s", self.path, aside)
            return {}

    @staticmethod
    def _key(site: str, day: date) -> str:
        return f"{day.isoformat()} {site}"

    def get(self, site: str, day: date) -> dict | None:
        return self._read().get(self._key(site, day))

    def put(self, site: str, day: date, record: dict) -> None:
        with self._locked():
            records = self._read()
            records[self._key(site, day)] = record
            oldest = (day - timedelta(days=self.KEEP_DAYS)).isoformat()
            records = {k: v for k, v in records.items() if k[:10] >= oldest}
            write_atomically(self.path, json.dumps(records, indent=1, sort_keys=True).encode())

    @contextmanager
    def _locked(self):
        """Read-modify-write of the file by one thread of one process at a time."""
        with self._thread_lock, open(self._lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextmanager
    def claim(self, site: str, day: date, wait: bool = True) -> Iterator[bool]:
        path = self.path.with_name(self.path.name + ".send-lock")
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


class AlreadySent(ReportNotSent):
    """The report of that site and day was accepted before (resend it on purpose with again=True)."""


def send_report(mail: MailSettings, ledger: SentLedger, site: str, day: date, report: dict, now: float,
                again: bool = False, deliver: Callable = deliver) -> tuple[EmailMessage, dict]:
    """Render, record "sending", hand to the server, record "sent": the one way a report goes.

    A crash after the server accepted and before "sent" is stored sends the report once more
    on the next attempt, with the same Message-ID. `again` sends a new message (a new
    Message-ID) even when one was accepted.

    :returns: The message and the ledger record.
    :raises AlreadySent: accepted before and not `again`.
    :raises ReportNotSent: the server did not take it (the failure is recorded).
    """
    before = ledger.get(site, day) or {}
    if before.get("state") == SENT and not again:
        raise AlreadySent(f"the report of {site} for {day} was accepted at {before.get('sent_at')} "
                          f"as {before.get('message_id')}")
    generation = before.get("generation", 0) + (1 if again and before.get("state") == SENT else 0)
    mid = message_id(site, day, mail.sender, generation)
    msg = compose(mail, render(report, mail.language), site, day, mid, now)
    record = {"state": SENDING, "message_id": mid, "generation": generation, "to": list(mail.to),
              "attempts": before.get("attempts", 0) + 1, "updated_at": iso(now), "sent_at": None,
              "error": None, "first_tried": before.get("first_tried") or iso(now)}
    ledger.put(site, day, record)
    try:
        refused = deliver(mail, msg)
    except ReportNotSent as e:
        ledger.put(site, day, {**record, "state": FAILED, "error": str(e)[:300]})
        raise
    # The server's 250 after DATA is the proof: from here the message is the server's to deliver.
    record = {**record, "state": SENT, "sent_at": iso(now),
              "refused": sorted(refused) if refused else []}
    ledger.put(site, day, record)
    return msg, record


# -- the schedule ---------------------------------------------------------------------------
class DailyReporter:
    """Sends one site's report each day on `schedule`, retrying with backoff until the
    deadline; `tick` does at most one attempt and never blocks past one SMTP timeout.

    :param make_report: the report of a local day (reads the entries).
    :param clock: anything with now() -> UNIX seconds.
    """

    def __init__(self, mail: MailSettings, schedule: Schedule, ledger: SentLedger, site: str,
                 make_report: Callable[[date], dict], clock, deliver: Callable = deliver):
        self.mail, self.schedule, self.ledger, self.site = mail, schedule, ledger, site
        self.make_report, self.clock, self._deliver = make_report, clock, deliver
        self._next_try = 0.0
        self._backoff = FIRST_BACKOFF
        self._cycle_day: date | None = None

    def tick(self) -> str:
        """Send when due and not sent; record a missed deadline. Returns the cycle's state."""
        now = self.clock.now()
        cycle = self.schedule.cycle(now)
        if cycle.day != self._cycle_day:
            self._cycle_day, self._next_try, self._backoff = cycle.day, 0.0, FIRST_BACKOFF
        record = self.ledger.get(self.site, cycle.day) or {}
        if record.get("state") == SENT:
            return SENT
        if now >= cycle.closes:
            if record.get("state") != MISSED:
                self.ledger.put(self.site, cycle.day, {**record, "state": MISSED, "updated_at": iso(now),
                                                       "message_id": record.get("message_id")})
                logger.error("daily report of %s for %s MISSED its deadline %s: %s", self.site, cycle.day,
                             self.schedule.deadline.strftime("%H:%M"),
                             record.get("error") or ("the last attempt was interrupted" if record else
                                                     "never attempted (the sender was not running)"))
            return MISSED
        if now < self._next_try:
            return record.get("state") or "due"
        with self.ledger.claim(self.site, cycle.day, wait=False) as mine:
            if not mine:                 # `report send` is at it right now
                return SENDING
            try:
                _, record = send_report(self.mail, self.ledger, self.site, cycle.day,
                                        self.make_report(cycle.day), now, deliver=self._deliver)
            except AlreadySent:          # another process sent it since the look above
                return SENT
            except Exception as e:      # not accepted, the entries unreadable, or a bug: retry
                if not isinstance(e, KioskError):
                    logger.exception("daily report of %s for %s: unexpected failure", self.site, cycle.day)
                wait = min(self._backoff, MAX_BACKOFF)
                self._next_try = now + wait
                self._backoff = wait * 2
                logger.warning("daily report of %s for %s not sent (attempt %d), next try in %.0f s: %s",
                               self.site, cycle.day, (self.ledger.get(self.site, cycle.day) or {}).get("attempts", 0),
                               wait, e)
                return FAILED
        logger.info("daily report of %s for %s accepted by %s as %s", self.site, cycle.day,
                    self.mail.smtp_host, record["message_id"])
        return SENT

    def status(self) -> dict:
        """The current cycle for a health display: day, state, ok (False only when missed)."""
        now = self.clock.now()
        cycle = self.schedule.cycle(now)
        record = self.ledger.get(self.site, cycle.day) or {}
        state = record.get("state")
        if state != SENT and now >= cycle.closes:
            state = MISSED
        return {"day": cycle.day.isoformat(), "state": state or "due", "ok": state != MISSED,
                "sent_at": record.get("sent_at"), "attempts": record.get("attempts", 0),
                "error": record.get("error"), "deadline": iso(cycle.closes)}


def kiosk_reporter(settings, clock, entries: Callable[[str, str], list[dict]], data_dir: Path,
                   deliver: Callable = deliver) -> DailyReporter | None:
    """The kiosk's own reporter, or None: no recipients, or a central sends the site's report.

    :param entries: entries between two ISO UTC times (from inclusive, to exclusive).
    """
    mail = MailSettings.from_settings(settings)
    schedule = Schedule.from_settings(settings)
    if not mail.enabled or (settings["sync.url"] and not settings["report.when_synced"]):
        return None
    site, kiosk = settings["site.id"], settings["kiosk.id"]

    def make_report(day: date) -> dict:
        return build_report(entries(*day_bounds(day, schedule.tz)), day, schedule.tz, site, [kiosk])
    return DailyReporter(mail, schedule, FileLedger(Path(data_dir) / LEDGER_FILE), site, make_report, clock,
                         deliver)


def who_sends(settings) -> str:
    """"kiosk", "central" or "off": who sends this kiosk's daily report."""
    if not settings["report.to"]:
        return "central" if settings["sync.url"] else "off"
    return "central" if settings["sync.url"] and not settings["report.when_synced"] else "kiosk"

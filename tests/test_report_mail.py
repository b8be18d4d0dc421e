"""The daily report reaches the province by email before the deadline, once, and provably:
against a real SMTP server on loopback (aiosmtpd, STARTTLS on a self-signed certificate)."""
from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk import mail
from kiosk.entries import report_table
from kiosk.exc import ConfigError, ReportNotSent
from kiosk.model import Scan
from kiosk.testing import free_port

from .conftest import OPERATOR_TOKEN, SITE, wait_for

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd (the test extra) is not installed")
from aiosmtpd.smtp import AuthResult  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SEND_DAY = date(2026, 11, 26)            # the day the report goes out
REPORT_DAY = SEND_DAY - timedelta(days=1)
USER, PASSWORD = "kiosk-mailer", "pass word:s3cret"


def local(day: date, hh: int, mm: int, ss: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ).timestamp()


def self_signed(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (the PEM a client trusts, the server's context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "smtp.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "smtp.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "smtp.pem", folder / "smtp.key")
    return folder / "smtp.pem", context


class Inbox:
    """The SMTP server's handler: keeps what it accepted; `answers` are replies given to DATA
    instead of accepting (one each, in order); `on_accept` runs after storing, before the 250."""

    def __init__(self):
        self.messages: list[dict] = []
        self.attempts = 0
        self.answers: list[str] = []
        self.on_accept = None

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.answers:
            return self.answers.pop(0)
        self.messages.append({"raw": envelope.original_content, "rcpt": list(envelope.rcpt_tos),
                              "tls": server.transport.get_extra_info("ssl_object") is not None,
                              "authenticated": session.authenticated})
        if self.on_accept:
            self.on_accept()
        return "250 2.0.0 OK: queued"

    def parsed(self, i: int = -1):
        return message_from_bytes(self.messages[i]["raw"], policy=policy.default)


def _authenticate(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode())


@pytest.fixture
def smtp_server(tmp_path):
    """A real SMTP server on 127.0.0.1 that requires STARTTLS (self-signed) and a login."""
    cert, context = self_signed(tmp_path)
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True,
        authenticator=_authenticate, auth_required=True)
    controller.start()
    inbox.port, inbox.cert = controller.port, cert
    yield inbox
    controller.stop()


@pytest.fixture
def report_settings(tmp_path, smtp_server):
    """The report.* settings that reach `smtp_server`."""
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    return {"report.to": ["ytdp@soyte.example.vn", "ubnd@example.vn"], "report.from": "kiem-dich@example.vn",
            "report.smtp_host": "127.0.0.1", "report.smtp_port": smtp_server.port,
            "report.smtp_security": "starttls", "report.smtp_user": USER,
            "report.smtp_password_file": str(secret), "report.smtp_ca_bundle": str(smtp_server.cert)}


def visit_the_day_before(kiosk_settings, clock, site_key):
    """Three visitors on REPORT_DAY at this kiosk: two with the site's pass, one with a stray code."""
    from kiosk.checkpoint import Kiosk
    from kiosk.declarations import sitepass

    key = sitepass.load_private_key(site_key)
    with Kiosk(kiosk_settings(), clock=clock) as kiosk:
        for hh, holder in ((8, "Nguyễn Văn An"), (8, "Trần Thị Bình")):
            t = local(REPORT_DAY, hh, 15)
            kiosk.handle_scan(Scan(sitepass.issue(key, SITE, holder, t - 60, 86400).encode(), t))
        kiosk.handle_scan(Scan(b"not a declaration", local(REPORT_DAY, 17, 40)))


def csv_rows(message) -> tuple[str, list[list[str]]]:
    (attachment,) = list(message.iter_attachments())
    text = attachment.get_payload(decode=True).decode("utf-8-sig")
    return attachment.get_filename(), list(csv.reader(io.StringIO(text)))


def test_a_lone_kiosk_mails_yesterdays_report_at_send_at_over_starttls_once_across_restarts(
        kiosk_settings, make_kiosk, clock, site_key, smtp_server, report_settings):
    visit_the_day_before(kiosk_settings, clock, site_key)
    clock.set(local(SEND_DAY, 14, 0, 30))
    kiosk = make_kiosk(**{k.replace(".", "__"): v for k, v in report_settings.items()})
    wait_for(lambda: smtp_server.messages, timeout=30)

    got = smtp_server.messages[0]
    assert got["tls"] and got["authenticated"]
    assert sorted(got["rcpt"]) == ["ubnd@example.vn", "ytdp@soyte.example.vn"]
    assert b"=?utf-8?" in got["raw"].split(b"\r\n\r\n")[0]      # the subject travels encoded (RFC 2047)
    message = smtp_server.parsed()
    assert message["Subject"] == f"Báo cáo điểm kiểm dịch {SITE} ngày 25/11/2026"
    assert message["From"] == "kiem-dich@example.vn"
    body = message.get_body(("plain",)).get_content()
    assert "Tổng lượt quét: 3" in body and "Máy kiểm tra: gate-1" in body
    assert "not a declaration" not in got["raw"].decode("utf-8", "replace")   # no QR text in the mail
    filename, rows = csv_rows(message)
    assert filename == f"bao-cao-{SITE}-{REPORT_DAY}.csv"
    assert rows[0] == report_table(mail.build_report([], REPORT_DAY, TZ, SITE, []), "vi")[0]   # Vietnamese labels
    assert rows[0][:6] == ["Giờ", "Lượt quét", "Số người được vào", "Cho vào (quyết định cuối)", "Từ chối",
                           "Chưa quyết định"]
    assert [r[0] for r in rows[1:]] == ["8", "17", "Tổng"]
    assert rows[-1][1] == "3" and sum(int(r[1]) for r in rows[1:-1]) == 3
    assert sum(int(x) for x in rows[-1][3:6]) == 3                     # allow + deny + review, final

    # The server has the message before the kiosk has its answer and records "sent".
    wait_for(lambda: kiosk.health()["report"]["state"] == "sent")
    ledger = json.loads((Path(kiosk.settings["data_dir"]) / mail.LEDGER_FILE).read_text())
    (record,) = ledger.values()
    assert record["state"] == "sent" and record["message_id"] == message["Message-ID"]
    from kiosk.web.guard import health_view
    from kiosk.web.i18n import catalogue

    strip = {h["key"]: h for h in health_view(kiosk, catalogue("vi"))}
    assert strip["report"]["ok"] and strip["report"]["text"].startswith("ngày 25/11 đã gửi")

    # A restart (and a later tick the same day) finds the sent state on disk: no second mail.
    kiosk.stop()
    again = make_kiosk(**{k.replace(".", "__"): v for k, v in report_settings.items()})
    assert again.reporter.tick() == "sent"
    assert len(smtp_server.messages) == 1 and smtp_server.attempts == 1


def test_a_server_that_refuses_then_accepts_gets_one_message_after_backoff(
        kiosk_settings, clock, smtp_server, report_settings, tmp_path):
    smtp_server.answers = ["451 4.3.0 try again later", "421 4.3.2 shutting down"]
    settings = kiosk_settings(**{k.replace(".", "__"): v for k, v in report_settings.items()})
    reporter = mail.kiosk_reporter(settings, clock, lambda since, until: [], tmp_path / "data")
    clock.set(local(SEND_DAY, 14, 0))
    assert reporter.tick() == "failed"
    assert reporter.tick() == "failed" and smtp_server.attempts == 1      # waits out the backoff
    clock.advance(mail.FIRST_BACKOFF)
    assert reporter.tick() == "failed" and smtp_server.attempts == 2
    clock.advance(mail.FIRST_BACKOFF)                                     # the wait has doubled
    assert reporter.tick() == "failed" and smtp_server.attempts == 2
    clock.advance(mail.FIRST_BACKOFF)
    assert reporter.tick() == "sent" and smtp_server.attempts == 3
    assert len(smtp_server.messages) == 1
    status = reporter.status()
    assert status["state"] == "sent" and status["attempts"] == 3 and status["ok"]
    clock.advance(3600)
    assert reporter.tick() == "sent" and smtp_server.attempts == 3


def _write_kiosk_toml(path: Path, data_dir: Path, report: dict) -> Path:
    lines = ["timezone = \"Asia/Ho_Chi_Minh\"", f"data_dir = {json.dumps(str(data_dir))}",
             f"[site]\nid = {json.dumps(SITE)}", "[kiosk]\nid = \"gate-1\"", "[report]"]
    lines += [f"{k.partition('.')[2]} = {json.dumps(v)}" for k, v in report.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _kiosk_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", "from kiosk.cli import main; main()", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_crash_between_the_servers_accept_and_the_mark_sends_at_most_one_duplicate(
        tmp_path, smtp_server, report_settings):
    """The window is real: the sender process is killed (SIGKILL) after the server stored the
    message and before its 250 reached the sender. The next run sends the report again with
    the same Message-ID (the one documented duplicate); the run after that sends nothing."""
    config = _write_kiosk_toml(tmp_path / "kiosk.toml", tmp_path / "data", report_settings)
    args = ("report", "send", "--date", REPORT_DAY.isoformat(), "--config", str(config))
    first = _kiosk_cli(*args)
    smtp_server.on_accept = lambda: (first.send_signal(signal.SIGKILL), first.wait(10))
    assert first.wait(60) == -signal.SIGKILL
    smtp_server.on_accept = None
    ledger = mail.FileLedger(tmp_path / "data" / mail.LEDGER_FILE)
    assert ledger.get(SITE, REPORT_DAY)["state"] == "sending"
    assert len(smtp_server.messages) == 1

    second = _kiosk_cli(*args)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "accepted by the mail server" in out
    assert len(smtp_server.messages) == 2
    assert smtp_server.parsed(0)["Message-ID"] == smtp_server.parsed(1)["Message-ID"]
    assert ledger.get(SITE, REPORT_DAY)["state"] == "sent"

    third = _kiosk_cli(*args)
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0 and "nothing sent" in out
    assert len(smtp_server.messages) == 2


def test_a_missed_deadline_is_logged_shown_red_and_a_late_send_by_hand_clears_it(
        kiosk_settings, make_kiosk, clock, smtp_server, report_settings, caplog):
    smtp_server.answers = ["451 4.3.0 mailbox busy"] * 100
    settings = {k.replace(".", "__"): v for k, v in report_settings.items()}
    clock.set(local(SEND_DAY, 14, 58))
    kiosk = make_kiosk(**settings)
    wait_for(lambda: kiosk.health()["report"]["state"] == "failed")
    assert kiosk.health()["report"]["ok"]                   # failing, but before the deadline
    clock.set(local(SEND_DAY, 15, 0, 1))
    with caplog.at_level(logging.ERROR, logger="kiosk.mail"):
        assert kiosk.reporter.tick() == "missed"
    assert any("MISSED its deadline 15:00" in r.getMessage() and "451" in r.getMessage() for r in caplog.records)
    attempts = smtp_server.attempts
    clock.advance(3 * 3600)
    assert kiosk.reporter.tick() == "missed" and smtp_server.attempts == attempts   # no retry after it
    health = kiosk.health()["report"]
    assert not health["ok"] and health["state"] == "missed" and health["day"] == REPORT_DAY.isoformat()
    from kiosk.web.guard import health_view
    from kiosk.web.i18n import catalogue

    strip = {h["key"]: h for h in health_view(kiosk, catalogue("vi"))}
    assert not strip["report"]["ok"] and "quá hạn" in strip["report"]["text"]
    assert not {h["key"]: h for h in health_view(kiosk, catalogue("en"))}["report"]["ok"]

    # The operator sends it late by hand: exit 0 once the server accepts; the strip turns green.
    from click.testing import CliRunner

    from kiosk.cli import main

    smtp_server.answers = []
    config = _write_kiosk_toml(Path(kiosk.settings["data_dir"]).parent / "kiosk.toml",
                               Path(kiosk.settings["data_dir"]), report_settings)
    result = CliRunner().invoke(main, ["report", "send", "--date", REPORT_DAY.isoformat(), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert len(smtp_server.messages) == 1
    assert kiosk.health()["report"]["ok"] and kiosk.health()["report"]["state"] == "sent"


def test_send_exits_non_zero_when_the_server_does_not_accept(tmp_path, smtp_server, report_settings):
    from click.testing import CliRunner

    from kiosk.cli import main

    smtp_server.answers = ["554 5.7.1 rejected"]
    config = _write_kiosk_toml(tmp_path / "kiosk.toml", tmp_path / "data", report_settings)
    result = CliRunner().invoke(main, ["report", "send", "--date", REPORT_DAY.isoformat(), "--config", str(config)])
    assert result.exit_code == 1 and "554" in result.output
    wrong = _write_kiosk_toml(tmp_path / "wrong.toml", tmp_path / "data",
                              {**report_settings, "report.smtp_ca_bundle": ""})   # self-signed: not trusted
    result = CliRunner().invoke(main, ["report", "send", "--date", REPORT_DAY.isoformat(), "--config", str(wrong)])
    assert result.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in result.output
    assert smtp_server.messages == []


def test_dry_run_prints_the_message_and_sends_nothing(tmp_path, smtp_server, report_settings):
    from click.testing import CliRunner

    from kiosk.cli import main

    config = _write_kiosk_toml(tmp_path / "kiosk.toml", tmp_path / "data", {**report_settings, "report.language": "en"})
    result = CliRunner().invoke(main, ["report", "send", "--date", REPORT_DAY.isoformat(), "--dry-run",
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    printed = message_from_bytes(result.output.encode(), policy=policy.default)
    assert printed["Subject"] == f"Checkpoint report {SITE} for 2026-11-25"
    assert csv_rows(printed)[1][-1] == ["Total"] + ["0"] * 11 + ["0.0"] * 4 + ["0"]
    assert smtp_server.attempts == 0 and not (tmp_path / "data" / mail.LEDGER_FILE).exists()


def test_implicit_tls_is_spoken_too(tmp_path):
    cert, context = self_signed(tmp_path)
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    controller.start()
    try:
        smtp = mail.MailSettings(to=("a@example.vn",), sender="k@example.vn", language="vi", smtp_host="127.0.0.1",
                                 smtp_port=controller.port, smtp_security="tls", smtp_ca_bundle=str(cert))
        ledger = mail.FileLedger(tmp_path / "sent.json")
        report = mail.build_report([], REPORT_DAY, TZ, SITE, [])
        mail.send_report(smtp, ledger, SITE, REPORT_DAY, report, local(SEND_DAY, 14, 0))
        assert inbox.messages[0]["tls"] and ledger.get(SITE, REPORT_DAY)["state"] == "sent"
        with pytest.raises(mail.AlreadySent):
            mail.send_report(smtp, ledger, SITE, REPORT_DAY, report, local(SEND_DAY, 14, 5))
        _, record = mail.send_report(smtp, ledger, SITE, REPORT_DAY, report, local(SEND_DAY, 14, 5), again=True)
        assert len(inbox.messages) == 2 and record["message_id"] != inbox.parsed(0)["Message-ID"]
    finally:
        controller.stop()


def test_who_sends_and_bad_report_settings(kiosk_settings, make_kiosk, report_settings):
    settings = {k.replace(".", "__"): v for k, v in report_settings.items()}
    synced = make_kiosk(sync__url="http://127.0.0.1:9", **settings)
    assert synced.reporter is None and synced.health()["report"] == {"by": "central", "ok": True}
    assert mail.who_sends(kiosk_settings(sync__url="http://127.0.0.1:9", report__when_synced=True,
                                         **settings)) == "kiosk"
    assert mail.who_sends(kiosk_settings()) == "off"
    with pytest.raises(ConfigError, match="report.send_at: expected a local time HH:MM, got '2pm'"):
        mail.Schedule.from_settings(kiosk_settings(report__send_at="2pm"))
    with pytest.raises(ConfigError, match="report.deadline: 13:00 must come after report.send_at 14:00"):
        mail.Schedule.from_settings(kiosk_settings(report__deadline="13:00"))
    with pytest.raises(ConfigError, match="report.smtp_host: required"):
        mail.MailSettings.from_settings(kiosk_settings(report__to=["a@example.vn"], report__from="k@example.vn"))
    with pytest.raises(ConfigError, match="report.to: not an email address"):
        mail.MailSettings.from_settings(kiosk_settings(**{**settings, "report__to": ["ytdp"]}))


def _central_toml(path: Path, report_settings: dict, sites: dict) -> Path:
    lines = ["timezone = \"Asia/Ho_Chi_Minh\"", "[report]"]
    lines += [f"{k.partition('.')[2]} = {json.dumps(v)}" for k, v in report_settings.items() if k != "report.to"]
    for site, to in sites.items():
        lines += [f"[sites.{json.dumps(site)}]", f"to = {json.dumps(to)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_central_sends_each_sites_report_across_its_kiosks_and_shows_a_missed_one(
        tmp_path, central, central_url, kiosk_settings, clock, site_key, smtp_server, report_settings):
    import requests
    from click.testing import CliRunner

    from kiosk.central import report_mail
    from kiosk.central.cli import main as central_main
    from kiosk.checkpoint import Kiosk
    from kiosk.declarations import sitepass

    key = sitepass.load_private_key(site_key)
    with Kiosk(kiosk_settings(sync__url=central.url), clock=clock) as kiosk:
        t = local(REPORT_DAY, 9, 30)
        kiosk.handle_scan(Scan(sitepass.issue(key, SITE, "Lê Văn Cường", t - 60, 86400).encode(), t))
        kiosk.handle_scan(Scan(b"something else", t + 60))
        wait_for(lambda: kiosk.log.backlog() == 0)
    config = _central_toml(tmp_path / "central-report.toml", report_settings,
                           {SITE: ["ytdp@soyte.example.vn"], "quiet-site": ["ytdp@soyte.example.vn"]})
    args = ["--db", central_url, "report", "send", "--site", SITE, "--date", REPORT_DAY.isoformat(),
            "--report-config", str(config)]
    result = CliRunner().invoke(central_main, args)
    assert result.exit_code == 0, result.output
    message = smtp_server.parsed()
    assert message["Subject"] == f"Báo cáo điểm kiểm dịch {SITE} ngày 25/11/2026"
    assert "Tổng lượt quét: 2" in message.get_body(("plain",)).get_content()
    assert csv_rows(message)[1][-1][:2] == ["Tổng", "2"]
    result = CliRunner().invoke(central_main, args)
    assert result.exit_code == 0 and "nothing sent" in result.output and len(smtp_server.messages) == 1

    # The serve process's reporters: the sent site stays sent; the other misses its deadline
    # while the server refuses, and the central's health and report list say so.
    smtp_server.answers = ["451 4.3.0 busy"] * 10
    clock.set(local(SEND_DAY, 14, 10))
    reports = report_mail.load_config(config)
    by_site = {r.site: r for r in report_mail.reporters(central.engine, reports, clock)}
    assert by_site[SITE].tick() == "sent" and by_site["quiet-site"].tick() == "failed"
    clock.set(local(SEND_DAY, 15, 1))
    assert by_site["quiet-site"].tick() == "missed"
    assert requests.get(f"{central.url}/api/v1/health", timeout=10).json() == {"status": "ok", "reports_missed": 1}
    sends = requests.get(f"{central.url}/api/v1/reports/sends", timeout=10,
                         headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).json()
    assert sends["missed"][0]["site"] == "quiet-site"
    assert {(s["site"], s["state"]) for s in sends["sends"]} == {(SITE, "sent"), ("quiet-site", "missed")}
    assert len(smtp_server.messages) == 1


def test_the_central_report_config_names_the_bad_key(tmp_path, report_settings):
    from kiosk.central import report_mail

    config = _central_toml(tmp_path / "c.toml", {**report_settings, "report.smtp_security": "ssl"}, {SITE: ["a@b.vn"]})
    with pytest.raises(ConfigError, match=r"c.toml: report.smtp_security: expected one of starttls, tls, none"):
        report_mail.load_config(config)
    config = _central_toml(tmp_path / "c.toml", report_settings, {SITE: ["a@b.vn"]})
    config.write_text(config.read_text() + "[sites.x]\nto = []\n")
    with pytest.raises(ConfigError, match="sites.x: `to`"):
        report_mail.load_config(config)


def test_a_password_smtplib_cannot_send_is_a_clear_refusal_not_a_crash(tmp_path, smtp_server, report_settings):
    """smtplib's AUTH encodes the password as ASCII: a Vietnamese password raised
    UnicodeEncodeError out of the sender; now the send fails with a line that says why."""
    secret = tmp_path / "smtp-password"
    secret.write_text("mật khẩu\n", encoding="utf-8")
    smtp = mail.MailSettings(to=("a@example.vn",), sender="k@example.vn", language="vi", smtp_host="127.0.0.1",
                             smtp_port=smtp_server.port, smtp_security="starttls", smtp_user=USER,
                             smtp_password_file=str(secret), smtp_ca_bundle=str(smtp_server.cert))
    ledger = mail.FileLedger(tmp_path / "sent.json")
    with pytest.raises(ReportNotSent, match="ASCII passwords only"):
        mail.send_report(smtp, ledger, SITE, REPORT_DAY, mail.build_report([], REPORT_DAY, TZ, SITE, []),
                         local(SEND_DAY, 14, 0))
    assert ledger.get(SITE, REPORT_DAY)["state"] == "failed" and smtp_server.attempts == 0


def test_two_central_processes_hand_a_sites_report_over_once(tmp_path, central, clock, smtp_server,
                                                            report_settings):
    """While one process holds the (site, day) claim, another's tick does not send; once it
    lets go, the report goes once."""
    from kiosk.central import db as central_db
    from kiosk.central import report_mail

    config = _central_toml(tmp_path / "central-report.toml", report_settings, {SITE: ["ytdp@soyte.example.vn"]})
    other_process = report_mail.DbLedger(central_db.connect(str(central.engine.url)))
    (reporter,) = report_mail.reporters(central.engine, report_mail.load_config(config), clock)
    clock.set(local(SEND_DAY, 14, 0, 5))
    with other_process.claim(SITE, REPORT_DAY, wait=False) as mine:
        assert mine
        assert reporter.tick() == "sending" and smtp_server.attempts == 0
        with reporter.ledger.claim(SITE, REPORT_DAY, wait=False) as theirs:
            assert not theirs
    assert reporter.tick() == "sent" and len(smtp_server.messages) == 1


def test_kiosk_central_serve_sends_on_its_schedule(tmp_path, smtp_server, report_settings):
    """The serve process, as systemd runs it, with a send window open now (real clock)."""
    import requests

    from kiosk.central import db as central_db

    now = datetime.now(TZ)
    minute_of_day = now.hour * 60 + now.minute
    if minute_of_day < 1 or minute_of_day + 3 >= 24 * 60:
        pytest.skip("the test needs a send window inside today's local day; it is midnight in Vietnam")
    opens, closes = now - timedelta(minutes=1), now + timedelta(minutes=3)
    config = _central_toml(tmp_path / "central-report.toml",
                           {**report_settings, "report.send_at": opens.strftime("%H:%M"),
                            "report.deadline": closes.strftime("%H:%M")},
                           {SITE: ["ytdp@soyte.example.vn"]})
    url = f"sqlite:///{tmp_path / 'central.db'}"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from kiosk.central.cli import main; main()", "--db", url, "serve",
         "--port", str(port), "--report-config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: smtp_server.messages, timeout=60)
        yesterday = (now.date() - timedelta(days=1)).strftime("%d/%m/%Y")
        assert smtp_server.parsed()["Subject"] == f"Báo cáo điểm kiểm dịch {SITE} ngày {yesterday}"
        health = wait_for(lambda: _get_json(requests, f"http://127.0.0.1:{port}/api/v1/health"), timeout=30)
        assert health == {"status": "ok", "reports_missed": 0}
        engine = central_db.connect(url)
        row = wait_for(lambda: _sent_row(engine))
        assert row["message_id"] == smtp_server.parsed()["Message-ID"]
    finally:
        process.terminate()
        process.wait(10)


def _get_json(requests, url):
    try:
        return requests.get(url, timeout=5).json()
    except requests.ConnectionError:
        return None


def _sent_row(engine):
    from sqlalchemy import select

    from kiosk.central import db as central_db

    with engine.connect() as conn:
        return conn.execute(select(central_db.report_sends).where(
            central_db.report_sends.c.state == "sent")).mappings().first()

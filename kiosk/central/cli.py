"""`kiosk-central`: run the central server and manage its credentials."""
from __future__ import annotations

import logging

import click

from . import db


@click.group()
@click.option("--db", "db_url", envvar="KIOSK_CENTRAL_DB", default="sqlite:///central.db",
              show_default=True, help="SQLAlchemy database URL (sqlite:///... or postgresql://...).")
@click.pass_context
def main(ctx, db_url):
    """The central server that kiosks sync their entry logs to."""
    ctx.obj = db_url


# A request's headers (token, signature, query string) fit in far less; waitress allows 256 KiB.
MAX_HEADER_BYTES = 16 * 1024
CLEANUP_INTERVAL = 5            # seconds between waitress's sweeps for idle connections


def server_options(connection_limit: int, channel_timeout: int) -> dict:
    """waitress.serve keyword arguments for the central: every limit on what a client may hold.

    :param connection_limit: connections open at once (each kiosk keeps one between batches).
    :param channel_timeout: seconds an idle connection is kept.
    """
    from .app import MAX_BODY_BYTES

    return {
        "threads": 8,
        # waitress refuses a body of max_request_body_size bytes or more, from Content-Length
        # before reading it; a chunked one once that much has arrived. One more than the app's
        # own limit, so a body the app would take is never cut short by the server.
        "max_request_body_size": MAX_BODY_BYTES + 1,
        "max_request_header_size": MAX_HEADER_BYTES,
        "connection_limit": connection_limit,
        "channel_timeout": channel_timeout,
        "cleanup_interval": min(CLEANUP_INTERVAL, channel_timeout),
        "clear_untrusted_proxy_headers": True,
    }


def _allow_open_files(connection_limit: int) -> None:
    """Raise the soft limit on open files to what `connection_limit` needs, within the hard one:
    a waitress connection holds up to three (its socket, a spooled request and response body),
    and systemd starts services with a soft limit of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * connection_limit + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


_report_config_option = click.option(
    "--report-config", type=click.Path(dir_okay=False), envvar="KIOSK_CENTRAL_REPORT_CONFIG",
    help="TOML of the daily report's mail settings and recipients per site; without it no report is mailed.")


def _load_reports(path):
    from ..exc import ConfigError
    from .report_mail import load_config

    try:
        return load_config(path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
@click.option("--connection-limit", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Connections open at once; more wait in the listen queue. At least the number of kiosks.")
@click.option("--channel-timeout", default=30, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds an idle connection is kept open.")
@click.option("--timezone", "tz_name", default="Asia/Ho_Chi_Minh", show_default=True, envvar="KIOSK_CENTRAL_TIMEZONE",
              help="Time zone of local days in the operator API (from/to dates, the daily report) "
                   "when a request names none.")
@click.option("--language", type=click.Choice(["vi", "en"]), default="vi", show_default=True,
              envvar="KIOSK_CENTRAL_LANGUAGE", help="The daily report's labels (CSV, printable page) by default.")
@_report_config_option
@click.pass_obj
def serve(db_url, host, port, connection_limit, channel_timeout, tz_name, language, report_config):
    """Serve the ingest, the operator API and the operators' pages (/) with waitress, and
    send the daily reports."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    import waitress

    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{tz_name!r} is not a time zone name", param_hint="--timezone") from None
    from .app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    reports = _load_reports(report_config) if report_config else None
    _allow_open_files(connection_limit)
    engine = db.connect(db_url)
    sender = None
    if reports is not None:
        from ..clock import SystemClock
        from .report_mail import ReportThread, reporters

        sender = ReportThread(reporters(engine, reports, SystemClock())).start()
        logging.getLogger("kiosk.central").info("daily reports at %s for %d sites",
                                                reports.schedule.send_at.strftime("%H:%M"), len(reports.sites))
    try:
        waitress.serve(create_app(engine=engine, timezone=tz_name, language=language, reports=reports),
                       host=host, port=port,
                       **server_options(connection_limit, channel_timeout))
    finally:
        if sender is not None:
            sender.stop()


@main.command("add-kiosk")
@click.argument("name")
@click.option("--site", required=True, help="Site the kiosk belongs to.")
@click.option("--token", help="Use this token instead of a random one.")
@click.pass_obj
def add_kiosk(db_url, name, site, token):
    """Register a kiosk; print its token (set it as sync.token on the kiosk)."""
    click.echo(db.add_credential(db.connect(db_url), name, "kiosk", site, token))


@main.command("add-operator")
@click.argument("name")
@click.option("--token", help="Use this token instead of a random one.")
@click.option("--site", "sites", multiple=True,
              help="A site the operator may read (repeat for several); without it, every site.")
@click.pass_obj
def add_operator(db_url, name, token, sites):
    """Register an operator; print the token for the pages (login) and the entries API."""
    click.echo(db.add_credential(db.connect(db_url), name, "operator", None, token,
                                 sites=list(sites) if sites else None))


@main.command("add-tracer")
@click.argument("name")
@click.option("--site", help="Bind the credential to one site (recommended); without it, every site.")
@click.option("--token", help="Use this token instead of a random one.")
@click.pass_obj
def add_tracer(db_url, name, site, token):
    """Register a tracer (contact tracing only; an operator's token cannot trace); print the token."""
    click.echo(db.add_credential(db.connect(db_url), name, "tracer", site, token))


@main.command("trace")
@click.option("--site", required=True, help="Site of the entry.")
@click.option("--entry", "entry_id", required=True, help="An entry of the traced person.")
@click.option("--reason", required=True, help="Why (kept in the audit table with your user name).")
@click.option("--days", type=click.FloatRange(1, 28), default=None, help="Days back from --until (default 14).")
@click.option("--until", help="End of the window (ISO-8601 time); default now.")
@click.option("--min-overlap", type=click.FloatRange(0, 1440), default=None, help="Minutes (default 15).")
@click.pass_obj
def trace_(db_url, site, entry_id, reason, days, until, min_overlap):
    """Contacts of the person of an entry across the site's kiosks: JSON lines, one contact per
    line (holder, overlap_minutes, stays, app, assumed, ...). Logged in trace_audit."""
    import json
    import os
    import time

    from sqlalchemy import insert

    from ..model import iso, parse_iso, text_problem
    from . import trace

    if len(reason) > trace.MAX_REASON or text_problem(reason):
        raise click.BadParameter(f"the reason must be printable text of at most {trace.MAX_REASON} characters")
    try:
        end = parse_iso(until) if until else time.time()
    except ValueError:
        raise click.BadParameter(f"{until!r} is not an ISO-8601 time") from None
    since = end - (days or trace.WINDOW_DAYS) * 86400
    engine = db.connect(db_url)
    trace.catch_up(engine)
    with engine.begin() as conn:
        found = trace.trace_entry(conn, entry_id, since, end)
        if found is None or found[0].site != site:
            raise click.ClickException(f"no entry {entry_id} at site {site}")
        row, mine = found
        # Every contact with their stays: one query for all, not page after page.
        _, contacts = trace.contacts_page(conn, site, mine, since, end,
                                          (trace.MIN_OVERLAP if min_overlap is None else min_overlap) * 60)
        holder = (json.loads(row.body).get("declaration") or {}).get("holder")
        conn.execute(insert(db.trace_audit).values(
            who="cli:" + os.environ.get("USER", "?"), at=db.now_iso(), site=site, kind="trace",
            for_whom=f"{entry_id} {holder or ''}".strip()[:300], reason=reason, listed=len(contacts),
            window_from=iso(since), window_to=iso(end)))
    for c in contacts:
        click.echo(json.dumps(c.to_json(), ensure_ascii=False))


@main.group()
def report():
    """The sites' daily reports."""


@report.command(name="send")
@click.option("--site", required=True, help="Site of the report (a table in the report config).")
@click.option("--date", "day_text", required=True, help="Local day of the report (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="Print the message; send nothing, record nothing.")
@click.option("--again", is_flag=True, help="Send even when the report was accepted before (a new Message-ID).")
@_report_config_option
@click.pass_obj
def report_send(db_url, site, day_text, dry_run, again, report_config):
    """Send a site's daily report now; exit 0 only when the mail server accepted it (now, or
    before: then nothing is sent without --again)."""
    import time
    from datetime import date

    from .. import mail
    from ..exc import ReportNotSent
    from .report_mail import DbLedger, site_report

    if not report_config:
        raise click.UsageError("--report-config (or KIOSK_CENTRAL_REPORT_CONFIG) is required")
    reports = _load_reports(report_config)
    if site not in reports.sites:
        raise click.BadParameter(f"{site!r} has no recipients in {report_config}", param_hint="--site")
    try:
        if len(day_text) != 10:
            raise ValueError(day_text)
        day = date.fromisoformat(day_text)
    except ValueError:
        raise click.BadParameter(f"{day_text!r} is not YYYY-MM-DD", param_hint="--date") from None
    smtp = reports.sites[site]
    engine = db.connect(db_url)
    report_ = site_report(engine, site, day, reports.schedule.tz)
    now = time.time()
    if dry_run:
        mid = mail.message_id(site, day, smtp.sender)
        click.echo(mail.compose(smtp, mail.render(report_, smtp.language), site, day, mid, now).as_string())
        return
    ledger = DbLedger(engine)
    with ledger.claim(site, day) as mine:
        if not mine:
            raise click.ClickException("another process has been sending this report for "
                                       "too long; try again in a few minutes")
        try:
            _, record = mail.send_report(smtp, ledger, site, day, report_, now, again=again)
        except mail.AlreadySent as e:
            click.echo(f"{e}; nothing sent (--again sends it once more)")
            return
        except ReportNotSent as e:
            raise click.ClickException(f"not sent: {e}") from None
    click.echo(f"accepted by the mail server: {record['message_id']} to {', '.join(record['to'])}")
    if record.get("refused"):
        click.echo(f"refused by the server: {', '.join(record['refused'])}", err=True)

"""The central's web pages for operators: sites, kiosks, entries and the daily report.

Server-rendered (Jinja), no script and no asset from elsewhere; a login with an operator
token opens a session cookie; every form carries a CSRF token; an operator sees only the
sites of their credential (db.allowed_sites).

Over the house's ~300 lines: the login, the session and CSRF, and four pages with their
server-drawn chart; the data access is kept to a few small functions at the top.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup, escape

from ..entries import report_table, safe_cell, shown_rows
from ..export import CSV_COLUMNS, DECISIONS, csv_chunks, csv_row
from ..model import parse_iso, text_problem
from ..web.ratelimit import RateLimit
from . import db
from .words import LANGUAGES, WORDS

__all__ = ["PAGE_SIZE", "SESSION_SECONDS", "LOGIN_ATTEMPTS", "bp", "init_app", "bar_chart"]

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="assets",
               static_url_path="/assets")

PAGE_SIZE = 50                  # entries per page
CSV_LIMIT = 100_000             # entries per CSV download
CHART_DAYS = 14
SESSION_SECONDS = 12 * 3600     # a login lasts one working day (a shift and a half), then ask again
LOGIN_ATTEMPTS = 10             # login attempts per address per LOGIN_WINDOW
LOGIN_WINDOW = 60.0             # seconds
MAX_TOKEN_CHARS = 200           # tokens are 43 characters (secrets.token_urlsafe(32))
DEFAULT_TZ = "Asia/Ho_Chi_Minh"
# No script, no frame, nothing from another origin: the pages are plain HTML, CSS and inline SVG.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over TLS (directly, or
    through a proxy waitress trusts), so one central serves plain HTTP on loopback and HTTPS."""

    def get_cookie_secure(self, app) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or (request and request.is_secure))


def init_app(app, engine, reports=None, tz: str | None = None) -> None:
    """Attach the pages to the central's `app`: the blueprint, the session and its secret.

    :param reports: the central's report settings (report_mail.CentralReports) for 'send now'.
    :param tz: the time zone of local days; the reports' own, else Asia/Ho_Chi_Minh.
    """
    app.secret_key = db.session_secret(engine)
    app.session_interface = _SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_NAME="central_session")
    app.extensions["central_pages"] = {
        "reports": reports, "login_limit": RateLimit(LOGIN_ATTEMPTS, LOGIN_WINDOW),
        "tz": ZoneInfo(tz or (reports.schedule.tz.key if reports is not None else DEFAULT_TZ)),
    }
    app.register_blueprint(bp)


def _state() -> dict:
    return current_app.extensions["central_pages"]


def _engine():
    return current_app.extensions["central_db"]


def error_page(e) -> tuple[str, int]:
    """An HTTP error of a page, as a page in the operator's language."""
    words = getattr(g, "words", None) or WORDS["vi"]
    return render_template("central/error.html", code=e.code, description=e.description,
                           w=words, lang=getattr(g, "lang", "vi")), e.code or 500


# -- language, session, CSRF ---------------------------------------------------------------
def _lang() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
    lang = session.get("lang")
    return lang if isinstance(lang, str) and lang in LANGUAGES else "vi"


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _check_csrf() -> None:
    given = request.form.get("csrf", "")
    if not hmac.compare_digest(given.encode(), session.get("csrf", "").encode()) or not given:
        abort(400, description=WORDS[_lang()]["csrf"])


def _binding(cred) -> str:
    # Ties the session to the credential's current token: a new token or a removed
    # credential ends its sessions. A hash of the hash, so the cookie shows nothing reusable.
    return hashlib.sha256(("session:" + cred["token_hash"]).encode()).hexdigest()[:32]


def _operator():
    """The logged-in operator's credential, or None."""
    name, started = session.get("op"), session.get("at", 0)
    if not name or time.time() - started > SESSION_SECONDS:
        return None
    from sqlalchemy import select

    with _engine().connect() as conn:
        cred = conn.execute(select(db.credentials).where(db.credentials.c.name == name)).mappings().first()
    if cred is None or cred["role"] != "operator" or not hmac.compare_digest(session.get("bind", ""), _binding(cred)):
        return None
    return cred


@bp.before_request
def _before():
    g.lang = _lang()
    g.words = WORDS[g.lang]
    if request.endpoint in ("pages.login", "pages.static"):
        return None
    g.cred = _operator()
    if g.cred is None:
        return redirect(url_for("pages.login", next=request.full_path if request.method == "GET" else None))
    if request.method == "POST":
        _check_csrf()
    return None


@bp.after_app_request
def _headers(response):
    if request.blueprint == "pages":
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_context_processor
def _template_names():
    if request.blueprint != "pages":
        return {}
    return {"w": g.words, "lang": g.lang, "csrf_token": _csrf_token, "operator": getattr(g, "cred", None),
            "other_lang": "en" if g.lang == "vi" else "vi"}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The token form; a right token opens a session (a new one: no fixation)."""
    error, status = None, 200
    if request.method == "POST":
        _check_csrf()
        if not _state()["login_limit"].allow(request.remote_addr or "?"):
            error, status = g.words["too_many"], 429
        else:
            token = request.form.get("token", "").strip()
            cred = db.find_credential(_engine(), token) if 0 < len(token) <= MAX_TOKEN_CHARS else None
            if cred is not None and cred["role"] == "operator":
                lang = g.lang
                session.clear()
                session.update(op=cred["name"], bind=_binding(cred), at=int(time.time()), lang=lang)
                return redirect(_safe_next(request.args.get("next")))
            current_app.logger.warning("central login refused from %s", request.remote_addr)
            error, status = g.words["login_failed"], 401
    return render_template("central/login.html", error=error), status


def _safe_next(target: str | None) -> str:
    # Only a path on this server: "//host" or "http:..." would send the operator elsewhere.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("pages.sites")


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("pages.login"))


@bp.get("/")
def home():
    return redirect(url_for("pages.sites"))


# -- data: a few small functions over the central's queries -----------------------------
def readable_sites() -> list[str]:
    """The sites the operator may read, of those the central knows."""
    allowed = db.allowed_sites(g.cred)
    return [s for s in db.site_names(_engine()) if allowed is None or s in allowed]


def local_today() -> date:
    return datetime.now(_state()["tz"]).date()


def day_entries(sites: list[str], first: date, last: date) -> list[dict]:
    """Entries of `sites` from local day `first` to `last` inclusive, as much as counts need
    (db.entry_summaries: the database reads the JSON, 10 times faster than parsing bodies here)."""
    tz = _state()["tz"]
    since = datetime.combine(first, datetime.min.time(), tz).timestamp()
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz).timestamp()
    from ..model import iso

    return db.entry_summaries(_engine(), sites=sites, since=iso(since), until=iso(until))


def site_days(sites: list[str], today: date) -> dict[str, list[dict]]:
    """Per site, CHART_DAYS local days ending today: the day and its totals."""
    from bisect import bisect_right

    from ..export import totals
    from ..model import iso

    tz = _state()["tz"]
    first = today - timedelta(days=CHART_DAYS - 1)
    # Each local midnight as stored UTC text: an entry's day is found by comparing text
    # (ISO UTC times sort as text), not by converting 14 days of times one by one.
    starts = [iso(datetime.combine(first + timedelta(days=i), datetime.min.time(), tz).timestamp())
              for i in range(CHART_DAYS)]
    by_site_day: dict[tuple[str, date], list] = {}
    for e in day_entries(sites, first, today):
        day = first + timedelta(days=bisect_right(starts, e["time"]) - 1)
        by_site_day.setdefault((e["site"], day), []).append(e)

    return {s: [{"day": first + timedelta(days=i), **totals(by_site_day.get((s, first + timedelta(days=i)), []))}
                for i in range(CHART_DAYS)] for s in sites}


# -- the SVG charts --------------------------------------------------------------------------
def bar_chart(labels: list[str], counts: list[int], shares: list[float] | None, title: str,
              width: int = 560, height: int = 180) -> Markup:
    """An inline SVG: a bar per label (counts), and a line of shares (0..1) on a 0-100 % axis.

    :param labels: what each bar stands for (a day, an hour); every other one is written.
    """
    left, right, top, bottom = 36, 40, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    peak = max(counts, default=0) or 1
    step = plot_w / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
             f'<title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>',
             f'<text x="{left - 4}" y="{top + 8}" class="tick" text-anchor="end">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" class="tick" text-anchor="end">0</text>']
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        h = plot_h * count / peak
        x = left + i * step + step * 0.15
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.7:.1f}" '
                     f'height="{h:.1f}"><title>{escape(label)}: {count}</title></rect>')
        if len(labels) <= 16 or i % 2 == 0:
            parts.append(f'<text x="{x + step * 0.35:.1f}" y="{height - 8}" class="tick" '
                         f'text-anchor="middle">{escape(label)}</text>')
    if shares is not None:
        parts.append(f'<text x="{left + plot_w + 4}" y="{top + 8}" class="tick share">100%</text>'
                     f'<text x="{left + plot_w + 4}" y="{top + plot_h}" class="tick share">0%</text>')
        points = " ".join(f"{left + i * step + step / 2:.1f},{top + plot_h * (1 - s):.1f}"
                          for i, s in enumerate(shares))
        parts.append(f'<polyline class="share" points="{points}" fill="none"/>')
        for i, s in enumerate(shares):
            parts.append(f'<circle class="share" cx="{left + i * step + step / 2:.1f}" '
                         f'cy="{top + plot_h * (1 - s):.1f}" '
                         f'r="3"><title>{escape(labels[i])}: {s * 100:.0f}%</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


# -- the pages -------------------------------------------------------------------------------
@bp.get("/sites")
def sites():
    """Today's counts per site, and a 14-day chart of entries and the Bluezone-confirmed share."""
    names = readable_sites()
    today = local_today()
    days = site_days(names, today)
    rows = []
    for s in names:
        series = days[s]
        rows.append({"site": s, "today": series[-1], "chart": bar_chart(
            [d["day"].strftime("%d/%m") for d in series], [d["entries"] for d in series],
            [d["app_confirmed_share"] for d in series], f"{s}: {g.words['chart_title']}")})
    return render_template("central/sites.html", rows=rows, today=today)


@bp.get("/kiosks")
def kiosks():
    """Each kiosk: last batch received, latest entry, and what it reported of itself."""
    allowed = db.allowed_sites(g.cred)
    rows = {(r["site"], r["kiosk"]): r for r in db.kiosk_activity(_engine(), allowed)}
    for r in db.kiosk_statuses(_engine(), allowed):
        rows.setdefault((r["site"], r["kiosk"]), {"site": r["site"], "kiosk": r["kiosk"], "last_seen": None,
                                                  "last_entry": None, "entries": 0}).update(status=r)
    return render_template("central/kiosks.html", rows=[rows[k] for k in sorted(rows)], local=_local_time)


def _local_time(text: str | None) -> str:
    if not text:
        return ""
    return datetime.fromtimestamp(parse_iso(text), _state()["tz"]).strftime("%Y-%m-%d %H:%M:%S")


def _filters() -> dict:
    """The entry filters of the query string, checked: site, kiosk, from and to (local dates),
    decision; a 400 for a bad one, a 403 for a site the operator may not read."""
    f: dict[str, Any] = {}
    for name in ("site", "kiosk"):
        value = request.args.get(name, "").strip()
        if value and (len(value) > 100 or text_problem(value)):
            abort(400, description=f"{g.words['bad_param']}: {name}")
        f[name] = value or None
    for name in ("from", "to"):
        value = request.args.get(name, "").strip()
        try:
            f[name] = date.fromisoformat(value) if value and len(value) == 10 else None
            if value and f[name] is None:
                raise ValueError(value)
        except ValueError:
            abort(400, description=f"{g.words['bad_param']}: {name} (YYYY-MM-DD)")
    decision = request.args.get("decision", "")
    if decision and decision not in DECISIONS:
        abort(400, description=f"{g.words['bad_param']}: decision")
    f["decision"] = decision or None
    after = request.args.get("after", "")
    if after and (len(after) > 26 or not after.isalnum()):
        abort(400, description=f"{g.words['bad_param']}: after")
    f["after"] = after or None
    if f["site"] and not db.may_read(g.cred, f["site"]):
        abort(403, description=g.words["forbidden"])
    return f


def find_entries(f: dict, limit: int) -> list[dict]:
    """Entries matching the filters `f`, within the operator's sites, oldest id first."""
    from ..model import iso

    tz = _state()["tz"]
    since = iso(datetime.combine(f["from"], datetime.min.time(), tz).timestamp()) if f["from"] else None
    until = (iso(datetime.combine(f["to"] + timedelta(days=1), datetime.min.time(), tz).timestamp())
             if f["to"] else None)
    return db.list_entries(_engine(), site=f["site"], kiosk=f["kiosk"], since=since, until=until, limit=limit,
                           sites=db.allowed_sites(g.cred), after_id=f["after"], decision=f["decision"])


@bp.get("/entries")
def entries():
    """Search entries by the filters, a page at a time (the cursor is the last id shown)."""
    f = _filters()
    found = find_entries(f, PAGE_SIZE + 1)
    page, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    query = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in f.items() if v and k != "after"}
    next_url = url_for("pages.entries", **query, after=page[-1]["id"]) if more else None
    tz = _state()["tz"]
    rows = [dict(zip(CSV_COLUMNS, csv_row(e, tz), strict=True), site=e["site"], kiosk=e["kiosk"]) for e in page]
    return render_template("central/entries.html", rows=rows, f=query, next_url=next_url,
                           csv_url=url_for("pages.entries_csv", **query), sites=readable_sites(),
                           decisions=DECISIONS, first=bool(f["after"]))


@bp.get("/entries.csv")
def entries_csv():
    """The search's entries as CSV for Excel (up to CSV_LIMIT)."""
    f = _filters()
    tz = _state()["tz"]
    docs = find_entries(f, CSV_LIMIT)
    rows = ([safe_cell(e["site"]), safe_cell(e["kiosk"]), *csv_row(e, tz)] for e in docs)
    return Response(stream_with_context(csv_chunks(rows, ("site", "kiosk", *CSV_COLUMNS))),
                    mimetype="text/csv", headers={"Content-Disposition": 'attachment; filename="entries.csv"'})


def report_of(site: str, day: date) -> dict:
    """The daily report of `site` for local `day`, as mailed (report_mail.site_report)."""
    from .report_mail import site_report

    return site_report(_engine(), site, day, _state()["tz"])


def sent_record(site: str, day: date) -> dict | None:
    from .report_mail import DbLedger

    return DbLedger(_engine()).get(site, day)


def _report_args() -> tuple[list[str], str | None, date]:
    names = readable_sites()
    site = request.values.get("site") or (names[0] if names else None)
    if site is not None and (len(site) > 100 or text_problem(site)):
        abort(400, description=f"{g.words['bad_param']}: site")
    if site is not None and not db.may_read(g.cred, site):
        abort(403, description=g.words["forbidden"])
    text = request.values.get("date", "")
    try:
        day = date.fromisoformat(text) if text else local_today() - timedelta(days=1)
        if text and len(text) != 10:
            raise ValueError(text)
    except ValueError:
        abort(400, description=f"{g.words['bad_param']}: date (YYYY-MM-DD)")
    return names, site, day


@bp.get("/report")
def report():
    """A site's daily report: the table by hour, the hourly chart, the mail's sent state."""
    names, site, day = _report_args()
    notice = " ".join(get_flashed_messages())
    if site is None:
        return render_template("central/report.html", names=names, site=None, day=day, notice=notice)
    rep = report_of(site, day)
    hours = {r["hour"]: r for r in rep["by_hour"]}
    chart = bar_chart([f"{h:02d}" for h in range(24)], [hours.get(h, {}).get("entries", 0) for h in range(24)],
                      None, f"{site} {day.isoformat()}: {g.words['hour_chart']}")
    reports = _state()["reports"]
    mail = reports.sites.get(site) if reports is not None else None
    # The same table as the CSV the mail attaches and the API serves (entries.report_table),
    # its shares shown as percentages and hours as 06:00.
    header, rows = report_table(rep, g.lang)
    rows = shown_rows(rows, g.lang)
    return render_template("central/report.html", names=names, site=site, day=day, rep=rep, chart=chart,
                           header=header, rows=rows, sent=sent_record(site, day), mail=mail, notice=notice)


@bp.post("/report/send")
def report_send():
    """Send the site's daily report now (again when it was sent before); back to the report."""
    from .. import mail as mailing
    from ..exc import ReportNotSent
    from .report_mail import DbLedger

    _, site, day = _report_args()
    reports = _state()["reports"]
    settings = reports.sites.get(site) if reports is not None and site else None
    if settings is None:
        abort(400, description=g.words["no_mail"])
    ledger = DbLedger(_engine())
    before = ledger.get(site, day) or {}
    with ledger.claim(site, day, wait=False) as mine:
        if not mine:
            notice = g.words["busy"]
        else:
            try:
                _, record = mailing.send_report(settings, ledger, site, day, report_of(site, day), time.time(),
                                                again=before.get("state") == mailing.SENT)
                notice = f"{g.words['sent_ok']}: {record['message_id']}"
                current_app.logger.info("daily report of %s for %s sent by %s as %s", site, day,
                                        g.cred["name"], record["message_id"])
            except ReportNotSent as e:
                notice = f"{g.words['send_failed']}: {e}"
    flash(notice)
    return redirect(url_for("pages.report", site=site, date=day.isoformat()))

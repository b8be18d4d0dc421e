"""The central's pages for operators, through a real central on 127.0.0.1: an operator logs
in with the token from `kiosk-central add-operator`, sees the sites their credential allows
(and no other, by page, API or CSV), the kiosks, the entries, and a site's daily report whose
'send now' reaches a real SMTP server on loopback. The browser tests drive Debian's Chromium."""
from __future__ import annotations

import csv
import importlib.util
import io
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from kiosk.central import db
from kiosk.central.app import MAX_BODY_BYTES, create_app
from kiosk.central.pages import LOGIN_ATTEMPTS, PAGE_SIZE
from kiosk.entries import shown_rows
from kiosk.model import final_decision, iso
from kiosk.serving import BackgroundServer

from .conftest import KIOSK_TOKEN, OPERATOR_TOKEN, SITE, wait_for

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SITE_A, SITE_B = "nha-may-a", "nha-may-b"
TOKEN_A, TOKEN_B = "operator-of-a-token", "operator-of-b-token"
DAY_MS = 86_400_000


def entry(n: int, t: float, site: str = SITE_A, kiosk: str = "gate-a1", decision: str = "allow",
          outcome: str = "confirmed", holder: str = "Nguyễn Văn An") -> dict:
    """An entry as a kiosk writes it; `n` makes the id (sortable by `t`) unique."""
    return {"id": f"01J{int(t * 1000):013d}{n:010d}", "site": site, "kiosk": kiosk, "time": iso(t),
            "direction": "in",
            "declaration": {"format": "sitepass", "status": "valid" if decision != "deny" else "invalid",
                            "holder": holder, "kind": None, "expires": None, "flags": []},
            "fingerprint": f"{n:032x}",
            "ble": {"outcome": outcome, "family": "bluezone" if outcome == "confirmed" else None,
                    "rssi": -60 if outcome == "confirmed" else None, "count_near": 1},
            "decision": decision, "reasons": [] if decision == "allow" else ["no_app"], "override": None,
            "synced_at": None}


def store(engine, entries: list[dict]) -> None:
    """Entries into the central's database, as an accepted batch stores them."""
    db.ingest(engine, entries, f"{time.time_ns():064x}"[-64:], time.time(), 300)


def local_at(day: date, hour: int, minute: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).timestamp()


@pytest.fixture
def two_sites(central):
    """The central with entries of two sites today and operators scoped to each."""
    today = datetime.now(TZ).date()
    store(central.engine, [entry(i, local_at(today, 0, i % 60), SITE_A, "gate-a1") for i in range(3)]
          + [entry(100 + i, local_at(today, 0, i % 60), SITE_B, "gate-b1", holder="Trần Thị Bình")
             for i in range(2)])
    db.add_credential(central.engine, "op-a", "operator", token=TOKEN_A, sites=[SITE_A])
    db.add_credential(central.engine, "op-b", "operator", token=TOKEN_B, sites=[SITE_B])
    return central


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def logged_in(central, token: str) -> requests.Session:
    """A browser-like session of an operator logged in with `token`."""
    s = requests.Session()
    form = s.get(central.url + "/login", timeout=10)
    r = s.post(central.url + "/login", data={"csrf": csrf_of(form.text), "token": token}, timeout=10,
               allow_redirects=False)
    assert r.status_code == 302, r.text
    return s


# -- login, cookie, CSRF, rate limit ---------------------------------------------------------
def test_login_opens_a_strict_httponly_session_and_logout_ends_it(central):
    s = requests.Session()
    r = s.get(central.url + "/sites", timeout=10, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    form = s.get(central.url + "/login", timeout=10)
    cookie = form.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie   # plain HTTP
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    bad = s.post(central.url + "/login", data={"csrf": csrf_of(form.text), "token": "not-a-token"}, timeout=10)
    assert bad.status_code == 401 and "Mã truy cập không đúng" in bad.text
    # a kiosk's token is no login
    kiosk = s.post(central.url + "/login", data={"csrf": csrf_of(form.text), "token": KIOSK_TOKEN}, timeout=10)
    assert kiosk.status_code == 401
    before = s.cookies.get("central_session")
    ok = s.post(central.url + "/login?next=/kiosks", data={"csrf": csrf_of(form.text), "token": OPERATOR_TOKEN},
                timeout=10, allow_redirects=False)
    assert ok.status_code == 302 and ok.headers["Location"] == "/kiosks"
    assert s.cookies.get("central_session") != before            # a new session: no fixation
    assert OPERATOR_TOKEN not in ok.headers["Set-Cookie"]
    page = s.get(central.url + "/sites", timeout=10)
    assert page.status_code == 200 and "ops" in page.text
    # logging out needs the form's CSRF token too
    assert s.post(central.url + "/logout", data={}, timeout=10).status_code == 400
    assert s.get(central.url + "/sites", timeout=10, allow_redirects=False).status_code == 200
    s.post(central.url + "/logout", data={"csrf": csrf_of(page.text)}, timeout=10)
    assert s.get(central.url + "/sites", timeout=10, allow_redirects=False).status_code == 302


def test_the_cookie_is_secure_under_tls(central):
    # waitress sets wsgi.url_scheme from the listener (or a trusted proxy's header): here the
    # app is asked as over HTTPS, the same path a TLS request takes.
    client = create_app(engine=central.engine).test_client()
    r = client.get("/login", base_url="https://central.example")
    assert "Secure" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]


def test_every_form_needs_its_csrf_token(central):
    s = requests.Session()
    s.get(central.url + "/login", timeout=10)
    r = s.post(central.url + "/login", data={"token": OPERATOR_TOKEN}, timeout=10, allow_redirects=False)
    assert r.status_code == 400
    r = s.post(central.url + "/login", data={"token": OPERATOR_TOKEN, "csrf": "forged"}, timeout=10,
               allow_redirects=False)
    assert r.status_code == 400
    # another session's token does not do either
    other = requests.Session()
    foreign = csrf_of(other.get(central.url + "/login", timeout=10).text)
    assert s.post(central.url + "/login", data={"token": OPERATOR_TOKEN, "csrf": foreign},
                  timeout=10, allow_redirects=False).status_code == 400
    ops = logged_in(central, OPERATOR_TOKEN)
    r = ops.post(central.url + "/report/send", data={"site": SITE, "date": "2026-11-25"}, timeout=10)
    assert r.status_code == 400 and "hết hạn" in r.text


def test_login_attempts_are_limited_per_address(central):
    s = requests.Session()
    csrf = csrf_of(s.get(central.url + "/login", timeout=10).text)
    codes = [s.post(central.url + "/login", data={"csrf": csrf, "token": f"guess-{i}"}, timeout=10).status_code
             for i in range(LOGIN_ATTEMPTS)]
    assert codes == [401] * LOGIN_ATTEMPTS
    # past the limit even the right token is not tried: a guesser learns nothing
    r = s.post(central.url + "/login", data={"csrf": csrf, "token": OPERATOR_TOKEN}, timeout=10, allow_redirects=False)
    assert r.status_code == 429 and "một phút" in r.text


def test_a_new_token_or_a_removed_credential_ends_its_sessions(central):
    from sqlalchemy import delete

    s = logged_in(central, OPERATOR_TOKEN)
    assert s.get(central.url + "/sites", timeout=10, allow_redirects=False).status_code == 200
    with central.engine.begin() as conn:
        conn.execute(delete(db.credentials).where(db.credentials.c.name == "ops"))
    assert s.get(central.url + "/sites", timeout=10, allow_redirects=False).status_code == 302


def test_the_session_secret_lives_in_the_database(tmp_path, central):
    """Two central processes on one database accept each other's sessions; another database
    has another secret (nothing in the code)."""
    assert db.session_secret(central.engine) == db.session_secret(db.connect(str(central.engine.url)))
    other = db.connect(f"sqlite:///{tmp_path / 'other.db'}")
    assert db.session_secret(other) != db.session_secret(central.engine)
    s = logged_in(central, OPERATOR_TOKEN)
    second = BackgroundServer(create_app(engine=db.connect(str(central.engine.url))), "127.0.0.1", 0,
                              threads=2, name="central-2", max_body=MAX_BODY_BYTES + 1).start()
    try:
        r = s.get(second.url + "/sites", timeout=10, allow_redirects=False,
                  cookies={"central_session": s.cookies.get("central_session")})
        assert r.status_code == 200
    finally:
        second.stop()


def test_what_was_tried_against_the_pages(central):
    """Markup in a name or site, a redirect away after login, a forged cookie: none works."""
    today = datetime.now(TZ).date()
    site = 'x"><script>alert(1)</script>'
    store(central.engine, [entry(1, local_at(today, 0, 1), site, "gate-1", holder="<img src=x onerror=alert(2)>")])
    s = requests.Session()
    csrf = csrf_of(s.get(central.url + "/login", timeout=10).text)
    r = s.post(central.url + "/login?next=//evil.example/", data={"csrf": csrf, "token": OPERATOR_TOKEN},
               timeout=10, allow_redirects=False)
    assert r.headers["Location"] == "/sites"
    for path in ("/sites", "/entries", "/kiosks", "/report?site=" + requests.utils.quote(site)):
        page = s.get(central.url + path, timeout=10).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
    assert "&lt;img src=x onerror=alert(2)&gt;" in s.get(central.url + "/entries", timeout=10).text
    # a cookie with the operator's name but not the central's signature
    import base64
    import json as json_

    forged = base64.urlsafe_b64encode(json_.dumps({"op": "ops", "at": int(time.time())}).encode()).decode().rstrip("=")
    r = requests.get(central.url + "/sites", cookies={"central_session": forged + ".AAAA.BBBB"}, timeout=10,
                     allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_every_word_of_the_pages_is_in_both_languages():
    from kiosk.central.words import WORDS

    assert set(WORDS["vi"]) == set(WORDS["en"])
    templates = ROOT / "kiosk" / "central" / "templates" / "central"
    used = set()
    for path in templates.glob("*.html"):
        used |= set(re.findall(r"\bw\.(\w+)", path.read_text(encoding="utf-8")))
    assert used - {"get"} <= set(WORDS["vi"]), used - set(WORDS["vi"])


# -- scoping -----------------------------------------------------------------------------------
@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_site_a_operator_cannot_read_site_b_by_page_api_or_csv(two_sites):
    central = two_sites
    a = logged_in(central, TOKEN_A)
    sites = a.get(central.url + "/sites", timeout=10).text
    assert SITE_A in sites and SITE_B not in sites
    assert re.search(r'<td class="n">3</td>', sites)          # today's count, read by the database
    listing = a.get(central.url + "/entries", timeout=10).text
    assert "Nguyễn Văn An" in listing and "Trần Thị Bình" not in listing and SITE_B not in listing
    for path in (f"/entries?site={SITE_B}", f"/entries.csv?site={SITE_B}", f"/report?site={SITE_B}"):
        r = a.get(central.url + path, timeout=10)
        assert r.status_code == 403, path
        assert "Trần Thị Bình" not in r.text
    rows = list(csv.reader(io.StringIO(a.get(central.url + "/entries.csv", timeout=10).text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["site", "kiosk", "id"] and len(rows) == 4
    assert {r[0] for r in rows[1:]} == {SITE_A}
    kiosks = a.get(central.url + "/kiosks", timeout=10).text
    assert "gate-a1" in kiosks and "gate-b1" not in kiosks
    a.get(central.url + "/report?site=" + SITE_A, timeout=10).raise_for_status()
    # the sent form of a page for B's report is refused too
    page = a.get(central.url + "/sites", timeout=10).text
    assert a.post(central.url + "/report/send", data={"csrf": csrf_of(page), "site": SITE_B,
                                                       "date": date.today().isoformat()}, timeout=10).status_code == 403
    # the API with the same token
    api = {"Authorization": f"Bearer {TOKEN_A}"}
    assert requests.get(central.url + f"/api/v1/entries?site={SITE_B}", headers=api, timeout=10).status_code == 403
    listed = requests.get(central.url + "/api/v1/entries", headers=api, timeout=10).json()["entries"]
    assert {e["site"] for e in listed} == {SITE_A} and len(listed) == 3
    day = datetime.now(TZ).date().isoformat()
    assert requests.get(central.url + f"/api/v1/reports/daily?site={SITE_B}&date={day}", headers=api,
                        timeout=10).status_code == 403
    assert requests.get(central.url + f"/api/v1/reports/daily?site={SITE_A}&date={day}", headers=api,
                        timeout=10).json()["entries"] == 3
    # the operator of every site (no list: as before scoping) reads both
    everyone = requests.get(central.url + "/api/v1/entries", timeout=10,
                            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).json()["entries"]
    assert {e["site"] for e in everyone} == {SITE_A, SITE_B}


def test_report_sends_show_only_the_operators_sites(two_sites):
    from kiosk.central.report_mail import DbLedger

    ledger = DbLedger(two_sites.engine)
    for site in (SITE_A, SITE_B):
        ledger.put(site, date(2026, 11, 25), {"state": "missed", "updated_at": "2026-11-26T03:00:00.000Z"})
    api = {"Authorization": f"Bearer {TOKEN_B}"}
    answer = requests.get(two_sites.url + "/api/v1/reports/sends", headers=api, timeout=10).json()
    assert [r["site"] for r in answer["sends"]] == [SITE_B] and [r["site"] for r in answer["missed"]] == [SITE_B]


def test_add_operator_takes_its_sites(tmp_path):
    from click.testing import CliRunner

    from kiosk.central.cli import main

    url = f"sqlite:///{tmp_path / 'central.db'}"
    result = CliRunner().invoke(main, ["--db", url, "add-operator", "ytdp", "--site", SITE_A, "--site", SITE_B])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    cred = db.find_credential(db.connect(url), token)
    assert db.allowed_sites(cred) == {SITE_A, SITE_B}
    result = CliRunner().invoke(main, ["--db", url, "add-operator", "admin"])
    assert db.allowed_sites(db.find_credential(db.connect(url), result.output.strip())) is None


def test_an_older_database_gains_the_sites_column_and_its_operators_read_everything(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:      # the credentials table as it was before scoping
        conn.execute("CREATE TABLE credentials (name VARCHAR(100) PRIMARY KEY, role VARCHAR(20) NOT NULL, "
                     "site VARCHAR(100), token_hash VARCHAR(64) NOT NULL UNIQUE, created_at VARCHAR(30) NOT NULL)")
        conn.execute("INSERT INTO credentials VALUES ('old-ops', 'operator', NULL, ?, '2026-01-01T00:00:00Z')",
                     (db.token_hash("old-token"),))
    engine = db.connect(f"sqlite:///{path}")
    assert db.allowed_sites(db.find_credential(engine, "old-token")) is None


# -- the pages' contents -------------------------------------------------------------------------
def test_entries_page_by_page_with_filters(central):
    today = datetime.now(TZ).date()
    docs = [entry(i, local_at(today, 0, 0) + i, SITE, "gate-1", decision="deny" if i % 10 == 0 else "allow")
            for i in range(2 * PAGE_SIZE + 20)]
    store(central.engine, docs)
    s = logged_in(central, OPERATOR_TOKEN)
    seen, url = [], central.url + "/entries?site=" + SITE
    while url:
        page = s.get(url, timeout=10).text
        seen += re.findall(r'data-id="([0-9A-Z]+)"', page)
        link = re.search(r'href="([^"]+)" rel="next"', page)
        url = central.url + link.group(1).replace("&amp;", "&") if link else None
    assert seen == [d["id"] for d in docs]                  # every entry once, in order
    denied = s.get(central.url + f"/entries?site={SITE}&decision=deny", timeout=10).text
    assert re.findall(r'data-id="([0-9A-Z]+)"', denied) == [d["id"] for d in docs if d["decision"] == "deny"]
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert 'data-id=' not in s.get(central.url + f"/entries?from={tomorrow}", timeout=10).text
    for bad in ("from=2026-13-01", "decision=maybe", "after=..%2F", "site=" + "x" * 101):
        assert s.get(central.url + "/entries?" + bad, timeout=10).status_code == 400, bad
    rows = list(csv.reader(io.StringIO(s.get(central.url + "/entries.csv?decision=deny", timeout=10)
                                       .content.decode("utf-8-sig"))))
    assert len(rows) == 1 + len([d for d in docs if d["decision"] == "deny"])


def test_the_kiosks_page_shows_what_a_real_kiosk_reported(central, make_kiosk):
    """A kiosk sends its version, backlog and health in its sync batch; an old kiosk, which
    sends none, is shown as not reporting."""
    from kiosk import __version__
    from kiosk.demo.scene import visitor_frame

    store(central.engine, [entry(9, time.time() - 60, SITE, "gate-old")])      # an old kiosk: no status
    kiosk = make_kiosk(sync__url=central.url)
    kiosk.camera.show(visitor_frame("a code the kiosk does not know"), frames=2)
    (reported,) = wait_for(lambda: db.kiosk_statuses(central.engine), timeout=20)
    assert (reported["kiosk"], reported["site"], reported["version"]) == ("gate-1", SITE, __version__)
    # the backlog behind the batch that carried it: the one entry was in that batch
    assert reported["backlog"] == 0 and reported["health"].startswith("camera ")
    s = logged_in(central, OPERATOR_TOKEN)
    page = s.get(central.url + "/kiosks", timeout=10).text
    row = re.search(r'data-kiosk="gate-1">(.*?)</tr>', page, re.S).group(1)
    assert __version__ in row and "camera" in row and "clock" in row
    old = re.search(r'data-kiosk="gate-old">(.*?)</tr>', page, re.S).group(1)
    assert "máy chưa báo" in old


def test_a_kiosk_status_is_kept_short_and_unknown_fields_dropped():
    assert db.clean_status({"version": "0.1.0", "backlog": 3, "health": "x" * 1000, "secret": "y"}) == \
        {"version": "0.1.0", "backlog": 3, "health": "x" * 300}
    assert db.clean_status({"backlog": -1, "version": 5}) is None
    assert db.clean_status("nope") is None


# -- in Chromium ---------------------------------------------------------------------------------
from .test_guard_screen import CHROMIUM, SCREENS, browser  # noqa: E402,F401  (the Chromium fixture)

# The SMTP fixtures need aiosmtpd (the test extra); without it only the 'send now' test skips.
HAVE_AIOSMTPD = importlib.util.find_spec("aiosmtpd") is not None
if HAVE_AIOSMTPD:
    from .test_report_mail import _central_toml, csv_rows, report_settings, smtp_server  # noqa: E402,F401

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="chromium is not installed (make test installs Debian's chromium)")


@pytest.fixture
def desk(browser):  # noqa: F811  (the fixture imported above)
    """A page at an operator's laptop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    page = context.new_page()
    yield page
    context.close()


def shoot(page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"central-{name}.png"), full_page=True)


def log_in(page, url: str, token: str) -> None:
    page.goto(url + "/")
    page.fill("input[name=token]", token)
    page.click("form.login button[type=submit]")
    page.wait_for_selector("nav")


def fourteen_days(engine, today: date) -> list[dict]:
    """Two kiosks' entries over the 14 days to today: more each day, the app's share rising."""
    docs, n = [], 0
    for back in range(14):
        day = today - timedelta(days=13 - back)
        for i in range(10 + 3 * back):
            n += 1
            hour = 6 + (i * 7) % 12
            outcome = "confirmed" if i % 10 < 3 + back // 2 else "not_detected"
            decision = "deny" if i % 11 == 0 else ("review" if outcome != "confirmed" and i % 3 == 0 else "allow")
            docs.append(entry(n, local_at(day, hour, i % 60), SITE, "gate-1" if i % 2 else "gate-2",
                              decision=decision, outcome=outcome, holder=f"Khách {n}"))
    store(engine, docs)
    return docs


@needs_chromium
@pytest.mark.skipif(not HAVE_AIOSMTPD, reason="aiosmtpd (the test extra) is not installed")
@pytest.mark.slow
def test_an_operator_sees_the_chart_the_entries_and_sends_the_days_report(
        tmp_path, central, desk, smtp_server, report_settings):
    from kiosk.central.report_mail import load_config

    today = datetime.now(TZ).date()
    docs = fourteen_days(central.engine, today)
    reports = load_config(_central_toml(tmp_path / "reports.toml", report_settings, {SITE: ["ytdp@soyte.example.vn"]}))
    server = BackgroundServer(create_app(engine=central.engine, reports=reports), "127.0.0.1", 0, threads=4,
                              name="central-pages", max_body=MAX_BODY_BYTES + 1).start()
    try:
        page = desk
        page.goto(server.url + "/sites")
        assert "/login" in page.url
        shoot(page, "login")
        log_in(page, server.url, OPERATOR_TOKEN)
        # Sites: today's count and a chart of 14 bars with the share's line
        section = page.locator(f"section.site[data-site='{SITE}']")
        assert section.locator("table.counts td.n").first.inner_text() == str(10 + 3 * 13)
        assert section.locator("svg.chart rect.bar").count() == 14
        assert section.locator("svg.chart polyline.share").count() == 1
        shoot(page, "sites")
        # Kiosks
        page.click("nav a[href='/kiosks']")
        assert page.locator("tr.kiosk").count() == 2
        shoot(page, "kiosks")
        # Entries: today's, page by page
        page.click("nav a[href='/entries']")
        page.fill("input[name=from]", today.isoformat())
        page.click("form.filters button[type=submit]")
        assert page.locator("tr.entry").count() == 10 + 3 * 13
        shoot(page, "entries")
        # The daily report of yesterday: the table, the hourly chart, not sent yet
        yesterday = today - timedelta(days=1)
        page.goto(f"{server.url}/report?site={SITE}&date={yesterday.isoformat()}")
        assert page.locator(".sent-state").get_attribute("class").split() == ["sent-state", "unsent"]
        assert page.locator("svg.chart rect.bar").count() == 24
        table = [[c.strip() for c in row.split("\t")] for row in page.locator("table.report").inner_text().splitlines()]
        page.click("button.send")
        page.wait_for_selector(".notice")
        assert "Máy chủ thư đã nhận báo cáo" in page.inner_text(".notice")
        assert page.locator(".sent-state").get_attribute("class").split() == ["sent-state", "sent"]
        shoot(page, "report")
        assert len(smtp_server.messages) == 1
        name, rows = csv_rows(smtp_server.parsed())
        assert name == f"bao-cao-{SITE}-{yesterday.isoformat()}.csv"
        # The attachment opens as the same table: the same hours and counts as on the page
        day_docs = [d for d in docs if datetime.fromisoformat(d["time"].replace("Z", "+00:00")).astimezone(TZ).date()
                    == yesterday]
        finals = [final_decision(d) for d in day_docs]
        assert rows[-1][:2] == ["Tổng", str(len(day_docs))]
        assert [rows[-1][i] for i in (3, 4, 5)] == [str(finals.count(k)) for k in ("allow", "deny", "review")]
        # The page's table is the attachment's, cell for cell, read as a person reads it:
        # shares as percentages with a decimal comma, hours as 06:00.
        assert table[0] == rows[0]
        assert table[1:] == shown_rows([[int(r[0]) if r[0].isdigit() else r[0]]
                                        + [float(c) if "." in c else int(c) for c in r[1:]] for r in rows[1:]])
        assert any(c.endswith("%") and "," in c for c in table[-1])
        assert all(len(r[0]) == 5 and r[0][2] == ":" for r in table[1:-1])
        # The English page says the same
        page.goto(f"{server.url}/report?site={SITE}&date={yesterday.isoformat()}&lang=en")
        assert "The mail server accepted" not in page.inner_text("main")
        assert page.inner_text(".sent-state").startswith("sent")
        page.goto(server.url + "/sites")
        assert "Sites" in page.inner_text("h1")
        shoot(page, "sites-en")
    finally:
        server.stop()


@needs_chromium
@pytest.mark.slow
def test_make_demo_prints_the_central_and_a_login_that_shows_the_demo_kiosks_entries(tmp_path, desk):
    """`kiosk demo` (what `make demo` runs) as a user runs it; the operator logs in with the
    token it prints and sees the demo kiosk's entries, the chart and today's report."""
    import os
    import signal
    import subprocess
    import sys

    from kiosk.testing import free_port

    port, central_port, form_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("kiosk")), "demo", "--data", str(tmp_path / "demo"),
                             "--port", str(port), "--central-port", str(central_port), "--form-port", str(form_port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    try:
        while not any("Central pages" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        printed = re.search(r"Central pages\s+(http://\S+)/\s+\(log in with the operator token: (\S+)\)",
                            "".join(lines))
        url, token = printed.group(1), printed.group(2)
        assert url == f"http://127.0.0.1:{central_port}"
        page = desk
        log_in(page, url, token)
        today = datetime.now(TZ).date().isoformat()
        since = (datetime.now(TZ).date() - timedelta(days=1)).isoformat()     # the demo's data is fresh

        def demo_entries():
            page.goto(f"{url}/entries?from={since}")
            return page.locator("tr.entry").count() >= 3
        wait_for(demo_entries, timeout=60, interval=1)
        assert "Nguyễn Văn An" in page.inner_text("table.entries")
        shoot(page, "demo-entries")
        page.goto(url + "/sites")
        assert page.locator("section.site svg.chart rect.bar").count() == 14
        shoot(page, "demo-sites")
        from kiosk import __version__

        page.goto(url + "/kiosks")                          # what the demo kiosk says of itself
        assert page.inner_text("tr.kiosk[data-kiosk='gate-1'] td.version") == __version__
        assert "camera ok" in page.inner_text("tr.kiosk[data-kiosk='gate-1'] td.health")
        shoot(page, "demo-kiosks")
        page.goto(f"{url}/report?date={today}")
        assert page.locator("table.report tr.total").count() == 1
        assert int(page.locator("table.report tr.total td").nth(1).inner_text()) >= 3
        assert "Chưa cấu hình người nhận" in page.inner_text("section.mail")     # the demo mails nothing
        shoot(page, "demo-report")
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines) + out

"""One meaning of an entry on the kiosk and the central: the same filters give the same
entries on both (through real servers on 127.0.0.1, SQLite and PostgreSQL), decisions as the
guard finally took them, search that ignores case and Vietnamese diacritics, CSV that Excel
cannot run, and the daily report the province asked for."""
from __future__ import annotations

import csv
import io
import json
import random
import unicodedata
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import requests

from kiosk import entries as semantics
from kiosk.central import db
from kiosk.central.openapi import SPEC as CENTRAL_SPEC
from kiosk.entries import BadParameter, Filters, final_decision, fold, safe_cell
from kiosk.model import Declaration, new_id
from kiosk.store import EntryLog
from kiosk.web.openapi import SPEC as KIOSK_SPEC

from .conftest import OPERATOR_TOKEN, SITE

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
BINH = "Trần Thị Bình"
# Names a visitor may carry in an unsigned QR code or type into the declaration form: each is
# text a spreadsheet would run as a formula (OWASP, "CSV Injection").
FORMULAS = ['=HYPERLINK("http://evil.example","Xem")', "+84 912 345 678", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+9)*cmd|' /C calc'!A0", "\tTab Tab", "\rCarriage"]
NAMES = ["Nguyễn Văn An", BINH, "Lê Văn Đức", 'Phạm "Bé" Dũng, Jr.', None, *FORMULAS]
T0 = datetime(2026, 11, 22, 0, 30, tzinfo=UTC).timestamp()      # 07:30 in Hà Nội


def visitors(n: int = 120, seed: int = 7) -> list[dict]:
    """n entries over three local days at gate-1: every decision, app outcome and status,
    overrides of each kind, a few exits, some visitors coming twice."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        t = T0 + i * (3 * 86400 / n)
        decision = rng.choice(["allow", "deny", "review"])
        override = None
        if i % 7 == 3:
            override = {"action": rng.choice(["allow", "deny", "exit"]), "reason": "guard looked",
                        "by": "guard", "at": "2026-11-22T01:00:00.000Z"}
        docs.append({
            "id": new_id(t, rng.randbytes(10)), "site": SITE, "kiosk": "gate-1",
            "time": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "direction": "out" if i % 11 == 5 else "in",
            "declaration": {"format": "pc-covid", "status": rng.choice(["valid", "valid", "invalid", "review"]),
                            "holder": NAMES[i % len(NAMES)], "kind": None, "expires": None,
                            "flags": ["cough"] if i % 9 == 0 else []},
            "fingerprint": f"{i % 40:032x}", "ble": {"outcome": rng.choice(["confirmed", "likely", "not_detected"]),
                                                     "family": None, "rssi": -60 - i % 30, "count_near": 1},
            "decision": decision, "reasons": [], "override": override, "synced_at": None})
    return sorted(docs, key=lambda d: d["id"])


# -- pure: the module both sides use ---------------------------------------------------------
def test_search_folds_case_and_vietnamese_diacritics_nfd_included():
    binh = {"declaration": {"holder": BINH}}
    nfd = unicodedata.normalize("NFD", "Bình")
    assert nfd != "Bình"
    for typed in ("binh", "BÌNH", "Bình", nfd, "tran thi", "TRẦN THỊ BÌNH"):
        assert Filters(q=fold(typed)).match_content({**binh, "decision": "allow", "ble": {}}), typed
    assert Filters(q=fold("duc")).match_content({"declaration": {"holder": "Lê Văn Đức"}, "decision": "deny"})
    assert not Filters(q=fold("binh")).match_content({"declaration": {"holder": "Nguyễn Văn An"}, "decision": "deny"})
    assert not Filters(q=fold("binh")).match_content({"declaration": {"holder": None}, "decision": "deny"})


def test_a_guards_override_is_the_final_decision():
    entry = {"decision": "deny", "override": None}
    assert final_decision(entry) == "deny"
    assert final_decision({**entry, "override": {"action": "allow"}}) == "allow"
    assert final_decision({"decision": "allow", "override": {"action": "deny"}}) == "deny"
    assert final_decision({"decision": "allow", "override": {"action": "exit"}}) == "allow"    # let in, then out


def test_bad_parameters_are_named():
    for args, named in (({"from": "yesterday"}, "from"), ({"to": "2026-13-45"}, "to"),
                        ({"decision": "maybe"}, "decision"),
                        ({"app": "yes"}, "app"), ({"status": "ok"}, "status"), ({"q": "x" * 101}, "q"),
                        ({"site": "a\x00b"}, "site"), ({"from": "9999-12-31T23:59:59-14:00"}, "from")):
        with pytest.raises(BadParameter, match=named):
            Filters.from_args(args, TZ)
    for value in ("abc", "-5", "0", "1e3", " 5", "9" * 13):
        with pytest.raises(BadParameter, match="limit"):
            semantics.page_limit(value, 100, 1000)
    assert semantics.page_limit("20000", 100, 1000) == 1000
    # A day is a local day; a time without a zone is local too, the same rule on both sides.
    f = Filters.from_args({"from": "2026-11-22", "to": "2026-11-22"}, TZ)
    assert (f.since, f.until) == ("2026-11-21T17:00:00.000Z", "2026-11-22T17:00:00.000Z")
    assert Filters.from_args({"from": "2026-11-22T08:00"}, TZ).since == "2026-11-22T01:00:00.000Z"
    assert Filters.from_args({"from": "2026-11-22T08:00Z"}, TZ).since == "2026-11-22T08:00:00.000Z"


def test_formula_cells_get_a_leading_apostrophe_and_numbers_stay_numbers():
    for name in FORMULAS:
        assert safe_cell(name) == "'" + name
    for plain in ("Nguyễn Văn An", "", "'quoted", "a=b", "1-2"):
        assert safe_cell(plain) == plain
    assert safe_cell(-58) == -58 and safe_cell(0.25) == 0.25
    text = "".join(semantics.csv_chunks([[name, -58] for name in FORMULAS], ["holder", "rssi"]))
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    assert [r[0] for r in rows[1:]] == ["'" + name for name in FORMULAS]
    assert {r[1] for r in rows[1:]} == {"-58"}


def test_names_are_stored_nfc_on_the_kiosk():
    nfd = unicodedata.normalize("NFD", BINH)
    assert Declaration("pc-covid", "valid", holder=nfd).summary()["holder"] == BINH


def test_the_daily_report_counts_final_decisions_overrides_exits_visitors_and_symptoms():
    def entry(i, hour, decision, override=None, direction="in", fingerprint=None, app="confirmed",
              status="valid", flags=()):
        t = datetime(2026, 11, 22, hour, 10 + i, tzinfo=TZ).timestamp()
        return {"id": new_id(t), "site": SITE, "kiosk": "gate-1", "time": semantics.iso(t), "direction": direction,
                "declaration": {"format": "sitepass", "status": status, "holder": "X", "flags": list(flags)},
                "fingerprint": fingerprint or f"{i:032x}", "ble": {"outcome": app}, "decision": decision,
                "reasons": [],
                "override": {"action": override, "reason": "r", "by": "g", "at": "x"} if override else None}
    docs = [entry(0, 8, "deny", "allow"),                     # denied, then let in by the guard
            entry(1, 8, "allow", fingerprint="a" * 32),
            entry(2, 8, "allow", fingerprint="a" * 32, app="likely"),     # the same visitor again
            entry(3, 9, "review", status="invalid", app="not_detected", flags=["cough", "fever"]),
            entry(4, 9, "allow", "deny", flags=["cough"]),
            entry(5, 17, "allow", direction="out"),
            entry(6, 17, "allow", "exit", app="not_detected")]           # let in, later let out by the guard
    r = semantics.daily_report(docs, date(2026, 11, 22), TZ, SITE)
    assert (r["entries"], r["admitted"], r["allow"], r["deny"], r["review"]) == (7, 4, 5, 1, 1)
    assert r["sent_to_review"] == 1 and r["overrides"] == {"allow": 1, "deny": 1, "exit": 1}
    assert r["exits"] == 2 and r["unique_visitors"] == 6 and r["kiosks"] == ["gate-1"]
    assert r["app_share"] == {"confirmed": round(4 / 7, 4), "likely": round(1 / 7, 4), "not_detected": round(2 / 7, 4)}
    assert r["valid_declaration_share"] == round(6 / 7, 4)
    assert r["with_symptoms"] == 2 and r["symptoms"] == {"cough": 2, "fever": 1}
    assert [(h["hour"], h["entries"], h["admitted"]) for h in r["by_hour"]] == [(8, 3, 3), (9, 2, 0), (17, 2, 1)]
    assert "fingerprint" not in json.dumps(r) and "a" * 32 not in json.dumps(r)      # no identities in the report
    jsonschema.validate(r, {**KIOSK_SPEC, "$ref": "#/components/schemas/DailyReport"})
    header, rows = semantics.report_table(r, "vi")
    assert header[:3] == ["Giờ", "Lượt quét", "Số người được vào"] and rows[-1][:3] == ["Tổng", 7, 4]
    assert semantics.report_table(r, "en")[0][:3] == ["Hour", "Scans", "People admitted"]
    page = semantics.report_html({**r, "symptoms": {"<script>x</script>": 1}}, "vi")
    assert "<script>x" not in page and "&lt;script&gt;" in page and "Số người được vào" in page


# -- the kiosk and the central, through real servers --------------------------------------------
@pytest.fixture
def both(make_kiosk, kiosk_settings, central):
    """A kiosk and a central holding the same entries (the central's through its ingest code)."""
    docs = visitors()
    entry_log = EntryLog(_log_path(kiosk_settings))
    entry_log.start()
    entry_log.import_entries(docs)
    entry_log.stop()
    for start in range(0, len(docs), 50):
        db.ingest(central.engine, docs[start:start + 50], f"sig-{start}", 0, 300)
    kiosk = make_kiosk(web__rate_limit=100_000)         # the test asks more than an operator would
    return kiosk, central, docs


def _log_path(kiosk_settings):
    from pathlib import Path

    return Path(kiosk_settings()["data_dir"]) / "log"


SAME_QUERIES = [
    {}, {"from": "2026-11-22", "to": "2026-11-22"}, {"from": "2026-11-23"}, {"to": "2026-11-22"},
    {"from": "2026-11-22T12:00", "to": "2026-11-23T09:30:00+07:00"}, {"decision": "deny"}, {"decision": "allow"},
    {"decision": "review"}, {"app": "likely"}, {"status": "invalid"}, {"q": "binh"}, {"q": "BÌNH"},
    {"q": unicodedata.normalize("NFD", "Bình")}, {"q": "duc"}, {"q": "=hyperlink"},
    {"decision": "allow", "app": "confirmed", "from": "2026-11-23", "to": "2026-11-24"},
    {"site": SITE, "kiosk": "gate-1", "status": "valid"}, {"site": "elsewhere"},
]


def _pages(base: str, params: dict, limit: int) -> list[str]:
    ids, cursor = [], None
    while True:
        r = requests.get(base + "/api/v1/entries",
                         params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})},
                         headers=AUTH, timeout=30)
        assert r.status_code == 200, (params, r.text)
        body = r.json()
        ids += [e["id"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_the_same_filters_return_the_same_entries_from_kiosk_and_central(both):
    kiosk, central, docs = both
    for params in SAME_QUERIES:
        f = Filters.from_args(params, TZ)
        expected = [d["id"] for d in docs if f.match(d)]
        from_kiosk = _pages(kiosk.web_url, params, 7)
        from_central = _pages(central.url, params, 7)
        assert from_kiosk == from_central == expected, params
        kiosk_csv = requests.get(kiosk.web_url + "/api/v1/entries.csv", params=params, headers=AUTH, timeout=30)
        central_csv = requests.get(central.url + "/api/v1/entries.csv", params=params, headers=AUTH, timeout=30)
        assert kiosk_csv.content == central_csv.content, params
        assert kiosk_csv.headers["Content-Type"] == central_csv.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert len(_pages(kiosk.web_url, {"q": "binh"}, 100)) == sum(d["declaration"]["holder"] == BINH for d in docs) > 0
    # decision=deny is the final decision: a deny let in by the guard is not among them.
    overridden = [d["id"] for d in docs if d["decision"] == "deny" and (d["override"] or {}).get("action") == "allow"]
    assert overridden and not set(overridden) & set(_pages(central.url, {"decision": "deny"}, 1000))
    day = "2026-11-22"
    kiosk_report = requests.get(kiosk.web_url + "/api/v1/reports/daily", params={"date": day}, headers=AUTH, timeout=30)
    central_report = requests.get(central.url + "/api/v1/reports/daily", params={"date": day, "site": SITE},
                                  headers=AUTH, timeout=30)
    assert kiosk_report.json() == central_report.json()
    for fmt in ("csv", "html"):
        a = requests.get(kiosk.web_url + "/api/v1/reports/daily", params={"date": day, "format": fmt},
                         headers=AUTH, timeout=30)
        b = requests.get(central.url + "/api/v1/reports/daily", params={"date": day, "site": SITE, "format": fmt},
                         headers=AUTH, timeout=30)
        assert a.status_code == b.status_code == 200 and a.content == b.content, fmt
        assert a.headers["Content-Type"] == b.headers["Content-Type"] == {
            "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}[fmt]


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_entries_csv_neutralises_formula_names_on_kiosk_and_central(both):
    kiosk, central, docs = both
    for base in (kiosk.web_url, central.url):
        r = requests.get(base + "/api/v1/entries.csv", headers=AUTH, timeout=30)
        raw = r.content
        assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        holders = {row[4] for row in rows[1:]}
        assert {"'" + name for name in FORMULAS} <= holders, base
        assert not {name for name in FORMULAS} & holders
        assert {"Nguyễn Văn An", BINH, 'Phạm "Bé" Dũng, Jr.'} <= holders
        rssi = {row[10] for row in rows[1:]}
        assert "-60" in rssi and not any(v.startswith("'") for v in rssi)          # numbers stay numbers


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_the_central_answers_every_bad_parameter_with_a_json_400(central):
    for params in ({"from": "yesterday"}, {"limit": "abc"}, {"decision": "maybe"}, {"app": "x"}, {"status": "x"},
                   {"cursor": "!!!"}, {"cursor": "Z" * 26}, {"tz": "Mars/Olympus"}, {"q": "\x00"}):
        paging = "limit" in params or "cursor" in params          # entries.csv streams everything: no paging
        for path in ("/api/v1/entries",) if paging else ("/api/v1/entries", "/api/v1/entries.csv"):
            r = requests.get(central.url + path, params=params, headers=AUTH, timeout=10)
            assert r.status_code == 400 and r.headers["Content-Type"] == "application/json", (path, params)
            assert r.json()["error"], (path, params)
    for params in ({"site": SITE, "date": "2026-11-22", "format": "xml"},
                   {"site": SITE, "date": "2026-11-22", "language": "fr"},
                   {"site": SITE, "date": "yesterday"}, {"date": "2026-11-22"}):
        r = requests.get(central.url + "/api/v1/reports/daily", params=params, headers=AUTH, timeout=10)
        assert r.status_code == 400 and r.json()["error"], params


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_the_central_stores_names_nfc_and_finds_them_typed_any_way(central):
    from .test_central import _entry, _post

    nfd = dict(_entry(1), declaration=dict(_entry(1)["declaration"], holder=unicodedata.normalize("NFD", BINH)))
    assert _post(central, {"kiosk": "gate-1", "entries": [nfd, _entry(2)]}).status_code == 200
    (stored,) = [e for e in db.list_entries(central.engine) if e["id"] == nfd["id"]]
    assert stored["declaration"]["holder"] == BINH and unicodedata.is_normalized("NFC", stored["declaration"]["holder"])
    for typed in ("binh", "BÌNH", unicodedata.normalize("NFD", "Bình")):
        assert _pages(central.url, {"q": typed}, 10) == [nfd["id"]], typed


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_the_central_pages_past_ten_thousand_entries(central):
    from .test_central import _entry

    for k in range(11):
        batch = [dict(_entry(0), id=f"01J00000000000000000{k:02d}{i:04d}", decision=("deny" if i % 2 else "allow"))
                 for i in range(1000)]
        db.ingest(central.engine, batch, f"sig-{k}", 0, 300)
    everything = _pages(central.url, {}, 10_000)
    assert len(everything) == 11_000 and everything == sorted(everything)
    assert len(_pages(central.url, {"decision": "deny"}, 4000)) == 5500


@pytest.mark.parametrize("central_url", ["sqlite"], indirect=True)
def test_the_central_openapi_document_covers_every_route_and_its_answers(both):
    kiosk, central, docs = both
    r = requests.get(central.url + "/api/v1/openapi.json", timeout=10)
    assert r.status_code == 200 and r.json() == CENTRAL_SPEC
    from kiosk.central.app import create_app

    app = create_app("sqlite://")
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")}
    assert routes == set(CENTRAL_SPEC["paths"]), routes ^ set(CENTRAL_SPEC["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule in CENTRAL_SPEC["paths"]:
            methods = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
            assert methods == set(CENTRAL_SPEC["paths"][rule.rule]), rule

    def valid(body, name):
        jsonschema.validate(body, {**CENTRAL_SPEC, "$ref": f"#/components/schemas/{name}"})
    valid(requests.get(central.url + "/api/v1/entries", params={"limit": 5}, headers=AUTH, timeout=10).json(),
          "EntryPage")
    valid(requests.get(central.url + "/api/v1/reports/daily", params={"site": SITE, "date": "2026-11-22"}, headers=AUTH,
                       timeout=10).json(), "DailyReport")
    valid(requests.get(central.url + "/api/v1/health", timeout=10).json(), "Health")
    valid(requests.get(central.url + "/api/v1/reports/sends", headers=AUTH, timeout=10).json(), "ReportSends")
    valid(requests.get(central.url + "/api/v1/reports/daily", params={"site": SITE, "date": "2026-11-22"}, headers=AUTH,
                       timeout=10).json(), "DailyReport")
    bad = requests.get(central.url + "/api/v1/entries", params={"limit": "abc"}, headers=AUTH, timeout=10).json()
    valid(bad, "Error")
    jsonschema.Draft202012Validator.check_schema(CENTRAL_SPEC["components"]["schemas"]["DailyReport"])


def test_kiosk_export_and_the_mail_attachment_write_the_same_safe_csv(tmp_path, kiosk_settings):
    """`kiosk export` writes the API's CSV (formulas neutralised); the mail attaches the API's report CSV."""
    from click.testing import CliRunner

    from kiosk import mail
    from kiosk.cli import main

    docs = visitors()
    entry_log = EntryLog(_log_path(kiosk_settings))
    entry_log.start()
    entry_log.import_entries(docs)
    entry_log.stop()
    settings = kiosk_settings()
    config = tmp_path / "kiosk.toml"
    config.write_text(f'data_dir = "{settings["data_dir"]}"\n[site]\nid = "{SITE}"\n', encoding="utf-8")
    out = tmp_path / "entries.csv"
    result = CliRunner().invoke(main, ["export", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    holders = {row[4] for row in rows[1:]}
    assert {"'" + name for name in FORMULAS} <= holders and not set(FORMULAS) & holders
    assert raw == "".join(semantics.csv_chunks((semantics.csv_row(d, TZ) for d in docs),
                                               semantics.CSV_COLUMNS)).encode("utf-8")
    # The same filters as the APIs: the final decision, the folded name, local days.
    picked = tmp_path / "picked.json"
    result = CliRunner().invoke(main, ["export", "--config", str(config), "--format", "json", "--out", str(picked),
                                       "-q", "BINH", "--decision", "allow",
                                       "--from", "2026-11-23", "--to", "2026-11-24"])
    assert result.exit_code == 0, result.output
    f = Filters.from_args({"q": "binh", "decision": "allow", "from": "2026-11-23", "to": "2026-11-24"}, TZ)
    assert [d["id"] for d in json.loads(picked.read_text())] == [d["id"] for d in docs if f.match(d)] != []
    bad = CliRunner().invoke(main, ["export", "--config", str(config), "--from", "yesterday"])
    assert bad.exit_code == 2 and "from must be a date" in bad.output
    report = mail.build_report(docs, date(2026, 11, 22), TZ, SITE, ["gate-1"])
    assert mail.render(report, "vi")[2] == semantics.report_csv(report, "vi")
    assert mail.render(report, "en")[2] == semantics.report_csv(report, "en")


def test_the_centrals_zone_and_report_language_come_from_its_command_line(tmp_path):
    """`kiosk-central serve --timezone --language` reach the app: local days and labels follow them."""
    from click.testing import CliRunner

    from kiosk.central.app import MAX_BODY_BYTES, create_app
    from kiosk.central.cli import main
    from kiosk.serving import BackgroundServer

    from .test_central import _entry

    result = CliRunner().invoke(main, ["--db", f"sqlite:///{tmp_path / 'c.db'}", "serve", "--timezone", "Mars/Olympus"])
    assert result.exit_code != 0 and "--timezone" in result.output
    engine = db.connect(f"sqlite:///{tmp_path / 'central.db'}")
    db.add_credential(engine, "ops", "operator", None, OPERATOR_TOKEN)
    # 03:00 on the 24th in Hà Nội
    late = dict(_entry(1), id="01J00000000000000000000001", time="2026-11-23T20:00:00.000Z")
    db.ingest(engine, [_entry(2), late], "sig", 0, 300)
    server = BackgroundServer(create_app(engine=engine, timezone="UTC", language="en"), "127.0.0.1", 0, threads=2,
                              name="central-utc", max_body=MAX_BODY_BYTES + 1).start()
    try:
        day = _pages(server.url, {"from": "2026-11-23", "to": "2026-11-23"}, 10)
        assert day == sorted([late["id"], _entry(2)["id"]])                      # a UTC day holds both
        in_hanoi = _pages(server.url, {"from": "2026-11-23", "to": "2026-11-23", "tz": "Asia/Ho_Chi_Minh"}, 10)
        assert in_hanoi == [_entry(2)["id"]]
        text = requests.get(server.url + "/api/v1/reports/daily",
                            params={"site": SITE, "date": "2026-11-23", "format": "csv"},
                            headers=AUTH, timeout=10).content.decode("utf-8-sig")
        assert text.startswith("Hour,Scans,People admitted") and "\r\nTotal,2," in text
    finally:
        server.stop()
        engine.dispose()


def test_a_sparse_search_on_the_central_answers_short_pages_and_finds_every_match(tmp_path):
    """One GET reads at most max_scan rows: a filter few pass gives short (even empty) pages
    with a next_cursor, never a request that reads the whole table; following them finds all."""
    from kiosk.central.app import MAX_BODY_BYTES, create_app
    from kiosk.serving import BackgroundServer

    from .test_central import _entry

    engine = db.connect(f"sqlite:///{tmp_path / 'central.db'}")
    db.add_credential(engine, "ops", "operator", None, OPERATOR_TOKEN)
    batch = [dict(_entry(0), id=f"01J0000000000000000000{i:04d}",
                  declaration=dict(_entry(0)["declaration"], holder=BINH if i in (5, 450, 998) else "Lê Văn Cường"))
             for i in range(1000)]
    db.ingest(engine, batch, "sig", 0, 300)
    server = BackgroundServer(create_app(engine=engine, max_scan=100), "127.0.0.1", 0, threads=2, name="central-scan",
                              max_body=MAX_BODY_BYTES + 1).start()
    try:
        pages, cursor, found = [], None, []
        while True:
            body = requests.get(server.url + "/api/v1/entries", headers=AUTH, timeout=10,
                                params={"q": "binh", "limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            pages.append(len(body["entries"]))
            found += [e["id"] for e in body["entries"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert found == [batch[i]["id"] for i in (5, 450, 998)]
        assert len(pages) >= 10 and 0 in pages and max(pages) <= 2        # 1000 rows, 100 a request
    finally:
        server.stop()
        engine.dispose()


def test_entry_times_are_utc_iso_with_milliseconds_cut_not_rounded():
    # Entry times sort as text and parse back within a millisecond: the form the log, the
    # central and the CSV share (the microseconds cut to milliseconds, never rounded up).
    from kiosk.model import iso, parse_iso
    assert iso(1795420800.0) == "2026-11-23T08:00:00.000Z"
    assert iso(1795420800.9996) == "2026-11-23T08:00:00.999Z"
    assert iso(1795420859.0004) == "2026-11-23T08:00:59.000Z"
    assert iso(0.0) == "1970-01-01T00:00:00.000Z"
    rng = random.Random(18)
    times = sorted(rng.uniform(1.6e9, 1.9e9) for _ in range(2000))
    texts = [iso(t) for t in times]
    assert texts == sorted(texts)
    assert all(-1e-6 < t - parse_iso(x) < 0.001 + 1e-6 for t, x in zip(times, texts, strict=True))
    assert all(x == datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
               for t, x in zip(times, texts, strict=True))

"""Contact tracing: a day at a site of two gates, traced on the kiosk's own log and on the
central (SQLite and PostgreSQL) through real servers, with the same contacts from both;
the tracer role, the audit log, the CSV, the page and who is inside now."""
from __future__ import annotations

import csv
import hashlib
import io
import random
from datetime import UTC, datetime

import jsonschema
import pytest
import requests
from sqlalchemy import text

from kiosk import trace
from kiosk.central import db as central_db
from kiosk.model import Entry, iso, new_id
from kiosk.store import EntryLog
from kiosk.web.openapi import SPEC

from .conftest import OPERATOR_TOKEN, SITE

TRACER_TOKEN = "tracer-secret-token"
DAY = datetime(2026, 11, 20, tzinfo=UTC).timestamp()      # midnight UTC
H = 3600
UNTIL = iso(DAY + 2 * 86400)
RNG = random.Random(18)
NAMES = {"an": "Nguyễn Văn An", "binh": "Trần Thị Bình"}


def entry(hours: float, who: str, kiosk: str = "gate-1", direction: str = "in", holder: str | None = None,
          app: str = "not_detected", decision: str = "allow", override: dict | None = None,
          clock_unsynced: bool = False) -> dict:
    """An entry at `hours` after DAY's midnight by the person `who` (their fingerprint)."""
    t = DAY + hours * H
    return Entry(id=new_id(t, RNG.randbytes(10)), site=SITE, kiosk=kiosk, t=t, direction=direction,
                 declaration={"format": "sitepass", "status": "valid", "holder": holder or NAMES.get(who, who.title()),
                              "kind": None, "expires": None, "flags": []},
                 fingerprint=hashlib.sha256(who.encode()).hexdigest()[:32],
                 ble={"outcome": app, "family": "bluezone" if app == "confirmed" else None, "rssi": None,
                      "count_near": 0},
                 decision=decision, reasons=(), override=override, clock_unsynced=clock_unsynced).to_json()


def scene() -> tuple[dict, list[dict]]:
    """(the traced person's first entry, every entry of the two days); the same ids each call."""
    RNG.seed(18)
    exit_override = {"action": "exit", "reason": "Ra về", "by": "guard", "at": iso(DAY + 25 * H)}
    a_in = entry(8, "an")
    docs = [
        # An: in at gate 1, out at gate 2; back after lunch (twice in a day); a night shift
        # from 22:30 crossing midnight to 06:00.
        a_in, entry(12, "an", "gate-2", "out"), entry(13, "an"), entry(17, "an", "gate-2", "out"),
        entry(22.5, "an"), entry(30, "an", "gate-2", "out"),
        # Bình: in at 09:00, no exit: an assumed stay of 8 h (to 17:00): 3 h + 4 h with An.
        entry(9, "binh", app="confirmed"),
        # Cường: 10 minutes with An: under the 15-minute rule.
        entry(11 + 50 / 60, "cuong"), entry(12.5, "cuong", "gate-2", "out"),
        # Dũng: from 16:00, out the next morning: 1 h with An in the afternoon, then
        # 22:30 to 01:00 in the night shift (2.5 h): 3.5 h across midnight.
        entry(16, "dung"), entry(25, "dung", "gate-2", "out"),
        # Em: in at 23:00, the guard's "Ra về" at 01:00 on an entry at gate 1: 2 h.
        entry(23, "em"), entry(25, "em", override=exit_override),
        # Phúc: stamped while the kiosk's clock was not trusted, 14:00 to 15:00.
        entry(14, "phuc", clock_unsynced=True), entry(15, "phuc", "gate-2", "out", clock_unsynced=True),
        # Giang: refused at the door at 10:00 (never inside).
        entry(10, "giang", decision="deny"),
    ]
    return a_in, docs


EXPECTED = {"Trần Thị Bình": (420.0, True, "confirmed"), "Dung": (210.0, False, "not_detected"),
            "Em": (120.0, False, "not_detected"), "Phuc": (60.0, False, "not_detected")}


def summary(contacts: list[dict]) -> dict:
    return {c["holder"]: (c["overlap_minutes"], c["assumed"], c["app"]) for c in contacts}


def test_stays_match_exits_at_any_gate_and_assume_the_rest():
    a_in, docs = scene()
    by = {(s.holder, s.start): s for s in trace.stays(docs, 8 * H, 24 * H)}
    an = [s for s in by.values() if s.holder == "Nguyễn Văn An"]
    assert [(s.start - DAY) / H for s in an] == [8, 13, 22.5]
    assert [(s.end - DAY) / H for s in an] == [12, 17, 30]
    assert [(s.entry_gate, s.exit_gate, s.assumed) for s in an] == [("gate-1", "gate-2", False)] * 3
    binh = by[("Trần Thị Bình", DAY + 9 * H)]
    assert binh.assumed and binh.end == DAY + 17 * H and binh.exit_id is None
    em = by[("Em", DAY + 23 * H)]
    assert not em.assumed and em.end == DAY + 25 * H             # the guard's "Ra về" closed it
    assert not any(s.holder == "Giang" for s in by.values())        # denied: never inside
    # An assumed stay ends at the person's next entry when that comes first.
    again = trace.stays([entry(8, "x"), entry(10, "x")], 8 * H, 24 * H)
    assert [(s.end - DAY) / H for s in again] == [10, 18] and all(s.assumed for s in again)


def test_inside_now_counts_open_and_assumed_stays():
    _, docs = scene()
    every = trace.stays(docs, 8 * H, 24 * H)
    at_1030 = {s.holder for s in trace.inside_now(every, DAY + 10.5 * H)}
    assert at_1030 == {"Nguyễn Văn An", "Trần Thị Bình"}
    at_1730 = {s.holder for s in trace.inside_now(every, DAY + 17.5 * H)}
    assert at_1730 == {"Dung"}                  # Bình's assumed 8 h are over; An left at 17:00


def test_pure_query_lists_the_contacts_with_overlap_app_and_assumed():
    a_in, docs = scene()
    mine, found = trace.query(docs, a_in["fingerprint"], SITE, DAY - 12 * 86400, DAY + 2 * 86400,
                              8 * H, 24 * H, 15 * 60)
    assert len(mine) == 3
    assert summary([c.to_json() for c in found]) == EXPECTED
    phuc = next(c for c in found if c.holder == "Phuc")
    assert phuc.to_json()["clock_unsynced"] is True
    dung = next(c for c in found if c.holder == "Dung").to_json()
    assert dung["gates"] == ["gate-1", "gate-2"] and len(dung["stays"]) == 1


# -- the kiosk ------------------------------------------------------------------------------
@pytest.fixture
def traced_kiosk(tmp_path, kiosk_settings):
    """A kiosk whose log holds the scene, with an operator and a tracer token."""
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    a_in, docs = scene()
    log = EntryLog(tmp_path / "kiosk" / "log")
    log.start()
    log.import_entries(docs)
    settings = kiosk_settings(**{"web.tracer_tokens": ["ha:" + hashlib.sha256(TRACER_TOKEN.encode()).hexdigest()]})
    kiosk = Kiosk(settings, clock=ManualClock(DAY + 10.5 * H))
    log.add_declaration({"id": new_id(DAY), "time": iso(DAY + 7 * H), "name": "Trần Thị Bình",
                         "year_of_birth": 1990, "sex": "f", "id_hash": kiosk.id_hash("001190012345"),
                         "phone": "0912345678", "address": "", "flags": []})
    log.stop()
    kiosk.start()
    kiosk.a_in = a_in
    yield kiosk
    kiosk.stop()


def kiosk_trace(kiosk, token=TRACER_TOKEN, **params):
    return requests.get(kiosk.web_url + "/api/v1/trace", headers={"Authorization": f"Bearer {token}"},
                        params={"reason": "F0 ca 18", **params}, timeout=30)


def test_kiosk_trace_needs_the_tracer_role_and_logs_every_query(traced_kiosk):
    a = traced_kiosk.a_in["id"]
    assert kiosk_trace(traced_kiosk, token=OPERATOR_TOKEN, entry=a).status_code == 403
    assert kiosk_trace(traced_kiosk, token="nope", entry=a).status_code == 401
    assert kiosk_trace(traced_kiosk, entry=a, reason="").status_code == 400
    assert kiosk_trace(traced_kiosk, entry=a, days="nan").status_code == 400
    assert kiosk_trace(traced_kiosk, entry="ZZZ").status_code == 400
    # The clock reads 10:30 on the first day: trace up to the end of the scene.
    answer = kiosk_trace(traced_kiosk, entry=a, until=UNTIL)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    jsonschema.validate(body, {**SPEC, "$ref": "#/components/schemas/Trace"})
    # 10:30 is the kiosk's now: the query cannot reach past it.
    assert body["window"]["to"] == iso(DAY + 10.5 * H)
    people = kiosk_trace(traced_kiosk, q="bình").json()["people"]
    assert [p["holder"] for p in people] == ["Trần Thị Bình"]
    # Typed without diacritics, in capitals, with doubled spaces: the same person.
    assert kiosk_trace(traced_kiosk, q="TRAN  thi binh").json()["people"] == people
    by_id = kiosk_trace(traced_kiosk, id_number="001190012345").json()["people"]
    assert by_id == people
    audit = requests.get(traced_kiosk.web_url + "/api/v1/trace/audit",
                         headers={"Authorization": f"Bearer {TRACER_TOKEN}"}, timeout=10).json()["queries"]
    assert [(q["who"], q["kind"], q["reason"]) for q in audit] == [("ha", "search", "F0 ca 18")] * 3 + [
        ("ha", "trace", "F0 ca 18")]
    assert audit[3]["for"].startswith(a) and "Nguyễn Văn An" in audit[3]["for"]
    assert "001190012345" not in str(audit)                 # the ID number is not kept
    # Durable: the audit is a file in the data folder, one JSON line per query.
    assert len((traced_kiosk.data_dir / "trace-audit.jsonl").read_text().splitlines()) == 4


def test_kiosk_health_counts_who_is_inside(traced_kiosk):
    health = requests.get(traced_kiosk.web_url + "/api/v1/health",
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=10).json()
    assert health["inside_now"] == 2             # An and Bình at 10:30
    from kiosk.web.guard import health_view
    from kiosk.web.i18n import catalogue

    item = next(h for h in health_view(traced_kiosk, catalogue("vi")) if h["key"] == "inside_now")
    assert f"{item['label']}: {item['text']}" == "Đang trong khu vực: 2"


# -- the central, and the same answer from both ---------------------------------------------
@pytest.fixture
def traced_central(central):
    """The central with the scene: the exit gate's batch arrives before the entry gate's."""
    _, docs = scene()
    engine = central.engine
    central_db.add_credential(engine, "ha", "tracer", SITE, TRACER_TOKEN)
    central_db.add_credential(engine, "gate-2", "kiosk", SITE, "gate-2-token")
    for i, gate in enumerate(("gate-2", "gate-1")):
        batch = [d for d in docs if d["kiosk"] == gate]
        central_db.ingest(engine, batch, f"sig-{i}", DAY, 300)
    return central


def central_trace(central, token=TRACER_TOKEN, **params):
    return requests.get(central.url + "/api/v1/trace", headers={"Authorization": f"Bearer {token}"},
                        params={"reason": "F0 ca 18", **params}, timeout=30)


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_kiosk_and_central_list_the_same_contacts(traced_central, traced_kiosk):
    a = traced_kiosk.a_in["id"]
    traced_kiosk.clock.set(DAY + 2 * 86400)
    on_kiosk = kiosk_trace(traced_kiosk, entry=a, until=UNTIL).json()
    on_central = central_trace(traced_central, entry=a, until=UNTIL)
    assert on_central.status_code == 200, on_central.text
    on_central = on_central.json()
    assert summary(on_kiosk["contacts"]) == EXPECTED
    for c in on_kiosk["contacts"] + on_central["contacts"]:
        jsonschema.validate(c, {**SPEC, "$ref": "#/components/schemas/Contact"})
    # The central has no declarations: the phone is the kiosk's only.
    assert [c.pop("phone") for c in on_kiosk["contacts"]] == ["0912345678", None, None, None]
    assert [c.pop("phone") for c in on_central["contacts"]] == [None] * 4
    assert on_kiosk["contacts"] == on_central["contacts"]
    assert on_kiosk["stays"] == on_central["stays"]


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_central_trace_role_audit_and_csv(traced_central):
    a_in, _ = scene()
    assert central_trace(traced_central, token=OPERATOR_TOKEN, entry=a_in["id"]).status_code == 403
    assert central_trace(traced_central, token="", entry=a_in["id"]).status_code == 401
    assert central_trace(traced_central, entry=a_in["id"], site="other-site").status_code == 403
    assert central_trace(traced_central, entry=a_in["id"], min_overlap="-1").status_code == 400
    first = central_trace(traced_central, q="an", until=UNTIL).json()["people"]
    an = next(p for p in first if p["holder"] == "Nguyễn Văn An")
    # Typed without diacritics and in capitals: the same person, on SQLite and PostgreSQL.
    assert central_trace(traced_central, q="NGUYEN van an", until=UNTIL).json()["people"] == [an]
    assert central_trace(traced_central, q="tr%n", until=UNTIL).json()["people"] == []    # % is a letter here
    exported = central_trace(traced_central, entry=an["last_entry"], until=UNTIL, format="csv", tz="UTC")
    assert exported.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == list(trace.CSV_COLUMNS)
    assert [r[0] for r in rows[1:]] == ["Trần Thị Bình", "Dung", "Em", "Phuc"]
    assert rows[1][4] == "yes" and rows[4][5] == "yes"         # assumed; clock not trusted
    audit = requests.get(traced_central.url + "/api/v1/trace/audit",
                         headers={"Authorization": f"Bearer {TRACER_TOKEN}"}, timeout=10).json()["queries"]
    assert [(q["who"], q["kind"], q["listed"]) for q in audit] == [("ha", "trace", 4), ("ha", "search", 0),
                                                                    ("ha", "search", 1), ("ha", "search", len(first))]


def test_central_page_search_pick_and_see_contacts(traced_central):
    page = requests.get(traced_central.url + "/trace", timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    assert 'src="http' not in page.text and 'href="http' not in page.text      # no internet assets
    refused = requests.post(traced_central.url + "/trace", data={"token": OPERATOR_TOKEN, "reason": "x", "q": "An"},
                            timeout=10)
    assert refused.status_code == 403
    found = requests.post(traced_central.url + "/trace", timeout=10, data={
        "token": TRACER_TOKEN, "reason": "F0 ca 18", "q": "Nguyễn"})
    assert found.status_code == 200 and "Nguyễn Văn An" in found.text
    a_in, _ = scene()
    shown = requests.post(traced_central.url + "/trace", timeout=10, data={
        "token": TRACER_TOKEN, "reason": "F0 ca 18", "entry": a_in["id"], "days": "14"})
    assert shown.status_code == 200
    assert "Trần Thị Bình" in shown.text and "420.0" in shown.text and "ước tính / assumed" in shown.text
    assert shown.headers["Cache-Control"] == "no-store"
    assert TRACER_TOKEN not in shown.text              # the token is never written back into the page
    # The tracing log below names each query's kind in words, not its code.
    assert "<td>Truy vết / trace</td>" in shown.text and "<td>Tìm người / search</td>" in shown.text
    exported = requests.post(traced_central.url + "/trace", timeout=10, data={
        "token": TRACER_TOKEN, "reason": "F0 ca 18", "entry": a_in["id"], "export": "1"})
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert exported.content.decode("utf-8-sig").splitlines()[0] == ",".join(trace.CSV_COLUMNS)


def test_openapi_documents_the_trace_routes():
    from kiosk.central.app import create_app

    app = create_app("sqlite://")
    routes = {r.rule for r in app.url_map.iter_rules()}
    assert {"/api/v1/trace", "/api/v1/trace/audit", "/trace"} <= routes
    assert {"/api/v1/trace", "/api/v1/trace/audit"} <= set(SPEC["paths"])
    central_spec = app.test_client().get("/api/v1/trace/openapi.json").get_json()
    assert set(central_spec["paths"]) == {r for r in routes if r.startswith(("/api/v1/trace", "/api/v1/inside"))}
    jsonschema.Draft202012Validator.check_schema(central_spec["components"]["schemas"]["Contact"])


def _lines(out: str) -> list[dict]:
    import json

    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_kiosk_trace_and_kiosk_central_trace_print_one_contact_per_line(tmp_path, traced_central):
    """Both commands as real processes, on the kiosk's log and on the central's database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    a_in, docs = scene()
    log = EntryLog(tmp_path / "data" / "log")
    log.start()
    log.import_entries(docs)
    log.stop()
    toml = tmp_path / "kiosk.toml"
    toml.write_text(f'site.id = "{SITE}"\ndata_dir = "{tmp_path / "data"}"\n')
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "USER": "tracer-on-duty"}
    kiosk_out = subprocess.run([str(bin_dir / "kiosk"), "trace", "--entry", a_in["id"], "--reason", "F0 ca 18",
                                "--until", UNTIL, "--config", str(toml)], capture_output=True, text=True,
                               timeout=60, env=env)
    assert kiosk_out.returncode == 0, kiosk_out.stderr
    central_out = subprocess.run([str(bin_dir / "kiosk-central"), "--db", str(traced_central.engine.url), "trace",
                                  "--site", SITE, "--entry", a_in["id"], "--reason", "F0 ca 18", "--until", UNTIL],
                                 capture_output=True, text=True, timeout=60, env=env)
    assert central_out.returncode == 0, central_out.stderr
    on_kiosk, on_central = _lines(kiosk_out.stdout), _lines(central_out.stdout)
    assert summary(on_kiosk) == EXPECTED and on_kiosk == on_central
    for c in on_kiosk:
        assert set(trace.TRACE_FIELDS) <= c.keys()
    assert "tracer-on-duty" in (tmp_path / "data" / "trace-audit.jsonl").read_text()
    audit = requests.get(traced_central.url + "/api/v1/trace/audit",
                         headers={"Authorization": f"Bearer {TRACER_TOKEN}"}, timeout=10).json()["queries"]
    assert audit[0]["who"] == "cli:tracer-on-duty" and audit[0]["reason"] == "F0 ca 18"


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_a_guard_exit_resent_later_ends_the_stay_on_the_central(central):
    """The guard's "Ra về" made after the entry was synced comes again with the override: the
    stay, assumed until then, ends at the exit."""
    central_db.add_credential(central.engine, "ha", "tracer", SITE, TRACER_TOKEN)
    RNG.seed(7)
    an, an_out, em = entry(8, "an"), entry(17, "an", "gate-2", "out"), entry(9, "em")
    em_leaves = entry(10, "em")
    central_db.ingest(central.engine, [an, an_out, em, em_leaves], "first", DAY, 300)
    assumed = central_trace(central, entry=an["id"], until=UNTIL).json()["contacts"]
    # Em's second entry (10:00) is taken for a new stay (assumed, 8 h): 1 h + 7 h with An.
    assert summary(assumed) == {"Em": (480.0, True, "not_detected")}
    exit_override = {"action": "exit", "reason": "Ra về", "by": "guard", "at": iso(DAY + 10 * H)}
    central_db.ingest(central.engine, [dict(em_leaves, override=exit_override)], "again", DAY, 300)
    closed = central_trace(central, entry=an["id"], until=UNTIL).json()["contacts"]
    assert summary(closed) == {"Em": (60.0, False, "not_detected")}


def test_central_lists_who_is_inside_a_site_now_for_the_operator(central):
    """An operator's list of the people inside now, across the site's gates."""
    now = datetime.now(UTC).timestamp()
    RNG.seed(9)
    docs = [entry((now - DAY - 2 * H) / H, "an"), entry((now - DAY - 1 * H) / H, "an", "gate-2", "out"),
            entry((now - DAY - 1 * H) / H, "binh", "gate-2"), entry((now - DAY - 20 * H) / H, "cuong")]
    central_db.ingest(central.engine, docs, "inside", DAY, 300)
    answer = requests.get(central.url + "/api/v1/inside", params={"site": SITE}, timeout=10,
                          headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # An left; Cường came 20 h ago (past the assumed 8 h); Bình came an hour ago by gate 2.
    assert body["count"] == 1 and [(p["holder"], p["gate"]) for p in body["people"]] == [("Trần Thị Bình", "gate-2")]
    assert body["people"][0]["assumed_until"] is not None
    assert requests.get(central.url + "/api/v1/inside", params={"site": SITE}, timeout=10).status_code == 401
    assert requests.get(central.url + "/api/v1/inside", timeout=10,
                        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).status_code == 400


# -- pages of contacts --------------------------------------------------------------------
def crowd() -> tuple[dict, list[dict]]:
    """(the traced person's first entry, a crowd of 60 over two days): times on the quarter
    hour, so that many contacts are together exactly as long and the holder breaks the tie;
    some share a name, so that the person does; a fifth have no name at all."""
    rng = random.Random(180)
    RNG.seed(180)
    a_in = entry(8, "an")
    docs = [a_in, entry(12, "an", "gate-2", "out"), entry(13, "an"), entry(30, "an", "gate-2", "out")]
    for i in range(60):
        who, holder = f"p{i:02d}", ("Lan", "Minh", "Ánh", "Zoë", None)[i % 5]
        for _ in range(rng.randint(1, 3)):
            start = rng.randrange(0, 40 * 4) / 4
            docs.append(entry(start, who, rng.choice(("gate-1", "gate-2")), holder=holder or "",
                              app=rng.choice(("confirmed", "likely", "not_detected")),
                              clock_unsynced=rng.random() < 0.1))
            if rng.random() < 0.7:
                docs.append(entry(start + rng.randrange(1, 10 * 4) / 4, who, "gate-2", "out", holder=holder or ""))
    return a_in, docs


def pages(get, limit: int) -> tuple[list[int], list[dict]]:
    """Every page of `limit` contacts by `get(limit=, offset=)`: (each page's total, the contacts)."""
    totals, contacts, offset = [], [], 0
    while True:
        answer = get(limit=limit, offset=offset)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        totals.append(body["total"])
        contacts += body["contacts"]
        if len(body["contacts"]) < limit:
            return totals, contacts
        offset += limit


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_pages_of_contacts_put_together_are_the_whole_list_on_kiosk_and_central(central, tmp_path,
                                                                                kiosk_settings):
    """Pages of 3 through the crowd, on the central (SQL sums and ranks on PostgreSQL) and on
    the kiosk: the pages put together are the full list, the same on both, in the order of
    kiosk/trace.py; the CSV (every contact, the central's from its aggregate) agrees too."""
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    a_in, docs = crowd()
    central_db.add_credential(central.engine, "ha", "tracer", SITE, TRACER_TOKEN)
    central_db.ingest(central.engine, docs, "crowd", DAY, 300)
    mine, expected = trace.query(docs, a_in["fingerprint"], SITE, DAY + 2 * 86400 - 14 * 86400, DAY + 2 * 86400,
                                 8 * H, 24 * H, 15 * 60)
    expected = [{k: v for k, v in c.to_json().items() if k != "phone"} for c in expected]
    ties = len(expected) - len({c["overlap_minutes"] for c in expected})
    assert len(expected) > 20 and ties > 5            # the crowd has ties for the holder to break
    log = EntryLog(tmp_path / "kiosk" / "log")
    log.start()
    log.import_entries(docs)
    log.stop()
    settings = kiosk_settings(**{"web.tracer_tokens": ["ha:" + hashlib.sha256(TRACER_TOKEN.encode()).hexdigest()]})
    kiosk = Kiosk(settings, clock=ManualClock(DAY + 2 * 86400))
    kiosk.start()
    try:
        answers = {}
        for name, get in (("central", lambda **p: central_trace(central, entry=a_in["id"], until=UNTIL, **p)),
                          ("kiosk", lambda **p: kiosk_trace(kiosk, entry=a_in["id"], until=UNTIL, **p))):
            whole = get(limit=1000).json()
            assert whole["total"] == len(whole["contacts"]) == len(expected)
            totals, paged = pages(get, 3)
            assert set(totals) == {len(expected)} and paged == whole["contacts"]
            for c in paged:
                c.pop("phone")
            assert paged == expected, name
            default = get().json()
            assert default["total"] == len(expected) and len(default["contacts"]) == min(200, len(expected))
            for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"offset": "-1"}, {"offset": "1.5"}):
                assert get(**bad).status_code == 400, (name, bad)
            assert get(offset=len(expected)).json()["contacts"] == []
            exported = get(format="csv", tz=kiosk.settings["timezone"], limit="1")
            answers[name] = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
        assert len(answers["central"]) == len(expected) + 1             # every contact, whatever the limit
        for row in answers["kiosk"] + answers["central"]:
            row[1] = ""                                                    # phones are the kiosk's only
        assert answers["central"] == answers["kiosk"]
        audit = requests.get(central.url + "/api/v1/trace/audit",
                             headers={"Authorization": f"Bearer {TRACER_TOKEN}"}, timeout=10).json()["queries"]
        assert {q["listed"] for q in audit} == {len(expected)}          # the total, whatever the page
    finally:
        kiosk.stop()


def test_central_page_shows_the_first_page_and_how_many_in_all(central):
    """With more contacts than a page, the central's page lists the first 200, says how many
    there are in all, and its export holds every one."""
    RNG.seed(205)
    a_in = entry(8, "an")
    docs = [a_in, entry(17, "an", "gate-2", "out")] + [entry(9 + i / 600, f"p{i:03d}") for i in range(205)]
    central_db.add_credential(central.engine, "ha", "tracer", SITE, TRACER_TOKEN)
    central_db.ingest(central.engine, docs, "crowd", DAY, 300)
    form = {"token": TRACER_TOKEN, "reason": "F0 ca 18", "entry": a_in["id"], "days": "14"}
    shown = requests.post(central.url + "/trace", timeout=10, data=form)
    assert shown.status_code == 200
    assert "205 người tiếp xúc / contacts" in shown.text
    assert "The first 200 of 205 are shown; export the CSV for all of them." in shown.text
    contacts_table = shown.text.split('<table id="contacts">')[1].split("</table>")[0]
    assert contacts_table.count("<tr class=") == 200
    exported = requests.post(central.url + "/trace", timeout=10, data={**form, "export": "1"})
    assert len(exported.content.decode("utf-8-sig").splitlines()) == 1 + 205


def test_both_openapi_documents_give_the_page_parameters_and_the_total():
    """limit (default 200, at most 1000) and offset on GET /api/v1/trace, and total in its
    answer, in the kiosk's document and the central's alike."""
    from kiosk.central.app import create_app

    central_spec = create_app("sqlite://").test_client().get("/api/v1/trace/openapi.json").get_json()
    for spec in (SPEC, central_spec):
        params = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/trace"]["get"]["parameters"]}
        assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}
        assert params["offset"] == {"type": "integer", "minimum": 0, "default": 0}
        assert "total" in spec["components"]["schemas"]["Trace"]["required"]


@pytest.mark.parametrize("central_url", ["sqlite", "postgresql"], indirect=True)
def test_stays_kept_before_the_folded_name_get_it_at_the_next_start(traced_central, central_url):
    # A central upgraded with stays already kept: each start folds the names still missing
    # (a start stopped half-way finishes at the next), and the search then finds them.
    assert central_trace(traced_central, q="binh", until=UNTIL).json()["people"]      # the stays kept
    with traced_central.engine.begin() as conn:
        kept = conn.execute(text("SELECT count(*) FROM stays WHERE holder IS NOT NULL")).scalar()
        conn.execute(text("UPDATE stays SET holder_key = NULL"))
    assert central_trace(traced_central, q="binh", until=UNTIL).json()["people"] == []
    assert kept > 0 and central_db._fold_holders(traced_central.engine, chunk=2) == kept
    engine = central_db.connect(central_url)                        # a start: nothing left to fold
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM stays WHERE holder_key IS NULL "
                                 "AND holder IS NOT NULL")).scalar() == 0
    engine.dispose()
    assert [p["holder"] for p in central_trace(traced_central, q="binh", until=UNTIL).json()["people"]] == [
        "Trần Thị Bình"]

"""The kiosk's tracing query on arrays (kiosk/trace_columns.py) gives exactly what the rows'
query gives (trace.query_rows): the traced person's stays, how many contacts, and each page
of contacts, on seeded random scenes and on the cases a stay must tell apart; read from the
log's projections, from a damaged one, and from today's open day; and through the kiosk's
real server."""
from __future__ import annotations

import hashlib
import os
import random
import sys
import time

import numpy as np
import pytest
import requests

from kiosk import trace
from kiosk.model import iso, parse_iso
from kiosk.names import normalise
from kiosk.store import EntryLog, tracing
from kiosk.trace_columns import (
    ColumnsBuilder,
    columns_of_docs,
    columns_of_rows,
    inside_count,
    iso_seconds,
    people_named,
    query_columns,
    stay_arrays,
)

from .conftest import SITE
from .test_trace import DAY as CROWD_DAY
from .test_trace import crowd
from .test_trace_rows import DAY, DEFAULT_STAY, MAX_STAY, TRACER_TOKEN, H, as_rows, entry, reopened, visits

WINDOW = (iso(DAY), iso(DAY + 9 * 86400))
SETTINGS = ((DEFAULT_STAY, MAX_STAY), (2 * H, 6 * H), (30 * H, 6 * H))     # the last: default_stay > max_stay


def same_answers(rows, cols, person: str, site: str, since: float, until: float, default_stay: float,
                 max_stay: float, min_overlap: float, limits=(1, 3, 200)) -> int:
    """Assert that every page of every size in `limits`, and the whole list, is the rows'
    query's; returns how many contacts."""
    mine, expected = trace.query_rows(rows, person, site, since, until, default_stay, max_stay, min_overlap)
    got = query_columns(cols, person, site, since, until, default_stay, max_stay, min_overlap)
    assert got == (mine, len(expected), expected)
    for limit in limits:
        paged = []
        for offset in range(0, len(expected) + limit, limit):
            page_mine, total, page = query_columns(cols, person, site, since, until, default_stay, max_stay,
                                                   min_overlap, limit, offset)
            assert (page_mine, total) == (mine, len(expected))
            assert page == expected[offset:offset + limit]
            paged += page
        assert paged == expected                        # pages put together: the whole list
    return len(expected)


def test_arrays_give_the_rows_answers_on_sixty_seeded_scenes():
    """The scenes of test_trace_rows (refusals, reviews, the guard's allow/deny/exit, exits
    past max_stay, exits with nothing open, the same instant twice, clock-unsynced stamps),
    for every person in them, three settings and two overlap rules."""
    rng = random.Random(20261126)
    listed = 0
    for case in range(60):
        docs = visits(rng, days=rng.randint(1, 4), people=rng.randint(1, 12))
        rows = as_rows(docs)
        rng.shuffle(rows)                              # any order in
        cols = columns_of_rows(rows)
        people = sorted({d["fingerprint"] for d in docs if d["fingerprint"]})
        for default_stay, max_stay in SETTINGS:
            stays = stay_arrays(cols, default_stay, max_stay)
            assert sorted((stays.stay(i) for i in range(len(stays))), key=lambda s: (s.person, s.start)) == \
                trace.stays_from_rows(rows, default_stay, max_stay), f"case {case}"
            for person in people:
                for min_overlap in (15 * 60, 0):
                    listed += same_answers(rows, cols, person, SITE, DAY + 86400, DAY + 3 * 86400, default_stay,
                                           max_stay, min_overlap, limits=(1, 4))
            now = DAY + rng.uniform(0, 4 * 86400)
            assert inside_count(cols, now, default_stay, max_stay) == \
                len(trace.inside_now(trace.stays_from_rows(rows, default_stay, max_stay), now)), f"case {case}"
        # The entries' JSON form makes the same columns as their rows.
        assert sorted(columns_of_docs(docs).rows()) == sorted(rows)
    assert listed > 1000


def test_ties_at_a_page_edge_keep_the_rows_order():
    """The crowd of test_trace: times on the quarter hour, so many contacts are together
    exactly as long and their holder (some alike, some none) then their person break the
    tie; pages of every size from 1 to 7 cut through the ties."""
    a_in, docs = crowd()
    rows = as_rows(docs)
    cols = columns_of_rows(rows)
    until = CROWD_DAY + 2 * 86400
    _, expected = trace.query_rows(rows, a_in["fingerprint"], SITE, until - 14 * 86400, until, 8 * H, 24 * H, 15 * 60)
    overlaps = [c.overlap for c in expected]
    assert len(overlaps) - len(set(overlaps)) > 5
    assert any(a.overlap == b.overlap and (a.holder or "") == (b.holder or "")          # the person breaks it
               for a, b in zip(expected, expected[1:], strict=False))
    same_answers(rows, cols, a_in["fingerprint"], SITE, until - 14 * 86400, until, 8 * H, 24 * H, 15 * 60,
                 limits=range(1, 8))


def who(name: str) -> str:
    return hashlib.sha256(str(name).encode()).hexdigest()[:32]


def test_the_cases_a_stay_tells_apart():
    """One scene, each case named: its answer is the rows' answer, and what it should be."""
    rng = random.Random(4)
    at = DAY + 86400                                     # the window: this day and the next

    def e(hours, person, direction="in", **kw):
        return entry(rng, at + hours * H, person, direction, **kw)
    deny = {"action": "deny", "reason": "guard", "by": "guard", "at": iso(at)}
    docs = [
        e(8, 1), e(16, 1, "out"),                          # the traced person, 08:00-16:00
        e(9, 2), e(12, 2, "out"),                          # 3 h together
        e(9, 3, decision="deny"), e(15, 3, "out"),         # refused, then an exit: nothing open, no stay
        e(9, 4, decision="review"),                        # a review never answered: admitted, assumed 8 h
        e(9, 5, override=deny),                            # the guard's deny: never inside
        e(7, 6), e(7 + 25, 6, "out"),                      # an exit past max_stay (24 h): assumed 8 h
        e(10, 7, clock_unsynced=True), e(11, 7, "out"),    # a clock-unsynced stamp: 1 h
        e(10, 8), e(10.5, 8, "out"), e(10.75, 8, "out"),   # an exit, then one with nothing open: 30 min
        e(10, 9), e(10.1, 9, "out"),                       # 6 minutes: under the 15-minute rule
    ]
    # At another site, the same people at the same times: never contacts here.
    docs += [dict(entry(rng, at + 9 * H, 2), site="other-site"), dict(entry(rng, at + 9 * H, 1), site="other-site")]
    rows = as_rows(docs)
    cols = columns_of_rows(rows)
    since, until = at, at + 86400
    same_answers(rows, cols, who(1), SITE, since, until, DEFAULT_STAY, MAX_STAY, 15 * 60)
    mine, total, found = query_columns(cols, who(1), SITE, since, until, DEFAULT_STAY, MAX_STAY, 15 * 60)
    assert [(s.start, s.end, s.assumed) for s in mine] == [(at + 8 * H, at + 16 * H, False)]
    # Longest first; 4 and 6 tie at 7 h, their names ("Người 4", "Người 6") break it.
    assert [(c.person, c.overlap / H, c.assumed, c.clock_unsynced) for c in found] == [
        (who(4), 7, True, False), (who(6), 7, True, False), (who(2), 3, False, False), (who(7), 1, False, True),
        (who(8), 0.5, False, False)]
    assert total == 5
    # The other site's stays are the other site's contacts.
    assert query_columns(cols, who(1), "other-site", since, until, DEFAULT_STAY, MAX_STAY, 15 * 60)[1] == 1
    same_answers(rows, cols, who(1), "other-site", since, until, DEFAULT_STAY, MAX_STAY, 15 * 60)
    # A person with no stay in the window, a person or a site the log never saw.
    assert query_columns(cols, who(1), SITE, at + 3 * 86400, at + 4 * 86400, DEFAULT_STAY, MAX_STAY, 0) == ([], 0, [])
    assert query_columns(cols, who(3), SITE, since, until, DEFAULT_STAY, MAX_STAY, 0) == ([], 0, [])
    assert query_columns(cols, who(99), SITE, since, until, DEFAULT_STAY, MAX_STAY, 0) == ([], 0, [])
    assert query_columns(cols, who(1), "nowhere", since, until, DEFAULT_STAY, MAX_STAY, 0) == ([], 0, [])
    assert query_columns(columns_of_rows([]), who(1), SITE, since, until, DEFAULT_STAY, MAX_STAY, 0) == ([], 0, [])


def rows_people_named(rows, text: str, limit: int = 50) -> list[dict]:
    """The name search written plainly on tracing rows (model.TraceRow), the reference the
    arrays' search is held to: people whose holder name holds `text` as names.normalise
    folds them; person key, name, last seen, site. An empty `text` finds everyone named.

    :returns: at most `limit`, most recently seen first.
    """
    needle = normalise(text)
    folded: dict[str, bool] = {}            # a name is folded once, however often it is seen
    seen: dict[tuple[str, str], dict] = {}
    for r in rows:
        if not r.holder:
            continue
        hit = folded.get(r.holder)
        if hit is None:
            hit = folded[r.holder] = needle in normalise(r.holder)
        key = (r.site, r.person)
        if hit and (key not in seen or seen[key]["last_entry"] < r.id):
            seen[key] = {"person": r.person, "site": r.site, "holder": r.holder, "last_seen": iso(r.t),
                         "last_entry": r.id}
    return sorted(seen.values(), key=lambda p: p["last_entry"], reverse=True)[:limit]


def test_the_name_search_finds_the_rows_people():
    """The search by name on arrays lists what rows_people_named lists from the rows:
    names folded ("nguoi 1" finds "Người 1", "Người 10"...), no name and an empty name
    never found, each person once with their latest entry, newest first, cut at the limit."""
    rng = random.Random(6)
    _, crowd_docs = crowd()
    scenes = [visits(rng, days=3, people=15) + [dict(d, site="other-site") for d in visits(rng, days=2, people=4)],
              crowd_docs]
    for docs in scenes:
        rows = as_rows(docs)
        rng.shuffle(rows)
        cols = columns_of_rows(rows)
        for text in ("", "nguoi 1", "NGƯỜI", "lan", "anh", "zoe", "nobody"):
            for limit in (1, 3, 50, 10_000):
                assert people_named(cols, text, limit) == rows_people_named(rows, text, limit), (text, limit)
    assert len(people_named(cols, "", 10_000)) > 20 and people_named(cols, "nobody") == []


def test_times_parse_as_parse_iso_does():
    """Whole milliseconds, from 2004 to 2037 and before 1970: the same floats as
    model.parse_iso; a time in another form, or no date, goes through parse_iso itself."""
    rng = random.Random(3)
    times = [iso(rng.randrange(-10**12, 2**31 * 1000) / 1000) for _ in range(5000)]
    got = iso_seconds(times)
    assert got.dtype == np.float64 and got.tolist() == [parse_iso(t) for t in times]
    other = ["2026-11-20T08:00:00.000+00:00", "2026-11-20T08:00:00Z"]
    assert iso_seconds(other).tolist() == [parse_iso(t) for t in other]
    for no_time in ("2026-02-30T08:00:00.000Z", "2026-11-20T24:00:00.000Z", "0000-01-01T00:00:00.000Z"):
        with pytest.raises(ValueError):
            parse_iso(no_time)
        with pytest.raises(ValueError):
            iso_seconds([iso(DAY), no_time])
    assert iso_seconds([]).tolist() == []


def test_a_projection_whose_codes_do_not_index_its_strings_is_refused():
    rng = random.Random(2)
    cols = tracing.columns(visits(rng, days=1, people=3))
    builder = ColumnsBuilder()
    for bad in ({"person": [len(cols["strings"])] * len(cols["t"])}, {"gate": [-1] * len(cols["t"])},
                {"holder": cols["holder"][:-1]}, {"id": cols["id"][:-1]}, {"t": cols["t"][:-1]},
                {"app": [None] * len(cols["t"])}, {"strings": [[]] + cols["strings"][1:]}):
        with pytest.raises(ValueError):
            builder.add_columns({**cols, **bad})
    builder.add_columns(cols)
    assert sorted(builder.build().rows()) == sorted(tracing.rows(cols))


@pytest.fixture
def week_log(tmp_path):
    """A log of 8 days of visits at two sites, opened again as a kiosk finds it after a
    start: the last days open on the writer, the older ones closed."""
    rng = random.Random(7)
    docs = visits(rng, days=8, people=30)
    docs += [dict(d, site="other-site") for d in visits(rng, days=8, people=5)]
    log = reopened(tmp_path / "log", docs)
    yield log, docs
    log.stop()


def log_answers(log: EntryLog, docs: list[dict]) -> None:
    """The log's arrays hold the log's rows, and give the rows' answers for a few people."""
    cols = log.trace_columns(*WINDOW)                   # first: a projection to build is built by it
    rows = log.trace_rows(*WINDOW)
    assert sorted(cols.rows()) == sorted(rows) == sorted(as_rows(d for d in docs if WINDOW[0] <= d["time"] < WINDOW[1]))
    rng = random.Random(1)
    for doc in rng.sample([d for d in docs if d["fingerprint"]], 5):
        same_answers(rows, cols, doc["fingerprint"], doc["site"], DAY + 2 * 86400, DAY + 8 * 86400, DEFAULT_STAY,
                     MAX_STAY, 15 * 60, limits=(7,))


def test_the_log_s_arrays_from_closed_days_and_today(week_log):
    log, docs = week_log
    assert log.days.open and len(log.days.days()) > len(log.days.open)
    log_answers(log, docs)                                # the first read builds the projections
    closed = [d for d in log.days.days() if d not in log.days.open]
    assert all((log.path / d / tracing.FILE).exists() for d in closed)
    log_answers(log, docs)                                # the next reads them
    # A window narrower than a day: the times, not only the days, bound the rows.
    lo, hi = DAY + 2 * 86400 + 5 * H, DAY + 2 * 86400 + 9 * H
    assert sorted(log.trace_columns(iso(lo), iso(hi)).rows()) == sorted(log.trace_rows(iso(lo), iso(hi)))


def test_the_traced_entry_is_found_without_opening_its_day_on_the_writer(week_log):
    # The entry a tracer names may be weeks old: its row comes from its day's projection on
    # the caller's thread; opening that day on the writer would hold up the door's appends.
    log, docs = week_log
    closed = [d for d in log.days.days() if d not in log.days.open]
    opened_before = set(log.days.open)
    named = [d for d in docs if d["fingerprint"]]
    busiest_open = max(opened_before, key=lambda day: sum(d["time"][:10] == day for d in named))
    picked = [[d for d in named if d["time"][:10] == day][:3] for day in (closed[0], busiest_open)]
    assert all(len(p) == 3 for p in picked)
    for doc in picked[0] + picked[1]:
        row = log.trace_row(doc["id"])
        assert row is not None and (row.id, row.person, row.site, row.holder) == (
            doc["id"], doc["fingerprint"], doc["site"], (doc.get("declaration") or {}).get("holder"))
    assert set(log.days.open) == opened_before                # no closed day opened for it
    nameless = next(d for d in docs if not d["fingerprint"])
    assert log.trace_row(nameless["id"]) is None               # no person to trace
    assert log.trace_row("0" * 26) is None                     # no such entry


def test_today_s_entries_count_as_they_come(tmp_path):
    """Today's day is the writer's: an entry appended is in the next query's arrays, and
    a guard's override (the writer replaces the document) is too, though the arrays of
    the documents read before are kept from one read to the next."""
    from kiosk.model import Entry

    rng = random.Random(3)
    log = EntryLog(tmp_path / "log")
    log.start()
    try:
        now = DAY + 10 * H
        window = (iso(DAY), iso(now + 1))

        def same_rows():
            cols = log.trace_columns(*window)
            assert sorted(cols.rows()) == sorted(log.trace_rows(*window))
            return cols
        for doc in (entry(rng, now - 2 * H, 1), entry(rng, now - H, 2)):
            assert log.append(Entry.from_json(doc))
        cols = same_rows()
        assert inside_count(cols, now, DEFAULT_STAY, MAX_STAY) == 2
        assert query_columns(cols, who(1), SITE, DAY, now, DEFAULT_STAY, MAX_STAY, 15 * 60)[1] == 1
        kept = log._open_day_columns[iso(now)[:10]][1]
        assert same_rows().id.tolist() == cols.id.tolist()         # nothing new: the same rows,
        assert log._open_day_columns[iso(now)[:10]][1] is kept      # the same arrays
        assert log.append(Entry.from_json(entry(rng, now - 0.5 * H, 2, "out")))
        cols = same_rows()                                          # the new one added to those kept
        assert inside_count(cols, now, DEFAULT_STAY, MAX_STAY) == 1
        first = min(cols.id.tolist())
        assert log.set_override(first, {"action": "exit", "reason": "Ra về", "by": "guard", "at": iso(now)})
        cols = same_rows()                                          # a document replaced: made again
        assert inside_count(cols, now, DEFAULT_STAY, MAX_STAY) == 0
        assert list(log._open_day_columns) == [iso(now)[:10]]
        assert not (log.path / iso(now)[:10] / tracing.FILE).exists()        # an open day: no file
    finally:
        log.stop()


@pytest.mark.parametrize("damage", ["flip", "garbage", "codes", "directory"])
def test_a_damaged_projection_is_built_again(week_log, damage, caplog):
    """A projection that does not read (one byte flipped, garbage, codes past its strings
    under a right CRC, a folder in its place): the day is read again from its shard, the
    same answers."""
    log, docs = week_log
    log.trace_columns(*WINDOW)
    day = min(log.days.days())
    path = log.path / day / tracing.FILE
    data = bytearray(path.read_bytes())
    if damage == "flip":
        i = data.index(b'"t":[') + 6
        data[i] = ord("1") if data[i] != ord("1") else ord("2")
        path.write_bytes(bytes(data))
    elif damage == "garbage":
        path.write_bytes(b'{"crc":1,"v":1}')
    elif damage == "codes":
        key, cols = tracing.decode(bytes(data))
        path.write_bytes(tracing.encode(key, {**cols, "gate": [10**6] * len(cols["t"])}))
    else:
        path.unlink()
        path.mkdir()
    log_answers(log, docs)
    if damage != "directory":
        assert tracing.decode(path.read_bytes()) is not None                # built again, sound
        assert "does not read" in caplog.text


def test_when_no_child_can_run_the_writer_reads_the_days(week_log, monkeypatch, caplog):
    log, docs = week_log
    for p in log.path.glob(f"*/{tracing.FILE}"):
        p.unlink()
    monkeypatch.setattr(sys, "executable", "/bin/false")
    log_answers(log, docs)
    assert "read by the writer for tracing" in caplog.text


def test_the_kiosk_serves_each_page_and_the_csv_from_the_arrays(tmp_path, kiosk_settings):
    """Through the kiosk's real server, on a log of two sites with closed days and open
    ones: each page of GET /api/v1/trace is that page of the rows' contacts, the total
    theirs, and the CSV holds them all."""
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    rng = random.Random(11)
    docs = visits(rng, days=8, people=25) + [dict(d, site="other-site") for d in visits(rng, days=8, people=5)]
    log = EntryLog(tmp_path / "kiosk" / "log")
    log.start()
    log.import_entries(docs)
    log.stop()
    until = DAY + 8 * 86400
    settings = kiosk_settings(**{"web.tracer_tokens": ["ha:" + hashlib.sha256(TRACER_TOKEN.encode()).hexdigest()]})
    kiosk = Kiosk(settings, clock=ManualClock(until))
    kiosk.start()
    try:
        target = max((d for d in docs if d["fingerprint"] and d["site"] == SITE and d["direction"] == "in"
                      and d["time"] < iso(until - 86400)), key=lambda d: d["id"])
        rows = as_rows(d for d in docs if iso(until - 14 * 86400 - MAX_STAY) <= d["time"] < iso(until))
        mine, expected = trace.query_rows(rows, target["fingerprint"], SITE, until - 14 * 86400, until, DEFAULT_STAY,
                                          MAX_STAY, 15 * 60)
        assert len(expected) > 10

        def get(**params):
            answer = requests.get(kiosk.web_url + "/api/v1/trace", headers={"Authorization": f"Bearer {TRACER_TOKEN}"},
                                  params={"reason": "F0", "entry": target["id"], **params}, timeout=30)
            assert answer.status_code == 200, answer.text
            return answer
        paged = []
        for offset in range(0, len(expected) + 4, 4):
            body = get(limit=4, offset=offset).json()
            assert body["total"] == len(expected)
            assert body["stays"] == [s.to_json() for s in mine]
            paged += body["contacts"]
        for c in paged:
            assert c.pop("phone") is None
        assert paged == [{k: v for k, v in c.to_json().items() if k != "phone"} for c in expected]
        lines = get(format="csv", limit=1).content.decode("utf-8-sig").splitlines()
        assert len(lines) == len(expected) + 1
    finally:
        kiosk.stop()


def test_a_warm_up_builds_the_missing_projections_and_then_none(week_log, monkeypatch):
    # After a start the closed days have no projection: the warm-up builds them in a child,
    # reads nothing back, and a trace then reads them without a child of its own.
    log, docs = week_log
    closed = sorted(d for d in log.days.days() if d not in log.days.open)
    assert not any((log.path / d / tracing.FILE).exists() for d in closed)
    assert sorted(log.warm_trace(*WINDOW)) == [d for d in closed if WINDOW[0][:10] <= d <= WINDOW[1][:10]]
    assert all(tracing.looks_current(log.path / d) for d in closed)
    assert log.warm_trace(*WINDOW) == []                          # nothing left to build
    from kiosk.store import reader
    monkeypatch.setattr(reader, "_child", lambda *a: pytest.fail("a trace built a projection the warm-up built"))
    log_answers(log, docs)
    # A late change to an old day (a sync mark, an override) makes its projection look out of date.
    day = closed[0]
    shard = max((p for p in (log.path / day).iterdir() if p.name != tracing.FILE), key=lambda p: p.stat().st_mtime_ns)
    later = (log.path / day / tracing.FILE).stat().st_mtime_ns + 10**9
    os.utime(shard, ns=(later, later))
    assert not tracing.looks_current(log.path / day)
    monkeypatch.undo()
    assert log.warm_trace(*WINDOW) == [day]


def test_the_kiosk_builds_a_trace_s_projections_at_start(tmp_path, kiosk_settings):
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    docs = visits(random.Random(3), days=8, people=20)
    log = EntryLog(tmp_path / "kiosk" / "log")
    log.start()
    log.import_entries(docs)
    log.stop()
    days = sorted({d["time"][:10] for d in docs})
    kiosk = Kiosk(kiosk_settings(), clock=ManualClock(DAY + 8 * 86400))
    kiosk.start()
    try:
        closed = [d for d in days if d not in kiosk.log.days.open]
        assert closed
        deadline = time.monotonic() + 60
        while not all((kiosk.log.path / d / tracing.FILE).exists() for d in closed) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(tracing.looks_current(kiosk.log.path / d) for d in closed)
    finally:
        kiosk.stop()

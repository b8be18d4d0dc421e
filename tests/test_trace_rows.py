"""Contact tracing from the entry log's tracing projection: the same stays as from the
entries themselves, a closed day's projection kept beside its shard and built again when
the day changes or the file is damaged, today's rows from the writer's memory, and the
kiosk's trace answering from it through its real server."""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from kiosk import trace
from kiosk.model import Entry, TraceRow, iso, new_id
from kiosk.store import EntryLog, tracing

from .conftest import SITE

DAY = datetime(2026, 11, 10, tzinfo=UTC).timestamp()      # midnight UTC
H = 3600
DEFAULT_STAY, MAX_STAY = 8 * H, 24 * H
TRACER_TOKEN = "tracer-secret-token"


def entry(rng: random.Random, t: float, who: int, direction: str = "in", **kw) -> dict:
    """An entry at UNIX time `t` by person number `who`."""
    fields = {"kiosk": rng.choice(["gate-1", "gate-2", "gate-3"]), "decision": "allow", "override": None,
              "clock_unsynced": False, "app": rng.choice(["confirmed", "likely", "not_detected", None]), **kw}
    doc = Entry(id=new_id(t, rng.randbytes(10)), site=SITE, kiosk=fields["kiosk"], t=t, direction=direction,
                declaration={"format": "sitepass", "status": "valid", "holder": f"Người {who}", "kind": None,
                             "expires": None, "flags": []},
                fingerprint=hashlib.sha256(str(who).encode()).hexdigest()[:32],
                ble={"outcome": fields["app"], "family": None, "rssi": None, "count_near": 0},
                decision=fields["decision"], reasons=(), override=fields["override"],
                clock_unsynced=fields["clock_unsynced"]).to_json()
    if fields.get("no_holder"):
        doc["declaration"] = None
    return doc


def visits(rng: random.Random, days: int, people: int) -> list[dict]:
    """Varied comings and goings over `days` days: exits at another gate, no exit, twice a
    day, across midnight, stays longer than the longest, the guard's allow/deny/exit,
    refusals, clock-unsynced stamps, exits with no entry, entries without a fingerprint."""
    docs = []
    for day in range(days):
        for who in range(people):
            for _ in range(rng.choice([0, 1, 1, 2])):                  # twice a day at times
                t = DAY + day * 86400 + rng.uniform(0, 86400)
                override = rng.choice([None] * 6 + [
                    {"action": a, "reason": "guard", "by": "guard", "at": iso(t + 60)}
                    for a in ("allow", "deny", "exit")])
                docs.append(entry(rng, t, who, decision=rng.choice(["allow"] * 5 + ["deny", "review"]),
                                  override=override, clock_unsynced=rng.random() < 0.1,
                                  no_holder=rng.random() < 0.05))
                kind = rng.random()
                if kind < 0.6:             # an exit, maybe past midnight, maybe past max_stay
                    out = t + rng.choice([rng.uniform(60, 9 * H), rng.uniform(9 * H, 30 * H)])
                    docs.append(entry(rng, out, who, "out", clock_unsynced=rng.random() < 0.1))
                elif kind < 0.65:          # the same moment twice (ties broken by id)
                    docs.append(entry(rng, t, who, "out"))
            if rng.random() < 0.03:        # an exit whose entry is before the window
                docs.append(entry(rng, DAY + day * 86400 + rng.uniform(0, 3 * H), who, "out"))
    nobody = entry(rng, DAY + 5 * H, 999)
    nobody["fingerprint"] = ""                                   # no person to follow
    return docs + [nobody]


def as_rows(docs) -> list[TraceRow]:
    return [TraceRow.of(d) for d in docs if d.get("fingerprint")]


def test_rows_give_the_same_stays_and_contacts_as_the_entries():
    rng = random.Random(20261126)
    for case in range(60):
        docs = visits(rng, days=rng.randint(1, 4), people=rng.randint(1, 12))
        rows = as_rows(docs)
        rng.shuffle(rows)                  # any order in
        for default_stay, max_stay in ((DEFAULT_STAY, MAX_STAY), (2 * H, 6 * H)):
            expected = trace.stays(docs, default_stay, max_stay)
            got = trace.stays_from_rows(rows, default_stay, max_stay)
            assert got == expected, f"case {case}"          # the same stays, in the same order
            assert all(type(s.start) is float and type(s.end) is float for s in got)
        person = rng.choice(docs)["fingerprint"] or docs[0]["fingerprint"]
        since, until = DAY + 86400, DAY + 3 * 86400
        assert trace.query_rows(rows, person, SITE, since, until, DEFAULT_STAY, MAX_STAY, 15 * 60) == \
            trace.query(docs, person, SITE, since, until, DEFAULT_STAY, MAX_STAY, 15 * 60), f"case {case}"
    # And the cases the stays must tell apart are all there.
    every = trace.stays(docs, DEFAULT_STAY, MAX_STAY)
    assert any(s.assumed for s in every) and any(not s.assumed for s in every)
    assert any(s.exit_gate and s.exit_gate != s.entry_gate for s in every)
    assert any(s.clock_unsynced for s in every)


def test_an_entry_of_the_wrong_shape_makes_a_row_all_the_same():
    """The log keeps an entry the central refused for its shape (a declaration sent as
    text): the guard's count and a trace read past it, its odd parts taken as absent."""
    rng = random.Random(1)
    odd = entry(rng, DAY + 8 * H, 1) | {"declaration": "<script>", "ble": [1], "override": "exit"}
    row = TraceRow.of(odd)
    assert (row.holder, row.app, row.action) == (None, None, None)
    assert [s.holder for s in trace.stays_from_rows([row], DEFAULT_STAY, MAX_STAY)] == [None]


def reopened(folder, docs: list[dict]) -> EntryLog:
    """A started log at `folder` holding `docs`, opened again as a kiosk finds it after a
    start: the last days open on the writer, the older ones closed."""
    log = EntryLog(folder)
    log.start()
    log.import_entries(docs)
    log.stop()
    log = EntryLog(folder)
    log.start()
    return log


@pytest.fixture
def week_log(tmp_path):
    """A log of 8 days of visits (`reopened`)."""
    docs = visits(random.Random(7), days=8, people=30)
    log = reopened(tmp_path / "log", docs)
    yield log, docs
    log.stop()


WINDOW = (iso(DAY), iso(DAY + 9 * 86400))


def same_as_entries(log: EntryLog) -> None:
    rows = log.trace_rows(*WINDOW)
    docs = log.search(since=WINDOW[0], until=WINDOW[1], limit=10_000_000)
    assert sorted(rows) == sorted(as_rows(docs))
    assert sorted(trace.stays_from_rows(rows, DEFAULT_STAY, MAX_STAY)) == sorted(
        trace.stays(docs, DEFAULT_STAY, MAX_STAY))


def test_a_closed_day_keeps_its_projection_beside_its_shard(week_log):
    log, docs = week_log
    open_days = set(log.days.open)
    closed = [d for d in log.days.days() if d not in open_days]
    assert len(closed) >= 5 and all(not (log.path / d / tracing.FILE).exists() for d in log.days.days())
    same_as_entries(log)
    # Built by a child process for the closed days only: the writer opened none of them.
    assert set(log.days.open) == open_days
    assert [d for d in log.days.days() if (log.path / d / tracing.FILE).exists()] == closed
    # A window narrower than a day: the times, not only the days, bound the rows.
    lo, hi = DAY + 2 * 86400 + 5 * H, DAY + 2 * 86400 + 9 * H
    assert sorted(log.trace_rows(iso(lo), iso(hi))) == sorted(
        as_rows(d for d in docs if iso(lo) <= d["time"] < iso(hi)))
    # The next read takes the files as they are: not built again.
    written = {d: (log.path / d / tracing.FILE).stat().st_mtime_ns for d in closed}
    same_as_entries(log)
    assert {d: (log.path / d / tracing.FILE).stat().st_mtime_ns for d in closed} == written
    # Columns, interned: a name or a gate is written once per day, not once per entry.
    data = (log.path / closed[0] / tracing.FILE).read_bytes()
    day_docs = [d for d in docs if d["time"][:10] == closed[0] and d["fingerprint"]]
    assert data.count(b'"gate-1"') == 1 and len(day_docs) > 10
    # It holds what stays need, and not the declaration's other fields nor BLE's details.
    assert b"sitepass" not in data and b"count_near" not in data


def test_a_change_to_a_closed_day_builds_its_projection_again(week_log, tmp_path):
    log, docs = week_log
    log.trace_rows(*WINDOW)
    closed = min(log.days.days())
    first = min((d for d in docs if d["time"][:10] == closed and d["direction"] == "in" and d["fingerprint"]
                 and not d["override"] and d["decision"] == "allow"), key=lambda d: d["id"])
    stale = (log.path / closed / tracing.FILE).read_bytes()
    # The guard's "Ra về" on an entry of a closed day: the entry becomes an exit.
    log.set_override(first["id"], {"action": "exit", "reason": "Ra về", "by": "guard", "at": first["time"]})
    log.stop()
    log = EntryLog(tmp_path / "log")                    # the day is closed again after a start
    log.start()
    try:
        assert closed not in log.days.open
        assert (log.path / closed / tracing.FILE).read_bytes() == stale      # still the old one here
        row = next(r for r in log.trace_rows(*WINDOW) if r.id == first["id"])
        assert row.action == "exit"
        assert not any(s.entry_id == first["id"] for s in trace.stays_from_rows([row], DEFAULT_STAY, MAX_STAY))
        same_as_entries(log)
        assert (log.path / closed / tracing.FILE).read_bytes() != stale
    finally:
        log.stop()


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "directory"])
def test_a_damaged_projection_is_never_trusted(week_log, damage):
    log, _ = week_log
    expected = sorted(log.trace_rows(*WINDOW))
    day = min(log.days.days())
    path = log.path / day / tracing.FILE
    data = bytearray(path.read_bytes())
    if damage == "flip":                   # one byte changed, still a number: only the CRC tells
        i = data.index(b'"t":[') + 6
        data[i] = ord("1") if data[i] != ord("1") else ord("2")
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[:len(data) // 2]))
    elif damage == "garbage":
        path.write_bytes(b'{"crc":1,"v":1}')
    elif damage == "empty":
        path.write_bytes(b"")
    else:                                  # cannot be read, nor written over: answered all the same
        path.unlink()
        path.mkdir()
    assert sorted(log.trace_rows(*WINDOW)) == expected
    if damage != "directory":
        assert tracing.decode(path.read_bytes()) is not None          # built again, sound
    assert not list((log.path / day).glob("*.tmp"))


def test_two_readers_building_the_same_days_at_once(week_log):
    """Two tracing queries at once (two tracers, or a trace and the guard's count): each
    builds the missing days in its own child; both answer the same, and the files left are
    whole projections, no temp file beside them."""
    log, _ = week_log
    expected = sorted(log.trace_rows(*WINDOW))
    for p in log.path.glob(f"*/{tracing.FILE}"):
        p.unlink()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: sorted(log.trace_rows(*WINDOW)), range(4)))
    assert answers == [expected] * 4
    files = list(log.path.glob(f"*/{tracing.FILE}"))
    assert files and all(tracing.decode(p.read_bytes()) is not None for p in files)
    assert not list(log.path.glob("*/*.tmp"))


def test_when_no_child_can_run_the_writer_reads_the_days(week_log, monkeypatch, caplog):
    """A child that cannot start or dies at once (here the interpreter it would run is
    /bin/false) leaves the closed days to the writer: the same answer, and it is logged."""
    log, _ = week_log
    expected = sorted(log.trace_rows(*WINDOW))
    for p in log.path.glob(f"*/{tracing.FILE}"):
        p.unlink()
    monkeypatch.setattr(sys, "executable", "/bin/false")
    assert sorted(log.trace_rows(*WINDOW)) == expected
    assert "read by the writer for tracing" in caplog.text


def test_a_purge_while_a_child_writes_a_projection_into_the_day(tmp_path, monkeypatch):
    """The daily purge removes a day's folder while a tracer's child writes the day's
    projection into it: the child's file appears after the walk listed the folder, so the
    folder is not empty at the end. The purge removes it all the same (before: the OSError
    ended the purge, and with it the housekeeping thread)."""
    rng = random.Random(5)
    docs = visits(rng, days=3, people=5)
    log = EntryLog(tmp_path / "log", retention_days=1, unsynced_max_days=1)
    log.start()
    try:
        log.import_entries(docs)
        days = log.days.days()
        real_rmtree = shutil.rmtree
        raced: list[str] = []

        def rmtree_while_a_child_writes(path, *args, **kwargs):
            path = Path(path)
            if not raced:
                # As shutil.rmtree walks: the files it listed removed, then the child's
                # temp file made, then the folder removed last.
                raced.append(path.name)
                for p in path.iterdir():
                    p.unlink()
                (path / f"{tracing.FILE}.999.tmp").write_bytes(b'{"crc":')
                os.rmdir(path)
            return real_rmtree(path, *args, **kwargs)

        monkeypatch.setattr(shutil, "rmtree", rmtree_while_a_child_writes)
        assert log.purge(DAY + 10 * 86400) == len(docs)
    finally:
        log.stop()
    assert raced == [days[0]]
    assert not [d for d in days if (tmp_path / "log" / d).exists()]


def test_today_comes_from_the_writer_s_memory(tmp_path):
    log = EntryLog(tmp_path / "log")
    log.start()
    try:
        rng = random.Random(3)
        now = DAY + 10 * H
        first = Entry.from_json(entry(rng, now, 1))
        assert log.append(first)
        rows = log.trace_rows(iso(DAY), iso(now + 1))
        assert [r.id for r in rows] == [first.id]
        assert log.append(Entry.from_json(entry(rng, now + 60, 1, "out")))
        assert [r.direction for r in sorted(log.trace_rows(iso(DAY), iso(now + 61)))] == ["in", "out"]
        assert not (log.path / iso(now)[:10] / tracing.FILE).exists()        # an open day: no file
    finally:
        log.stop()


def test_the_kiosk_traces_from_the_projection_and_counts_who_is_inside(tmp_path, kiosk_settings):
    """Through the kiosk's real server: a week of closed days gives the contacts the entries
    themselves give, and the guard's count of who is inside is the entries' count."""
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    rng = random.Random(11)
    docs = visits(rng, days=8, people=25)
    log = EntryLog(tmp_path / "kiosk" / "log")
    log.start()
    log.import_entries(docs)
    log.stop()
    now = DAY + 7 * 86400 + 15 * H
    settings = kiosk_settings(**{"web.tracer_tokens": ["ha:" + hashlib.sha256(TRACER_TOKEN.encode()).hexdigest()]})
    kiosk = Kiosk(settings, clock=ManualClock(now))
    kiosk.start()
    try:
        assert set(kiosk.log.days.open) != set(kiosk.log.days.days())          # some days closed
        target = max((d for d in docs if d["fingerprint"] and d["time"] < iso(now) and d["direction"] == "in"),
                     key=lambda d: d["time"])
        answer = requests.get(kiosk.web_url + "/api/v1/trace", headers={"Authorization": f"Bearer {TRACER_TOKEN}"},
                              params={"reason": "F0", "entry": target["id"]}, timeout=60)
        assert answer.status_code == 200, answer.text
        default_stay, max_stay = settings["trace.default_stay"] * H, settings["trace.max_stay"] * H
        since = now - settings["trace.window_days"] * 86400
        # What the kiosk knows at `now`: the entries since the window's start (less the
        # longest stay) and before now.
        known = [d for d in docs if iso(since - max_stay) <= d["time"] < iso(now)]
        mine, found = trace.query(known, target["fingerprint"], SITE, since, now, default_stay, max_stay,
                                  settings["trace.min_overlap"] * 60)
        assert found, "the scene must give contacts"
        assert answer.json()["contacts"] == [c.to_json() for c in found]
        assert answer.json()["stays"] == [s.to_json() for s in mine]
        inside = trace.inside_now(trace.stays([d for d in docs if iso(now - max_stay) <= d["time"] <= iso(now)],
                                              default_stay, max_stay), now)
        assert kiosk.inside_now() == len(inside) > 0
    finally:
        kiosk.stop()

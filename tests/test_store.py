"""The entry log: tinydb on the durable journal, one writer thread."""
import os

import pytest
from tinydb import TinyDB, where

from kiosk.model import Entry, iso, new_id
from kiosk.store import DurableStorage, EntryLog
from kiosk.store.log import FORGET_FLOOR
from kiosk.store.storage import journal_path, snapshot_path

T0 = 1_795_000_000.0


def entry(i: int, t: float = T0, fingerprint: str = "f") -> Entry:
    return Entry(id=new_id(t + i), site="s", kiosk="k", t=t + i, direction="in",
                 declaration={"format": "sitepass", "status": "valid", "holder": f"Visitor {i}"},
                 fingerprint=fingerprint, ble={"outcome": "confirmed"}, decision="allow", reasons=())


def test_tinydb_on_durable_storage_survives_reopen(tmp_path):
    db = TinyDB(tmp_path / "log", storage=DurableStorage)
    db.insert({"n": 1})
    db.insert({"n": 2})
    db.update({"n": 20}, where("n") == 2)
    db.remove(where("n") == 1)
    db.close()
    db = TinyDB(tmp_path / "log", storage=DurableStorage)
    assert [d["n"] for d in db.all()] == [20]
    db.insert({"n": 3})
    assert sorted(d.doc_id for d in db.all()) == [2, 3]


def test_each_insert_appends_one_line_not_the_whole_file(tmp_path):
    db = TinyDB(tmp_path / "log", storage=DurableStorage, compact_every=10_000)
    for n in range(50):
        db.insert({"n": n, "pad": "x" * 100})
    size_50 = os.path.getsize(journal_path(tmp_path / "log", 0))
    db.insert({"n": 50, "pad": "x" * 100})
    grew = os.path.getsize(journal_path(tmp_path / "log", 0)) - size_50
    assert grew < 300, "an insert writes its own record, not the table"


def test_a_torn_last_record_is_dropped_and_the_rest_kept(tmp_path, caplog):
    db = TinyDB(tmp_path / "log", storage=DurableStorage)
    for n in range(3):
        db.insert({"n": n})
    db.close()
    with open(journal_path(tmp_path / "log", 0), "ab") as f:
        f.write(b'{"ops": [{"t": "_default", "put": {"4": {"n"')     # power cut mid-write
    db = TinyDB(tmp_path / "log", storage=DurableStorage)
    assert [d["n"] for d in db.all()] == [0, 1, 2]
    assert "torn last record" in caplog.text
    db.insert({"n": 3})
    db.close()
    assert [d["n"] for d in TinyDB(tmp_path / "log", storage=DurableStorage).all()] == [0, 1, 2, 3]


def test_compaction_writes_a_snapshot_and_starts_a_new_journal(tmp_path):
    db = TinyDB(tmp_path / "log", storage=DurableStorage, compact_every=10)
    for n in range(25):
        db.insert({"n": n})
    db.close()
    folder = tmp_path / "log"
    assert sorted(os.listdir(folder)) == ["journal.1.jsonl", "journal.2.jsonl", "snapshot.1.json", "snapshot.2.json"]
    assert len(journal_path(folder, 2).read_bytes().splitlines()) == 5
    assert len(TinyDB(folder, storage=DurableStorage).all()) == 25


def test_a_damaged_snapshot_falls_back_to_the_generation_before(tmp_path, caplog):
    db = TinyDB(tmp_path / "log", storage=DurableStorage, compact_every=10)
    for n in range(25):
        db.insert({"n": n})
    db.update({"n": 100}, doc_ids=[1])
    db.close()
    newest = snapshot_path(tmp_path / "log", 2)
    newest.write_bytes(newest.read_bytes()[:40])           # a truncated snapshot
    db = TinyDB(tmp_path / "log", storage=DurableStorage, compact_every=10)
    assert sorted(d["n"] for d in db.all()) == list(range(1, 25)) + [100]
    assert "unreadable" in caplog.text
    db.insert({"n": 25})
    db.close()
    assert len(TinyDB(tmp_path / "log", storage=DurableStorage).all()) == 26


class PowerCut(BaseException):
    """Raised where the power goes: nothing after it in the process runs."""


@pytest.mark.parametrize("where", ["before the rename", "after the rename", "before the new journal",
                                   "before the folder's fsync"])
def test_a_power_cut_at_any_point_of_a_compaction_loses_nothing(tmp_path, monkeypatch, where):
    from kiosk.store import storage
    from kiosk.store.storage import DurableDB

    db = DurableDB(tmp_path / "log", compact_every=5)
    table = db.table("entries")
    for n in range(4):
        table.insert({"n": n})

    def cut(step, real, after=False, only=lambda *args: True):
        def run(*args, **kwargs):
            if step == where and not after and only(*args):
                raise PowerCut(step)
            result = real(*args, **kwargs)
            if step == where and after and only(*args):
                raise PowerCut(step)
            return result
        return run
    replace = cut("after the rename", cut("before the rename", os.replace), after=True)
    monkeypatch.setattr(storage.os, "replace", replace)
    monkeypatch.setattr(storage, "open", cut("before the new journal", open,
                                             only=lambda path, *a: "journal" in str(path)), raising=False)
    monkeypatch.setattr(storage, "fsync_dir", cut("before the folder's fsync", storage.fsync_dir))
    with pytest.raises(PowerCut):
        table.insert({"n": 4})                    # its record is written, then compaction starts
    monkeypatch.undo()
    reopened = DurableDB(tmp_path / "log", compact_every=5)
    assert sorted(d["n"] for d in reopened.table("entries").all()) == [0, 1, 2, 3, 4]
    reopened.table("entries").insert({"n": 5})
    reopened.close()
    assert len(DurableDB(tmp_path / "log").table("entries")) == 6


@pytest.fixture
def log(tmp_path):
    entry_log = EntryLog(tmp_path / "log", retention_days=28)
    entry_log.start()
    yield entry_log
    entry_log.stop()


def test_outbox_reuse_and_recent(log):
    e1, e2, e3 = entry(1, fingerprint="a"), entry(2, fingerprint="b"), entry(3, fingerprint="a")
    for e in (e1, e2, e3):
        assert log.append(e) is True
    assert [d["id"] for d in log.recent(2)] == [e3.id, e2.id]
    assert log.shown_ago("a", T0 + 10) == pytest.approx(7.0)
    assert log.shown_ago("never", T0) is None
    # the clock stepped back behind the last sighting: how long ago is not known
    assert log.shown_ago("a", T0 - 3600) is None
    assert [d["id"] for d in log.unsynced(2)] == [e1.id, e2.id]
    log.mark_synced([e1.id, e2.id], T0 + 20)
    assert [d["id"] for d in log.unsynced(10)] == [e3.id]
    assert log.backlog() == 1


def test_the_outbox_and_reuse_index_survive_a_restart(tmp_path):
    first = EntryLog(tmp_path / "log")
    first.start()
    e1, e2 = entry(1, fingerprint="a"), entry(2, fingerprint="b")
    first.append(e1)
    first.append(e2)
    first.mark_synced([e1.id], T0 + 5)
    first.stop()
    second = EntryLog(tmp_path / "log")
    second.start()
    try:
        assert [d["id"] for d in second.unsynced()] == [e2.id]
        assert second.shown_ago("a", T0 + 11) == pytest.approx(10.0)
    finally:
        second.stop()


def test_purge_keeps_what_has_not_reached_the_central(log, caplog):
    old_synced, old_unsynced, recent = entry(1), entry(2), entry(3, t=T0 + 30 * 86400)
    for e in (old_synced, old_unsynced, recent):
        log.append(e)
    log.mark_synced([old_synced.id, recent.id], T0 + 40 * 86400)
    assert log.purge(T0 + 30 * 86400) == 1
    assert {d["id"] for d in log.query()} == {old_unsynced.id, recent.id}
    assert "not yet at the central" in caplog.text


def test_an_unwritable_disk_holds_entries_in_memory_until_it_can_write(log, tmp_path):
    day = iso(T0)[:10]
    journal = journal_path(tmp_path / "log" / day, 0)
    log.append(entry(1))
    # Make the journal unwritable the way a full or read-only disk does: writes raise OSError.
    storage = log._call(lambda: log.days.shard(day).storage)
    good = storage._journal
    storage._journal = open(os.devnull, "rb")        # write() raises io.UnsupportedOperation (an OSError)
    try:
        assert log.append(entry(2)) is False
        assert log.error and "cannot write the entry log" in log.error
        assert [d["holder"] for d in (x["declaration"] for x in log.recent())] == ["Visitor 2", "Visitor 1"]
    finally:
        storage._journal.close()
        storage._journal = good
    assert log.retry() is True and log.error is None
    assert len(journal.read_bytes().splitlines()) == 2


def test_a_running_kiosk_purges_old_synced_entries_on_start(kiosk_settings, tmp_path):
    from kiosk.checkpoint import Kiosk
    from kiosk.clock import ManualClock

    from .conftest import wait_for

    settings = kiosk_settings()
    old, fresh = entry(1, t=T0 - 40 * 86400), entry(2, t=T0)
    seed = EntryLog(tmp_path / "kiosk" / "log")
    seed.start()
    seed.append(old)
    seed.append(fresh)
    seed.mark_synced([old.id, fresh.id], T0)
    seed.stop()
    kiosk = Kiosk(settings, clock=ManualClock(T0))
    kiosk.start()
    try:
        wait_for(lambda: [d["id"] for d in kiosk.log.recent()] == [fresh.id])
    finally:
        kiosk.stop()


def test_a_day_per_database_keeps_appends_cheap_and_purges_whole_days(tmp_path):
    entry_log = EntryLog(tmp_path / "log", retention_days=28)
    entry_log.start()
    try:
        days = [entry(i, t=T0 + d * 86400) for d in range(3) for i in range(3)]
        entry_log.import_entries([e.to_json() for e in days])
        assert sorted(p.name for p in (tmp_path / "log").iterdir() if p.name != "declarations") == \
            sorted({iso(T0 + d * 86400)[:10] for d in range(3)})
        assert [d["id"] for d in entry_log.query()] == sorted(e.id for e in days)
        assert entry_log.get(days[4].id)["id"] == days[4].id
        assert entry_log.set_override(days[4].id, {"action": "exit"})["override"] == {"action": "exit"}
        entry_log.mark_synced([e.id for e in days], T0 + 3 * 86400)
        assert entry_log.purge(T0 + 29 * 86400 + 10) == 6          # the first day whole, the second's old part
        assert len([p for p in (tmp_path / "log").iterdir() if p.name != "declarations"]) == 2
        assert len(entry_log.query()) == 3
    finally:
        entry_log.stop()


def test_past_the_hard_limit_even_unsynced_entries_go_and_the_log_says_so(tmp_path, caplog):
    entry_log = EntryLog(tmp_path / "log", retention_days=28, unsynced_max_days=60)
    entry_log.start()
    try:
        ancient, old = entry(1, t=T0 - 70 * 86400), entry(2, t=T0 - 40 * 86400)
        entry_log.append(ancient)
        entry_log.append(old)
        assert entry_log.purge(T0) == 1
        assert [d["id"] for d in entry_log.query()] == [old.id]
        assert entry_log.backlog() == 1
        assert "never reached the central" in caplog.text
    finally:
        entry_log.stop()


def test_reading_a_month_keeps_few_days_in_memory_and_reopens_them_as_needed(tmp_path):
    from kiosk.store.log import OPEN_DAYS

    log = EntryLog(tmp_path / "log")
    log.start()
    log.import_entries([entry(i, T0 - day * 86400).to_json() for day in range(10) for i in range(5)])
    assert log._call(lambda: len(log.days.open)) <= OPEN_DAYS
    everything = log.search(limit=10_000)
    assert len(everything) == 50 and [d["id"] for d in everything] == sorted(d["id"] for d in everything)
    assert log._call(lambda: len(log.days.open)) <= OPEN_DAYS
    oldest = everything[0]["id"]
    log.mark_synced([oldest], T0)                        # a closed day, opened again to write
    assert log.get(oldest)["synced_at"] == iso(T0)
    assert log.backlog() == 49
    log.stop()
    log = EntryLog(tmp_path / "log")
    log.start()
    assert log.backlog() == 49 and len(log.search(limit=10_000)) == 50
    log.stop()


def test_the_writer_compacts_when_idle_not_in_the_middle_of_an_append(tmp_path):
    from .conftest import wait_for

    log = EntryLog(tmp_path / "log", compact_every=5)
    log.start()
    entries = [entry(i) for i in range(8)]

    def burst():                                   # eight appends in one writer task
        for e in entries:
            log._append(e.to_json())
        return log.days.shard(entries[0].to_json()["time"][:10]).storage.gen
    assert log._call(burst) == 0                   # due after five, but not written meanwhile
    day = tmp_path / "log" / entries[0].to_json()["time"][:10]
    wait_for(lambda: snapshot_path(day, 1).exists(), timeout=5)    # done once the queue was empty
    log.stop()
    log = EntryLog(tmp_path / "log")
    log.start()
    assert len(log.query()) == 8
    log.stop()


def test_older_days_with_nothing_to_send_are_not_read_again_at_open(tmp_path, monkeypatch):
    from kiosk.store.log import ALL_SYNCED

    folder = tmp_path / "log"
    log = EntryLog(folder)
    log.start()
    docs = [entry(i, T0 - day * 86400).to_json() for day in range(6) for i in range(3)]
    log.import_entries(docs)
    old = [d["id"] for d in docs if d["time"][:10] < iso(T0 - 86400)[:10]]   # before the last two days
    log.mark_synced(old, T0)
    log.stop()
    opened = []
    monkeypatch.setattr(EntryLog, "_open", lambda self, f, real=EntryLog._open: opened.append(f.name) or real(self, f))

    def reopen():
        opened.clear()
        log = EntryLog(folder)
        log.start()
        return log
    log = reopen()                              # reads every day once; marks the synced older days
    assert len(opened) == 7 and log.backlog() == len(docs) - len(old)
    log.stop()
    marked = sorted(p.parent.name for p in folder.glob(f"*/{ALL_SYNCED}"))
    assert len(marked) == 4
    log = reopen()                              # now skips them (and the declarations aside)
    assert sorted(opened) == sorted({d["time"][:10] for d in docs} - set(marked)) + ["declarations"]
    assert log.backlog() == len(docs) - len(old)
    assert len(log.search(limit=100)) == len(docs)          # a skipped day is opened when asked for
    log.set_override(old[0], {"by": "guard", "decision": "deny"})   # an older entry to send again
    log.stop()
    day = next(d["time"][:10] for d in docs if d["id"] == old[0])
    assert not (folder / day / ALL_SYNCED).exists()         # the mark went before the write
    log = reopen()
    assert log.backlog() == len(docs) - len(old) + 1 and old[0] in [d["id"] for d in log.unsynced(100)]
    log.stop()


def test_the_reuse_index_reaches_as_many_days_back_as_the_reuse_window(tmp_path):
    from kiosk.config import SETTINGS
    from kiosk.store.log import reuse_days

    bound = next(s for s in SETTINGS if s.name == "policy.reuse_window").bounds[1]
    assert reuse_days(bound) == 2 and reuse_days(600) == 2 and reuse_days(0) == 1
    noon = T0 - T0 % 86400 + 43200
    seed = EntryLog(tmp_path / "log")
    seed.start()
    docs = [entry(0, noon - d * 86400, fingerprint=f"day-{d}").to_json() for d in range(3)]
    seed.import_entries(docs)
    seed.mark_synced([d["id"] for d in docs], noon)     # else every day is read for the outbox
    seed.stop()
    for window, seen in ((600, {"day-0", "day-1"}), (2 * 86400, {"day-0", "day-1", "day-2"})):
        log = EntryLog(tmp_path / "log", reuse_window=window)
        log.start()
        try:
            assert {f for f in ("day-0", "day-1", "day-2") if log.shown_ago(f, noon) is not None} == seen
        finally:
            log.stop()


def test_search_takes_its_filters_by_name(log):
    first = entry(1)
    log.append(first)
    with pytest.raises(TypeError):
        log.search(None, None, None, None, 10)
    assert [d["id"] for d in log.search(since=iso(T0), limit=10)] == [first.id]


def test_today_counts_are_the_daily_reports_totals_since_local_midnight(log):
    from dataclasses import replace
    from zoneinfo import ZoneInfo

    from kiosk.export import daily_summary

    tz = ZoneInfo("Asia/Ho_Chi_Minh")                 # UTC+7: local midnight is 17:00 UTC
    midnight = T0 - (T0 + 7 * 3600) % 86400
    times = [midnight - 60, midnight + 60, midnight + 3600, midnight + 7200]
    docs = [replace(entry(0, t), id=new_id(t), decision=d).to_json()
            for t, d in zip(times, ("allow", "deny", "review", "allow"), strict=True)]
    log.import_entries(docs)
    counts = log.today_counts(midnight + 8000, tz)
    assert counts == {"entries": 3, "allow": 1, "deny": 1, "review": 1}
    report = daily_summary(docs[1:], tz)
    assert counts == {k: report[k] for k in counts}


def test_the_reuse_index_forgets_codes_older_than_the_window(tmp_path):
    # A gate for weeks: every visitor a new code, ten seconds apart. The index keeps what the
    # reuse window (10 minutes, 60 codes here) can still flag, not every code since the start.
    log = EntryLog(tmp_path / "log", reuse_window=600)
    log.start()
    try:
        visitors = 2 * FORGET_FLOOR + 100
        for i in range(visitors):
            log.append(entry(0, t=T0 + 10 * i, fingerprint=f"code-{i}"))
        assert log.shown_codes() <= FORGET_FLOOR < visitors
        last = T0 + 10 * (visitors - 1)
        # still flagged: shown again within the window
        assert log.shown_ago(f"code-{visitors - 30}", last + 1) == pytest.approx(291.0)
        # the first visitor's code, shown six hours ago, is as good as never seen
        assert log.shown_ago("code-0", last + 1) is None
    finally:
        log.stop()

"""The entry log under an operator's export and on a full disk: the door neither waits for
readers nor opens for an entry nobody logged, and a disk that stays full loses nothing
silently (issue 12, items 4 and 6)."""
from __future__ import annotations

import contextlib
import threading

import orjson
import pytest
import requests

from kiosk.declarations import sitepass
from kiosk.model import Entry, Scan, iso, new_id
from kiosk.store import EntryLog
from kiosk.store.log import OPEN_DAYS, HoldFull
from kiosk.sync import SyncWorker

from .conftest import KIOSK_TOKEN, OPERATOR_TOKEN, SITE, wait_for

T0 = 1_795_000_000.0


def entry(i: int, t: float) -> Entry:
    return Entry(id=new_id(t), site=SITE, kiosk="gate-1", t=t, direction="in",
                 declaration={"format": "sitepass", "status": "valid", "holder": f"Khách {i}"},
                 fingerprint=f"{i:032x}", ble={"outcome": "confirmed"}, decision="allow", reasons=())


@contextlib.contextmanager
def full_disk(entry_log: EntryLog, day: str):
    """The day's journal writes go to /dev/full: every one fails with ENOSPC, as on a full disk."""
    storage = entry_log._call(lambda: entry_log.days.shard(day).storage)
    good, full = storage._journal, open("/dev/full", "wb", buffering=0)
    entry_log._call(lambda: setattr(storage, "_journal", full))
    try:
        yield
    finally:
        entry_log._call(lambda: setattr(storage, "_journal", good))
        full.close()


@contextlib.contextmanager
def writer_held_up(entry_log: EntryLog):
    """The writer thread stuck in one request (a card that stops answering), until the end."""
    release, started = threading.Event(), threading.Event()
    entry_log._writer.submit(lambda: started.set() or release.wait(60))
    started.wait(5)
    try:
        yield
    finally:
        release.set()


@pytest.fixture
def month(tmp_path):
    """A log of 12 days, 40 entries a day, the writer holding only its newest days open."""
    log = EntryLog(tmp_path / "log")
    log.start()
    docs = [entry(i, T0 - day * 86400 + i * 60).to_json() for day in range(12) for i in range(40)]
    log.import_entries(docs)
    yield log, sorted(d["id"] for d in docs)
    log.stop()


# -- item 4: readers beside the writer ----------------------------------------------------
def test_an_export_reads_past_days_without_the_writer(month):
    log, ids = month
    stream = log.entries()
    first = next(stream)                       # the export has begun ...
    with writer_held_up(log):                  # ... and the writer is stuck from here on
        rest = list(stream)
    assert [d["id"] for d in [first, *rest]] == ids
    assert log._call(lambda: len(log.days.open)) <= OPEN_DAYS    # it opened no day for the reader


def test_an_export_paused_midway_does_not_hold_up_an_append(month):
    log, ids = month
    stream = log.entries()
    first = next(stream)
    assert log.append(entry(99, T0 + 30)) is True                 # while the export waits on its client
    assert [d["id"] for d in [first, *stream]] == ids              # the range as it was when asked


def test_a_readers_documents_do_not_change_under_later_writes(month):
    log, ids = month
    day, docs = log._plan(None, None, None)[-1]
    assert docs is not None                    # the newest day is open: the writer's own documents
    before = [dict(d) for d in docs]
    log.set_override(docs[0]["id"], {"action": "exit"})
    log.mark_synced([d["id"] for d in docs], T0)
    log.purge(T0 + 400 * 86400)
    assert [dict(d) for d in docs] == before


def test_the_csv_export_is_read_beside_the_writer_and_streams(make_kiosk, clock, monkeypatch):
    opened = []
    monkeypatch.setattr(EntryLog, "_open", lambda self, f, real=EntryLog._open: opened.append(f.name) or real(self, f))
    kiosk = make_kiosk()
    docs = [entry(i, clock.now() - day * 86400 - i).to_json() for day in range(8) for i in range(30)]
    kiosk.log.import_entries(docs)
    opened.clear()
    response = requests.get(kiosk.web_url + "/api/v1/entries.csv", stream=True, timeout=30,
                            headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert response.status_code == 200
    with writer_held_up(kiosk.log):
        body = response.content.decode("utf-8-sig")
    assert len(body.strip().splitlines()) == 1 + len(docs)
    assert opened == []                        # the writer opened no day for it (it used to open all 8)


# -- item 4: the door fails safe when the log cannot take the entry -------------------------
def valid_scan(kiosk, site_key, holder="Nguyễn Văn An") -> Scan:
    key = sitepass.load_private_key(site_key)
    return Scan(sitepass.issue(key, SITE, holder, kiosk.clock.now(), 86400).encode(), kiosk.clock.now())


def test_a_scan_the_stuck_log_cannot_take_keeps_the_door_shut_and_tells_the_guard(make_kiosk, site_key):
    kiosk = make_kiosk(policy__no_app="warn")                      # a valid pass opens the door
    relay = kiosk.signals.factory.pin(kiosk.settings["door.relay_pin"])
    events = kiosk.bus.subscribe()
    assert kiosk.handle_scan(valid_scan(kiosk, site_key)).decision == "allow"
    wait_for(lambda: not relay.state, timeout=5)
    relay.clear_states()
    with writer_held_up(kiosk.log):
        shut = kiosk.handle_scan(valid_scan(kiosk, site_key, "Trần Thị Bình"))
    assert shut.decision == "review" and shut.reasons[-1] == "not_logged"
    assert not relay.state and not [s for s in relay.states if s.state]
    seen = [events.get(timeout=5) for _ in range(3)]
    assert ("entry", shut.to_json()) in seen
    health = kiosk.health()
    assert health["not_logged"] == 1
    assert kiosk.log.get(shut.id) is None                          # called off, not written later


def test_a_full_disk_with_no_room_in_memory_keeps_the_door_shut(make_kiosk, site_key):
    kiosk = make_kiosk(policy__no_app="warn", store__hold_mb=0)
    relay = kiosk.signals.factory.pin(kiosk.settings["door.relay_pin"])
    scan = valid_scan(kiosk, site_key)
    with full_disk(kiosk.log, iso(scan.t)[:10]):
        shut = kiosk.handle_scan(scan)
        health = kiosk.health()
    assert shut.decision == "review" and "not_logged" in shut.reasons
    assert not [s for s in relay.states if s.state]
    assert health["not_logged"] == 1 and health["log"].startswith("unavailable")
    assert kiosk.log.lost == 1


def test_a_full_disk_with_room_in_memory_lets_the_door_decide(make_kiosk, site_key):
    kiosk = make_kiosk(policy__no_app="warn")
    relay = kiosk.signals.factory.pin(kiosk.settings["door.relay_pin"])
    scan = valid_scan(kiosk, site_key)
    with full_disk(kiosk.log, iso(scan.t)[:10]):
        allowed = kiosk.handle_scan(scan)
        assert kiosk.health()["log_held"] == 1
    assert allowed.decision == "allow" and [s for s in relay.states if s.state]
    assert kiosk.log.retry() is True and kiosk.health()["log_held"] == 0
    assert kiosk.log.get(allowed.id)["decision"] == "allow"


# -- item 6: a disk that stays full ----------------------------------------------------------
def drain(sync: SyncWorker, entry_log: EntryLog) -> int:
    """Push batches until the outbox gives nothing more; how many the central confirmed."""
    sent = 0
    while True:
        n = sync.push_once()
        if not n:
            return sent
        sent += n


@pytest.mark.parametrize("hold_entries", [None, 100], ids=["default-hold", "hold-of-100"])
def test_10145_scans_on_a_full_disk_then_it_frees(tmp_path, central, clock, caplog, hold_entries):
    n = 10_145
    docs = [entry(i, T0 + i * 0.5) for i in range(n)]
    largest = len(orjson.dumps(docs[-1].to_json()))
    log = EntryLog(tmp_path / "log", **({"hold_bytes": hold_entries * largest} if hold_entries else {}))
    log.start()
    sync = SyncWorker(log, central.url, KIOSK_TOKEN, "gate-1", clock, batch_size=500)
    try:
        day = iso(T0)[:10]
        held, refused = [], []
        with full_disk(log, day):
            for k, e in enumerate(docs):
                try:
                    assert log.append(e) is False
                    held.append(e.id)
                except HoldFull:
                    refused.append(e.id)
                if k == 50:                    # sync keeps going from the memory hold
                    assert drain(sync, log) == 51
            assert log.error and "cannot write the entry log" in log.error
            assert drain(sync, log) == len(held) - 51    # never stuck behind a refused entry
            assert log.unsynced() == []
        if hold_entries is None:
            assert refused == [] and len(held) == n
        else:
            assert 0.9 * hold_entries <= len(held) <= hold_entries + 2 and len(refused) == n - len(held)
            assert log.lost == len(refused) and "NOT LOGGED" in caplog.text
        assert log.retry() is True and log.error is None and len(log.hold) == 0
        assert log.backlog() == 0
        log.append(late := entry(n, T0 + n))                     # the disk takes entries again
        assert drain(sync, log) == 1
    finally:
        sync.stop()
        log.stop()
    reopened = EntryLog(tmp_path / "log")
    reopened.start()
    try:
        stored = reopened.search(limit=2 * n)
        assert [d["id"] for d in stored] == sorted(held + [late.id])
        assert all(d["synced_at"] for d in stored) and reopened.backlog() == 0
    finally:
        reopened.stop()

"""Damage inside the entry log's files (a flipped byte on an SD card, a bad block): the log
keeps every record it can read before and after the damage, keeps the damaged file aside,
says where (ERROR with the byte offset, and on the guard's health strip), and the kiosk
starts. Only an unfinished final line is a torn tail and is cut off."""
from __future__ import annotations

import bisect
import contextlib
import random
import shutil
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from kiosk.model import Entry, iso, new_id
from kiosk.store import EntryLog
from kiosk.store.storage import DurableDB, DurableStorage, journal_path, snapshot_path
from kiosk.web.guard import health_view
from kiosk.web.i18n import catalogue

T0 = 1_795_000_000.0                 # 2026-11-18 11:06 UTC: every entry below falls on that day
DAY = iso(T0)[:10]
ENTRIES = 10_000
SEED = 20261126


def entry(i: int, holder: str | None = None) -> dict:
    return Entry(id=new_id(T0 + i * 0.4), site="s", kiosk="k", t=T0 + i * 0.4, direction="in",
                 declaration={"format": "sitepass", "status": "valid", "holder": holder or f"Khách {i}"},
                 fingerprint=f"fp{i}", ble={"outcome": "confirmed"}, decision="allow", reasons=()).to_json()


def replay(lines: list[dict]) -> dict:
    """The state a journal's records give, applied in order (the test's own reading of the
    format: whole documents put, documents deleted, tables dropped)."""
    state: dict = {}
    for record in lines:
        for op in record["ops"]:
            if op.get("drop"):
                state.pop(op["t"], None)
                continue
            table = state.setdefault(op["t"], {})
            table.update(op.get("put", {}))
            for doc_id in op.get("del", ()):
                table.pop(doc_id, None)
    return state


def entries_of(state: dict) -> list[dict]:
    return sorted(state.get("entries", {}).values(), key=lambda d: d["id"])


def open_log(folder: Path) -> EntryLog:
    log = EntryLog(folder, compact_every=1_000_000)
    log.start()
    return log


@pytest.fixture(scope="module")
def day_journal(tmp_path_factory):
    """A log of 10,000 entries of one day in one journal, written the ways the kiosk writes:
    imports of 1 to 8 entries a record, marks as synced (updates by document id) and guard
    overrides (tinydb's update by query, a whole-table difference). Built once; each trial
    copies it."""
    folder = tmp_path_factory.mktemp("built") / "log"
    rng = random.Random(SEED)
    log = open_log(folder)
    written = 0
    while written < ENTRIES:
        n = min(rng.choice([1, 1, 1, 2, 3, 5, 8]), ENTRIES - written)
        log.import_entries([entry(i) for i in range(written, written + n)])
        written += n
        if rng.random() < 0.08:
            log.mark_synced([entry(i)["id"] for i in rng.sample(range(written), min(written, 5))],
                            T0 + written)
        if rng.random() < 0.01:
            log.set_override(entry(rng.randrange(written))["id"],
                             {"action": "allow", "reason": "staff", "who": "guard"})
    log.stop()
    journal = journal_path(folder / DAY, 0)
    data = journal.read_bytes()
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
    records = [orjson.loads(line) for line in data.splitlines()]
    assert len(records) == len(starts) and len(records) > 2500
    return folder, data, starts, records


@pytest.mark.slow
def test_a_byte_flipped_anywhere_in_a_10k_entry_journal_loses_at_most_its_own_record(day_journal, tmp_path):
    folder, data, starts, records = day_journal
    full = replay(records)["entries"]
    assert len(full) == ENTRIES
    rng = random.Random(SEED)
    outcomes = {"nothing lost": 0, "its record lost": 0, "of which still JSON (the CRC's catch)": 0}
    began = time.perf_counter()
    for trial in range(200):
        offset, xor = rng.randrange(len(data)), rng.randrange(1, 256)
        where = f"seed {SEED}, trial {trial}: byte {offset} of {len(data)} xor {xor:#04x}"
        k = bisect.bisect_right(starts, offset) - 1          # the record the byte belongs to
        damaged = bytearray(data)
        damaged[offset] ^= xor
        trial_dir = tmp_path / str(trial)
        shutil.copytree(folder, trial_dir)
        journal = journal_path(trial_dir / DAY, 0)
        journal.write_bytes(damaged)

        log = open_log(trial_dir)                             # the kiosk's log starts
        damage = list(log.damage)
        log.stop()
        stored = DurableStorage(trial_dir / DAY, read_only=True)   # what the recovery left on disk
        got = stored.live("entries")
        newline = data[offset] == 0x0A             # joins record k to the next: both are kept
        if newline:
            assert got == full, f"{where}: a damaged newline lost a record"
            outcomes["nothing lost"] += 1
        else:
            assert got == replay(records[:k] + records[k + 1:])["entries"], \
                f"{where}: more than record {k} changed"
            outcomes["its record lost"] += 1
            end = starts[k + 1] - 1 if k + 1 < len(starts) else len(data) - 1
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(bytes(damaged[starts[k]:end]))
                outcomes["of which still JSON (the CRC's catch)"] += 1
        assert [(d.offset, d.records_lost) for d in damage] == [(starts[k], 0 if newline else 1)], where
        assert not stored.damage, f"{where}: recovered for good"
        assert Path(damage[0].copy).read_bytes()[:len(damaged)] == damaged, where
        assert journal.stat().st_size >= len(damaged), f"{where}: the damaged journal was truncated"
        shutil.rmtree(trial_dir)
    print(f"200 flips in {time.perf_counter() - began:.1f} s: {outcomes}")
    assert outcomes["of which still JSON (the CRC's catch)"] > 0, "the flips tried a CRC too"


def test_the_kiosk_starts_on_a_damaged_log_and_the_guard_sees_it(day_journal, make_kiosk, kiosk_settings,
                                                                  tmp_path, caplog):
    folder, data, starts, records = day_journal
    k = 1070
    damaged = bytearray(data)
    damaged[starts[k] + 40] ^= 0x01                  # one byte of record 1,070, as in the issue
    log_dir = Path(kiosk_settings()["data_dir"]) / "log"
    shutil.copytree(folder, log_dir)
    journal_path(log_dir / DAY, 0).write_bytes(damaged)

    kiosk = make_kiosk()
    h = kiosk.health()
    assert h["log"].startswith("recovered from damage: 1 records lost")
    [damage] = h["log_damage"]
    assert (damage["offset"], damage["records_lost"]) == (starts[k], 1)
    assert damage["file"] == str(journal_path(log_dir / DAY, 0))
    assert Path(damage["copy"]).read_bytes() == damaged
    assert f"damaged at byte {starts[k]}" in caplog.text
    assert [r.levelname for r in caplog.records if "damaged at byte" in r.getMessage()] == ["ERROR"]
    assert "Khách" not in caplog.text                # no visitor's data in the log
    strip = {item["key"]: item for item in health_view(kiosk, catalogue("vi"))}
    assert strip["log"] == {"key": "log", "label": "Nhật ký", "ok": False, "state": "degraded",
                            "text": "hỏng một phần, đã khôi phục (1 bản ghi mất)"}
    page = urllib.request.urlopen(f"{kiosk.web_url}/?lang=vi", timeout=10).read().decode()
    assert "hỏng một phần, đã khôi phục" in page
    assert kiosk.log.query(limit=2 * ENTRIES) == entries_of(replay(records[:k] + records[k + 1:]))


def write_lines(folder: Path, lines: list[bytes]) -> Path:
    folder.mkdir(parents=True)
    path = journal_path(folder, 0)
    path.write_bytes(b"".join(lines))
    return path


def old_record(n: int) -> bytes:
    """A record as journals held it before the CRC."""
    return orjson.dumps({"ops": [{"t": "_default", "put": {str(n): {"n": n}}}]}) + b"\n"


def ns(folder: Path, **kwargs) -> list[int]:
    db = DurableDB(folder, **kwargs)
    try:
        return sorted(d["n"] for d in db.all())
    finally:
        db.close()


def test_journals_written_before_the_crc_are_still_read(tmp_path):
    write_lines(tmp_path / "log", [old_record(n) for n in range(1, 6)])
    db = DurableDB(tmp_path / "log")
    assert sorted(d["n"] for d in db.all()) == [1, 2, 3, 4, 5] and not db.storage.damage
    db.insert({"n": 6})                              # new records carry a CRC beside the old ones
    db.close()
    assert journal_path(tmp_path / "log", 0).read_bytes().splitlines()[-1].startswith(b'{"crc":')
    assert ns(tmp_path / "log") == [1, 2, 3, 4, 5, 6]


def test_a_record_of_the_wrong_shape_is_damage_not_a_crash(tmp_path, caplog):
    wrong = b'{"ops": [{"t": "_default", "put": [[1, 2, 3]]}]}\n'       # valid JSON (the issue's)
    journal = write_lines(tmp_path / "log", [old_record(1), old_record(2), wrong, old_record(4)])
    assert ns(tmp_path / "log") == [1, 2, 4]
    offset = len(old_record(1) + old_record(2))
    assert f"damaged at byte {offset} ({len(wrong)} bytes): 1 records lost" in caplog.text
    assert journal.read_bytes() == old_record(1) + old_record(2) + wrong + old_record(4)   # kept whole
    for shape in [b'{"ops": {"t": "x"}}', b'{"ops": [{"t": 5, "put": {}}]}', b'[1, 2]',
                  b'{"ops": [{"t": "_default", "put": {"x": {"n": 9}}}]}',       # not a document id
                  b'{"ops": [{"t": "_default", "put": {"9": 9}}]}', b'{"ops": [], "more": 1}',
                  b'{"ops": [{"t": "_default", "del": "7"}]}', b'{"ops": [{"t": "a", "drop": 1}]}']:
        folder = tmp_path / str(abs(hash(shape)))
        write_lines(folder, [old_record(1), shape + b"\n", old_record(3)])
        assert ns(folder) == [1, 3], shape


def test_only_an_unfinished_last_line_is_a_torn_tail(tmp_path, caplog):
    folder = tmp_path / "log"
    db = DurableDB(folder)
    for n in range(1, 6):
        db.insert({"n": n})
    db.close()
    journal = journal_path(folder, 0)
    lines = journal.read_bytes().splitlines(keepends=True)
    bad_block = b"\x00" * (len(lines[2]) - 1) + b"\n"     # record 3 zeroed, its newline left
    damaged = b"".join(lines[:2]) + bad_block + b"".join(lines[3:])
    journal.write_bytes(damaged)
    assert ns(folder, read_only=True) == [1, 2, 4, 5]        # `kiosk export` beside the kiosk
    assert journal.read_bytes() == damaged, "a read-only open changes nothing"
    db = DurableDB(folder)
    assert sorted(d["n"] for d in db.all()) == [1, 2, 4, 5]
    [damage] = db.storage.damage
    assert (damage.offset, damage.length, damage.records_lost) == (len(lines[0] + lines[1]), len(lines[2]), 1)
    assert Path(damage.copy).read_bytes() == damaged and "torn" not in caplog.text
    assert journal.read_bytes() == damaged, "the damaged journal is kept as it is"
    db.insert({"n": 6})                               # into the next generation, begun from the recovery
    db.close()
    reopened = DurableDB(folder, read_only=True)
    assert sorted(d["n"] for d in reopened.all()) == [1, 2, 4, 5, 6] and not reopened.storage.damage


def test_a_damaged_newline_between_records_loses_neither(tmp_path):
    folder = tmp_path / "log"
    db = DurableDB(folder)
    for n in range(1, 5):
        db.insert({"n": n})
    db.close()
    journal = journal_path(folder, 0)
    data = bytearray(journal.read_bytes())
    newlines = [i for i, b in enumerate(data) if b == 0x0A]
    data[newlines[1]] = ord("#")                      # records 2 and 3 now share one line
    data[newlines[3]] = ord("#")                      # and the last record lost its newline
    journal.write_bytes(data)
    db = DurableDB(folder)
    assert sorted(d["n"] for d in db.all()) == [1, 2, 3, 4]
    assert [d.records_lost for d in db.storage.damage] == [0, 0]
    db.close()


def test_a_byte_flipped_anywhere_in_a_snapshot_falls_back_without_loss(tmp_path):
    base = tmp_path / "base"
    db = DurableDB(base, compact_every=50)
    table = db.table("entries")
    for n in range(130):
        table.insert({"n": n, "holder": f"Khách {n}"})
    table.update({"synced": True}, doc_ids=list(range(1, 60)))
    db.close()
    assert sorted(p.name for p in base.iterdir())[-2:] == ["snapshot.1.json", "snapshot.2.json"]
    want = ns_entries(base)
    snapshot = snapshot_path(base, 2).read_bytes()
    rng = random.Random(SEED)
    for trial in range(60):
        offset, xor = rng.randrange(len(snapshot)), rng.randrange(1, 256)
        where = f"seed {SEED}, trial {trial}: byte {offset} of {len(snapshot)} xor {xor:#04x}"
        folder = tmp_path / str(trial)
        shutil.copytree(base, folder)
        damaged = bytearray(snapshot)
        damaged[offset] ^= xor
        snapshot_path(folder, 2).write_bytes(damaged)
        db = DurableDB(folder, compact_every=50)
        assert docs_of(db) == want, where
        [damage] = db.storage.damage
        assert damage.records_lost == 0 and Path(damage.copy).read_bytes() == damaged, where
        db.close()
        assert ns_entries(folder) == want, f"{where}: after the recovery's own generation"


def docs_of(db: DurableDB) -> dict[int, dict]:
    return {d.doc_id: dict(d) for d in db.table("entries").all()}


def ns_entries(folder: Path) -> dict[int, dict]:
    db = DurableDB(folder, read_only=True)
    try:
        return docs_of(db)
    finally:
        db.close()

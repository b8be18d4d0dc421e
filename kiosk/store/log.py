"""The entry log: tinydb on DurableStorage, one database per UTC day, owned by one writer
thread.

Why a database per day (docs/storage.md): the purge drops whole days, "today's entries" and
an operator's date range read only their days, and only the days in use are in memory (at
most OPEN_DAYS); an append costs the same whatever the day holds (storage.JournalTable).
On open every day is read for the outbox (entries not yet at the central), except an older
day whose folder holds the ALL_SYNCED mark; the fingerprints for the reuse check are taken
from the last REUSE_DAYS days only.

Camera, web and sync threads never touch tinydb: they submit a function through a queue and
wait for its result, which comes only after the journal record is on disk. When the disk
cannot be written the entry stays in memory (bounded) and is written once it can be.
"""
from __future__ import annotations

import gc
import itertools
import logging
import queue
import re
import shutil
import threading
from collections import deque
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

import orjson
from tinydb import where

from ..exc import StoreUnavailable
from ..model import Entry, id_time, iso, parse_iso
from .storage import DurableDB, fsync_dir, gc_paused

log = logging.getLogger(__name__)

_STOP = object()
MAX_UNWRITTEN = 10_000
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DECLARATIONS = "declarations"
OPEN_DAYS = 3          # day databases kept open (today, yesterday, one an operator reads)
REUSE_DAYS = 2         # UTC days whose fingerprints are indexed: a reuse window up to 24 h
ALL_SYNCED = "all-synced"   # in a day's folder: every entry of the day reached the central


def _copies(docs) -> list[dict]:
    """Deep copies for other threads: what they do with them cannot touch the store's state.
    (A day's worth is tens of thousands of acyclic dicts: no cyclic collection meanwhile;
    measured 580 -> 190 ms for 33k entries.)"""
    with gc_paused():
        return orjson.loads(orjson.dumps([dict(d) for d in docs]))


def day_of(time_iso: str) -> str:
    return time_iso[:10]


def read_entries(path: str | Path) -> list[dict]:
    """Every entry of a log folder, read-only (for `kiosk export` beside a running kiosk)."""
    path = Path(path)
    docs = []
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and _DAY.match(p.name)):
        db = DurableDB(folder, read_only=True)
        docs += db.table("entries").all()
        db.close()
    return sorted((dict(d) for d in docs), key=lambda d: d["id"])


class EntryLog:
    def __init__(self, path, retention_days: int = 28, compact_every: int = 2000, unsynced_max_days: int = 90):
        self.path = Path(path)
        self.retention_days = retention_days
        self.unsynced_max_days = max(unsynced_max_days, retention_days)
        self.compact_every = compact_every
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._shards: dict[str, DurableDB] = {}
        self._known_days: set[str] = set()       # day folders: listed at start, then kept here
        self._declarations: DurableDB | None = None
        self._unwritten: deque[dict] = deque(maxlen=MAX_UNWRITTEN)
        self._last_shown: dict[str, float] = {}   # fingerprint -> time, for the reuse check
        self._outbox: dict[str, int | None] = {}  # ids not yet at the central -> doc id
        self._synced_days: set[str] = set()       # days whose folder holds ALL_SYNCED
        self.error: str | None = None
        self.damage: list = []    # storage.Damage recovered by any open of a day, for the health strip

    # -- the writer thread ---------------------------------------------------------------
    def start(self) -> None:
        ready: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="entry-log", daemon=True)
        self._thread.start()
        ready.result()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def _run(self, ready: Future) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._declarations = self._open(self.path / DECLARATIONS)
            self._known_days = {p.name for p in self.path.iterdir() if p.is_dir() and _DAY.match(p.name)}
            with gc_paused():
                self._index_days()
            # What was just loaded is long-lived and holds no cycles: out of the collector's
            # sight, or its first pass after the pause walks all of it during an append at
            # the door (measured: 263 ms at 1M entries).
            gc.freeze()
        except Exception as e:
            ready.set_exception(e)
            return
        ready.set_result(None)
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)
            self._close_idle()
            if self._queue.empty():
                self._compact_due()
        for db in list(self._shards.values()) + [self._declarations]:
            db.close()

    def _call(self, fn: Callable, timeout: float = 30.0):
        if self._thread is None:
            raise StoreUnavailable("entry log not started")
        future: Future = Future()
        self._queue.put((fn, future))
        return future.result(timeout)

    # -- on the writer thread -----------------------------------------------------------
    def _index_days(self) -> None:
        """Read the days once: the outbox from all but the older days marked ALL_SYNCED
        (an older day found with nothing to send gets the mark), fingerprints from the last
        REUSE_DAYS."""
        days = self._days()
        for day in days:
            recent = day in days[-REUSE_DAYS:]
            if not recent and (self.path / day / ALL_SYNCED).exists():
                self._synced_days.add(day)
                continue
            items = [(doc_id, doc) for doc_id, doc in self._entries(day).live_items()
                     if recent or doc.get("synced_at") is None]
            for doc_id, doc in sorted(items, key=lambda item: item[1]["id"]):
                self._index(doc, doc_id)
            if not recent and not items:
                try:
                    (self.path / day / ALL_SYNCED).touch()
                    self._synced_days.add(day)
                except OSError:
                    pass                       # a read-only disk: read again at the next open
            self._close_idle()

    def _unsyncing(self, day: str) -> None:
        """Call before an entry of `day` may become unsynced (written, or overridden): the
        mark goes first, durably, or an open after a power cut would skip an entry that
        never reached the central."""
        if day in self._synced_days:
            try:
                (self.path / day / ALL_SYNCED).unlink(missing_ok=True)
                fsync_dir(self.path / day)
            except OSError as e:
                raise StoreUnavailable(f"cannot write the entry log: {e.strerror or e}") from e
            self._synced_days.discard(day)

    def _open(self, folder: Path) -> DurableDB:
        db = DurableDB(folder, compact_every=self.compact_every, idle_compaction=True)
        self.damage += [d for d in db.storage.damage if d not in self.damage]
        return db

    def _compact_due(self) -> None:
        """Snapshots are written while no request waits (scans come seconds apart), so an
        append at the door never waits for one."""
        for db in [*self._shards.values(), self._declarations]:
            if db.storage.compact_if_due() and not self._queue.empty():
                break

    def _days(self) -> list[str]:
        return sorted(self._known_days)

    def _shard(self, day: str):
        db = self._shards.pop(day, None)
        if db is None:
            db = self._open(self.path / day)
            self._known_days.add(day)
        self._shards[day] = db                 # most recently used last
        return db

    def _close_idle(self) -> None:
        today = max(self._shards, default=None)
        for day in list(self._shards):
            if len(self._shards) <= OPEN_DAYS:
                break
            if day != today:
                db = self._shards.pop(day)
                db.storage.compact_if_due()
                db.close()

    def _entries(self, day: str):
        return self._shard(day).table("entries")

    def _docs(self, days: Iterable[str]) -> list[dict]:
        """The stored documents themselves: copy (_copies) before they leave this thread."""
        return [d for day in days for _, d in self._entries(day).live_items()]

    def _days_between(self, since: str | None, until: str | None) -> list[str]:
        return [d for d in self._days() if (since is None or d >= day_of(since)) and (until is None or d <= day_of(until))]

    def _index(self, doc: dict, doc_id: int | None = None) -> None:
        t = parse_iso(doc["time"])
        if t > self._last_shown.get(doc["fingerprint"], 0.0):
            self._last_shown[doc["fingerprint"]] = t
        if doc.get("synced_at") is None:
            self._outbox[doc["id"]] = getattr(doc, "doc_id", doc_id)

    def _flush_unwritten(self) -> None:
        while self._unwritten:
            doc = self._unwritten[0]
            self._unsyncing(day_of(doc["time"]))
            doc_id = self._entries(day_of(doc["time"])).insert(doc)
            if doc["id"] in self._outbox:
                self._outbox[doc["id"]] = doc_id
            self._unwritten.popleft()
        self.error = None

    def _append(self, doc: dict) -> bool:
        self._index(doc)
        self._unwritten.append(doc)
        try:
            self._flush_unwritten()
        except StoreUnavailable as e:
            self.error = str(e)
            log.error("%s; %d entries held in memory", e, len(self._unwritten))
            return False
        return True

    def _split_known(self, ids: list[str]) -> tuple[list[int], list[str]]:
        """(document ids the outbox knows for `ids`, the ids it does not know)."""
        known = [self._outbox.get(i) for i in ids]
        return [d for d in known if d is not None], [i for i, d in zip(ids, known) if d is None]

    def _lookup(self, day: str, ids: list[str]) -> list[dict]:
        """Entries of one day by id: by their document ids where the outbox knows them."""
        doc_ids, rest = self._split_known(ids)
        table = self._entries(day)
        found = table.get(doc_ids=doc_ids)
        if rest:
            found += table.search(where("id").one_of(rest))
        return found

    def _by_day(self, ids: Iterable[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for entry_id in ids:
            groups.setdefault(iso(id_time(entry_id))[:10], []).append(entry_id)
        return groups

    # -- the interface for other threads ------------------------------------------------
    def append(self, entry: Entry) -> bool:
        """Log `entry`; True once it is on disk, False when it is only held in memory."""
        return self._call(lambda: self._append(entry.to_json()))

    def import_entries(self, docs: list[dict]) -> None:
        """Write many entries at once, a record per day (migration, tests, benchmarks)."""
        def run():
            groups: dict[str, list[dict]] = {}
            for doc in docs:
                groups.setdefault(day_of(doc["time"]), []).append(doc)
            for day, group in groups.items():
                self._unsyncing(day)
                for doc, doc_id in zip(group, self._entries(day).insert_multiple(group)):
                    self._index(doc, doc_id)
                self._close_idle()
        self._call(run, timeout=600)

    def retry(self) -> bool:
        """Try again to write entries held in memory."""
        def run():
            try:
                self._flush_unwritten()
                return True
            except StoreUnavailable as e:
                self.error = str(e)
                return False
        return self._call(run)

    def shown_ago(self, fingerprint: str, at: float) -> float | None:
        """Seconds since a code with this fingerprint was last logged, or None."""
        last = self._call(lambda: self._last_shown.get(fingerprint))
        return None if last is None else at - last

    def recent(self, n: int = 20) -> list[dict]:
        def run():
            docs = list(self._unwritten)
            for day in reversed(self._days()):
                if len(docs) >= n:
                    break
                docs += self._docs([day])
            docs.sort(key=lambda d: d["id"], reverse=True)
            return _copies(docs[:n])
        return self._call(run)

    def query(self, since: str | None = None, until: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries with since <= time < until (ISO UTC text), oldest first."""
        return self.search(None, since, until, None, limit)

    def search(self, match: Callable[[dict], bool] | None = None, since: str | None = None,
               until: str | None = None, after_id: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries with since <= time < until, id > after_id and `match(entry)`, oldest first.
        `match` runs on the writer thread: keep it a pure, quick predicate."""
        def run():
            days = self._days_between(since, until)
            if after_id is not None:
                first = iso(id_time(after_id))[:10]
                days = [d for d in days if d >= first]
            found: list[dict] = []
            for day in days:                       # days in order: stop once the page is full
                docs = [d for d in self._docs([day])
                        if (since is None or d["time"] >= since) and (until is None or d["time"] < until)
                        and (after_id is None or d["id"] > after_id) and (match is None or match(d))]
                found += sorted(docs, key=lambda d: d["id"])
                self._close_idle()                 # a month's export holds one day at a time
                if len(found) >= limit:
                    break
            return _copies(found[:limit])
        return self._call(run)

    def get(self, entry_id: str) -> dict | None:
        def run():
            for day in self._by_day([entry_id]):
                if day in self._days():
                    found = self._entries(day).get(where("id") == entry_id)
                    if found:
                        return _copies([found])[0]
            return None
        return self._call(run)

    def set_override(self, entry_id: str, override: dict) -> dict | None:
        """Record a guard's override on an entry and queue it for the central again."""
        def run():
            day = next(iter(self._by_day([entry_id])))
            if day not in self._days():
                return None
            self._unsyncing(day)
            updated = self._entries(day).update({"override": override, "synced_at": None}, where("id") == entry_id)
            if not updated:
                return None
            self._outbox[entry_id] = updated[0]
            return _copies([self._entries(day).get(doc_id=updated[0])])[0]
        return self._call(run)

    def unsynced(self, limit: int = 100) -> list[dict]:
        def run():
            docs = []
            for day, ids in self._by_day(itertools.islice(self._outbox, limit)).items():
                docs += self._lookup(day, ids)
            return sorted(_copies(docs), key=lambda d: d["id"])
        return self._call(run)

    def backlog(self) -> int:
        return self._call(lambda: len(self._outbox))

    def mark_synced(self, ids: list[str], at: float) -> None:
        def run():
            for day, group in self._by_day(ids).items():
                doc_ids, rest = self._split_known(group)
                if doc_ids:
                    self._entries(day).update({"synced_at": iso(at)}, doc_ids=doc_ids)
                if rest:
                    self._entries(day).update({"synced_at": iso(at)}, where("id").one_of(rest))
            for entry_id in ids:
                self._outbox.pop(entry_id, None)
        self._call(run)

    def purge(self, now: float) -> int:
        """Remove synced entries older than the retention period, and any entry older than
        the hard limit (`unsynced_max_days`) even if it never reached the central; return how
        many. A day with nothing left to keep goes as a whole."""
        cutoff = iso(now - self.retention_days * 86400)
        hard = iso(now - self.unsynced_max_days * 86400)

        def run():
            removed = kept = 0
            for day in [d for d in self._days() if d <= cutoff[:10]]:
                table = self._entries(day)
                lost = table.search((where("time") < hard) & (where("synced_at") == None))  # noqa: E711
                if lost:
                    log.warning("purge removes %d entries of %s that never reached the central "
                                "(older than %d days)", len(lost), day, self.unsynced_max_days)
                    for d in lost:
                        self._outbox.pop(d["id"], None)
                old = table.search((where("time") < cutoff) & ((where("synced_at") != None)  # noqa: E711
                                                               | (where("time") < hard)))
                if day < cutoff[:10] and len(old) == len(table):
                    removed += len(old)
                    self._shards.pop(day).close()
                    shutil.rmtree(self.path / day)
                    self._known_days.discard(day)
                    self._synced_days.discard(day)
                    continue
                table.remove(doc_ids=[d.doc_id for d in old])
                removed += len(old)
                kept += table.count(where("time") < cutoff)
            self._declarations.table("declarations").remove(where("time") < cutoff)
            if kept:
                log.warning("purge kept %d entries older than %d days: not yet at the central",
                            kept, self.retention_days)
            return removed
        return self._call(run)

    # -- health declarations filled in on the kiosk's form ---------------------------------
    def add_declaration(self, record: dict) -> None:
        """Keep a declaration (id, time, name, id_hash, flags, contact details) durably."""
        self._call(lambda: self._declarations.table("declarations").insert(record))

    def find_declaration(self, id_hash: str, since: str) -> dict | None:
        """The latest declaration for this keyed ID hash made at or after `since` (ISO UTC)."""
        def run():
            found = self._declarations.table("declarations").search(
                (where("id_hash") == id_hash) & (where("time") >= since))
            return _copies([max(found, key=lambda d: d["time"])])[0] if found else None
        return self._call(run)

    def today_counts(self, now: float, tz) -> dict:
        """Entries and decisions since local midnight in time zone `tz`."""
        local = datetime.fromtimestamp(now, tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        since = iso(midnight.astimezone(timezone.utc).timestamp())
        until = iso((midnight + timedelta(days=1)).astimezone(timezone.utc).timestamp())

        def run():
            counts = {"entries": 0, "allow": 0, "deny": 0, "review": 0}
            for d in self._docs(self._days_between(since, until)):
                if since <= d["time"] < until:
                    counts["entries"] += 1
                    counts[d["decision"]] += 1
            return counts
        return self._call(run)

"""The entry log: tinydb on DurableStorage, owned by one writer thread.

Camera, web and sync threads never touch tinydb: they submit a function through a queue and
wait for its result, which comes only after the journal record is on disk. When the disk
cannot be written the entry stays in memory (bounded) and is written once it can be.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from typing import Callable

import orjson
from tinydb import TinyDB, where

from ..exc import StoreUnavailable
from ..model import Entry, iso, parse_iso
from .storage import DurableStorage

log = logging.getLogger(__name__)

_STOP = object()
MAX_UNWRITTEN = 10_000


def _copies(docs) -> list[dict]:
    """Deep copies for other threads: what they do with them cannot touch the store's state."""
    return orjson.loads(orjson.dumps([dict(d) for d in docs]))


class EntryLog:
    def __init__(self, path, retention_days: int = 28, compact_every: int = 2000):
        self.path = path
        self.retention_days = retention_days
        self.compact_every = compact_every
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._db: TinyDB | None = None
        self._unwritten: deque[dict] = deque(maxlen=MAX_UNWRITTEN)
        self._last_shown: dict[str, float] = {}   # fingerprint -> time, for the reuse check
        self._outbox: dict[str, None] = {}        # ids not yet at the central, oldest first
        self.error: str | None = None

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
            self._db = TinyDB(storage=DurableStorage, path=self.path, compact_every=self.compact_every)
            for doc in self._entries().all():
                self._index(doc)
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
        self._db.close()

    def _call(self, fn: Callable, timeout: float = 30.0):
        if self._thread is None:
            raise StoreUnavailable("entry log not started")
        future: Future = Future()
        self._queue.put((fn, future))
        return future.result(timeout)

    # -- on the writer thread -----------------------------------------------------------
    def _entries(self):
        return self._db.table("entries")

    def _index(self, doc: dict) -> None:
        t = parse_iso(doc["time"])
        if t > self._last_shown.get(doc["fingerprint"], 0.0):
            self._last_shown[doc["fingerprint"]] = t
        if doc.get("synced_at") is None:
            self._outbox[doc["id"]] = None

    def _flush_unwritten(self) -> None:
        while self._unwritten:
            self._entries().insert(self._unwritten[0])
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

    # -- the interface for other threads ------------------------------------------------
    def append(self, entry: Entry) -> bool:
        """Log `entry`; True once it is on disk, False when it is only held in memory."""
        return self._call(lambda: self._append(entry.to_json()))

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
            docs = self._entries().all() + list(self._unwritten)
            docs.sort(key=lambda d: d["id"], reverse=True)
            return _copies(docs[:n])
        return self._call(run)

    def query(self, since: str | None = None, until: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries with since <= time < until (ISO UTC text), oldest first."""
        def run():
            q = where("time").exists()
            if since:
                q &= where("time") >= since
            if until:
                q &= where("time") < until
            docs = sorted(self._entries().search(q), key=lambda d: d["id"])
            return _copies(docs[:limit])
        return self._call(run)

    def search(self, match: Callable[[dict], bool] | None = None, since: str | None = None,
               until: str | None = None, after_id: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries with since <= time < until, id > after_id and `match(entry)`, oldest first.
        `match` runs on the writer thread: keep it a pure, quick predicate."""
        def run():
            def wanted(d):
                return ((since is None or d["time"] >= since) and (until is None or d["time"] < until)
                        and (after_id is None or d["id"] > after_id) and (match is None or match(d)))
            docs = sorted((d for d in self._entries().all() if wanted(d)), key=lambda d: d["id"])
            return _copies(docs[:limit])
        return self._call(run)

    def get(self, entry_id: str) -> dict | None:
        def run():
            found = self._entries().get(where("id") == entry_id)
            return _copies([found])[0] if found else None
        return self._call(run)

    def set_override(self, entry_id: str, override: dict) -> dict | None:
        """Record a guard's override on an entry and queue it for the central again."""
        def run():
            if not self._entries().update({"override": override, "synced_at": None}, where("id") == entry_id):
                return None
            self._outbox[entry_id] = None
            return _copies([self._entries().get(where("id") == entry_id)])[0]
        return self._call(run)

    def unsynced(self, limit: int = 100) -> list[dict]:
        def run():
            ids = set(list(self._outbox)[:limit])
            docs = self._entries().search(where("id").one_of(list(ids))) if ids else []
            return sorted(_copies(docs), key=lambda d: d["id"])
        return self._call(run)

    def backlog(self) -> int:
        return self._call(lambda: len(self._outbox))

    def mark_synced(self, ids: list[str], at: float) -> None:
        def run():
            self._entries().update({"synced_at": iso(at)}, where("id").one_of(ids))
            for entry_id in ids:
                self._outbox.pop(entry_id, None)
        self._call(run)

    def purge(self, now: float) -> int:
        """Remove synced entries older than the retention period; return how many."""
        cutoff = iso(now - self.retention_days * 86400)

        def run():
            old = self._entries().search((where("time") < cutoff) & (where("synced_at") != None))  # noqa: E711
            self._entries().remove(doc_ids=[d.doc_id for d in old])
            self._db.table("declarations").remove(where("time") < cutoff)
            kept = self._entries().count(where("time") < cutoff)
            if kept:
                log.warning("purge kept %d entries older than %d days: not yet at the central",
                            kept, self.retention_days)
            return len(old)
        return self._call(run)

    # -- health declarations filled in on the kiosk's form ---------------------------------
    def add_declaration(self, record: dict) -> None:
        """Keep a declaration (id, time, name, id_hash, flags, contact details) durably."""
        self._call(lambda: self._db.table("declarations").insert(record))

    def find_declaration(self, id_hash: str, since: str) -> dict | None:
        """The latest declaration for this keyed ID hash made at or after `since` (ISO UTC)."""
        def run():
            found = self._db.table("declarations").search(
                (where("id_hash") == id_hash) & (where("time") >= since))
            return dict(max(found, key=lambda d: d["time"])) if found else None
        return self._call(run)

    def today_counts(self, now: float, tz) -> dict:
        """Entries and decisions since local midnight in time zone `tz`."""
        local = datetime.fromtimestamp(now, tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        since = iso(midnight.astimezone(timezone.utc).timestamp())
        until = iso((midnight + timedelta(days=1)).astimezone(timezone.utc).timestamp())

        def run():
            docs = self._entries().search((where("time") >= since) & (where("time") < until))
            counts = {"entries": len(docs), "allow": 0, "deny": 0, "review": 0}
            for d in docs:
                counts[d["decision"]] += 1
            return counts
        return self._call(run)

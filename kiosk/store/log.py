"""The entry log: tinydb on DurableStorage, one database per UTC day (days.DayShards),
owned by one writer thread (writer.Writer).

On open every day is read for the outbox (entries not yet at the central), except an older
day whose folder holds the ALL_SYNCED mark; the fingerprints for the reuse check are taken
from the days the reuse window can reach.

Camera, web and sync threads never touch tinydb: a change runs on the writer (`on_writer`),
and an append returns only after the journal record is on disk. Reads of many entries
(an export, a page, a report) run on the caller's thread (reader.py), so they never hold
up an append at the door. When the disk cannot be written an entry is held in memory in a
compact form (hold.py, bounded), is sent to the central from there, and is written once
the disk takes it; one the hold cannot take is refused loudly (`HoldFull`, `lost`).

Over 300 lines because every public method carries its parameters' documentation; the
work itself is in days.py, reader.py, hold.py, declarations.py, writer.py and storage.py.
"""
from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable
from pathlib import Path

from tinydb import where

from ..exc import StoreUnavailable
from ..model import Entry, iso, parse_iso
from .days import ALL_SYNCED, OPEN_DAYS, DayShards, Outbox, by_day, copies, day_of, day_of_id, read_entries
from .declarations import FOLDER as DECLARATIONS
from .declarations import Declarations
from .hold import HOLD_BYTES, Hold
from .reader import ReadPath
from .storage import DurableDB, gc_paused
from .writer import Writer, on_writer

__all__ = ["EntryLog", "HoldFull", "read_entries", "reuse_days", "ALL_SYNCED", "OPEN_DAYS", "HOLD_BYTES"]

log = logging.getLogger(__name__)

DAY_SECONDS = 86400
FORGET_FLOOR = 1024      # codes in the reuse index before its first sweep (about 150 kB)


class HoldFull(StoreUnavailable):
    """The disk takes no entry and the memory hold is full: this entry is not logged."""


def reuse_days(reuse_window: float) -> int:
    """How many UTC days, today included, a reuse window reaches back into.

    :param float reuse_window: seconds (policy.reuse_window).
    """
    return 1 + math.ceil(reuse_window / DAY_SECONDS)


class EntryLog(ReadPath):
    """The kiosk's entries, its outbox for the central and the form's declarations.

    :param path: the log folder (a sub-folder per UTC day, and `declarations`).
    :param int retention_days: days after which a synced entry is purged.
    :param int compact_every: journal records before a day's snapshot may be written.
    :param int unsynced_max_days: days after which even an unsynced entry is purged (at
        least `retention_days`).
    :param float reuse_window: seconds back the reuse check looks (policy.reuse_window):
        the days whose fingerprints are indexed follow from it.
    :param int hold_bytes: the most entry JSON held in memory while the disk refuses writes.
    """

    def __init__(self, path, retention_days: int = 28, compact_every: int = 2000,
                 unsynced_max_days: int = 90, reuse_window: float = DAY_SECONDS,
                 hold_bytes: int = HOLD_BYTES):
        self.path = Path(path)
        self.retention_days = retention_days
        self.unsynced_max_days = max(unsynced_max_days, retention_days)
        self.compact_every = compact_every
        self.reuse_window = reuse_window
        self.reuse_days = reuse_days(reuse_window)
        self.days = DayShards(self.path, self._open)
        self.outbox = Outbox()
        self._declarations: Declarations | None = None
        self._writer = Writer("entry-log", after_each=self.days.close_idle, when_idle=self._compact_due)
        self.hold = Hold(hold_bytes)
        self._last_shown: dict[str, float] = {}   # fingerprint -> time, for the reuse check
        self._forget_at = FORGET_FLOOR            # its size that starts the next sweep
        self.error: str | None = None
        self.damage: list = []    # storage.Damage recovered by any open of a day, for the health strip
        self.lost = 0                             # entries refused: disk and hold both full

    # -- the writer thread ---------------------------------------------------------------
    def start(self) -> None:
        """Open the log (read the days) on its writer thread; return once it is ready."""
        self._writer.start(self._load, self._close)

    @property
    def alive(self) -> bool:
        """True while the writer thread runs."""
        return self._writer.alive

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the queued requests, close the days and stop the writer.

        :param float timeout: seconds to wait for the writer thread.
        """
        self._writer.stop(timeout)

    def _call(self, fn: Callable, timeout: float = 30.0):
        return self._writer.call(fn, timeout)

    def _open(self, folder: Path) -> DurableDB:
        db = DurableDB(folder, compact_every=self.compact_every, idle_compaction=True)
        self.damage += [d for d in db.storage.damage if d not in self.damage]
        return db

    def _load(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self._declarations = Declarations(self._open(self.path / DECLARATIONS))
        self.days.list_days()
        with gc_paused():
            self._index_days()
        # What was just loaded is long-lived and holds no cycles: out of the collector's
        # sight, or its first pass after the pause walks all of it during an append at
        # the door (docs/storage.md).
        gc.freeze()

    def _close(self) -> None:
        self.days.close()
        if self._declarations is not None:
            self._declarations.db.close()

    def _opened_declarations(self) -> Declarations:
        """The declarations of the kiosk's form, opened on the writer thread at start."""
        assert self._declarations is not None, "the entry log is not open"
        return self._declarations

    def _compact_due(self) -> None:
        """Snapshots are written while no request waits (scans come seconds apart), so an
        append at the door never waits for one."""
        if self._opened_declarations().db.storage.compact_if_due() and self._writer.busy:
            return
        self.days.compact_due(lambda: self._writer.busy)

    # -- on the writer thread -----------------------------------------------------------
    def _index_days(self) -> None:
        """Read the days once: the outbox from all but the older days marked ALL_SYNCED
        (an older day found with nothing to send gets the mark), fingerprints from the days
        the reuse window reaches."""
        days = self.days.days()
        for day in days:
            recent = day in days[-self.reuse_days:]
            if not recent and self.days.is_marked(day):
                self.days.synced.add(day)
                continue
            items = [(doc_id, doc) for doc_id, doc in self.days.entries(day).live_items()
                     if recent or doc.get("synced_at") is None]
            for doc_id, doc in sorted(items, key=lambda item: item[1]["id"]):
                self._index(doc, doc_id)
            if not recent and not items:
                self.days.mark_synced(day)
            self.days.close_idle()

    def _index(self, doc: dict, doc_id: int | None = None) -> None:
        self._remember(doc)
        if doc.get("synced_at") is None:
            self.outbox.add(doc["id"], getattr(doc, "doc_id", doc_id))

    def _remember(self, doc: dict) -> None:
        """Note the code's fingerprint and time, for the reuse check."""
        t = parse_iso(doc["time"])
        if t > self._last_shown.get(doc["fingerprint"], 0.0):
            self._last_shown[doc["fingerprint"]] = t
        if len(self._last_shown) >= self._forget_at:
            self._forget_shown_before(t - self.reuse_window)

    def _forget_shown_before(self, cutoff: float) -> None:
        # A code last shown before the window can no longer be flagged as shown again, and
        # every visitor's code is new on a gate that runs for weeks: without this the index
        # holds every code since the start. Swept when it has doubled, so the cost per entry
        # stays constant; the other threads read the dict, so it is replaced, not mutated.
        self._last_shown = {f: t for f, t in self._last_shown.items() if t >= cutoff}
        self._forget_at = max(FORGET_FLOOR, 2 * len(self._last_shown))

    def shown_codes(self) -> int:
        """How many codes the reuse index holds now."""
        return len(self._last_shown)

    def _write(self, docs: list[dict]) -> None:
        """Write entries, one journal record per day; raise StoreUnavailable if the disk
        refuses (a day's record is then not written at all)."""
        groups: dict[str, list[dict]] = {}
        for doc in docs:
            groups.setdefault(day_of(doc["time"]), []).append(doc)
        for day, group in groups.items():
            self.days.unsyncing(day)
            for doc, doc_id in zip(group, self.days.entries(day).insert_multiple(group), strict=True):
                if doc.get("synced_at") is None:
                    self.outbox.add(doc["id"], doc_id)
            self.hold.remove(d["id"] for d in group if d["id"] in self.hold)

    def _flush_held(self) -> None:
        if len(self.hold):
            self._write(self.hold.docs())
            log.warning("entry log writable again: the entries held in memory are written")
        self.error = None

    def _append(self, doc: dict) -> bool:
        # The new entry is tried first, alone: on a disk that stays full, each append then
        # costs one failed record, not an attempt at everything held. (Order on disk does
        # not matter: ids sort by time.)
        try:
            self._write([doc])
        except StoreUnavailable as e:
            self.error = str(e)
            if not self.hold.add(doc):
                self.lost += 1
                log.error("%s, and the memory hold is full (%d entries, %d bytes): entry %s NOT "
                          "LOGGED (%d so far)", e, len(self.hold), self.hold.size, doc["id"], self.lost)
                raise HoldFull(f"{e}; memory hold full: entry not logged") from e
            self._remember(doc)
            self.outbox.add(doc["id"], None)     # sent from the hold; its document id once written
            log.error("%s; %d entries held in memory", e, len(self.hold))
            return False
        self._remember(doc)
        try:
            self._flush_held()
        except StoreUnavailable as e:
            self.error = str(e)
        return True

    def _lookup(self, day: str, ids: list[str]) -> list[dict]:
        """Entries of one day by id: by their document ids where the outbox knows them,
        from the memory hold for those not yet written."""
        held = [self.hold.get(i) for i in ids if i in self.hold]
        doc_ids, rest = self.outbox.split_known([i for i in ids if i not in self.hold])
        table = self.days.entries(day)
        found = table.get(doc_ids=doc_ids)
        if rest:
            found += table.search(where("id").one_of(rest))
        return copies(found) + held

    # -- for the read path (reader.ReadPath): documents to read, never to change ---------
    @on_writer
    def _plan(self, since: str | None, until: str | None, after_id: str | None) -> list:
        """(day, the stored documents if the day is open, else None) for the days asked."""
        days = self.days.between(since, until)
        if after_id is not None:
            days = [d for d in days if d >= day_of_id(after_id)]
        return [(day, list(self.days.open[day].storage.live("entries").values())
                 if day in self.days.open else None) for day in days]

    @on_writer
    def _day_docs(self, day: str) -> list[dict]:
        return self.days.docs(day)

    @on_writer
    def _newest(self, n: int) -> list[dict]:
        docs = self.hold.docs()
        for day in reversed(self.days.days()):
            if len(docs) >= n:
                break
            docs += self.days.docs(day)
        return docs

    @on_writer
    def _views(self, since: str, until: str) -> list[dict]:
        """The stored documents of the days between: read them, change nothing."""
        return [d for day in self.days.between(since, until) for d in self.days.docs(day)]

    # -- the interface for other threads ------------------------------------------------
    def append(self, entry: Entry, timeout: float = 30.0) -> bool:
        """Log `entry`.

        :param float timeout: seconds to wait for the writer; past them the append is
            called off if it has not begun (StoreUnavailable), else awaited as long again.
        :returns: True once it is on disk, False when it is held in memory.
        :raises HoldFull: the disk and the memory hold are both full: not logged.
        :raises StoreUnavailable: the writer did not answer in time: not logged.
        """
        return self._writer.call(lambda: self._append(entry.to_json()), timeout)

    @on_writer
    def newest_id(self) -> str | None:
        """The greatest entry id in the log (held in memory or in the newest day), or None.

        Ids sort by their time and each entry lives in its id's UTC day (clock.EntryStamps
        keeps them so), so the newest day holds the greatest id.
        """
        ids = [d["id"] for d in self.hold.docs()]
        for day in reversed(self.days.days()):      # the newest day with an entry
            ids += [d["id"] for d in self.days.docs(day)]
            if ids:
                break
        return max(ids, default=None)

    @on_writer(timeout=600)
    def import_entries(self, docs: list[dict]) -> None:
        """Write many entries at once, a record per day (migration, tests, benchmarks).

        :param docs: entries in their JSON form (Entry.to_json()).
        """
        groups: dict[str, list[dict]] = {}
        for doc in docs:
            groups.setdefault(day_of(doc["time"]), []).append(doc)
        for day, group in groups.items():
            self.days.unsyncing(day)
            for doc, doc_id in zip(group, self.days.entries(day).insert_multiple(group), strict=True):
                self._index(doc, doc_id)
            self.days.close_idle()

    @on_writer
    def retry(self) -> bool:
        """Try again to write the entries held in memory.

        :returns: True if none is left in memory.
        """
        try:
            self._flush_held()
            return True
        except StoreUnavailable as e:
            self.error = str(e)
            return False

    def shown_ago(self, fingerprint: str, at: float) -> float | None:
        """Seconds since a code with this fingerprint was last logged, or None.

        :param str fingerprint: the payload's keyed hash.
        :param float at: the scan's time (UNIX seconds).
        """
        # Read here, not on the writer: the door asks this before every append, and a
        # writer held up (a slow card) must not hold up the decision. One dict lookup is
        # atomic in CPython, and the writer only sets this dict's values or replaces it whole.
        last = self._last_shown.get(fingerprint)
        if last is None or last > at:
            # Last seen "after" now: the clock stepped back since, so how long ago is not
            # known. The clock's own rule (behind the newest entry: review) covers that time.
            return None
        return at - last

    @on_writer
    def get(self, entry_id: str) -> dict | None:
        """The entry with this id, or None."""
        day = day_of_id(entry_id)
        if day in self.days.days():
            found = self.days.entries(day).get(where("id") == entry_id)
            if found:
                return copies([found])[0]
        return None

    @on_writer
    def set_override(self, entry_id: str, override: dict) -> dict | None:
        """Record a guard's override on an entry and queue it for the central again.

        :param dict override: who, why, what and when (checkpoint.Kiosk.override).
        :returns: the entry as now stored, or None if there is no such entry.
        """
        day = day_of_id(entry_id)
        if day not in self.days.days():
            return None
        self.days.unsyncing(day)
        updated = self.days.entries(day).update({"override": override, "synced_at": None}, where("id") == entry_id)
        if not updated:
            return None
        self.outbox.add(entry_id, updated[0])
        return copies([self.days.entries(day).get(doc_id=updated[0])])[0]

    @on_writer
    def unsynced(self, limit: int = 100) -> list[dict]:
        """Entries not yet at the central, oldest logged first.

        :param int limit: at most this many (a sync batch).
        """
        docs = []
        for day, ids in by_day(self.outbox.head(limit)).items():
            docs += self._lookup(day, ids)
        return sorted(docs, key=lambda d: d["id"])

    def backlog(self) -> int:
        """How many entries are not yet at the central."""
        # Read here, not on the writer, so that health answers while the writer is stuck;
        # a dict's length is one atomic read in CPython.
        return len(self.outbox)

    @on_writer
    def mark_synced(self, ids: list[str], at: float, refused: str | None = None) -> None:
        """Record that the central holds these entries, or that it refused them for good.

        :param ids: entry ids the central stored or already had (or refused).
        :param float at: when (UNIX seconds).
        :param refused: the central's reason when it refused the entries: they leave the
            outbox (so the entries behind them are not held up) and keep the reason as
            `sync_refused`.
        """
        fields = {"synced_at": iso(at)} if refused is None else {"synced_at": iso(at), "sync_refused": refused}
        for entry_id in [i for i in ids if i in self.hold]:
            self.hold.update(entry_id, fields)
        for day, group in by_day([i for i in ids if i not in self.hold]).items():
            doc_ids, rest = self.outbox.split_known(group)
            if doc_ids:
                self.days.entries(day).update(fields, doc_ids=doc_ids)
            if rest:
                self.days.entries(day).update(fields, where("id").one_of(rest))
        for entry_id in ids:
            self.outbox.discard(entry_id)

    @on_writer
    def purge(self, now: float) -> int:
        """Remove synced entries older than the retention period, and any entry older than
        the hard limit (`unsynced_max_days`) even if it never reached the central. A day
        with nothing left to keep goes as a whole.

        :param float now: UNIX seconds.
        :returns: how many entries were removed.
        """
        removed, lost = self.days.purge(now, self.retention_days, self.unsynced_max_days)
        for entry_id in lost:
            self.outbox.discard(entry_id)
        self._opened_declarations().purge(iso(now - self.retention_days * DAY_SECONDS))
        return removed

    # -- health declarations filled in on the kiosk's form ---------------------------------
    @on_writer
    def add_declaration(self, record: dict) -> None:
        """Keep a declaration (id, time, name, id_hash, flags, contact details) durably."""
        self._opened_declarations().add(record)

    @on_writer
    def find_declaration(self, id_hash: str, since: str) -> dict | None:
        """The latest declaration for this keyed ID hash made at or after `since` (ISO UTC)."""
        return self._opened_declarations().find(id_hash, since)

    @on_writer
    def declarations_since(self, since: str) -> list[dict]:
        """The declarations made at or after `since` (ISO UTC), oldest first (contact tracing:
        the phone numbers)."""
        return self._opened_declarations().since(since)

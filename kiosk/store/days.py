"""The entry log's day databases (one tinydb per UTC day) and its outbox.

Why a database per day (docs/storage.md): the purge drops whole days, "today's entries" and
an operator's date range read only their days, and only the days in use are in memory (at
most OPEN_DAYS). An older day whose every entry reached the central holds the ALL_SYNCED
mark, so the next open need not read it.
"""
from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from tinydb import where

from ..exc import StoreUnavailable
from ..files import fsync_dir
from ..model import id_time, iso
from .storage import DurableDB, gc_paused

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
OPEN_DAYS = 3          # day databases kept open (today, yesterday, one an operator reads)
ALL_SYNCED = "all-synced"   # in a day's folder: every entry of the day reached the central

log = logging.getLogger(__name__)


def day_of(time_iso: str) -> str:
    """The UTC day (YYYY-MM-DD) of an ISO UTC time."""
    return time_iso[:10]


def day_of_id(entry_id: str) -> str:
    """The UTC day of an entry, from its sortable id."""
    return iso(id_time(entry_id))[:10]


def by_day(ids: Iterable[str]) -> dict[str, list[str]]:
    """Entry ids grouped by their UTC day, in the order given."""
    groups: dict[str, list[str]] = {}
    for entry_id in ids:
        groups.setdefault(day_of_id(entry_id), []).append(entry_id)
    return groups


def day_folders(path: Path) -> list[Path]:
    """The day folders of a log folder, oldest first."""
    return sorted(p for p in path.iterdir() if p.is_dir() and DAY.match(p.name))


def copies(docs) -> list[dict]:
    """Deep copies for other threads: what they do with them cannot touch the store's state.
    A day's worth is tens of thousands of acyclic dicts: no cyclic collection meanwhile."""
    with gc_paused():
        return orjson.loads(orjson.dumps([dict(d) for d in docs]))


def read_entries(path: str | Path) -> list[dict]:
    """Every entry of a log folder, read-only (for `kiosk export` beside a running kiosk)."""
    docs = []
    for folder in day_folders(Path(path)):
        db = DurableDB(folder, read_only=True)
        docs += db.table("entries").all()
        db.close()
    return sorted((dict(d) for d in docs), key=lambda d: d["id"])


def newest_id(path: str | Path) -> str | None:
    """The greatest entry id in a log folder, read-only (for `kiosk doctor` beside a running
    kiosk): the newest day folder with an entry holds it (clock.EntryStamps)."""
    path = Path(path)
    if not path.is_dir():
        return None
    for folder in reversed(day_folders(path)):
        db = DurableDB(folder, read_only=True)
        try:
            ids = [d["id"] for d in db.table("entries").all()]
        finally:
            db.close()
        if ids:
            return max(ids)
    return None


def misplaced(path: str | Path) -> list[str]:
    """Ids of the entries of a log folder that are not in the folder of both their time's
    and their id's UTC day, read-only (for the soak, and checks beside a running kiosk)."""
    out = []
    for folder in day_folders(Path(path)):
        db = DurableDB(folder, read_only=True)
        try:
            out += [d["id"] for d in db.table("entries").all()
                    if day_of(d["time"]) != folder.name or day_of_id(d["id"]) != folder.name]
        finally:
            db.close()
    return out


def remove_day(folder: Path) -> None:
    """Remove a day's folder (the purge).

    A tracer's child process may be writing the day's tracing projection into it at that
    moment (tracing.py), and a file made while shutil.rmtree walks the folder leaves it not
    empty: the removal is tried once more. If the folder still stays, StoreUnavailable
    (the housekeeping logs it and purges again later)."""
    for attempt in (1, 2):
        try:
            shutil.rmtree(folder)
            return
        except OSError as e:
            if not folder.exists():
                return
            if attempt == 2:
                raise StoreUnavailable(f"cannot remove {folder.name} from the entry log: {e.strerror or e}") from e


class DayShards:
    """The day databases of one log folder; only the writer thread may use it.

    :param Path path: the log folder (a sub-folder per day).
    :param opener: opens (or creates) the database in a folder.
    """

    def __init__(self, path: Path, opener: Callable[[Path], DurableDB]):
        self.path = path
        self._opener = opener
        self.open: dict[str, DurableDB] = {}     # day -> database, most recently used last
        self._known: set[str] = set()            # day folders: listed at start, then kept here
        self.synced: set[str] = set()            # days whose folder holds ALL_SYNCED

    def list_days(self) -> None:
        """Read which day folders exist (once, at start)."""
        self._known = {p.name for p in day_folders(self.path)}

    def days(self) -> list[str]:
        """The days with a folder, oldest first."""
        return sorted(self._known)

    def between(self, since: str | None, until: str | None) -> list[str]:
        """The days that may hold times since <= t <= until (ISO UTC text; None: no bound)."""
        return [d for d in self.days() if (since is None or d >= day_of(since))
                and (until is None or d <= day_of(until))]

    def shard(self, day: str) -> DurableDB:
        """The database of `day`, opened (or created) if need be."""
        db = self.open.pop(day, None)
        if db is None:
            try:
                db = self._opener(self.path / day)
            except StoreUnavailable:
                raise
            except OSError as e:               # a new day's folder on a full or read-only disk
                raise StoreUnavailable(f"cannot write the entry log: {e.strerror or e}") from e
            self._known.add(day)
        self.open[day] = db                      # most recently used last
        return db

    def entries(self, day: str):
        """The entries table of `day`."""
        return self.shard(day).table("entries")

    def docs(self, day: str) -> list[dict]:
        """The stored documents of `day` themselves: copy them before they leave the thread."""
        return list(self.shard(day).storage.live("entries").values())

    def close_idle(self) -> None:
        """Close the least recently used days beyond OPEN_DAYS, never the newest."""
        today = max(self.open, default=None)
        for day in list(self.open):
            if len(self.open) <= OPEN_DAYS:
                break
            if day != today:
                db = self.open.pop(day)
                db.storage.compact_if_due()
                db.close()

    def compact_due(self, busy: Callable[[], bool]) -> None:
        """Write the snapshots that fall due, stopping once a request waits (`busy()`)."""
        for db in list(self.open.values()):
            if db.storage.compact_if_due() and busy():
                break

    def is_marked(self, day: str) -> bool:
        """True if `day`'s folder holds the ALL_SYNCED mark."""
        return (self.path / day / ALL_SYNCED).exists()

    def mark_synced(self, day: str) -> None:
        """Mark `day` as having nothing left to send (skipped if the disk refuses)."""
        try:
            (self.path / day / ALL_SYNCED).touch()
            self.synced.add(day)
        except OSError:
            pass                       # a read-only disk: read again at the next open

    def unsyncing(self, day: str) -> None:
        """Call before an entry of `day` may become unsynced (written, or overridden): the
        mark goes first, durably, or an open after a power cut would skip an entry that
        never reached the central."""
        if day in self.synced:
            try:
                (self.path / day / ALL_SYNCED).unlink(missing_ok=True)
                fsync_dir(self.path / day)
            except OSError as e:
                raise StoreUnavailable(f"cannot write the entry log: {e.strerror or e}") from e
            self.synced.discard(day)

    def purge(self, now: float, retention_days: int, hard_days: int) -> tuple[int, list[str]]:
        """Remove the synced entries older than `retention_days` and every entry older than
        `hard_days`; a day with nothing left goes as a whole.

        :param float now: UNIX seconds.
        :returns: (how many were removed, the ids among them that never reached the central).
        """
        cutoff, hard = iso(now - retention_days * 86400), iso(now - hard_days * 86400)
        removed = kept = 0
        never_sent: list[str] = []
        for day in [d for d in self.days() if d <= cutoff[:10]]:
            table = self.entries(day)
            lost = table.search((where("time") < hard) & (where("synced_at") == None))  # noqa: E711
            if lost:
                log.warning("purge removes %d entries of %s that never reached the central "
                            "(older than %d days)", len(lost), day, hard_days)
                never_sent += [d["id"] for d in lost]
            old = table.search((where("time") < cutoff) & ((where("synced_at") != None)  # noqa: E711
                                                           | (where("time") < hard)))
            if day < cutoff[:10] and len(old) == len(table):
                removed += len(old)
                self.open.pop(day).close()
                remove_day(self.path / day)
                self._known.discard(day)
                self.synced.discard(day)
                continue
            table.remove(doc_ids=[d.doc_id for d in old])
            removed += len(old)
            kept += table.count(where("time") < cutoff)
        if kept:
            log.warning("purge kept %d entries older than %d days: not yet at the central", kept, retention_days)
        return removed, never_sent

    def close(self) -> None:
        """Close every open day."""
        for db in self.open.values():
            db.close()
        self.open.clear()


class Outbox:
    """Ids of the entries not yet at the central, in the order they were logged, with their
    document ids where known (so sync reads and marks a batch by id)."""

    def __init__(self):
        self.ids: dict[str, int | None] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self.ids

    def add(self, entry_id: str, doc_id: int | None) -> None:
        """Queue an entry (or update its document id)."""
        self.ids[entry_id] = doc_id

    def discard(self, entry_id: str) -> None:
        """Take an entry off the outbox (delivered, or purged)."""
        self.ids.pop(entry_id, None)

    def head(self, n: int) -> list[str]:
        """The first `n` ids, oldest first."""
        out: list[str] = []
        for entry_id in self.ids:
            if len(out) >= n:
                break
            out.append(entry_id)
        return out

    def split_known(self, ids: list[str]) -> tuple[list[int], list[str]]:
        """(document ids the outbox knows for `ids`, the ids it does not know)."""
        known = [self.ids.get(i) for i in ids]
        return [d for d in known if d is not None], [i for i, d in zip(ids, known, strict=True) if d is None]

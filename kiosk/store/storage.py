"""A tinydb Storage that survives power cuts: an append-only journal plus snapshots.

tinydb's JSONStorage rewrites the whole file on every insert (a cost growing with the file;
docs/storage.md) and overwrites in place, so a power cut mid-write loses everything.
Here tinydb's `write(data)` is turned into the difference from the last state, appended as
one JSON line and fsync'ed before it returns; the file's size never drives the cost of IO.

tinydb's own Table rebuilds the whole table on every insert or update (`_update_table`: a
copy of every document, twice), so an append would still cost what the table holds. Its
documented extension point `TinyDB.table_class` fixes that: `JournalTable` sends inserts,
updates by document id and lookups straight to the storage (`put`, `live`), so they cost
what the documents involved cost. Searches read the stored table without copying it; other
changes (a remove by query, a purge) take tinydb's ordinary path.

Generations: `journal.<g>.jsonl` holds the records after `snapshot.<g>.json` (generation 0
has no snapshot: the empty state). Once the journal holds at least `compact_every` records
and has grown as large as the snapshot (so a compaction's cost, proportional to the state,
is paid once per that many bytes of appends: constant per append), the state is written as
the next generation's snapshot (temp file, fsync, rename, fsync of the folder) and a new journal
begins; the generation before the current one is kept, so a snapshot that cannot be read
(a damaged card) falls back to the previous snapshot and both journals. Every record sets
absolute values, so replaying a journal twice changes nothing. On open, a torn last record
(a power cut mid-append) is dropped with a warning.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import orjson
from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from ..exc import StoreUnavailable

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(snapshot|journal)\.(\d+)\.(json|jsonl)$")


@contextlib.contextmanager
def gc_paused():
    """For bulk loads: parsing a day's log makes tens of thousands of dicts that hold no
    reference cycles, and the cyclic collector running meanwhile took half the time of an
    open (docs/storage.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_path(folder: Path, gen: int) -> Path:
    return folder / f"snapshot.{gen}.json"


def journal_path(folder: Path, gen: int) -> Path:
    return folder / f"journal.{gen}.jsonl"


class DurableStorage(Storage):
    def __init__(self, path: str | Path, compact_every: int = 2000, read_only: bool = False,
                 idle_compaction: bool = False):
        """`read_only`: for readers beside the running kiosk (`kiosk export`): nothing is
        written, and a last record still being written is ignored rather than cut off.
        `idle_compaction`: a compaction that falls due waits for `compact_if_due()`, which
        the entry log's writer calls when no request is waiting, so no append waits for a
        snapshot; past four times the usual size it is done at once all the same."""
        self.dir = Path(path)
        self.read_only = read_only
        if not read_only:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.compact_every = compact_every
        self.idle_compaction = idle_compaction
        self._state: dict = {}
        self._records = 0
        self._snapshot_size = 0
        with gc_paused():
            self.gen = self._recover()
        self._journal = None if read_only else open(journal_path(self.dir, self.gen), "ab")
        self._size = self._journal.tell() if self._journal else 0

    # -- recovery ----------------------------------------------------------------------
    def _generations(self) -> tuple[set[int], set[int]]:
        snapshots, journals = set(), set()
        if self.dir.is_dir():
            for name in os.listdir(self.dir):
                m = _FILE.match(name)
                if m:
                    (snapshots if m.group(1) == "snapshot" else journals).add(int(m.group(2)))
        return snapshots, journals

    def _recover(self) -> int:
        snapshots, journals = self._generations()
        newest = max(snapshots | journals, default=0)
        base = None
        for gen in sorted(snapshots, reverse=True):
            try:
                data = snapshot_path(self.dir, gen).read_bytes()
                self._state = orjson.loads(data)
                self._snapshot_size = len(data)
                base = gen
                break
            except (orjson.JSONDecodeError, OSError) as e:
                log.warning("%s unreadable (%s): falling back to the generation before it",
                            snapshot_path(self.dir, gen), e)
        if base is None:
            self._state = {}
            base = min(journals, default=0)
            if snapshots and base > 0:
                raise StoreUnavailable(f"{self.dir}: no readable snapshot and journal {base - 1} is gone")
        for gen in range(base, newest + 1):
            self._replay(journal_path(self.dir, gen), last=gen == newest)
        return newest

    def _replay(self, journal: Path, last: bool) -> None:
        if not journal.exists():
            return
        data = journal.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                self._apply(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                break
            good += len(line)
            self._records += last
        if good < len(data) and not self.read_only:
            log.warning("%s: dropped a torn last record (%d bytes) left by an interrupted write",
                        journal, len(data) - good)
            with open(journal, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())

    def _apply(self, record: dict) -> None:
        for op in record["ops"]:
            name = op["t"]
            if op.get("drop"):
                self._state.pop(name, None)
                continue
            table = self._state.setdefault(name, {})
            table.update(op.get("put", {}))
            for doc_id in op.get("del", ()):
                table.pop(doc_id, None)

    # -- tinydb Storage ----------------------------------------------------------------
    def read(self):
        if not self._state:
            return None
        # tinydb changes what it reads in place; it must not be our state, or no change
        # would show. Documents are copied one level deep: the entry log only ever sets
        # top-level fields.
        return {name: {k: dict(v) for k, v in docs.items()} for name, docs in self._state.items()}

    def write(self, data: dict) -> None:
        if self.read_only:
            raise StoreUnavailable(f"{self.dir} is open read-only")
        ops = []
        for name, docs in data.items():
            old = self._state.get(name, {})
            put = {k: v for k, v in docs.items() if old.get(k) != v}
            gone = [k for k in old if k not in docs]
            if put or gone or name not in self._state:
                ops.append({"t": name, "put": put, "del": gone})
        ops += [{"t": name, "drop": True} for name in self._state if name not in data]
        if not ops:
            return
        self._append(orjson.dumps({"ops": ops}) + b"\n")
        self._state = data
        self._written()

    # -- the direct path, for JournalTable -----------------------------------------------
    def live(self, name: str) -> dict:
        """The stored table itself, not a copy: only for readers that change nothing."""
        return self._state.get(name, {})

    def put(self, name: str, docs: dict[str, dict]) -> None:
        """Set whole documents of one table (new or replaced) as one journal record, durable
        when this returns. The state takes the record as written, so it is exactly what a
        replay after a power cut would give."""
        if self.read_only:
            raise StoreUnavailable(f"{self.dir} is open read-only")
        line = orjson.dumps({"ops": [{"t": name, "put": docs}]}) + b"\n"
        self._append(line)
        self._apply(orjson.loads(line))
        self._written()

    def _written(self) -> None:
        self._records += 1
        if self._due() and not (self.idle_compaction and self._size < 4 * max(self._snapshot_size, 1 << 20)):
            self.compact()

    def _due(self) -> bool:
        return self._records >= self.compact_every and self._size >= self._snapshot_size

    def compact_if_due(self) -> bool:
        """Compact when due; True if it did."""
        if self.read_only or not self._due():
            return False
        gen = self.gen
        self.compact()
        return self.gen != gen

    def _append(self, line: bytes) -> None:
        try:
            self._journal.write(line)
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as e:
            # Disk full or read-only: take back any part of the line that reached the file,
            # so the next good record does not follow garbage.
            try:
                self._journal.truncate(self._size)
                self._journal.seek(self._size)
            except OSError:
                pass
            raise StoreUnavailable(f"cannot write the entry log: {e.strerror or e}") from e
        self._size += len(line)

    def compact(self) -> None:
        """Start the next generation: its snapshot, then its journal; drop the one before last."""
        gen = self.gen + 1
        tmp = snapshot_path(self.dir, gen).with_suffix(".tmp")
        try:
            data = orjson.dumps(self._state)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, snapshot_path(self.dir, gen))
            journal = open(journal_path(self.dir, gen), "ab")
            fsync_dir(self.dir)
        except OSError as e:
            log.warning("compaction of %s failed (%s); the journal keeps growing", self.dir, e)
            self._records = 0                  # next try after as many records again
            return
        self._journal.close()
        self._journal, self._size, self._records, self.gen = journal, 0, 0, gen
        self._snapshot_size = len(data)
        for old in (snapshot_path(self.dir, gen - 2), journal_path(self.dir, gen - 2)):
            try:
                old.unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


class JournalTable(Table):
    """A tinydb Table whose inserts, updates by id and reads skip tinydb's whole-table copies
    when its storage is a DurableStorage (any other storage: tinydb's own behaviour)."""

    def _direct(self) -> bool:
        return isinstance(self._storage, DurableStorage)

    def _read_table(self):
        # Every reader in tinydb's Table wraps what it returns in a new Document; none
        # changes the table it reads.
        return self._storage.live(self.name) if self._direct() else super()._read_table()

    def live_items(self):
        """(doc id, document) pairs of the stored table, not copies: for a reader that
        changes nothing and copies what it hands on (tinydb's `all()` copies every one)."""
        if not self._direct():
            return [(d.doc_id, d) for d in self.all()]
        return [(self.document_id_class(k), v) for k, v in self._read_table().items()]

    def insert(self, document: Mapping) -> int:
        return self.insert_multiple([document])[0]

    def insert_multiple(self, documents) -> list[int]:
        if not self._direct():
            return super().insert_multiple(documents)
        table = self._read_table()
        docs: dict[str, dict] = {}
        for document in documents:
            if not isinstance(document, Mapping):
                raise ValueError("Document is not a Mapping")
            if isinstance(document, self.document_class):
                doc_id = document.doc_id
                self._next_id = None
            else:
                doc_id = self._get_next_id()
            if str(doc_id) in table or str(doc_id) in docs:
                raise ValueError(f"Document with ID {doc_id} already exists")
            docs[str(doc_id)] = dict(document)
        if docs:
            self._storage.put(self.name, docs)
        self.clear_cache()
        return [self.document_id_class(k) for k in docs]

    def get(self, cond=None, doc_id=None, doc_ids=None):
        if not self._direct() or doc_ids is None or cond is not None or doc_id is not None:
            return super().get(cond, doc_id, doc_ids)
        table = self._read_table()
        return [self.document_class(table[str(i)], self.document_id_class(i))
                for i in dict.fromkeys(doc_ids) if str(i) in table]

    def update(self, fields, cond=None, doc_ids=None) -> list[int]:
        if not self._direct() or doc_ids is None or cond is not None or callable(fields):
            return super().update(fields, cond, doc_ids)
        table = self._read_table()
        updated = [i for i in doc_ids if str(i) in table]        # as tinydb: repeats kept
        if updated:
            self._storage.put(self.name, {str(i): {**table[str(i)], **fields} for i in updated})
        self.clear_cache()
        return updated


class DurableDB(TinyDB):
    """TinyDB on DurableStorage with JournalTable: what the entry log opens."""

    table_class = JournalTable
    default_storage_class = DurableStorage

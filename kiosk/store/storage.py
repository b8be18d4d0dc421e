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
absolute values, so replaying a journal twice changes nothing.

Damage (docs/storage.md, "Recovery"): every record and snapshot carries a CRC-32 of its
JSON, and a record must have the shape `_apply` expects. Only an unfinished final line is a
torn tail (a power cut mid-append) and is cut off. A bad line before it is corruption: the
file is copied aside (never truncated), every record that reads before and after it is
replayed, the damage is logged at ERROR with its byte offset and kept in `damage`, and the
recovered state is written at once as the next generation.

Over the house's ~300 lines: the journal's format, its recovery (torn tail, damage, CRC,
shapes) and the generations are one contract with the disk, read and changed together.
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import re
import shutil
import time
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from io import FileIO
from pathlib import Path

import orjson
from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from ..exc import StoreUnavailable
from ..files import fsync_dir

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(snapshot|journal)\.(\d+)\.(json|jsonl)$")
# A record is `{"crc":N,"ops":[...]}`, N the CRC-32 of the same text without `"crc":N,`;
# journals written before the CRC hold `{"ops":[...]}` and are still read.
_RECORD_CRC = re.compile(rb'\{"crc":(\d{1,10}),')
_RECORD_START = re.compile(rb'\{"(?:crc|ops)":')
_CRC_OF_BRACE = zlib.crc32(b"{")
# A snapshot is `{"crc":N,"state":S}`, N the CRC-32 of S; older ones are S alone (a table
# is always an object, so an old state never has a number under "crc").
_SNAPSHOT_CRC = re.compile(rb'\{"crc":(\d{1,10}),"state":')


@dataclass(frozen=True)
class Damage:
    """Damage found in a stored file on open, and what recovery did with it.

    :param file: the damaged file
    :param offset: byte offset of the first damaged line (None for a snapshot, which is
        checked as a whole)
    :param length: bytes of damaged lines from `offset` (a snapshot: its size)
    :param records_lost: journal records that could not be read (0 when a damaged record
        separator was repaired, or a snapshot was replaced by the generation before)
    :param copy: where the damaged file was kept, or None (a read-only open, or the copy
        failed: the file is then left where it is and found again at the next open)
    """
    file: str
    offset: int | None
    length: int
    records_lost: int
    copy: str | None

    def to_json(self) -> dict:
        return asdict(self)


def encode_record(ops: list) -> bytes:
    """One journal line: the operations with their CRC-32."""
    body = orjson.dumps({"ops": ops})
    return b'{"crc":%d,' % zlib.crc32(body) + body[1:] + b"\n"


def decode_record(line: bytes) -> dict | None:
    """The record in one journal line (without its newline), or None when the line is
    damaged: not JSON, a CRC that does not match, or not the shape `_apply` expects."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(record) is not dict:
        return None
    m = _RECORD_CRC.match(line)
    if m is not None:
        if record.pop("crc", None) != int(m.group(1)) or \
                zlib.crc32(memoryview(line)[m.end():], _CRC_OF_BRACE) != int(m.group(1)):
            return None
    return record if _valid_record(record) else None


def _doc_ids_ok(ids) -> bool:
    # tinydb turns every key back into an int document id: a key that is not one would
    # stop the table from loading at all.
    return all(type(k) is str and k.isdigit() for k in ids)


def _docs_ok(docs) -> bool:
    return type(docs) is dict and all(type(d) is dict and k.isdigit() for k, d in docs.items())


def _valid_record(record: dict) -> bool:
    ops = record.get("ops")
    if type(ops) is not list or len(record) != 1:
        return False
    for op in ops:
        if type(op) is not dict or type(op.get("t")) is not str:
            return False
        if "drop" in op:
            if op["drop"] is not True or len(op) != 2:
                return False
            continue
        if not op.keys() <= {"t", "put", "del"} or not _docs_ok(op.get("put", {})):
            return False
        gone = op.get("del", [])
        if type(gone) is not list or not _doc_ids_ok(gone):
            return False
    return True


def _valid_state(state) -> bool:
    return type(state) is dict and all(_docs_ok(docs) for docs in state.values())


def encode_snapshot(state: dict) -> bytes:
    body = orjson.dumps(state)
    return b'{"crc":%d,"state":' % zlib.crc32(body) + body + b"}"


def decode_snapshot(data: bytes) -> dict | None:
    """The state in a snapshot file, or None when it is damaged."""
    m = _SNAPSHOT_CRC.match(data)
    try:
        if m is None:
            state = orjson.loads(data)
        elif data.endswith(b"}") and zlib.crc32(memoryview(data)[m.end():-1]) == int(m.group(1)):
            state = orjson.loads(memoryview(data)[m.end():-1])
        else:
            return None
    except orjson.JSONDecodeError:
        return None
    return state if _valid_state(state) else None


def _salvage(line: bytes) -> tuple[list[dict], int, bool]:
    """The records in a damaged line; how many unread pieces of it begin a record; whether
    any piece is unread.

    A damaged newline joins two records into one line: the line is cut before every record
    start after the first, and each piece is read with and without its last byte (the
    damaged newline). An unread piece that does not begin a record is the rest of one cut
    by a byte that became a newline, or a record whose beginning was hit."""
    cuts = [0] + [m.start() for m in _RECORD_START.finditer(line, 1)] + [len(line)]
    records, starts, unread = [], 0, False
    for a, b in itertools.pairwise(cuts):
        piece = line[a:b]
        record = decode_record(piece)
        if record is None and len(piece) > 1:
            record = decode_record(piece[:-1])
        if record is not None:
            records.append(record)
        else:
            unread = True
            starts += _RECORD_START.match(piece) is not None
    return records, starts, unread


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
        self.damage: list[Damage] = []         # found on open, in the order found
        self._compact_now = False
        with gc_paused():
            self.gen = self._recover()
        self._journal: FileIO | None = (None if read_only
                                        else open(journal_path(self.dir, self.gen), "ab", buffering=0))
        self._size = self._journal.tell() if self._journal else 0
        if self._compact_now:
            # The recovered state becomes a snapshot with a CRC, so the next open reads it
            # rather than the damaged file (kept aside, and in the chain until retired).
            self.compact()

    # -- recovery ----------------------------------------------------------------------
    def _generations(self) -> tuple[set[int], set[int]]:
        snapshots: set[int] = set()
        journals: set[int] = set()
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
            path = snapshot_path(self.dir, gen)
            try:
                data = path.read_bytes()
            except OSError as e:
                log.warning("%s unreadable (%s): falling back to the generation before it", path, e)
                continue
            state = decode_snapshot(data)
            if state is not None:
                self._state, self._snapshot_size, base = state, len(data), gen
                break
            log.error("%s unreadable (damaged: its %d bytes fail the CRC or shape check): "
                      "falling back to the generation before it", path, len(data))
            self._found_damage(path, None, len(data), 0, move=True)
        if base is None:
            self._state = {}
            base = min(journals, default=0)
            if snapshots and base > 0:
                raise StoreUnavailable(f"{self.dir}: no readable snapshot and journal {base - 1} is gone")
        for gen in range(base, newest + 1):
            self._replay(journal_path(self.dir, gen), last=gen == newest)
        return newest

    def _replay(self, journal: Path, last: bool) -> None:
        """Apply the journal's records in order; see the module docstring for damage."""
        if not journal.exists():
            return
        data = journal.read_bytes()
        # Damaged lines next to each other make one region: [offset, end, unread pieces that
        # begin a record, whether any piece is unread]. A region that is unread loses at
        # least one record (its first one's beginning may be what was hit).
        regions: list[list] = []
        pos = 0
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                break
            line = data[pos:end]
            record = decode_record(line)
            if record is not None:
                self._apply(record)
                self._records += last
            else:
                records, starts, unread = _salvage(line)
                for record in records:
                    self._apply(record)
                    self._records += last
                if regions and regions[-1][1] == pos:
                    regions[-1][1:] = [end + 1, regions[-1][2] + starts, regions[-1][3] or unread]
                else:
                    regions.append([pos, end + 1, starts, unread])
            pos = end + 1
        if pos < len(data) and not self.read_only:
            self._unfinished(journal, data, pos, regions, last)
        damaged = [(offset, end, max(starts, 1) if unread else 0) for offset, end, starts, unread in regions]
        for offset, end, lost in damaged:
            log.error("%s is damaged at byte %d (%d bytes): %d records lost, the records before "
                      "and after it are kept", journal, offset, end - offset, lost)
        if damaged:
            copy = self._keep_aside(journal, move=False)
            self.damage += [Damage(str(journal), offset, end - offset, lost, copy)
                            for offset, end, lost in damaged]

    def _unfinished(self, journal: Path, data: bytes, pos: int, regions: list, last: bool) -> None:
        """An unfinished final line: a complete record whose newline is missing or damaged is
        kept (and its line completed); anything else is a torn tail, cut off."""
        tail = data[pos:]
        record, damaged = decode_record(tail), False
        if record is None and len(tail) > 1:
            record, damaged = decode_record(tail[:-1]), True
        if record is not None:
            self._apply(record)
            self._records += last
            if damaged:
                regions.append([pos, len(data), 0, False])
            try:
                with open(journal, "ab") as f:
                    f.write(b"\n")
                    os.fsync(f.fileno())
            except OSError as e:
                # A card gone read-only must not stop the start; a record appended after
                # this line is still found (`_salvage` cuts before a record's start).
                log.error("cannot complete the last line of %s (%s)", journal, e)
            return
        log.warning("%s: dropped a torn last record (%d bytes) left by an interrupted write",
                    journal, len(data) - pos)
        try:
            with open(journal, "r+b") as f:
                f.truncate(pos)
                os.fsync(f.fileno())
        except OSError as e:
            log.error("cannot cut the torn last record off %s (%s)", journal, e)

    def _found_damage(self, path: Path, offset: int | None, length: int, lost: int, move: bool) -> None:
        self.damage.append(Damage(str(path), offset, length, lost, self._keep_aside(path, move)))

    def _keep_aside(self, path: Path, move: bool) -> str | None:
        """Keep a damaged file for whoever looks into it, named `<file>.damaged-<UTC time>`;
        the recovered state is then written as the next generation (`_compact_now`). A
        snapshot is moved (its generation is replaced), a journal copied (it stays in the
        chain of generations until compactions retire it). Returns the copy's path or None."""
        if self.read_only:
            return None
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        try:
            if move:
                os.replace(path, aside)
            else:
                shutil.copyfile(path, aside)
                with open(aside, "rb+") as f:
                    os.fsync(f.fileno())
            fsync_dir(self.dir)
        except OSError as e:
            log.error("cannot keep a copy of the damaged %s (%s): left in place", path, e)
            return None
        self._compact_now = True
        return str(aside)

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
        self._append(encode_record(ops))
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
        line = encode_record([{"t": name, "put": docs}])
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

    def _writable(self) -> FileIO:
        """The open journal: only a storage opened for writing appends or compacts."""
        assert self._journal is not None, f"{self.dir} is open read-only"
        return self._journal

    def _append(self, line: bytes) -> None:
        journal = self._writable()
        try:
            # The journal is unbuffered: a short write on a full disk must not leave the rest
            # of the line in a Python buffer, for the next flush to complete a record the
            # caller was told failed (bench/soak.py found a held entry written twice).
            view = memoryview(line)
            while view:
                view = view[journal.write(view):]
            os.fsync(journal.fileno())
        except OSError as e:
            # Disk full or read-only: take back any part of the line that reached the file,
            # so the next good record does not follow garbage.
            try:
                journal.truncate(self._size)
                journal.seek(self._size)
            except OSError:
                pass
            raise StoreUnavailable(f"cannot write the entry log: {e.strerror or e}") from e
        self._size += len(line)

    def compact(self) -> None:
        """Start the next generation: its snapshot, then its journal; drop the one before last."""
        gen = self.gen + 1
        tmp = snapshot_path(self.dir, gen).with_suffix(".tmp")
        try:
            data = encode_snapshot(self._state)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, snapshot_path(self.dir, gen))
            journal = open(journal_path(self.dir, gen), "ab", buffering=0)
            fsync_dir(self.dir)
        except OSError as e:
            log.warning("compaction of %s failed (%s); the journal keeps growing", self.dir, e)
            self._records = 0                  # next try after as many records again
            return
        self._writable().close()
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

    def _durable(self) -> DurableStorage | None:
        """The storage when it is a DurableStorage (the fast paths), else None."""
        return self._storage if isinstance(self._storage, DurableStorage) else None

    def _direct(self) -> bool:
        return self._durable() is not None

    def _read_table(self):
        # Every reader in tinydb's Table wraps what it returns in a new Document; none
        # changes the table it reads.
        durable = self._durable()
        return durable.live(self.name) if durable is not None else super()._read_table()

    def live_items(self):
        """(doc id, document) pairs of the stored table, not copies: for a reader that
        changes nothing and copies what it hands on (tinydb's `all()` copies every one)."""
        if not self._direct():
            return [(d.doc_id, d) for d in self.all()]
        return [(self.document_id_class(k), v) for k, v in self._read_table().items()]

    def insert(self, document: Mapping) -> int:
        return self.insert_multiple([document])[0]

    def insert_multiple(self, documents) -> list[int]:
        durable = self._durable()
        if durable is None:
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
            durable.put(self.name, docs)
        self.clear_cache()
        return [self.document_id_class(k) for k in docs]

    def get(self, cond=None, doc_id=None, doc_ids=None):
        if not self._direct() or doc_ids is None or cond is not None or doc_id is not None:
            return super().get(cond, doc_id, doc_ids)
        table = self._read_table()
        return [self.document_class(table[str(i)], self.document_id_class(i))
                for i in dict.fromkeys(doc_ids) if str(i) in table]

    def update(self, fields, cond=None, doc_ids=None) -> list[int]:
        durable = self._durable()
        if durable is None or doc_ids is None or cond is not None or callable(fields):
            return super().update(fields, cond, doc_ids)
        table = self._read_table()
        updated = [i for i in doc_ids if str(i) in table]        # as tinydb: repeats kept
        if updated:
            durable.put(self.name, {str(i): {**table[str(i)], **fields} for i in updated})
        self.clear_cache()
        return updated


class DurableDB(TinyDB):
    """TinyDB on DurableStorage with JournalTable: what the entry log opens."""

    table_class = JournalTable

    def __init__(self, *args, **kwargs):
        # Not default_storage_class: tinydb declares that attribute as type[JSONStorage].
        kwargs.setdefault("storage", DurableStorage)
        super().__init__(*args, **kwargs)

    @property
    def storage(self) -> DurableStorage:
        """The DurableStorage this database was opened on."""
        storage = self._storage
        assert isinstance(storage, DurableStorage)
        return storage

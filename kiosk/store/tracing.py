"""The tracing projection of a day: per entry only what stays need (model.TraceRow).

Contact tracing reads 15 days of the log (14 and the longest stay before them). Read as
entries, a closed day is parsed whole from its shard by a child process and sent back as
JSON lines (reader.py): at 100k entries over 28 days that read took most of a trace. So
each closed day keeps, beside its shard, `trace.json`: the day's rows in columns, strings
interned, times in UNIX seconds, written atomically (files.write_atomically). It is derived
from the shard and never more: it names the shard's files as they were when it was read
(name, size, mtime_ns of each snapshot and journal), and is used only while they are still
so. A change to the day (an override, an exit mark, a sync mark, a compaction, the purge)
appends to or replaces those files, so the projection is built again at the next read. One
that does not read (its CRC-32, its shape) is never trusted either: it is built again from
the shard, which stays the source of truth.

A day the writer holds open (today's) is projected from the writer's own documents, as
the read path reads them (reader.py, `ReadPath.trace_rows`); a closed day without a valid
projection is read and projected by a child process (`main`), which also writes the file,
so neither the parse nor the write holds the interpreter lock the door's appends need.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import zlib
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import orjson

from ..files import write_atomically
from ..model import TraceRow
from .storage import _FILE, DurableDB, gc_paused

__all__ = ["FILE", "VERSION", "FAILED", "signature", "columns", "rows", "encode", "decode", "load",
           "load_columns", "build", "read_rows", "main"]

log = logging.getLogger(__name__)

FILE = "trace.json"
VERSION = 1
FAILED = b"!"                    # a line starting with this: the child could not read the day
# Interned columns: the same few gates, people and names recur thousands of times a day.
_INTERNED = ("site", "person", "gate", "direction", "action", "decision", "holder", "app")
_CRC = b'{"crc":%d,'
_new_row = partial(tuple.__new__, TraceRow)


def signature(folder: Path) -> list[list]:
    """The shard's files now: [name, size, mtime_ns] of each snapshot and journal, by name.

    Every change to a day appends to its journal (the size grows) or writes a new
    generation (new names), so a projection made from the files as named here is the
    day's as long as this stays the same.
    """
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if _FILE.match(e.name):
                    st = e.stat()
                    out.append([e.name, st.st_size, st.st_mtime_ns])
    except FileNotFoundError:
        return []
    return sorted(out)


def columns(docs: Iterable[dict]) -> dict:
    """The day's entries with a fingerprint as columns: `t` (UNIX seconds), `id`, the
    interned fields as indexes into `strings`, `clock_unsynced` as 0/1."""
    strings: list = [None]
    index: dict = {None: 0}
    cols: dict[str, list] = {k: [] for k in ("t", "id", *_INTERNED, "clock_unsynced")}
    interned = [cols[k] for k in _INTERNED]
    t_col, id_col, unsynced = cols["t"], cols["id"], cols["clock_unsynced"]
    for d in docs:
        if not d.get("fingerprint"):
            continue                       # no person to follow (trace.stays skips these too)
        r = TraceRow.of(d)
        t_col.append(r.t)
        id_col.append(r.id)
        for col, value in zip(interned, r[2:10], strict=True):
            i = index.get(value)
            if i is None:
                i = index[value] = len(strings)
                strings.append(value)
            col.append(i)
        unsynced.append(1 if r.clock_unsynced else 0)
    return {"strings": strings, **cols}


def rows(cols: dict) -> list[TraceRow]:
    """The rows held in `columns`' form."""
    lookup = cols["strings"].__getitem__
    fields = [cols["t"], cols["id"], *(map(lookup, cols[k]) for k in _INTERNED), map(bool, cols["clock_unsynced"])]
    # tuple.__new__ straight: TraceRow._make is a Python function, called 50,000 times a trace.
    return list(map(_new_row, zip(*fields, strict=True)))


def encode(key: list, cols: dict) -> bytes:
    """The file's bytes (one line): `{"crc":N,` then the rest, N the CRC-32 of that rest."""
    body = orjson.dumps({"v": VERSION, "key": key, **cols})
    return _CRC % zlib.crc32(body[1:]) + body[1:]


def decode(data: bytes) -> tuple[list, dict] | None:
    """(key, columns) of a file's bytes, or None if they are damaged or of another version."""
    head, sep, rest = data.partition(b",")
    if not sep or not head.startswith(b'{"crc":') or not head[7:].isdigit():
        return None
    if zlib.crc32(rest) != int(head[7:]):
        return None
    try:
        doc = orjson.loads(b"{" + rest)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or doc.get("v") != VERSION or type(doc.get("strings")) is not list:
        return None
    cols: dict[str, list] = {}
    for k in ("strings", "t", "id", *_INTERNED, "clock_unsynced"):
        value = doc.get(k)
        if type(value) is not list:
            return None
        cols[k] = value
    if any(len(v) != len(cols["t"]) for k, v in cols.items() if k != "strings"):
        return None
    return doc["key"], cols


def read_rows(data: bytes) -> list[TraceRow] | None:
    """The rows of a projection's bytes, or None if they are damaged (`decode`)."""
    found = decode(data)
    return _rows(found[1]) if found is not None else None


def _rows(cols: dict) -> list[TraceRow] | None:
    """`rows`, or None if the columns do not make rows (an index past `strings`)."""
    try:
        return rows(cols)
    except (IndexError, TypeError, ValueError):
        return None


def load(folder: Path) -> list[TraceRow] | None:
    """The rows of the day in `folder` from its projection, or None if it is missing,
    damaged, or no longer the shard's (then `build` it again)."""
    cols = load_columns(folder)
    if cols is None:
        return None
    with gc_paused():
        got = _rows(cols)
    if got is None:
        log.warning("%s: the tracing projection does not read: built again from the day's log", folder.name)
    return got


def load_columns(folder: Path) -> dict | None:
    """The columns (`columns`' form) of the day in `folder` from its projection, or None if
    it is missing, damaged, or no longer the shard's (then `build` it again). Whether the
    codes index the strings is left to the caller (trace_columns.ColumnsBuilder checks)."""
    try:
        data = (folder / FILE).read_bytes()
    except OSError:
        return None
    with gc_paused():
        found = decode(data)
    if found is None:
        log.warning("%s: the tracing projection does not read: built again from the day's log", folder.name)
        return None
    return found[1] if found[0] == signature(folder) else None


def looks_current(folder: Path) -> bool:
    """Whether the day in `folder` has a projection written after every file of its shard
    (by modification time, without reading it): what a warm-up goes by. A read still checks
    the projection's own record of the files (`load`); a clock stepped back can make a stale
    projection look current here, and that read then builds it."""
    try:
        made = (folder / FILE).stat().st_mtime_ns
    except OSError:
        return False
    return all(mtime <= made for _, _, mtime in signature(folder))


def build(folder: Path) -> bytes:
    """Project the day in `folder` from its shard (read-only) and write the projection;
    return its bytes. The shard's files are named before they are read, so a change made
    meanwhile leaves a projection that no longer matches them (built again), never one
    that claims a state it does not hold."""
    key = signature(folder)
    with gc_paused():
        db = DurableDB(folder, read_only=True)
        try:
            data = encode(key, columns(db.storage.live("entries").values()))
        finally:
            db.close()
    # A temp name of this process's own: two readers may build the same day at once.
    tmp = folder / f"{FILE}.{os.getpid()}.tmp"
    try:
        write_atomically(folder / FILE, data, tmp=tmp)
    except OSError as e:                   # a full or read-only card: answered all the same
        log.warning("%s: the tracing projection not written: %s", folder.name, e)
        with contextlib.suppress(OSError):
            tmp.unlink()
    return data


def main() -> None:
    """The child: `LOG_FOLDER DAY...` -> each day's projection, one line per day, in order."""
    folder, *days = sys.argv[1:]
    out = sys.stdout.buffer
    try:
        for day in days:
            try:
                data = build(Path(folder) / day)
            except Exception as e:             # the parent reads this day another way
                data = FAILED + f"{type(e).__name__}: {e}".encode().replace(b"\n", b" ")
            out.write(data + b"\n")
            out.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(0)

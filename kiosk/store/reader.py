"""Reading the entry log beside its writer, so that an export never holds up the door.

A day the writer has open is read from the writer's own documents: it hands out a list of
references (a millisecond for a day of 36,000 entries), and the filtering, sorting and
copying happen on the reader's thread. This relies on DurableStorage never changing a
stored document in place: a write replaces the document, so a reference handed out stays
as it was (tests/test_store_hardening.py checks it).

A day the writer has closed is read from its files (snapshot + journals, read-only, as
`kiosk export` does) by a child process (`main` below, one per read for all its closed
days) that writes each day's entries, sorted, one JSON line each. Parsing a day's snapshot
in this process would hold the interpreter lock for the whole parse (a 17 MB snapshot:
0.3 s, docs/storage.md) and the door's appends would wait for it; line by line, the
reader lets go between lines.
If the child cannot read a day (the writer compacted it meanwhile), the writer reads it.

Contact tracing reads the same days as rows (`trace_rows`, model.TraceRow): an open day's
from the writer's documents, a closed day's from its tracing projection (tracing.py).
"""
from __future__ import annotations

import heapq
import itertools
import logging
import operator
import os
import subprocess
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from ..export import totals
from ..model import TraceRow, id_time, iso, parse_iso
from . import tracing
from .storage import gc_paused

log = logging.getLogger(__name__)

END_OF_DAY = b"\n"          # an empty line closes each day's entries
FAILED = b"!"               # a line starting with this: the child could not read the day
CHUNK = 500                 # documents copied at a time (a few ms with the interpreter lock)


def in_range(doc: dict, since: str | None, until: str | None, after_id: str | None) -> bool:
    """True if since <= time < until and id > after_id (None: no bound)."""
    return ((since is None or doc["time"] >= since) and (until is None or doc["time"] < until)
            and (after_id is None or doc["id"] > after_id))


def copied(docs: list[dict]) -> Iterator[dict]:
    """Deep copies of `docs`, CHUNK at a time."""
    for start in range(0, len(docs), CHUNK):
        yield from orjson.loads(orjson.dumps(docs[start:start + CHUNK]))


def _child(module: str, args: list[str]) -> subprocess.Popen:
    """A Python child running `module`'s main(args), its standard output piped to us."""
    import kiosk

    env = dict(os.environ)
    root = str(Path(kiosk.__file__).resolve().parents[1])        # the package, installed or not
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.Popen([sys.executable, "-c", f"from {module} import main; main()", *args],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, bufsize=1 << 16)


def _end(child: subprocess.Popen | None) -> None:
    """Stop a child of `_child` (done or not) and close its pipe."""
    if child is None:
        return
    child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def stream(path: Path, plan: list[tuple[str, list[dict] | None]], since: str | None, until: str | None,
           after_id: str | None, match: Callable[[dict], bool] | None,
           writer_read: Callable[[str], list[dict]]) -> Generator[dict, None, None]:
    """The entries of the planned days with since <= time < until, id > after_id and
    `match(entry)`, oldest first, as copies.

    :param Path path: the log folder.
    :param plan: (day, the writer's documents of that day, or None: read its files).
    :param match: a predicate on an entry, or None.
    :param writer_read: reads a day on the writer, when its files could not be read here.
    """
    def wanted(d: dict) -> bool:
        return in_range(d, since, until, after_id) and (match is None or match(d))

    closed = [day for day, docs in plan if docs is None]
    child = _child("kiosk.store.reader", [str(path), *[b or "-" for b in (since, until, after_id)], *closed]) \
        if closed else None
    try:
        for day, docs in plan:
            if docs is not None:
                yield from copied(sorted(filter(wanted, docs), key=lambda d: d["id"]))
                continue
            failed = None
            # A day to read from its files: the child was started for those (stdout=PIPE).
            assert child is not None and child.stdout is not None
            for line in child.stdout:
                if line == END_OF_DAY:
                    break
                if line.startswith(FAILED):
                    failed = line[1:].decode(errors="replace").strip()
                    continue
                doc = orjson.loads(line)
                if match is None or match(doc):
                    yield doc
            else:
                failed = failed or "the reader stopped"
            if failed:
                log.warning("%s read by the writer: %s", day, failed)
                yield from copied(sorted(filter(wanted, writer_read(day)), key=lambda d: d["id"]))
    finally:
        _end(child)


def trace_days(path: Path, plan: list[tuple[str, list[dict] | None]],
               writer_read: Callable[[str], list[dict]]) -> list[TraceRow]:
    """The tracing rows of the planned days, in no particular order: an open day's from the
    writer's documents, a closed day's from its projection (tracing.py), built by a child
    process (one for all the days that need it) where missing, stale or damaged.

    :param Path path: the log folder.
    :param plan: (day, the writer's documents of that day, or None: a closed day).
    :param writer_read: reads a day on the writer, when the child could not read its files.
    """
    out: list[TraceRow] = []
    missing = []
    for day, docs in plan:
        if docs is not None:
            # The writer's documents: read here, never changed (see the module's docstring).
            with gc_paused():
                out += [TraceRow.of(d) for d in docs if d.get("fingerprint")]
            continue
        found = tracing.load(path / day)
        if found is None:
            missing.append(day)
        else:
            out += found
    if not missing:
        return out
    child = _child("kiosk.store.tracing", [str(path), *missing])
    try:
        assert child.stdout is not None
        for day in missing:
            line = child.stdout.readline()
            found = None
            if line and not line.startswith(tracing.FAILED):
                with gc_paused():
                    found = tracing.read_rows(line.rstrip(b"\n"))
            if found is None:
                why = line[1:].decode(errors="replace").strip() if line.startswith(tracing.FAILED) else "no projection"
                log.warning("%s read by the writer for tracing: %s", day, why)
                docs = writer_read(day)
                with gc_paused():
                    found = [TraceRow.of(d) for d in docs if d.get("fingerprint")]
            out += found
    finally:
        _end(child)
    return out


OPEN_DAYS_KEPT = 4          # open days' arrays kept between tracing reads (today's, yesterday's...)


def open_day_columns(kept: dict, day: str, docs: list[dict]):
    """The arrays (trace_columns.TraceColumns) of an open day's documents, made again only
    for what changed since the last read: the writer never changes a stored document in
    place (it replaces it), so while the documents read last are still the same objects in
    the same places, their rows are the same, and only those added after them are new.

    :param kept: day -> (the documents read last, their arrays); updated here.
    """
    from ..trace_columns import ColumnsBuilder

    builder = ColumnsBuilder()
    last = kept.get(day)
    new = docs
    if last is not None and len(docs) >= len(last[0]) and all(map(operator.is_, last[0], docs)):
        if len(docs) == len(last[0]):
            return last[1]
        builder.add_arrays(last[1])
        new = docs[len(last[0]):]
    with gc_paused():
        builder.add_docs(new)
    cols = builder.build()
    kept[day] = (docs, cols)
    for old in sorted(kept)[:-OPEN_DAYS_KEPT]:          # days long closed: their documents let go
        kept.pop(old, None)
    return cols


def trace_columns(path: Path, plan: list[tuple[str, list[dict] | None]],
                  writer_read: Callable[[str], list[dict]], since: float, until: float,
                  kept: dict | None = None):
    """`trace_days` as arrays (trace_columns.TraceColumns), the rows with since <= t < until:
    a closed day's straight from its projection's columns, no row made of them.

    :param since: UNIX seconds.
    :param until: UNIX seconds.
    :param kept: the open days' arrays of earlier reads (`open_day_columns`), or None.
    """
    from ..trace_columns import ColumnsBuilder

    builder = ColumnsBuilder()
    missing = []
    for day, docs in plan:
        if docs is not None:
            if kept is None:
                with gc_paused():
                    builder.add_docs(docs)
            else:
                builder.add_arrays(open_day_columns(kept, day, docs))
            continue
        cols = tracing.load_columns(path / day)
        try:
            if cols is None:
                raise ValueError("no projection")
            builder.add_columns(cols)
        except ValueError:
            if cols is not None:
                log.warning("%s: the tracing projection does not read: built again from the day's log", day)
            missing.append(day)
    if missing:
        child = _child("kiosk.store.tracing", [str(path), *missing])
        try:
            assert child.stdout is not None
            for day in missing:
                line = child.stdout.readline()
                why = "no projection"
                if line.startswith(tracing.FAILED):
                    why = line[1:].decode(errors="replace").strip()
                elif line:
                    with gc_paused():
                        found = tracing.decode(line.rstrip(b"\n"))
                    try:
                        if found is not None:
                            builder.add_columns(found[1])
                            continue
                    except ValueError as e:
                        why = str(e)
                log.warning("%s read by the writer for tracing: %s", day, why)
                with gc_paused():
                    builder.add_docs(writer_read(day))
        finally:
            _end(child)
    return builder.build(since, until)


class ReadPath:
    """The reading side of the entry log (log.EntryLog), run on the caller's thread. The
    writer side provides `path`, `_plan(since, until, after_id)` (days and their documents,
    see `stream`), `_day_docs(day)`, `_newest(n)` and `_views(since, until)` (documents to
    read, not change)."""

    path: Path

    def _plan(self, since: str | None, until: str | None, after_id: str | None) -> list:
        raise NotImplementedError

    def _day_docs(self, day: str) -> list[dict]:
        raise NotImplementedError

    def _newest(self, n: int) -> list[dict]:
        raise NotImplementedError

    def _views(self, since: str, until: str) -> list[dict]:
        raise NotImplementedError

    def entries(self, *, match: Callable[[dict], bool] | None = None, since: str | None = None,
                until: str | None = None, after_id: str | None = None) -> Generator[dict, None, None]:
        """A stream of the entries with since <= time < until, id > after_id and
        `match(entry)`, oldest first, read on the caller's thread (close it when done).

        :param match: a predicate on an entry (it runs on the caller's thread).
        :param since: ISO UTC time, or None for no lower bound.
        :param until: ISO UTC time, or None for no upper bound.
        :param after_id: an entry id (a page's cursor), or None.
        """
        return stream(self.path, self._plan(since, until, after_id), since, until, after_id, match,
                      self._day_docs)

    def warm_trace(self, since: str, until: str) -> list[str]:
        """Build, in a child process, the tracing projections of the closed days between
        that are missing or look out of date (tracing.looks_current), so that a trace after
        a start or after a late change to an old day does not wait for them. Nothing is read
        back into this process; returns the days built.

        :param since: ISO UTC time.
        :param until: ISO UTC time.
        """
        stale = [day for day, docs in self._plan(since, until, None)
                 if docs is None and not tracing.looks_current(self.path / day)]
        if stale:
            child = _child("kiosk.store.tracing", [str(self.path), *stale])
            try:
                assert child.stdout is not None
                for _ in child.stdout:          # one line a day; the child writes the files
                    pass
            finally:
                _end(child)
        return stale

    def trace_row(self, entry_id: str) -> TraceRow | None:
        """The tracing row (model.TraceRow) of one entry, or None: no such entry, or one
        without a fingerprint. Read as `trace_rows` reads its day, on the caller's thread: an
        old closed day is not opened on the writer, whose appends the door waits for."""
        day = iso(id_time(entry_id))[:10]
        found = trace_days(self.path, self._plan(f"{day}T00:00:00.000Z", f"{day}T23:59:59.999Z", None),
                           self._day_docs)
        return next((r for r in found if r.id == entry_id), None)

    def trace_rows(self, since: str, until: str) -> list[TraceRow]:
        """What contact tracing needs of the entries with since <= time < until
        (model.TraceRow), in no particular order, read on the caller's thread: the days the
        writer holds open from its documents, the others from their tracing projections
        (tracing.py), built by a child process where missing or out of date.

        :param since: ISO UTC time.
        :param until: ISO UTC time.
        """
        lo, hi = parse_iso(since), parse_iso(until)
        found = trace_days(self.path, self._plan(since, until, None), self._day_docs)
        return [r for r in found if lo <= r.t < hi]

    def trace_columns(self, since: str, until: str):
        """`trace_rows` as arrays (trace_columns.TraceColumns): the same rows, read the same
        way, without a row object each.

        :param since: ISO UTC time.
        :param until: ISO UTC time.
        """
        kept = self.__dict__.setdefault("_open_day_columns", {})
        return trace_columns(self.path, self._plan(since, until, None), self._day_docs, parse_iso(since),
                             parse_iso(until), kept)

    def recent(self, n: int = 20) -> list[dict]:
        """The `n` latest entries, newest first (those held in memory included)."""
        return list(copied(heapq.nlargest(n, self._newest(n), key=lambda d: d["id"])))

    def query(self, since: str | None = None, until: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries with since <= time < until, oldest first.

        :param since: ISO UTC time, or None for no lower bound.
        :param until: ISO UTC time, or None for no upper bound.
        :param int limit: at most this many.
        """
        return self.search(since=since, until=until, limit=limit)

    def search(self, *, match: Callable[[dict], bool] | None = None, since: str | None = None,
               until: str | None = None, after_id: str | None = None, limit: int = 1000) -> list[dict]:
        """Entries with since <= time < until, id > after_id and `match(entry)`, oldest first
        (`entries`, up to a limit).

        :param match: a predicate on an entry (it runs on the caller's thread).
        :param since: ISO UTC time, or None for no lower bound.
        :param until: ISO UTC time, or None for no upper bound.
        :param after_id: an entry id (a page's cursor), or None.
        :param int limit: at most this many.
        """
        docs = self.entries(match=match, since=since, until=until, after_id=after_id)
        try:
            return list(itertools.islice(docs, limit))
        finally:
            docs.close()

    def today_counts(self, now: float, tz) -> dict:
        """Entries and decisions since local midnight (export.totals, as the daily report).

        :param float now: UNIX seconds.
        :param tz: the site's time zone (a tzinfo).
        :returns: {"entries", "allow", "deny", "review"}: counts.
        """
        local = datetime.fromtimestamp(now, tz)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        since = iso(midnight.astimezone(UTC).timestamp())
        until = iso((midnight + timedelta(days=1)).astimezone(UTC).timestamp())
        counts = totals([d for d in self._views(since, until) if since <= d["time"] < until])
        return {k: counts[k] for k in ("entries", "allow", "deny", "review")}



def _write_days(path: Path, days: Iterable[str], since, until, after_id, out) -> None:
    from .storage import DurableDB, gc_paused

    for day in days:
        try:
            with gc_paused():
                db = DurableDB(path / day, read_only=True)
                docs = sorted((d for d in db.storage.live("entries").values() if in_range(d, since, until, after_id)),
                              key=lambda d: d["id"])
                db.close()
            out.write(b"".join(orjson.dumps(d) + b"\n" for d in docs))
        except Exception as e:                   # the parent reads this day another way
            out.write(FAILED + f"{type(e).__name__}: {e}".encode().replace(b"\n", b" ") + b"\n")
        out.write(END_OF_DAY)
        out.flush()


def main() -> None:
    """The child: `LOG_FOLDER SINCE UNTIL AFTER_ID DAY...` ("-": no bound) -> JSON lines."""
    folder, *rest = sys.argv[1:]
    lo, hi, after = [None if a == "-" else a for a in rest[:3]]
    wanted = rest[3:]                            # days ("YYYY-MM-DD"), never "-"
    try:
        _write_days(Path(folder), wanted, lo, hi, after, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):  # the reader stopped early (a full page)
        os._exit(0)

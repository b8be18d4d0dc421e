"""How fast the contact-tracing query answers: a person's contacts over 14 days at a site of
5 gates holding 1M entries over 28 days (exits for 70%), on the central (PostgreSQL and
SQLite, stays kept at ingest, overlap by a GiST index on tstzrange on PostgreSQL) and on a
kiosk's own log of 100k entries; each against a naive scan measured in the same run.

The site: a workforce in three shifts (06:00, 14:00, 22:00 UTC, +-30 min), each person on one
shift, coming on 84% of days for 8 h +- 1 h; in and out through any of the 5 gates.

Naive, central: every entry of the site in the window read back (the JSON bodies), stays
built and compared in Python (what building stays on query costs). Naive, kiosk: the whole
log read and every stay compared. Both must give the same contacts as the fast path.

The kiosk reads its window through the log's tracing projection (store/tracing.py) as arrays
(kiosk/trace_columns.py), and is timed in the same run as rows (trace.query_rows) and reading
the window's entries as it did before that (the same contacts). With --pi-cap the kiosk's part
runs again in a child process inside a CPU cap modelling one Raspberry Pi 4 core (1/4 of one
core here: bench/pi_budget.py's CpuCap and FACTOR, docs/performance.md says why; as root).

Run: .venv/bin/python bench/trace.py          (about 10 minutes; --quick: 20k / 5k entries;
     --kiosk-only: the kiosk's log alone, about 1.5 minutes at 100k; --pi-cap: and again
     inside the Pi 4 model's cap, about 4 minutes more)
Goal (issue #18): <= 200 ms on PostgreSQL; <= 1 s on the kiosk's log of 100k entries.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import insert, text

from kiosk import trace, trace_columns
from kiosk.central import db as central_db
from kiosk.central import trace as central_trace
from kiosk.model import Entry, iso, ulid
from kiosk.store import EntryLog, tracing
from kiosk.testing.pgcluster import PostgresMissing, private_postgres

SITE = "bench-site"
GATES = [f"gate-{i}" for i in range(1, 6)]
DAY = 86400.0
T0 = 1_795_000_000.0 - (1_795_000_000.0 % DAY)          # a UTC midnight, Nov 2026
DAYS = 28
SHIFTS = (6, 14, 22)
DEFAULT_STAY, MAX_STAY = central_trace.DEFAULT_STAY, central_trace.MAX_STAY
MIN_OVERLAP = central_trace.MIN_OVERLAP * 60


def entries(n: int, seed: int = 18) -> list[dict]:
    """About `n` entries (in and out) over DAYS days, in time order."""
    rng = random.Random(seed)
    ins_per_day = n / DAYS / 1.7                          # 70% of the ins have an out
    people = int(ins_per_day / 0.84) + 1
    shift = [SHIFTS[p % 3] for p in range(people)]
    docs = []

    def doc(t: float, person: int, direction: str) -> dict:
        return {"id": ulid(int(t * 1000), rng.getrandbits(80)), "site": SITE, "kiosk": rng.choice(GATES),
                "time": iso(t), "direction": direction,
                "declaration": {"format": "sitepass", "status": "valid", "holder": f"Người {person:06d}",
                                "kind": None, "expires": None, "flags": []},
                "fingerprint": f"{person:032x}", "ble": {"outcome": rng.choice(("confirmed", "not_detected")),
                                                         "family": None, "rssi": None, "count_near": 0},
                "decision": "allow", "reasons": [], "override": None, "synced_at": None}
    for day in range(DAYS):
        for p in range(people):
            if rng.random() >= 0.84:
                continue
            start = T0 + day * DAY + shift[p] * 3600 + rng.uniform(-1800, 1800)
            docs.append(doc(start, p, "in"))
            if rng.random() < 0.7:
                docs.append(doc(start + rng.uniform(7, 9) * 3600, p, "out"))
    docs.sort(key=lambda d: d["id"])
    return docs


def targets(docs: list[dict], k: int, rng: random.Random) -> list[dict]:
    """`k` entries of people seen in the last days (a traced person's latest entry)."""
    late = [d for d in docs[-len(docs) // 10:] if d["direction"] == "in"]
    return rng.sample(late, k)


def summary(contacts) -> list:
    return sorted((c.person, round(c.overlap), len(c.stays)) for c in contacts)


def load_central(url: str, docs: list[dict]) -> object:
    """A central database holding `docs` and their stays (bulk, as ingest would leave it)."""
    engine = central_db.connect(url)
    rows = [{"id": d["id"], "site": d["site"], "kiosk": d["kiosk"], "time": d["time"], "decision": d["decision"],
             "received_at": d["time"], "body": json.dumps(d, ensure_ascii=False), "clock_unsynced": 0,
             "person": d["fingerprint"], "stayed": 1} for d in docs]
    # In the order catch_up writes them (entries taken in by id, that is by time): the stays of
    # an hour lie together in the table, as on a central that took its entries in day by day.
    stays = [central_trace.stay_row(s) for s in sorted(trace.stays(docs, DEFAULT_STAY, MAX_STAY),
                                                       key=lambda s: (s.start, s.entry_id))]
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            if conn.dialect.name == "postgresql":
                central_db._insert_new(conn, rows[i:i + 5000])
            else:
                conn.execute(insert(central_db.entries), rows[i:i + 5000])
        for i in range(0, len(stays), 5000):
            conn.execute(insert(central_db.stays), stays[i:i + 5000])
        # The stays above are those of every entry: none is left for a catch-up (PostgreSQL's
        # bulk insert leaves the column at its default).
        conn.execute(text("UPDATE entries SET stayed = 1"))
    if engine.dialect.name == "postgresql":
        # As autovacuum leaves a central that took its entries day by day: statistics, hint
        # bits and the visibility map set (a freshly loaded table's first reads write them).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return engine


def timed(fn, repeat: int = 1):
    """(median seconds, last result) of `repeat` calls."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def central_row(name: str, url: str, pool: list, n: int, picks: list[dict], naive: bool) -> dict:
    """The central's row: the entries taken from `pool` (`entries(n)` made again once it is
    empty) loaded, then timed once they are dropped: a central's server holds none of them,
    and a million dicts kept in this process made each page 15-25% slower (measured on the
    same database)."""
    docs = pool.pop() if pool else entries(n)
    start = time.perf_counter()
    engine = load_central(url, docs)
    load = time.perf_counter() - start
    until_t = trace.parse_iso(docs[-1]["time"]) + 1
    to_ingest = docs[:2000]                      # the ingest's batches below
    del docs
    gc.collect()
    since_t = until_t - 14 * DAY
    fast, full, export, slow, listed, find, stays_found = [], [], [], [], [], [], []
    for pick in picks:
        def page(pick=pick):
            # What GET /api/v1/trace does: the catch-up (nothing pending), the traced stays,
            # the first page of 200 contacts with their stays and the total, as JSON.
            central_trace.catch_up(engine)
            with engine.begin() as conn:
                _, mine = central_trace.trace_entry(conn, pick["id"], since_t, until_t)
                total, contacts = central_trace.contacts_page(conn, SITE, mine, since_t, until_t, MIN_OVERLAP,
                                                              200, 0)
                json.dumps({"stays": [x.to_json() for x in mine], "total": total,
                            "contacts": [c.to_json() for c in contacts]})
            return total, contacts
        seconds, (total, first) = timed(page, 3)
        fast.append(seconds)
        listed.append(total)

        def everyone(pick=pick):
            # The full answer (kiosk-central trace): every contact with their stays, as JSON lines.
            with engine.connect() as conn:
                _, mine = central_trace.trace_entry(conn, pick["id"], since_t, until_t)
                contacts = central_trace.contacts_page(conn, SITE, mine, since_t, until_t, MIN_OVERLAP)[1]
                for c in contacts:
                    json.dumps(c.to_json())
            return contacts
        seconds, contacts = timed(everyone, 1)
        full.append(seconds)
        assert len(contacts) == total and [c.to_json() for c in contacts[:200]] == [c.to_json() for c in first], \
            f"{name}: the first page is not the full list's first 200"

        def csv_rows(pick=pick):
            # The CSV: every contact's total, from the aggregate.
            with engine.connect() as conn:
                _, mine = central_trace.trace_entry(conn, pick["id"], since_t, until_t)
                return central_trace.contact_totals(conn, SITE, mine, since_t, until_t, MIN_OVERLAP)
        seconds, totals = timed(csv_rows, 1)
        export.append(seconds)
        assert totals == [central_trace.ContactTotal.of(c) for c in contacts], f"{name}: the CSV disagrees"

        def overlapping(pick=pick):
            # The database's part alone: the overlapping stays found (GiST && on PostgreSQL).
            with engine.connect() as conn:
                mine = conn.execute(text("SELECT start_t, end_t FROM stays WHERE site = :s AND person = :p "
                                         "AND end_t > :a AND start_t < :b"),
                                    {"s": SITE, "p": pick["fingerprint"], "a": since_t, "b": until_t}).all()
                return central_trace.overlapping(conn, SITE, [(max(lo, since_t), min(hi, until_t)) for lo, hi in mine])
        seconds, found = timed(overlapping, 1)
        find.append(seconds)
        stays_found.append(len(found))
        if naive:
            def scan(pick=pick):
                with engine.connect() as conn:
                    bodies = conn.execute(text("SELECT body FROM entries WHERE site = :s AND time >= :a AND time < :b"),
                                          {"s": SITE, "a": iso(since_t - MAX_STAY), "b": iso(until_t)}).scalars()
                    return trace.query((json.loads(b) for b in bodies), pick["fingerprint"], SITE, since_t, until_t,
                                       DEFAULT_STAY, MAX_STAY, MIN_OVERLAP)[1]
            seconds, naive_contacts = timed(scan, 1)
            slow.append(seconds)
            assert summary(naive_contacts) == summary(contacts), f"{name}: the naive scan disagrees"
    # Ingest as it is (stays left for later), then the catch-up a query does first.
    batches = [[dict(d, id=ulid(int((trace.parse_iso(d["time"]) + DAYS * DAY) * 1000), i * 1000 + j),
                     time=iso(trace.parse_iso(d["time"]) + DAYS * DAY))
                for j, d in enumerate(to_ingest[i * 100:(i + 1) * 100])] for i in range(20)]
    without, _ = timed(lambda: [central_db.ingest(engine, b, f"s{i}", 0, 300) for i, b in enumerate(batches)])
    catch_up, _ = timed(lambda: central_trace.catch_up(engine))
    with_stays = without + catch_up
    engine.dispose()
    return {"name": name, "load": load, "fast": statistics.median(fast), "worst": max(fast),
            "full": statistics.median(full), "csv": statistics.median(export),
            "find": statistics.median(find), "stays_found": statistics.median(stays_found),
            "naive": statistics.median(slow) if slow else None, "listed": statistics.median(listed),
            "ingest_ms": with_stays / 20 * 1000, "ingest_plain_ms": without / 20 * 1000}


def kiosk_appends(log: EntryLog, after: float, seconds: float, every: float = 0.02) -> list[float]:
    """Seconds taken by each append at the door (EntryLog.append), one every `every` seconds
    (a door at its busiest is one a second) for `seconds`."""
    rng = random.Random(after)
    samples: list[float] = []
    end = time.perf_counter() + seconds
    for k in itertools.count():
        if time.perf_counter() > end:
            break
        time.sleep(every)
        d = {"id": ulid(int((after + k * 0.01) * 1000), rng.getrandbits(80)), "site": SITE, "kiosk": GATES[0],
             "time": iso(after + k * 0.01), "direction": "in",
             "declaration": {"format": "sitepass", "status": "valid", "holder": "Người mới", "kind": None,
                             "expires": None, "flags": []},
             "fingerprint": f"{10**9 + k:032x}", "ble": {"outcome": "not_detected", "family": None, "rssi": None,
                                                         "count_near": 0},
             "decision": "allow", "reasons": [], "override": None, "synced_at": None}
        t0 = time.perf_counter()
        log.append(Entry.from_json(d))
        samples.append(time.perf_counter() - t0)
    return samples


def projections(folder: Path) -> list[Path]:
    return list(folder.glob(f"*/{tracing.FILE}"))


def kiosk_log(folder: Path, docs: list[dict]) -> None:
    """The kiosk's log holding `docs`, in `folder`/log."""
    log = EntryLog(folder / "log")
    log.start()
    log.import_entries(docs)
    log.stop()


def kiosk_row(folder: Path, docs: list[dict], picks: list[dict], block_seconds: float = 4.0) -> dict:
    """The kiosk's trace (GET /api/v1/trace's reading and query: a page of 200 and the
    total, as JSON) on its own log (`kiosk_log`): on arrays (now), through the tracing
    projection's rows (trace.query_rows, before), the first query (projections built) and
    the window's entries read as before that, in the same run; inside_now both ways; the
    projection's size on disk and in memory; the door's appends while tracing."""
    for p in projections(folder / "log"):
        p.unlink()                          # the first query builds them, in this process's cgroup
    log = EntryLog(folder / "log")          # as a kiosk finds it after a start: older days closed
    log.start()
    try:
        until_t = trace.parse_iso(docs[-1]["time"]) + 1
        since_t = until_t - 14 * DAY
        window = (iso(since_t - MAX_STAY), iso(until_t))

        def query(pick):
            # What GET /api/v1/trace does on the kiosk: the window's rows as arrays, stays,
            # overlaps, the first page of 200 contacts and the total, as JSON.
            mine, total, page = trace_columns.query_columns(log.trace_columns(*window), pick["fingerprint"], SITE,
                                                            since_t, until_t, DEFAULT_STAY, MAX_STAY, MIN_OVERLAP,
                                                            200, 0)
            json.dumps({"stays": [x.to_json() for x in mine], "total": total,
                        "contacts": [c.to_json() for c in page]})
            return total, page

        def by_rows(pick):
            # As it was: the window's rows as tuples, every stay and every contact built.
            mine, found = trace.query_rows(log.trace_rows(*window), pick["fingerprint"], SITE, since_t, until_t,
                                           DEFAULT_STAY, MAX_STAY, MIN_OVERLAP)
            json.dumps({"stays": [x.to_json() for x in mine], "total": len(found),
                        "contacts": [c.to_json() for c in found[:200]]})
            return found

        def before(pick):
            # As it was: the window's entries read through the reader, stays from their JSON.
            return trace.query(log.search(since=window[0], until=window[1], limit=10_000_000), pick["fingerprint"],
                               SITE, since_t, until_t, DEFAULT_STAY, MAX_STAY, MIN_OVERLAP)[1]

        cold, _ = timed(lambda: query(picks[0]))
        fast, rows_path, old, slow, listed = [], [], [], [], []
        for pick in picks:
            seconds, (total, page) = timed(lambda pick=pick: query(pick), 3)
            fast.append(seconds)
            listed.append(total)
            seconds, contacts = timed(lambda pick=pick: by_rows(pick), 3)
            rows_path.append(seconds)
            assert (total, page) == (len(contacts), contacts[:200]), "kiosk: the arrays and the rows disagree"
            seconds, old_contacts = timed(lambda pick=pick: before(pick), 1)
            old.append(seconds)
            assert old_contacts == contacts, "kiosk: the entries and the projection disagree"

            def scan(pick=pick):
                every = trace.stays(log.search(limit=10_000_000), DEFAULT_STAY, MAX_STAY)
                mine = [s for s in every if s.person == pick["fingerprint"]]
                return trace.contacts(mine, every, MIN_OVERLAP, since_t, until_t)
            seconds, naive_contacts = timed(scan, 1)
            slow.append(seconds)
            assert summary(naive_contacts) == summary(contacts), "kiosk: the naive scan disagrees"

        busy = trace.parse_iso(next(d["time"] for d in reversed(docs) if d["direction"] == "in")) + 3600

        def inside():
            # What Kiosk.inside_now does for every health (the guard's strip, /api/v1/health).
            cols = log.trace_columns(iso(until_t - MAX_STAY), iso(until_t))
            return trace_columns.inside_count(cols, busy, DEFAULT_STAY, MAX_STAY)

        def inside_rows():
            rows = log.trace_rows(iso(until_t - MAX_STAY), iso(until_t))
            return len(trace.inside_now(trace.stays_from_rows(rows, DEFAULT_STAY, MAX_STAY), busy))

        def inside_before():
            got = log.search(since=iso(until_t - MAX_STAY), until=iso(until_t), limit=10_000_000)
            return len(trace.inside_now(trace.stays(got, DEFAULT_STAY, MAX_STAY), busy))
        inside_seconds, inside_count = timed(inside, 5)
        inside_by_rows, inside_rows_count = timed(inside_rows, 5)
        inside_old, inside_old_count = timed(inside_before, 5)
        assert inside_old_count == inside_count == inside_rows_count

        # Memory: the window's rows held, and the peak of a whole query (tracemalloc), on
        # arrays and as rows.
        tracemalloc.start()
        cols = log.trace_columns(*window)
        cols_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        trace_columns.query_columns(cols, picks[0]["fingerprint"], SITE, since_t, until_t, DEFAULT_STAY, MAX_STAY,
                                    MIN_OVERLAP, 200, 0)
        cols_peak = tracemalloc.get_traced_memory()[1] - cols_bytes
        del cols
        tracemalloc.stop()
        tracemalloc.start()
        rows = log.trace_rows(*window)
        rows_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        trace.query_rows(rows, picks[0]["fingerprint"], SITE, since_t, until_t, DEFAULT_STAY, MAX_STAY, MIN_OVERLAP)
        query_peak = tracemalloc.get_traced_memory()[1] - rows_bytes
        tracemalloc.stop()
        del rows
        window_disk = sum(p.stat().st_size for p in projections(folder / "log"))
        window_days = len(projections(folder / "log"))

        # The door's appends while a thread traces again and again, against the same appends
        # alone and while it traces as before (the window's entries read); blocks in turn,
        # so a shared machine's changing load falls on all three. Through the projection,
        # each query is a first one (its files removed before it: the child builds them).
        mode, stop, queries = ["alone"], threading.Event(), {"projection": 0, "before": 0}

        def tracing_loop():
            while not stop.is_set():
                now = mode[0]
                if now == "alone":
                    time.sleep(0.05)
                    continue
                if now == "projection":
                    for p in projections(folder / "log"):
                        p.unlink(missing_ok=True)
                    query(picks[0])
                else:
                    before(picks[0])
                queries[now] += 1
        thread = threading.Thread(target=tracing_loop, daemon=True)
        thread.start()
        samples: dict[str, list[float]] = {"alone": [], "projection": [], "before": []}
        after = until_t + 3600
        for block in range(6):
            mode[0] = ("alone", "projection", "before")[block % 3]
            samples[mode[0]].extend(kiosk_appends(log, after, block_seconds))
            after += 1000
        stop.set()
        thread.join(60)

        # The whole log's projections (28 days), for their size on disk.
        log.trace_rows(iso(0), iso(until_t + DAY))
        all_disk = sum(p.stat().st_size for p in projections(folder / "log"))
        all_days = len(projections(folder / "log"))
    finally:
        log.stop()

    def pct(samples: list[float], q: float) -> float:
        return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))] * 1000
    return {"name": "kiosk log", "fast": statistics.median(fast), "worst": max(fast), "cold": cold,
            "rows_path": statistics.median(rows_path), "rows_worst": max(rows_path),
            "before": statistics.median(old), "naive": statistics.median(slow), "listed": statistics.median(listed),
            "inside_ms": inside_seconds * 1000, "inside": inside_count, "inside_before_ms": inside_old * 1000,
            "inside_rows_ms": inside_by_rows * 1000, "cols_mb": cols_bytes / 1e6, "cols_peak_mb": cols_peak / 1e6,
            "rows_mb": rows_bytes / 1e6, "peak_mb": query_peak / 1e6, "window_disk_mb": window_disk / 1e6,
            "window_days": window_days, "disk_mb": all_disk / 1e6, "days": all_days,
            "appends": {k: (len(v), pct(v, 0.5), pct(v, 0.99), max(v) * 1000) for k, v in samples.items()},
            "queries_during": queries}


def print_kiosk(r: dict, entries_count: int, name: str = "kiosk log") -> None:
    print(f"{name:22} {entries_count:9d} {r['fast'] * 1000:9.0f} {r['worst'] * 1000:9.0f} {'':7} {'':7} "
          f"{r['naive'] * 1000:9.0f} {r['naive'] / r['fast']:6.1f} {r['listed']:9.0f}", flush=True)
    print(f"  {name}: on arrays {r['fast'] * 1000:.0f} ms (worst {r['worst'] * 1000:.0f}); as rows "
          f"(trace.query_rows, before) {r['rows_path'] * 1000:.0f} ms (worst {r['rows_worst'] * 1000:.0f}): "
          f"{r['rows_path'] / r['fast']:.1f}x; first query (projections built) {r['cold'] * 1000:.0f} ms; "
          f"the window's entries read instead (before the projection): {r['before'] * 1000:.0f} ms", flush=True)
    print(f"  {name}: projection: {r['window_days']} closed days of the window {r['window_disk_mb']:.1f} MB, all "
          f"{r['days']} closed days {r['disk_mb']:.1f} MB on disk; the window's rows in memory "
          f"{r['cols_mb']:.1f} MB as arrays (a query's peak {r['cols_peak_mb']:.1f} MB more), "
          f"{r['rows_mb']:.1f} MB as rows (a query's peak {r['peak_mb']:.1f} MB more)", flush=True)
    print(f"{name} inside_now (each health): {r['inside_ms']:.0f} ms for {r['inside']} inside "
          f"(as rows: {r['inside_rows_ms']:.0f} ms; entries read instead: {r['inside_before_ms']:.0f} ms)",
          flush=True)
    print(f"{name} door appends (one each 20 ms), p50 / p99 / max ms: " + "; ".join(
        f"{label} {p50:.1f} / {p99:.1f} / {most:.0f} ({n} appends{queries})"
        for key, label in (("alone", "alone"), ("projection", "while tracing"),
                           ("before", "while tracing as before"))
        for n, p50, p99, most in [r["appends"][key]]
        for queries in ["" if key == "alone" else f", {r['queries_during'][key]} queries"]), flush=True)


PI_ROW = "kiosk log (Pi 4 model, 1/4 core)"


def capped_kiosk_row(folder: Path, docs: list[dict], picks: list[dict], block_seconds: float,
                     factor: float) -> dict | str:
    """`kiosk_row` in a child process inside a CPU cap of 1 / `factor` of one core
    (bench/pi_budget.py's CpuCap, a cgroup), with the children it starts (the tracing
    projections' builders); the reason when no cap can be made (not root, no controller)."""
    import multiprocessing

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pi_budget import CpuCap  # bench/pi_budget.py beside this file

    cap = CpuCap(factor)
    if not cap.ok:
        return cap.reason
    try:
        # Forked: the child has the entries already made; it moves itself into the cap first.
        ctx = multiprocessing.get_context("fork")
        results = ctx.SimpleQueue()

        def child():
            cap.enter()
            results.put(kiosk_row(folder, docs, picks, block_seconds))
        process = ctx.Process(target=child)
        process.start()
        process.join()
        if process.exitcode != 0:
            return f"the capped run failed (exit code {process.exitcode})"
        return results.get()
    finally:
        cap.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="entries at the central's site")
    parser.add_argument("--kiosk-entries", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=5, help="people traced per database")
    parser.add_argument("--no-sqlite", action="store_true", help="leave out SQLite at the central's size")
    parser.add_argument("--kiosk-only", action="store_true", help="only the kiosk's log (no central)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pi-cap", action="store_true",
                        help="also the kiosk's part in a CPU cap modelling a Pi 4 core (a cgroup: as root)")
    parser.add_argument("--factor", type=float, default=4.0,
                        help="with --pi-cap: the cap is 1/FACTOR of one core (bench/pi_budget.py's FACTOR)")
    args = parser.parse_args()
    n, nk = (20_000, 5_000) if args.quick else (args.entries, args.kiosk_entries)
    rng = random.Random(5)
    print(f"# contacts over 14 days, min. overlap {MIN_OVERLAP / 60:.0f} min, "
          f"assumed stay {DEFAULT_STAY / 3600:.0f} h; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    # The people traced; the first central row takes the entries (the next makes them again,
    # the same by the seed) and drops them once loaded.
    docs = [] if args.kiosk_only else entries(n)
    picks = [{"id": d["id"], "fingerprint": d["fingerprint"]} for d in targets(docs, args.people, rng)] if docs else []
    entries_count = len(docs)
    pool = [docs]
    del docs
    print(f"# central: {entries_count} entries over {DAYS} days, {len(GATES)} gates; kiosk: {nk} entries", flush=True)
    # page: what GET /api/v1/trace answers (the first 200 contacts with their stays, and the
    # total); all: every contact with their stays (kiosk-central trace); csv: every contact's
    # total (the CSV export); x: naive against page.
    print(f"{'where':22} {'entries':>9} {'page ms':>9} {'worst ms':>9} {'all ms':>7} {'csv ms':>7} {'naive ms':>9} "
          f"{'x':>6} {'contacts':>9} {'ingest ms/100':>14} {'+ catch-up':>11}")
    base = Path(tempfile.mkdtemp(prefix="bench-trace-"))
    rows = []
    pi = None
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        backends = []
        try:
            if not args.kiosk_only:
                backends.append(("PostgreSQL (GiST)", stack.enter_context(private_postgres(durable=True))()))
        except PostgresMissing as e:
            print(f"PostgreSQL skipped: {e}")
        if not args.no_sqlite and not args.kiosk_only:
            backends.append(("SQLite", f"sqlite:///{base}/central.db"))
        for name, url in backends:
            r = central_row(name, url, pool, n, picks, naive=True)
            rows.append(r)
            print(f"{name:22} {entries_count:9d} {r['fast'] * 1000:9.0f} {r['worst'] * 1000:9.0f} "
                  f"{r['full'] * 1000:7.0f} {r['csv'] * 1000:7.0f} {r['naive'] * 1000:9.0f} "
                  f"{r['naive'] / r['fast']:6.1f} {r['listed']:9.0f} "
                  f"{r['ingest_plain_ms']:14.0f} {r['ingest_ms']:11.0f}",
                  flush=True)
            print(f"  {name}: loaded in {r['load']:.0f} s; finding the {r['stays_found']:.0f} overlapping stays "
                  f"alone (before the {MIN_OVERLAP / 60:.0f}-minute rule): {r['find'] * 1000:.0f} ms", flush=True)
        kdocs = entries(nk, seed=19)
        kpicks = targets(kdocs, args.people, rng)
        kiosk_log(base / "kiosk", kdocs)
        r = kiosk_row(base / "kiosk", kdocs, kpicks, 1.0 if args.quick else 4.0)
        rows.append(r)
        print_kiosk(r, len(kdocs))
        if args.pi_cap:
            capped = capped_kiosk_row(base / "kiosk", kdocs, kpicks, 1.0 if args.quick else 4.0, args.factor)
            if isinstance(capped, str):
                print(f"{PI_ROW}: not run: {capped}", flush=True)
            else:
                capped["name"] = PI_ROW
                print_kiosk(capped, len(kdocs), PI_ROW)
                pi = capped
    pg = next((r for r in rows if r["name"].startswith("PostgreSQL")), None)
    kiosk = rows[-1]
    unrun = "not run (--kiosk-only)" if args.kiosk_only else "skipped"
    print("goal: PostgreSQL <= 200 ms (a page of 200 and the total): " + (unrun if pg is None else
          f"{'met' if pg['fast'] <= 0.2 else 'NOT met'} ({pg['fast'] * 1000:.0f} ms)")
          + f"; kiosk <= 1 s: {'met' if kiosk['fast'] <= 1 else 'NOT met'} ({kiosk['fast'] * 1000:.0f} ms)"
          + ("" if pi is None else f"; Pi 4 model: {'met' if pi['fast'] <= 1 else 'NOT met'} "
                                   f"({pi['fast'] * 1000:.0f} ms, worst {pi['worst'] * 1000:.0f} ms)"))


if __name__ == "__main__":
    sys.exit(main())

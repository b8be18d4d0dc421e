"""Entry-log append latency at 1k, 100k and 1M entries, against tinydb's default JSONStorage
and SQLite (WAL, synchronous=FULL), all measured in the same run; then the time to open
(recover) the log and to query today's entries at the largest size.

Each store is filled with N entries spread over the 28 days of retention (the newest day
being today), all synced but the last hundred, then APPENDS entries are appended one at a
time, each acknowledged only once durable, and timed. Ours is timed through
`EntryLog.append`, the door's own call (queue, writer thread, journal record, fsync).
SQLite stores the same JSON document per row, one transaction (commit = fsync) per append.
tinydb's JSONStorage rewrites its whole file per append (and never fsyncs): it is measured
while a size's appends take under a minute, and extrapolated linearly beyond (said so).

Run: .venv/bin/python bench/store.py            (about 5 minutes; --quick: seconds)
Targets (issue #6): our p99 <= 5 ms at 1M and within 3x of SQLite's.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

import orjson
from tinydb import TinyDB
from tinydb.storages import JSONStorage

from kiosk.model import Entry, iso, new_id
from kiosk.store import EntryLog

DAYS = 28
UNSYNCED = 100
JSON_BUDGET = 60.0                      # seconds of appends before tinydb's JSONStorage is extrapolated


def entry(i: int, t: float, synced: bool) -> Entry:
    """An entry as the door writes it (sizes and fields of kiosk.checkpoint's)."""
    return Entry(id=new_id(t), site="nha-may-binh-duong", kiosk="gate-1", t=t, direction="in",
                 declaration={"format": "eu-dcc", "status": "valid", "holder": f"Nguyễn Văn An {i}",
                              "kind": "vaccination", "expires": iso(t + 180 * 86400), "flags": []},
                 fingerprint=f"{i:032x}", ble={"outcome": "confirmed", "family": "bluezone",
                                               "rssi": -61, "count_near": 1},
                 decision="allow", reasons=(), synced_at=iso(t + 60) if synced else None)


def history(n: int, now: float):
    """N entry documents over DAYS days up to `now`, a day at a time (oldest first)."""
    per_day = n / DAYS
    made = 0
    for day in range(DAYS):
        count = round(per_day * (day + 1)) - made
        start = now - (DAYS - day) * 86400 + 1
        step = 86000 / max(count, 1) if day < DAYS - 1 else (now - 600 - start) / max(count, 1)
        yield [entry(made + k, start + k * step, made + k < n - UNSYNCED).to_json() for k in range(count)]
        made += count


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


# -- the three stores -------------------------------------------------------------------
def ours(folder: Path, n: int, now: float, appends: int) -> dict:
    log = EntryLog(folder)
    log.start()
    start = time.perf_counter()
    for docs in history(n, now):
        log.import_entries(docs)
    fill = time.perf_counter() - start
    samples = []
    for k in range(appends):
        e = entry(n + k, now - 500 + k * 0.2, False)
        t0 = time.perf_counter()
        assert log.append(e)
        samples.append(time.perf_counter() - t0)
    log.stop()
    return {"samples": samples, "fill": fill}


def sqlite(folder: Path, n: int, now: float, appends: int) -> dict:
    folder.mkdir(parents=True)
    conn = sqlite3.connect(folder / "log.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE entries (id TEXT PRIMARY KEY, time TEXT NOT NULL, synced_at TEXT, body BLOB NOT NULL)")
    conn.execute("CREATE INDEX entries_time ON entries(time)")
    insert = "INSERT INTO entries VALUES (?, ?, ?, ?)"
    start = time.perf_counter()
    for docs in history(n, now):
        conn.execute("BEGIN")
        conn.executemany(insert, [(d["id"], d["time"], d["synced_at"], orjson.dumps(d)) for d in docs])
        conn.execute("COMMIT")
    fill = time.perf_counter() - start
    samples = []
    for k in range(appends):
        d = entry(n + k, now - 500 + k * 0.2, False).to_json()
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(insert, (d["id"], d["time"], d["synced_at"], orjson.dumps(d)))
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
    conn.close()
    return {"samples": samples, "fill": fill}


def tinydb_json(folder: Path, n: int, now: float, appends: int) -> dict:
    folder.mkdir(parents=True)
    db = TinyDB(folder / "log.json", storage=JSONStorage)
    table = db.table("entries")
    start = time.perf_counter()
    table.insert_multiple(d for docs in history(n, now) for d in docs)
    fill = time.perf_counter() - start
    samples = []
    spent = 0.0
    for k in range(appends):
        d = entry(n + k, now - 500 + k * 0.2, False).to_json()
        t0 = time.perf_counter()
        table.insert(d)
        samples.append(time.perf_counter() - t0)
        spent += samples[-1]
        if spent > JSON_BUDGET and len(samples) >= 5:
            break
    db.close()
    return {"samples": samples, "fill": fill}


def rss_mb() -> float:
    """Resident memory now (Linux), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_and_query(folder: Path, now: float) -> dict:
    """Open (recover) our log as the kiosk does at start; then today's entries."""
    first = EntryLog(folder)
    t0 = time.perf_counter()
    first.start()                    # reads every day; marks the older days with nothing to send
    first_open = time.perf_counter() - t0
    first.stop()
    rss0 = rss_mb()
    log = EntryLog(folder)
    t0 = time.perf_counter()
    log.start()                      # as at every later start: the marked days are not read
    opened = time.perf_counter() - t0
    midnight = iso(now - now % 86400)
    t0 = time.perf_counter()
    today = log.query(since=midnight, limit=10**7)
    queried = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts = log.today_counts(now, UTC)
    counted = time.perf_counter() - t0
    backlog = log.backlog()
    rss = rss_mb()
    log.stop()
    return {"first_open": first_open, "open": opened, "today": len(today), "query": queried,
            "counts": counts["entries"], "count_s": counted, "backlog": backlog, "rss_growth_mb": rss - rss0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the bench runs")
    parser.add_argument("--dir", default=None, help="where to build the stores (default: a temp folder)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    sizes = [1000, 5000] if args.quick else [int(s) for s in args.sizes.split(",")]
    appends = 50 if args.quick else args.appends
    now = time.time()
    base = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.dir))
    print(f"# entry-log appends, {appends} per store and size, each durable before the next; "
          f"{platform.machine()}, Python {platform.python_version()}, files in {base}")
    print(f"{'entries':>9} {'store':22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'fill s':>8} {'p99 vs SQLite':>14}")
    json_slope = None
    results = {}
    try:
        for n in sizes:
            rows = {}
            rows["SQLite WAL, FULL"] = sqlite(base / f"sqlite-{n}", n, now, appends)
            rows["ours (EntryLog)"] = ours(base / f"ours-{n}", n, now, appends)
            if json_slope is None or n <= 100_000:
                rows["tinydb JSONStorage"] = tinydb_json(base / f"json-{n}", n, now, appends)
                shutil.rmtree(base / f"json-{n}")
            sq = percentiles(rows["SQLite WAL, FULL"]["samples"])[1]
            for name, r in rows.items():
                p50, p99, worst = percentiles(r["samples"])
                note = f"{p99 / sq:13.1f}x" if name != "SQLite WAL, FULL" else f"{'1.0x':>14}"
                if name == "tinydb JSONStorage" and len(r["samples"]) < appends:
                    note += f"  ({len(r['samples'])} appends: a minute's worth)"
                print(f"{n:9d} {name:22} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {worst * 1e3:8.1f} {r['fill']:8.1f} {note}")
                if name == "tinydb JSONStorage":
                    json_slope = p50 / n
            if "tinydb JSONStorage" not in rows and json_slope is not None:
                print(f"{n:9d} {'tinydb JSONStorage':22} {json_slope * n * 1e3:8.0f} {'':>8} {'':>8} {'':>8} "
                      f"  extrapolated (linear in size from the largest measured): not run")
            results[n] = rows
            shutil.rmtree(base / f"sqlite-{n}")
        largest = max(sizes)
        oq = open_and_query(base / f"ours-{largest}", now)
        print(f"\nours at {largest} entries: first open (recover) {oq['first_open']:.2f} s, next opens "
              f"{oq['open']:.2f} s, memory held "
              f"{oq['rss_growth_mb']:.0f} MB, outbox {oq['backlog']}; today's entries ({oq['today']}) "
              f"queried in {oq['query'] * 1e3:.0f} ms, counted for the guard screen in {oq['count_s'] * 1e3:.0f} ms")
        p99 = percentiles(results[largest]["ours (EntryLog)"]["samples"])[1]
        sq = percentiles(results[largest]["SQLite WAL, FULL"]["samples"])[1]
        print(f"target at {largest}: our p99 <= 5 ms: {'met' if p99 <= 0.005 else 'NOT met'} ({p99 * 1e3:.2f} ms); "
              f"within 3x of SQLite: {'met' if p99 <= 3 * sq else 'NOT met'} ({p99 / sq:.1f}x)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

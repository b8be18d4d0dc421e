"""How fast a kiosk drains a backlog to the central once it is back: 100k entries (a day's
outage of a very busy gate) through the kiosk's own SyncWorker and EntryLog to a real
`kiosk-central serve` process on loopback, with SQLite and with PostgreSQL behind it.

The central runs in its own process (as it would on its own machine), on a durable database
(SQLite WAL with synchronous=FULL; PostgreSQL with fsync on). Every batch is signed, sent,
stored, answered and marked synced in the kiosk's log before the next, exactly as at a gate.

Run: .venv/bin/python bench/sync.py             (about 3 minutes; --quick: 2,000 entries)
Target (issue #6): a 100k backlog drained in <= 30 s on loopback.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import func, select
from store import entry  # bench/store.py (beside this script): the same entries

from kiosk.central import db as central_db
from kiosk.clock import SystemClock
from kiosk.store import EntryLog
from kiosk.sync import SyncWorker
from kiosk.testing.pgcluster import PostgresMissing, free_port, private_postgres

TOKEN = "bench-kiosk-token"


def central(url: str, folder: Path):
    """Start `kiosk-central serve` on `url`'s database; return (process, base URL)."""
    engine = central_db.connect(url)
    central_db.add_credential(engine, "gate-1", "kiosk", "nha-may-binh-duong", TOKEN)
    engine.dispose()
    port = free_port()
    exe = Path(sys.executable).with_name("kiosk-central")
    proc = subprocess.Popen([str(exe), "--db", url, "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "central.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(base + "/api/v1/health", timeout=1)
            return proc, base
        except requests.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                log = (folder / "central.log").read_text()[-500:]
                raise RuntimeError(f"the central did not start: {log}") from None
            time.sleep(0.1)


def stored(url: str) -> int:
    engine = central_db.connect(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(central_db.entries)).scalar()
    engine.dispose()
    return n


def drain(url: str, folder: Path, n: int, batch: int) -> dict:
    proc, base = central(url, folder)
    try:
        log = EntryLog(folder / "log")
        log.start()
        now = time.time()
        docs = [entry(i, now - 86400 + i * (86000 / n), False).to_json() for i in range(n)]
        log.import_entries(docs)
        assert log.backlog() == n
        worker = SyncWorker(log, base, TOKEN, "gate-1", SystemClock(), interval=60, batch_size=batch)
        t0 = time.perf_counter()
        worker.start()
        while log.backlog():
            if worker.last_error and time.perf_counter() - t0 > 5:
                raise RuntimeError(f"sync failed: {worker.last_error}")
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        worker.stop()
        log.stop()
    finally:
        proc.terminate()
        proc.wait(10)
    return {"seconds": seconds, "central": stored(url)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batches", default="100,500", help="batch sizes (sync.batch_size; 100 is the default)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2000 if args.quick else args.entries
    batches = [int(b) for b in args.batches.split(",")]
    print(f"# a {n}-entry backlog drained to `kiosk-central serve` on loopback; "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    print(f"{'database':12} {'batch':>6} {'seconds':>8} {'entries/s':>10} {'at central':>11}  target <= 30 s for 100k")
    base = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    worst = 0.0
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        backends = [("SQLite", lambda b: f"sqlite:///{base}/central-{b}.db")]
        try:
            backends.append(("PostgreSQL", stack.enter_context(private_postgres(durable=True))))
        except PostgresMissing as e:
            print(f"PostgreSQL skipped: {e}")
        for name, make_url in backends:
            for b in batches:
                folder = base / f"{name}-{b}"
                folder.mkdir()
                r = drain(make_url(b) if name == "SQLite" else make_url(), folder, n, b)
                assert r["central"] == n, f"{name}: the central holds {r['central']} of {n}"
                if b == 100:
                    worst = max(worst, r["seconds"] * 100_000 / n)
                print(f"{name:12} {b:6d} {r['seconds']:8.1f} {n / r['seconds']:10.0f} {r['central']:11d}", flush=True)
    print(f"target at the default batch size (100), scaled to 100k: "
          f"{'met' if worst <= 30 else 'NOT met'} ({worst:.1f} s)")

if __name__ == "__main__":
    main()

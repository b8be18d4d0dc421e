"""The door's append latency while an operator's CSV export of the whole log streams,
against the same appends with no export, in the same run (issue 12 item 4).

The log is filled as bench/store.py fills it (N entries over 28 days, the newest today).
The log is then opened again, as a kiosk finds it after a start. APPENDS entries are
appended one at a time through `EntryLog.append` (the door's own call), back to back, in
ROUNDS alternating blocks: with nothing else running, then while a thread exports every
entry as the operator API does (`EntryLog.entries` -> export.csv_row -> export.csv_chunks),
the text thrown away (the export is paused, not stopped, between blocks, and starts again
when it ends). Alternating blocks keep a shared machine's changing load out of the ratio.
The export runs in the kiosk's process, so it competes with the door for the interpreter
lock as the web server's thread does (the socket is left out: it only adds waiting).

Run: .venv/bin/python bench/export_latency.py          (1M entries: a few minutes; --quick: seconds)
Target (issue 12 item 4): the p99 during the export within 3x of the p99 without.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC
from pathlib import Path

import store as store_bench  # bench/store.py beside this file: the same entries and history

from kiosk.export import CSV_COLUMNS, csv_chunks, csv_row
from kiosk.store import EntryLog

ROUNDS = 4


def appends(log: EntryLog, start: int, count: int, now: float) -> list[float]:
    """Seconds taken by each of `count` appends, one after the other."""
    samples = []
    for k in range(count):
        e = store_bench.entry(start + k, now - 500 + (start + k) * 0.01, False)
        t0 = time.perf_counter()
        assert log.append(e)
        samples.append(time.perf_counter() - t0)
    return samples


class CsvExport(threading.Thread):
    """Exports the whole log as CSV, again and again, while `go` is set, until `stop`."""

    def __init__(self, log: EntryLog):
        super().__init__(name="export", daemon=True)
        self.log = log
        self.go, self.stop = threading.Event(), threading.Event()
        self.rows = 0
        self.seconds: list[float] = []

    def run(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            paused = 0.0
            docs = self.log.entries()
            finished = True
            try:
                def rows(docs):
                    nonlocal paused, finished
                    for d in docs:
                        if not self.go.is_set():
                            p0 = time.perf_counter()
                            self.go.wait()
                            paused += time.perf_counter() - p0
                        if self.stop.is_set():
                            finished = False
                            return
                        self.rows += 1
                        yield csv_row(d, UTC)
                for _ in csv_chunks(rows(docs), CSV_COLUMNS):
                    pass                                    # the socket's place
            finally:
                docs.close()
            if finished:
                self.seconds.append(time.perf_counter() - t0 - paused)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="a small log, to check the bench runs")
    parser.add_argument("--dir", default=None, help="where to build the log (default: a temp folder)")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval after the log starts (default: as the kiosk leaves it)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    n = 5000 if args.quick else args.entries
    count = 200 if args.quick else args.appends
    now = time.time()
    base = Path(tempfile.mkdtemp(prefix="bench-export-", dir=args.dir))
    print(f"# door appends with and without a full CSV export streaming, {n} entries over "
          f"{store_bench.DAYS} days, {count} appends each; {platform.machine()}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    log = EntryLog(base / "log")
    log.start()
    quiet, busy = [], []
    try:
        t0 = time.perf_counter()
        for docs in store_bench.history(n, now):
            log.import_entries(docs)
        print(f"filled in {time.perf_counter() - t0:.1f} s")
        log.stop()
        log = EntryLog(base / "log")
        log.start()
        if args.switch_interval is not None:
            sys.setswitchinterval(args.switch_interval)
        print(f"interpreter switch interval {sys.getswitchinterval() * 1e3:g} ms")
        export = CsvExport(log)
        export.start()
        block = max(1, count // ROUNDS)
        k = n
        for _ in range(ROUNDS):
            export.go.clear()
            quiet += appends(log, k, block, now)
            k += block
            export.go.set()
            rows = export.rows
            while export.rows < rows + 1000:            # appends only once rows flow
                time.sleep(0.005)
            busy += appends(log, k, block, now)
            k += block
        export.stop.set()
        export.go.set()
        export.join()
    finally:
        log.stop()
        shutil.rmtree(base, ignore_errors=True)
    q, b = store_bench.percentiles(quiet), store_bench.percentiles(busy)
    print(f"{'appends':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    print(f"{'no export':28} {q[0] * 1e3:8.2f} {q[1] * 1e3:8.2f} {q[2] * 1e3:8.1f}")
    print(f"{'while a full export streams':28} {b[0] * 1e3:8.2f} {b[1] * 1e3:8.2f} {b[2] * 1e3:8.1f}")
    full = f"{min(export.seconds):.1f} s for {n} rows" if export.seconds else "not finished during the appends"
    print(f"export: {export.rows} rows streamed in all; a whole export (pauses left out): {full}")
    ratio = b[1] / q[1]
    print(f"p99 with the export / without: {ratio:.1f}x (target <= 3x: {'met' if ratio <= 3 else 'NOT met'})")


if __name__ == "__main__":
    main()

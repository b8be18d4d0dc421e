"""The central's operator queries on a large table (issue 15): the kiosk's filters, checked on
rows read 500 at a time by id, through a real server on 127.0.0.1.

N entries of one site over 28 days (two kiosks), 1 in 100 held by "Trần Thị Bình", are
stored through the central's own ingest code. Then, timed as an operator's client sees them:
a sparse search's first page (q=binh, limit 100: about 10,000 rows read for it), every page
of a common filter (decision=deny, limit 10,000), a day as CSV, a day's report (JSON).

Run: .venv/bin/python bench/central_queries.py     (200k entries; --quick: 20k, SQLite and PostgreSQL)
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from kiosk.central import db
from kiosk.central.app import MAX_BODY_BYTES, create_app
from kiosk.model import iso, new_id
from kiosk.serving import BackgroundServer

TOKEN = "bench-operator"
SITE = "bench-site"
NAMES = ["Nguyễn Văn An", "Lê Văn Cường", "Phạm Thị Dung", "Hoàng Minh Đức"]
DAY = "2026-11-20"


def fill(engine, n: int) -> None:
    rng = random.Random(15)
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    batch = []
    for i in range(n):
        t = start + i * 28 * 86400 / n
        batch.append({"id": new_id(t, rng.randbytes(10)), "site": SITE, "kiosk": f"gate-{i % 2 + 1}", "time": iso(t),
                      "direction": "in",
                      "declaration": {"format": "pc-covid", "status": rng.choice(["valid", "valid", "invalid"]),
                                      "holder": "Trần Thị Bình" if i % 100 == 0 else rng.choice(NAMES),
                                      "kind": None, "expires": None, "flags": []},
                      "fingerprint": f"{rng.randrange(n // 3):032x}",
                      "ble": {"outcome": rng.choice(["confirmed", "likely", "not_detected"]), "family": None,
                              "rssi": -60, "count_near": 1},
                      "decision": rng.choice(["allow", "allow", "deny", "review"]), "reasons": [],
                      "override": None, "synced_at": None})
        if len(batch) == 1000:
            db.ingest(engine, batch, f"sig-{i}", 0, 300)
            batch = []
    if batch:
        db.ingest(engine, batch, "sig-last", 0, 300)


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def run(label: str, url: str, n: int) -> None:
    engine = db.connect(url)
    db.add_credential(engine, "ops", "operator", None, TOKEN)
    fill_s, _ = timed(lambda: fill(engine, n))
    server = BackgroundServer(create_app(engine=engine), "127.0.0.1", 0, threads=4, name="bench-central",
                              max_body=MAX_BODY_BYTES + 1).start()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def get(path, **params):
        r = requests.get(server.url + path, params=params, headers=auth, timeout=600)
        r.raise_for_status()
        return r

    def all_pages(**params):
        count, cursor = 0, None
        while True:
            body = get("/api/v1/entries", **params, **({"cursor": cursor} if cursor else {})).json()
            count += len(body["entries"])
            cursor = body["next_cursor"]
            if cursor is None:
                return count
    try:
        rows = [("sparse search, first page (q=binh, limit 100)",
                 *timed(lambda: len(get("/api/v1/entries", q="binh", limit=100).json()["entries"]))),
                ("decision=deny, every page of 10,000", *timed(lambda: all_pages(decision="deny", limit=10_000))),
                (f"entries.csv of {DAY}",
                 *timed(lambda: get("/api/v1/entries.csv", **{"from": DAY, "to": DAY}).content.count(b"\r\n") - 1)),
                (f"daily report of {DAY}",
                 *timed(lambda: get("/api/v1/reports/daily", site=SITE, date=DAY).json()["entries"]))]
    finally:
        server.stop()
        engine.dispose()
    print(f"\n{label}: {n} entries (filled in {fill_s:.1f} s)")
    print(f"{'query':50} {'seconds':>8} {'entries':>8}")
    for name, seconds, count in rows:
        print(f"{name:50} {seconds:8.3f} {count:8d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20k entries")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.entries
    print(f"# central queries, {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        run("SQLite", f"sqlite:///{Path(folder) / 'central.db'}", n)
    try:
        from kiosk.testing.pgcluster import PostgresMissing, private_postgres
    except ImportError:
        return
    try:
        with private_postgres() as new_database:
            run("PostgreSQL", new_database(), n)
    except PostgresMissing as e:
        print(f"\nPostgreSQL: skipped ({e})", file=sys.stderr)


if __name__ == "__main__":
    main()

"""What each kind of load leaves in the kiosk's memory: a real Kiosk with its real web
server in this process, driven by one load at a time (SSE connects, scans, health polls,
operator pulls, or the soak's mix), RSS and tracemalloc compared before and after, the
allocation sites that grew most printed, and RSS again after malloc_trim (what glibc kept
free, not live objects).

    PYTHONPATH=. python bench/memory.py --load sse --count 3000
    PYTHONPATH=. python bench/memory.py --load mixed --count 4000 --rounds 7 --no-trace [--limit-arenas]
    PYTHONPATH=. python bench/memory.py --quick

Each load runs `--count` operations as a warm-up (caches, first imports, the thread pool),
then `--rounds` measured rounds of as many; growth is per 1,000 measured operations.
tracemalloc slows the kiosk about 2x and costs memory of its own: read RSS from a
`--no-trace` run. Results: docs/reliability.md, Memory over a run.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

SITE = "nha-may-bench"
TOKEN = "bench-operator-token"


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def malloc_trim() -> float | None:
    """Give glibc's free heap pages back to the system, then the RSS in MiB (None off glibc).
    What this takes back was free memory kept by malloc, not live objects."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return round(rss_mb(), 1)


def build_kiosk(tmp: Path):
    """A kiosk with replay sources and mock pins, its web server on a free loopback port."""
    os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")
    from kiosk import config
    from kiosk.checkpoint import Kiosk
    from kiosk.declarations import sitepass

    key = sitepass.new_key()
    key_path = tmp / "site.key"
    sitepass.save_key(key, key_path)
    values = {
        "site.id": SITE, "kiosk.id": "gate-1", "data_dir": str(tmp / "kiosk"),
        "camera.backend": "replay", "ble.backend": "replay", "gpio.pin_factory": "mock",
        "sitepass.public_keys": [str(sitepass.public_path(key_path))],
        "door.open_seconds": 0.05, "web.port": 0, "web.rate_limit": 10_000_000,
        "web.operator_tokens": [hashlib.sha256(TOKEN.encode()).hexdigest()],
    }
    kiosk = Kiosk(config.load(env={}, base=config.defaults(), overrides=values))
    kiosk.start()
    return kiosk, key


def sse_connect(url: str) -> None:
    """One guard screen: open /events, read until the first health event, drop."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        seen = b""
        while b"event: faults" not in seen:
            chunk = s.recv(65536)
            if not chunk:
                break
            seen += chunk


def make_load(name: str, kiosk, key):
    """One operation of load `name` against `kiosk` (a callable taking the operation's index)."""
    from kiosk.declarations import sitepass
    from kiosk.model import Scan

    url = kiosk.web_url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    session = threading.local()

    def http():
        if not hasattr(session, "s"):
            session.s = requests.Session()
        return session.s

    if name == "sse":
        return lambda i: sse_connect(url)
    if name == "scans":
        def scan(i):
            now = kiosk.clock.now()
            code = sitepass.issue(key, SITE, f"Khách {i:06d}", now, 86400)
            kiosk.handle_scan(Scan(code.encode() if isinstance(code, str) else code, now))
        return scan
    if name == "health":
        return lambda i: http().get(url + "/api/v1/health", headers=auth, timeout=10).raise_for_status()
    if name == "operator":
        def pull(i):
            http().get(url + "/api/v1/entries?limit=200", headers=auth, timeout=30).raise_for_status()
            http().get(url + "/api/v1/reports/daily", headers=auth, timeout=30).raise_for_status()
            http().get(url + "/", timeout=30).raise_for_status()
        return pull
    if name == "mixed":
        # The soak's proportions: a scan per 25 screen connects, an operator pull per 1,000;
        # scans one at a time, as the camera thread hands them over.
        one_scan = threading.Lock()
        scan, pull = make_load("scans", kiosk, key), make_load("operator", kiosk, key)

        def mixed(i):
            sse_connect(url)
            if i % 25 == 0:
                with one_scan:
                    scan(i)
            if i % 1000 == 0:
                pull(i)
        return mixed
    raise SystemExit(f"unknown load {name!r}")


CONCURRENCY = {"sse": 20, "scans": 1, "health": 4, "operator": 2, "mixed": 20}


def run_round(op, count: int, workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(op, range(count)))


def tables(kiosk) -> dict:
    """Sizes of the per-connection and per-address tables the web side keeps."""
    app = kiosk.web_app
    server = kiosk._server._server
    return {"bus_subscribers": len(kiosk.bus._subscribers), "streams": len(app.extensions["guard_streams"]),
            "api_rate_addresses": len(app.extensions["api_rate"]), "waitress_channels": len(server._map) - 1,
            "threads": threading.active_count()}


def measure(name: str, count: int, trace: bool, top: int, rounds: int = 1) -> dict:
    with tempfile.TemporaryDirectory(prefix="kiosk-mem-") as tmp:
        kiosk, key = build_kiosk(Path(tmp))
        try:
            op = make_load(name, kiosk, key)
            run_round(op, count, CONCURRENCY[name])           # warm-up
            time.sleep(1.0)
            gc.collect()
            before_rss = rss_mb()
            before = tracemalloc.take_snapshot() if trace else None
            t0 = time.monotonic()
            trajectory = []
            for _ in range(rounds):
                run_round(op, count, CONCURRENCY[name])
                trajectory.append(round(rss_mb(), 1))
            count *= rounds
            elapsed = time.monotonic() - t0
            time.sleep(1.0)       # streams notice their client left
            gc.collect()
            after_rss = rss_mb()
            trimmed = malloc_trim()
            result = {"load": name, "count": count, "seconds": round(elapsed, 1),
                      "rss_before_mb": round(before_rss, 1), "rss_after_mb": round(after_rss, 1),
                      "rss_mb_per_1000": round((after_rss - before_rss) * 1000 / count, 3),
                      "rss_after_trim_mb": trimmed, "rss_after_each_round_mb": trajectory, "tables": tables(kiosk)}
            if trace:
                after = tracemalloc.take_snapshot()
                filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
                stats = after.filter_traces(filters).compare_to(before.filter_traces(filters), "traceback")
                grown = sum(s.size_diff for s in stats)
                result["traced_mb_per_1000"] = round(grown / 2**20 * 1000 / count, 3)
                result["top"] = [{"kb": round(s.size_diff / 1024, 1), "count": s.count_diff,
                                  "where": [f"{f.filename}:{f.lineno}" for f in s.traceback[-6:]]}
                                 for s in stats[:top]]
            return result
        finally:
            kiosk.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", default="all", choices=["all", *CONCURRENCY])
    parser.add_argument("--count", type=int, default=1000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds (RSS after each is shown)")
    parser.add_argument("--limit-arenas", action="store_true", help="cap malloc arenas first, as `kiosk run` does")
    parser.add_argument("--no-trace", action="store_true", help="RSS only, without tracemalloc")
    parser.add_argument("--top", type=int, default=8, help="allocation sites to show")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="every load, 100 operations, RSS only (a check it runs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.load, args.count, args.rounds, args.no_trace = "all", 100, 1, True
    if args.limit_arenas:
        from kiosk import heap

        heap.limit_arenas()
    if not args.no_trace:
        tracemalloc.start(12)
    results = []
    for name in (CONCURRENCY if args.load == "all" else [args.load]):
        r = measure(name, args.count, not args.no_trace, args.top, args.rounds)
        results.append(r)
        print(f"{name}: {r['count']} in {r['seconds']} s, RSS {r['rss_before_mb']} -> {r['rss_after_mb']} MB "
              f"({r['rss_mb_per_1000']} MB per 1000), traced {r.get('traced_mb_per_1000')} MB per 1000, "
              f"after malloc_trim {r['rss_after_trim_mb']} MB, {r['tables']}, "
              f"RSS after each round {r['rss_after_each_round_mb']}")
        for s in r.get("top", []):
            print(f"  {s['kb']:+9.1f} kB {s['count']:+7d}  " + " <- ".join(reversed(s["where"][-3:])))
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""BLE throughput and memory: advertisements per second through the door's path
(parse -> classify -> track) on one core, against bluepy's own parser of the same bytes
measured in the same run, and the tracker's memory over 24 simulated hours.

Run: .venv/bin/python bench/ble_parse.py [--quick] [--against GIT_REV]
Target (issue #5): >= 20,000 advertisements/s parse+classify+track; memory bounded.
--against times the tracker of an older revision on the same advertisements in the same run
(adverts/s and the cost of one scan's question, at()), to show what a change to it costs.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time

from kiosk.ble import advertising, families
from kiosk.ble.presence import PresenceTracker
from kiosk.model import Advertisement

T0 = 1_795_420_800.0


def crowded_hall(n: int, phones: int = 300, seed: int = 1) -> list[Advertisement]:
    """A hall of `phones` phones (40% GAEN, 30% Bluezone Android, 10% iPhones in the
    background, 20% other devices), each advertising about 4 times a second."""
    rng = random.Random(seed)
    kinds = ["gaen"] * 4 + ["bluezone"] * 3 + ["ios"] + ["other"] * 2
    raws = []
    for p in range(phones):
        kind = kinds[p % len(kinds)]
        if kind == "gaen":
            raws.append(families.gaen(rng.randbytes(16)))
        elif kind == "bluezone":
            raws.append(families.bluezone_android(rng.randbytes(12)))
        elif kind == "ios":
            raws.append(families.ios_background_overflow())
        else:
            raws.append(families.unrelated_device(b"Band %d" % p))
    out = []
    for i in range(n):
        p = rng.randrange(phones)
        out.append(Advertisement(f"aa:bb:cc:00:{p // 256:02x}:{p % 256:02x}", rng.randint(-95, -50),
                                 T0 + i / (phones * 4), raws[p]))
    return out


def rate(fn, adverts) -> float:
    start = time.perf_counter()
    fn(adverts)
    return len(adverts) / (time.perf_counter() - start)


def bluepy_parse(adverts):
    from bluepy.btle import ScanEntry

    for a in adverts:
        entry = ScanEntry(a.addr, 0)
        entry._update({"type": [2], "rssi": [-a.rssi], "flag": [0], "d": [a.raw]})
        entry.getScanData()


def ours_parse(adverts):
    for a in adverts:
        advertising.parse(a.raw)


def ours_classify(adverts):
    for a in adverts:
        families.classify(advertising.parse(a.raw))


def ours_track(adverts):
    tracker = PresenceTracker()
    for a in adverts:
        tracker.record(a)


def tracker_at_revision(rev: str):
    """PresenceTracker as kiosk/ble/presence.py was at git revision `rev`."""
    root = os.path.join(os.path.dirname(__file__), "..")
    source = subprocess.run(["git", "show", f"{rev}:kiosk/ble/presence.py"], cwd=root, check=True,
                            capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("kiosk.ble._presence_at_rev", f.name)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)   # dataclasses look it up
    spec.loader.exec_module(module)      # relative imports resolve against kiosk.ble
    os.unlink(f.name)
    return module.PresenceTracker


def track_with(tracker_class):
    def track(adverts):
        tracker = tracker_class()
        for a in adverts:
            tracker.record(a)
    return track


def scan_cost_ms(tracker_class, adverts, scans: int = 20, rounds: int = 5) -> float:
    """Milliseconds for one at() with the crowded hall heard: the best of `rounds` rounds, so
    that other work on a shared machine does not count."""
    tracker = tracker_class()
    for a in adverts:
        tracker.record(a)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(scans):
            tracker.at(adverts[-1].t)
        best = min(best, (time.perf_counter() - start) / scans * 1000)
    return best


def held(tracker: PresenceTracker) -> tuple[int, int, int]:
    """Beacons, RSSI samples and per-second buckets the tracker holds."""
    beacons = list(tracker._beacons.values())
    lineages = {id(b.lineage): b.lineage for b in beacons}
    return len(beacons), sum(len(b.sightings) for b in beacons), sum(len(x.seconds) for x in lineages.values())


def memory_over_a_day(hours: int, phones_at_once: int = 20) -> list[tuple]:
    """Phones come and go all day; each rotates its identity every 15 minutes and
    advertises once a second. Returns (hour, beacons, samples, buckets, max RSS MiB) per hour."""
    rng = random.Random(2)
    tracker = PresenceTracker()
    rows = []
    raw_of = {}
    for second in range(hours * 3600):
        t = T0 + second
        for p in range(phones_at_once):
            # phone p is a different person every 10 minutes, with a new identity every 15
            identity = (p, second // 600, second // 900)
            raw = raw_of.get(identity)
            if raw is None:
                raw = raw_of[identity] = families.gaen(rng.randbytes(16))
                if len(raw_of) > 10_000:
                    raw_of.clear()
            tracker.record(Advertisement(f"{identity}", -60 - p, t, raw))
        if second % 3600 == 3599:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append((second // 3600 + 1, *held(tracker), rss))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (for CI smoke tests)")
    parser.add_argument("--against", metavar="GIT_REV", help="also time the tracker of this revision")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    hours = 1 if args.quick else 24
    adverts = crowded_hall(n)
    print(f"# BLE parse/classify/track, {n} advertisements, one core; {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    results = {}
    try:
        results["bluepy ScanEntry._update + getScanData (baseline)"] = rate(bluepy_parse, adverts)
    except ImportError:
        print("(bluepy not installed: no baseline row; pip install '.[pi]')")
    results["kiosk parse"] = rate(ours_parse, adverts)
    results["kiosk parse + classify"] = rate(ours_classify, adverts)
    results["kiosk parse + classify + track (the door's path)"] = rate(ours_track, adverts)
    older = tracker_at_revision(args.against) if args.against else None
    if older is not None:
        results[f"  the same with the tracker at {args.against}"] = rate(track_with(older), adverts)
    base = next(iter(results.values()))
    print(f"{'path':55} {'adverts/s':>12} {'vs first row':>13}")
    for name, r in results.items():
        print(f"{name:55} {r:12,.0f} {r / base:12.2f}x")
    door = results["kiosk parse + classify + track (the door's path)"]
    print(f"target >= 20,000/s: {'met' if door >= 20_000 else 'NOT met'}")
    hall = adverts[:min(len(adverts), 50_000)]
    print(f"one scan's at() with {len(hall)} advertisements heard: {scan_cost_ms(PresenceTracker, hall):.2f} ms"
          + (f" ({scan_cost_ms(older, hall):.2f} ms at {args.against})" if older is not None else ""))
    print()
    print(f"# tracker memory, 20 phones at a time, identities rotating every 15 min, {hours} h simulated")
    print(f"{'hour':>4} {'beacons':>8} {'samples':>8} {'buckets':>8} {'max RSS MiB':>12}")
    for hour, beacons, samples, buckets, rss in memory_over_a_day(hours):
        print(f"{hour:4} {beacons:8} {samples:8} {buckets:8} {rss:12.1f}")


if __name__ == "__main__":
    main()

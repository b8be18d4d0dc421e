"""Verifications per second on one core: EU DCCs signed ES256 and PS256 (RSA-2048, as
Vietnam's), and the site's own pass, through the door's Verifier; each against the bare
signature check of the same message measured in the same run (the floor we cannot beat).

Then the hostile payloads of tests/test_hostile_codes.py (bombs, deep CBOR, flipped bytes at
each layer): median, p99 and the slowest.

Run: .venv/bin/python bench/verify.py
Targets: a full verification under 5 ms on this machine (issue #4); no hostile payload over
50 ms.
"""
from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

import base45

from kiosk.declarations import Verifier, cose, sitepass
from kiosk.declarations.trust import TrustList
from kiosk.testing import dcc_issuer as issuer

NOW = 1_795_400_000.0
ROUNDS = 2000


def timed(fn, rounds=ROUNDS) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def bare_signature(payload: str, key):
    import zlib
    raw = base45.b45decode(payload[4:])
    msg = cose.decode_sign1(zlib.decompress(raw) if payload.startswith("HC1:") else raw)
    return lambda: cose.verify_signature(msg, key)


def main():
    global ROUNDS
    if "--quick" in sys.argv:
        ROUNDS = 200
    es_key, es_der = issuer.dsc("ES256")
    ps_key, ps_der = issuer.dsc("PS256")
    site_key = sitepass.new_key()
    verifier = Verifier("site", {cose.key_id(site_key.public_key()): [site_key.public_key()]},
                        TrustList.from_der([es_der, ps_der], downloaded=NOW))
    cases = {
        "EU DCC, ES256": (issuer.issue(issuer.vaccination(), es_key, es_der, NOW - 86400, NOW + 86400), es_key),
        "EU DCC, PS256 (RSA-2048)": (issuer.issue(issuer.vaccination(), ps_key, ps_der, NOW - 86400, NOW + 86400),
                                     ps_key),
        "site pass, ES256": (sitepass.issue(site_key, "site", "Nguyễn Văn An", NOW, 3600), site_key),
    }
    print(f"# verifications on one core, {ROUNDS} rounds each; {platform.machine()}, "
          f"Python {platform.python_version()}")
    print(f"{'code':28} {'bare signature µs':>18} {'full verify µs (median)':>24} {'p95 µs':>8} {'per s':>8} "
          f"{'vs bare':>8}")
    worst = 0.0
    for name, (payload, key) in cases.items():
        data = payload.encode()
        assert verifier.verify(data, NOW).status == "valid", name
        bare = statistics.median(timed(bare_signature(payload, key.public_key())))
        full = timed(lambda data=data: verifier.verify(data, NOW))
        median, p95 = statistics.median(full), statistics.quantiles(full, n=20)[-1]
        worst = max(worst, p95)
        print(f"{name:28} {bare * 1e6:18.0f} {median * 1e6:24.0f} {p95 * 1e6:8.0f} {1 / median:8.0f} "
              f"{median / bare:7.2f}x")
    print(f"target: full verification under 5 ms: {'met' if worst < 0.005 else 'NOT met'} "
          f"(worst p95 {worst * 1e3:.2f} ms)")
    hostile(2_000 if "--quick" in sys.argv else 20_000)


def hostile(count: int) -> None:
    """Time the hostile payloads of the test suite through the door's Verifier."""
    from kiosk.testing.hostile import NOW as HOSTILE_NOW
    from kiosk.testing.hostile import Mutator, seeds

    texts, verifier = seeds(Path(__file__).resolve().parents[2] / "shared")
    mutant = Mutator(texts, seed=20261123)
    samples = []
    for _ in range(count):
        payload = mutant()
        start = time.perf_counter()
        verifier.verify(payload, HOSTILE_NOW).summary()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99)]
    print(f"hostile payloads: {count}, median {statistics.median(samples) * 1e6:.0f} µs, p99 {p99 * 1e6:.0f} µs, "
          f"slowest {samples[-1] * 1e3:.2f} ms")
    print(f"target: no hostile payload over 50 ms: {'met' if samples[-1] < 0.050 else 'NOT met'}")


if __name__ == "__main__":
    main()

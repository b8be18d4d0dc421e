"""Hostile input: 100,000 mutated payloads through the door's verifier.

Seeds are real codes (our own DCCs signed ES256 and PS256, a site pass, a PC-Covid QR, and
the shared EU test vectors when present); mutations flip bytes at each layer (the text,
the compressed bytes, the COSE bytes), truncate, splice garbage, and build zlib bombs,
deep or huge CBOR, wrong tags and absurd dates. No exception may escape, every refusal
must carry a reason, the door's entry summary must be writable, no payload may hang the
door (TIMEOUT), and memory must stay bounded. How fast each payload is belongs to the
benchmark (bench/verify.py, "hostile payloads"), not here: this machine is shared.
"""
from __future__ import annotations

import resource
import time

import pytest

from kiosk.declarations import Verifier
from kiosk.declarations.trust import TrustList
from kiosk.testing import dcc_issuer as issuer
from kiosk.testing.hostile import NOW, Mutator, seeds

from .conftest import SHARED

MUTANTS = 100_000
# Generous: a hang or a blow-up (a bomb inflated, a deep structure walked), not a busy machine.
# The benchmark measures the slowest payload (a few ms on an idle core).
TIMEOUT = 2.0                   # seconds


@pytest.mark.slow
def test_a_hundred_thousand_hostile_codes():
    texts, verifier = seeds(SHARED)
    mutant = Mutator(texts, seed=20261123)
    slowest, outcomes = 0.0, {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(MUTANTS):
        payload = mutant()
        start = time.perf_counter()
        d = verifier.verify(payload, NOW)
        d.summary()                                       # what the entry log writes
        slowest = max(slowest, time.perf_counter() - start)
        assert d.status in ("valid", "invalid", "expired", "unknown", "review")
        assert d.status == "valid" or d.reasons, (payload[:80], d)
        first = d.reasons[0] if d.reasons else "valid"
        outcomes[first] = outcomes.get(first, 0) + 1
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert slowest < TIMEOUT, f"a payload took {slowest:.2f} s"
    assert grown < 64, f"peak memory grew by {grown:.0f} MiB"
    assert "verifier_error" not in outcomes, outcomes
    # every layer was reached by some mutants
    for reason in ("malformed_base45", "malformed_compression", "malformed_cose", "bad_signature", "unknown_code"):
        assert outcomes.get(reason), (reason, outcomes)


def test_absurd_dates_in_a_correctly_signed_code_are_refused_not_crashed():
    key, der = issuer.dsc("ES256")
    verifier = Verifier("site", {}, TrustList.from_der([der], downloaded=NOW))
    for exp in (2**62, -5, 1e300):
        payload = issuer.issue(issuer.vaccination(), key, der, NOW - 10, exp)
        d = verifier.verify(payload.encode(), NOW)
        d.summary()
        assert d.status != "valid" and d.reasons

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

import json
import random
import resource
import time
import zlib

import base45
import cbor2
import pytest

from kiosk.declarations import Verifier, cose, sitepass
from kiosk.declarations.trust import TrustList
from kiosk.model import parse_iso
from kiosk.testing import dcc_issuer as issuer

from .conftest import SHARED

NOW = parse_iso("2026-11-23T01:00:00Z")
MUTANTS = 100_000
# Generous: a hang or a blow-up (a bomb inflated, a deep structure walked), not a busy machine.
# The benchmark measures the slowest payload (a few ms on an idle core).
TIMEOUT = 2.0                   # seconds


def _seeds():
    es_key, es_der = issuer.dsc("ES256")
    ps_key, ps_der = issuer.dsc("PS256")
    site_key = sitepass.new_key()
    texts = [issuer.issue(issuer.vaccination(), es_key, es_der, NOW - 86400, NOW + 86400),
             issuer.issue(issuer.lab_test("2026-11-22T20:00:00Z"), ps_key, ps_der, NOW - 86400, NOW + 86400),
             sitepass.issue(site_key, "site", "Nguyễn Văn An", NOW, 3600),
             "001099012345|Nguyễn Văn An|01011990|1|Q|"]
    vectors = SHARED / "testdata" / "dcc"
    if vectors.is_dir():
        for path in sorted(vectors.glob("*/*.json"))[::5]:
            texts.append(json.loads(path.read_bytes().lstrip(b"\xef\xbb\xbf"))["PREFIX"])
    verifier = Verifier("site", {cose.key_id(site_key.public_key()): [site_key.public_key()]},
                        TrustList.from_der([es_der, ps_der], downloaded=NOW))
    return texts, verifier


def _hc1(body: bytes) -> bytes:
    return b"HC1:" + base45.b45encode(body)


def _flip(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _nested(depth: int) -> bytes:
    return b"\x81" * depth + b"\x00"             # arrays of one, `depth` deep


class Mutator:
    """Seeded mutations; the costly fixed payloads (bombs, deep CBOR) are built once."""

    def __init__(self, texts: list[str], seed: int):
        self.rng = random.Random(seed)
        self.texts = texts
        self.layers = {}
        for text in texts:
            if text.startswith("HC1:"):
                try:
                    compressed = base45.b45decode(text[4:])
                    inner = zlib.decompress(compressed)
                    self.layers[text] = (compressed, inner, cose.decode_sign1(inner))
                except Exception:
                    pass
        huge = b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff"      # a byte string of 2^64-1 bytes follows
        self.fixed = [_hc1(zlib.compress(b"\x00" * n)) for n in (17_000, 1_000_000, 5_000_000)]   # bombs
        self.fixed += [_hc1(zlib.compress(_nested(n))) for n in (100, 10_000, 15_000)]           # deep CBOR
        self.fixed.append(_hc1(zlib.compress(b"\xd2\x84\x40\xa0\x41x" + huge)))                  # huge CBOR

    def __call__(self) -> bytes:
        rng = self.rng
        text = rng.choice(self.texts)
        raw = text.encode()
        kind = rng.randrange(12)
        if kind == 0:
            return _flip(raw, rng)
        if kind == 1:
            return raw[:rng.randrange(len(raw) + 1)]
        if kind == 2:
            cut = rng.randrange(len(raw) + 1)
            return raw[:cut] + rng.randbytes(rng.randint(1, 40)) + raw[cut:]
        if kind == 3:
            return rng.randbytes(rng.randint(0, 4096))                   # 4 kB of garbage
        if kind == 4:
            return rng.choice(self.fixed)
        if text not in self.layers:
            return _flip(raw, rng)
        compressed, inner, msg = self.layers[text]
        if kind in (5, 6):
            return _hc1(_flip(compressed, rng))
        if kind in (7, 8):
            return _hc1(zlib.compress(_flip(inner, rng)))
        if kind == 9:
            return _hc1(zlib.compress(inner[:rng.randrange(len(inner))]))
        if kind == 10:
            tag = rng.choice([17, 19, 61, 98, 2**32])
            return _hc1(zlib.compress(cbor2.dumps(cbor2.CBORTag(tag, [msg.protected, dict(msg.unprotected),
                                                                      msg.payload, msg.signature]))))
        claims = dict(cbor2.loads(msg.payload))                           # absurd dates (the
        claims[rng.choice([4, 6])] = rng.choice([-1, 2**63, 1e300, "soon", None, float("nan")])  # signature
        return _hc1(zlib.compress(cbor2.dumps(cbor2.CBORTag(18, [msg.protected, dict(msg.unprotected),  # then
                                                                 cbor2.dumps(claims), msg.signature]))))  # fails)


@pytest.mark.slow
def test_a_hundred_thousand_hostile_codes():
    texts, verifier = _seeds()
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

"""Hostile QR payloads for the verifier: seeded mutations of real codes, decompression bombs,
deep and huge CBOR. Shared by tests/test_hostile_codes.py and bench/verify.py."""
from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import base45
import cbor2

from ..declarations import Verifier, cose, sitepass
from ..declarations.trust import TrustList
from ..model import parse_iso
from . import dcc_issuer as issuer

__all__ = ["NOW", "Mutator", "seeds"]

NOW = parse_iso("2026-11-23T01:00:00Z")


def seeds(shared: Path | None = None) -> tuple[list[str], Verifier]:
    """Valid codes of every format to mutate (and every fifth official DCC vector when
    `shared`, the ../shared folder, has them), and a Verifier that trusts their signers."""
    es_key, es_der = issuer.dsc("ES256")
    ps_key, ps_der = issuer.dsc("PS256")
    site_key = sitepass.new_key()
    texts = [issuer.issue(issuer.vaccination(), es_key, es_der, NOW - 86400, NOW + 86400),
             issuer.issue(issuer.lab_test("2026-11-22T20:00:00Z"), ps_key, ps_der, NOW - 86400, NOW + 86400),
             sitepass.issue(site_key, "site", "Nguyễn Văn An", NOW, 3600),
             "001099012345|Nguyễn Văn An|01011990|1|Q|"]
    vectors = shared / "testdata" / "dcc" if shared else None
    if vectors is not None and vectors.is_dir():
        for path in sorted(vectors.glob("*/*.json"))[::5]:
            texts.append(json.loads(path.read_bytes().lstrip(b"\xef\xbb\xbf"))["PREFIX"])
    verifier = Verifier("site", {cose.key_id(site_key.public_key()): [site_key.public_key()]},
                        TrustList.from_der([es_der, ps_der], downloaded=NOW))
    return texts, verifier


def _hc1(body: bytes) -> bytes:
    return b"HC1:" + base45.b45encode(body)


def _flip(data: bytes, rng: random.Random) -> bytes:
    flipped = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if flipped:
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
    return bytes(flipped)


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

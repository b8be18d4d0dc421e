"""Payload parsing and verification: pure, time passed in."""
import time

import base45
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.declarations import Verifier, cose, sitepass
from kiosk.model import EXPIRED, INVALID, UNKNOWN, VALID

NOW = 1_795_000_000.0
SITE = "factory-a"


@pytest.fixture(scope="module")
def key():
    return sitepass.new_key()


@pytest.fixture(scope="module")
def verifier(key):
    return Verifier(SITE, {cose.key_id(key.public_key()): [key.public_key()]})


def test_a_valid_pass(verifier, key):
    text = sitepass.issue(key, SITE, "Nguyễn Văn An", NOW - 60, 3600)
    d = verifier.verify(text.encode(), NOW)
    assert (d.format, d.status, d.reasons, d.holder) == ("sitepass", VALID, (), "Nguyễn Văn An")
    assert d.expires == int(NOW - 60) + 3600
    assert len(text) < 300, "a pass must fit a phone screen at a readable module size"


def test_ed25519_passes_verify_too(verifier):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed = ed25519.Ed25519PrivateKey.generate()
    v = Verifier(SITE, {cose.key_id(ed.public_key()): [ed.public_key()]})
    assert v.verify(sitepass.issue(ed, SITE, "B", NOW, 60).encode(), NOW).status == VALID


@pytest.mark.parametrize("make, status, reason", [
    (lambda k: sitepass.issue(k, SITE, "A", NOW - 7200, 3600), EXPIRED, "expired"),
    (lambda k: sitepass.issue(k, SITE, "A", NOW + 3600, 3600), INVALID, "not_yet_valid"),
    (lambda k: sitepass.issue(k, "factory-b", "A", NOW, 3600), INVALID, "other_site"),
    (lambda k: sitepass.issue(sitepass.new_key(), SITE, "A", NOW, 3600), INVALID, "unknown_signer"),
    (lambda k: sitepass.issue(sitepass.new_key(), SITE, "A", NOW, 3600,
                              kid=cose.key_id(k.public_key())), INVALID, "bad_signature"),
    (lambda k: "KP1:not*base45", INVALID, "malformed_base45"),
    (lambda k: "KP1:" + base45.b45encode(b"\xff\x00garbage").decode(), INVALID, "malformed_cose"),
    (lambda k: "KP1:" + base45.b45encode(cbor2.dumps(cbor2.CBORTag(99, [1]))).decode(), INVALID, "malformed_cose"),
])
def test_bad_passes_say_why(verifier, key, make, status, reason):
    d = verifier.verify(make(key).encode(), NOW)
    assert (d.status, d.reasons) == (status, (reason,))


def test_a_tampered_pass_fails_its_signature(verifier, key):
    text = sitepass.issue(key, SITE, "Nguyễn Văn An", NOW, 3600)
    raw = bytearray(base45.b45decode(text[4:]))
    i = raw.find(b"Nguy")
    raw[i] ^= 0x01                                    # change one letter of the name
    d = verifier.verify(("KP1:" + base45.b45encode(bytes(raw)).decode()).encode(), NOW)
    assert (d.status, d.reasons, d.holder) == (INVALID, ("bad_signature",), None)


def test_declared_symptoms_travel_as_flags(verifier, key):
    d = verifier.verify(sitepass.issue(key, SITE, "A", NOW, 60, flags=["fever"]).encode(), NOW)
    assert d.status == VALID and d.flags == ("fever",)


@pytest.mark.parametrize("payload", [b"https://menu.example/", b"WIFI:S:Cafe;T:WPA;P:12345678;;",
                                     b"\x00\xff\xfe binary", b"1|2|3", b""])
def test_anything_else_is_an_unknown_code(verifier, payload):
    d = verifier.verify(payload, NOW)
    assert (d.format, d.status) == ("unknown", UNKNOWN)
    assert d.reasons == ("unknown_code",)


def test_a_broken_dcc_is_a_dcc_with_a_reason(verifier):
    d = verifier.verify(b"HC1:6BFOXN", NOW)
    assert (d.format, d.status, d.reasons) == ("eu-dcc", INVALID, ("malformed_compression",))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_no_payload_crashes_the_verifier(verifier, tail):
    start = time.perf_counter()
    for payload in (b"KP1:" + tail, b"KP1:" + base45.b45encode(tail)):
        d = verifier.verify(payload, NOW)
        assert d.status in (INVALID, UNKNOWN) and d.reasons
    assert time.perf_counter() - start < 1.0


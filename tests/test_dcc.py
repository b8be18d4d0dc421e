"""EU DCC verification with our own signer certificates: the rules a Vietnamese workplace
uses, every failure a named reason. Pure: time and trust list are arguments."""
from __future__ import annotations

import zlib

import base45
import pytest

from kiosk.declarations import Verifier, dcc
from kiosk.declarations.trust import TrustList, cert_kid
from kiosk.model import parse_iso
from kiosk.testing import dcc_issuer as issuer
from kiosk.testing.dcc_issuer import DAY

NOW = parse_iso("2026-11-23T01:00:00Z")


@pytest.fixture(scope="module")
def es256():
    return issuer.dsc("ES256")


@pytest.fixture(scope="module")
def ps256():
    return issuer.dsc("PS256")


def check(payload, der_list, at=NOW, rules=dcc.CertificateRules(), downloaded=None):
    trust = TrustList.from_der(der_list, downloaded=NOW - 3600 if downloaded is None else downloaded)
    return dcc.verify(payload, trust, at, rules)[0]


@pytest.mark.parametrize("signer", ["es256", "ps256"])
def test_vietnams_vaccine_passport_verifies(request, signer):
    key, der = request.getfixturevalue(signer)
    d = check(issuer.issue(issuer.vaccination(), key, der, NOW - 10 * DAY, NOW + 300 * DAY), [der])
    assert (d.format, d.status, d.reasons, d.holder) == ("eu-dcc", "valid", (), "Nguyễn Văn An")
    assert d.details["kind"] == "vaccination" and d.details["dob"] == "1990-01-01"
    assert d.details["alg"] == signer.upper()
    assert d.expires == int(NOW + 300 * DAY)


@pytest.mark.parametrize("hcert, reasons", [
    (issuer.vaccination(dn=1, sd=2), ("vaccination_incomplete",)),
    (issuer.vaccination(dt="2026-11-15"), ("vaccination_too_recent",)),
    (issuer.lab_test("2026-11-21T09:00:00Z"), ()),                                  # PCR 40 h ago
    (issuer.lab_test("2026-11-19T09:00:00Z"), ("test_too_old",)),                  # PCR 88 h ago
    (issuer.lab_test("2026-11-22T20:00:00Z", tt="LP217198-3"), ()),                # rapid 5 h ago
    (issuer.lab_test("2026-11-21T20:00:00Z", tt="LP217198-3"), ("test_too_old",)),  # rapid 29 h ago
    (issuer.lab_test("2026-11-22T20:00:00Z", tr="260373001"), ("test_not_negative",)),
    (issuer.recovery("2026-08-01", "2026-08-12", "2027-01-28"), ()),
    (issuer.recovery("2026-03-01", "2026-03-12", "2027-01-28"), ("recovery_too_old",)),
])
def test_entry_rules(es256, hcert, reasons):
    key, der = es256
    d = check(issuer.issue(hcert, key, der, NOW - DAY, NOW + 30 * DAY), [der])
    assert d.reasons == reasons
    assert d.status == ("valid" if not reasons else "invalid")


def test_rules_come_from_settings(es256):
    key, der = es256
    payload = issuer.issue(issuer.vaccination(dt="2026-11-15"), key, der, NOW - DAY, NOW + 30 * DAY)
    assert check(payload, [der], rules=dcc.CertificateRules(vaccination_min_days=7)).status == "valid"


def test_expired_and_not_yet_valid(es256):
    key, der = es256
    assert check(issuer.issue(issuer.vaccination(), key, der, NOW - 40 * DAY, NOW - DAY), [der]).reasons == ("expired",)
    d = check(issuer.issue(issuer.vaccination(), key, der, NOW + DAY, NOW + 40 * DAY), [der])
    assert d.reasons == ("not_yet_valid",)


def test_forged_and_unknown_signers(es256):
    key, der = es256
    other_key, other_der = issuer.dsc("ES256")
    forged = issuer.issue(issuer.vaccination(), other_key, other_der, NOW - DAY, NOW + DAY, kid=cert_kid(der))
    d = check(forged, [der])
    assert (d.status, d.reasons, d.holder) == ("invalid", ("bad_signature",), None)
    d = check(issuer.issue(issuer.vaccination(), other_key, other_der, NOW - DAY, NOW + DAY), [der])
    assert d.reasons == ("unknown_signer",)


def test_several_signers_share_a_kid(es256):
    key, der = es256
    impostor_key, impostor_der = issuer.dsc("ES256")
    trust = TrustList(downloaded=NOW)
    trust.add(impostor_der, kid=cert_kid(der))        # same kid, other key: tried first, fails
    trust.add(der)
    payload = issuer.issue(issuer.vaccination(), key, der, NOW - DAY, NOW + DAY)
    assert dcc.verify(payload, trust, NOW)[0].status == "valid"


def test_key_usage_limits_what_a_signer_may_sign():
    key, der = issuer.dsc("ES256", types="t")
    d = check(issuer.issue(issuer.vaccination(), key, der, NOW - DAY, NOW + DAY), [der])
    assert d.reasons == ("wrong_key_usage",)
    d = check(issuer.issue(issuer.lab_test("2026-11-22T20:00:00Z"), key, der, NOW - DAY, NOW + DAY), [der])
    assert d.status == "valid"


def test_iat_and_exp_must_fall_within_the_signers_validity():
    key, der = issuer.dsc("ES256", not_before=NOW - 100 * DAY, not_after=NOW + 10 * DAY)
    d = check(issuer.issue(issuer.vaccination(), key, der, NOW - DAY, NOW + 30 * DAY), [der])
    assert d.reasons == ("outside_signer_validity",)


def test_kid_placement_and_cwt_tag(es256):
    key, der = es256
    kid = cert_kid(der)
    for payload in (issuer.issue(issuer.vaccination(), key, der, NOW - DAY, NOW + DAY, kid=None, unprotected_kid=kid),
                    issuer.issue(issuer.vaccination(), key, der, NOW - DAY, NOW + DAY, cwt_tag=True)):
        assert check(payload, [der]).status == "valid"
    # protected kid wins over the unprotected one
    wrong = issuer.issue(issuer.vaccination(), key, der, NOW - DAY, NOW + DAY, kid=b"12345678", unprotected_kid=kid)
    assert check(wrong, [der]).reasons == ("unknown_signer",)


def test_an_old_trust_list_sends_valid_certificates_to_review(es256):
    key, der = es256
    payload = issuer.issue(issuer.vaccination(), key, der, NOW - 20 * DAY, NOW + 30 * DAY)
    d = check(payload, [der], downloaded=NOW - 8 * DAY)
    assert (d.status, d.reasons) == ("review", ("trust_list_out_of_date",))


@pytest.mark.parametrize("payload, reason", [
    ("HC1:" + base45.b45encode(zlib.compress(b"\x00" * 10_000_000)).decode(), "malformed_compression"),  # zlib bomb
    ("HC1:" + base45.b45encode(b"not zlib at all").decode(), "malformed_compression"),
    ("HC1:" + base45.b45encode(zlib.compress(b"\xa1\x01\x02")).decode(), "malformed_cose"),
    ("HC1:%%%", "malformed_base45"),
])
def test_broken_codes_fail_with_a_reason(es256, payload, reason):
    assert check(payload, [es256[1]]).reasons == (reason,)


def test_the_bomb_is_bounded():
    r = dcc.inspect("HC1:" + base45.b45encode(zlib.compress(b"\x00" * 10_000_000)).decode(), TrustList(), NOW)
    assert r.decompressed is False and r.cose_bytes is None


def test_the_door_verifier_reads_all_formats(es256, tmp_path):
    key, der = es256
    trust = TrustList.from_der([der], downloaded=NOW)
    verifier = Verifier("site", {}, trust)
    vc = issuer.issue(issuer.vaccination(), key, der, NOW - 20 * DAY, NOW + 30 * DAY).encode()
    assert verifier.verify(vc, NOW).status == "valid"
    pc = "001099012345|Nguyễn Văn An|01011990|1|Q1D|".encode()
    d = verifier.verify(pc, NOW)
    assert (d.format, d.status, d.reasons, d.holder, d.details["dob"]) == (
        "pc-covid", "review", ("identity_only",), "Nguyễn Văn An", "1990-01-01")
    assert "001099012345" not in str(d.summary())
    masked = verifier.verify("0010990*****|Trần Thị Bình|05051985".encode(), NOW)
    assert (masked.format, masked.holder) == ("pc-covid", "Trần Thị Bình")


def test_trust_list_file_round_trip(es256, ps256, tmp_path):
    trust = TrustList.from_der([es256[1], ps256[1]], downloaded=NOW, source="https://example.vn/dsc")
    trust.save(tmp_path / "trust.json")
    again = TrustList.load(tmp_path / "trust.json")
    assert len(again) == 2 and again.downloaded == NOW and again.source == "https://example.vn/dsc"
    assert again.signers(cert_kid(es256[1]))[0].country == "VN"

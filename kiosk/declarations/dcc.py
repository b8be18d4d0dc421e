"""EU Digital COVID Certificates ("HC1:"), by the hcert specification.

HC1: prefix -> base45 -> zlib (bounded) -> COSE_Sign1 -> CWT claims (1 iss, 4 exp, 6 iat,
-260 -> 1 the hcert) -> signature by a trusted DSC (kid from the protected header, else the
unprotected one; every certificate with that kid is tried) -> the DSC's validity and key
usage -> expiry at the verification time -> the site's entry rules.

Vietnam's vaccine passport (2022) is such a certificate, signed PS256 with RSA-2048.
`inspect` keeps the outcome of every stage (for `kiosk verify` and the test vectors);
`verify` turns it into the door's Declaration. Pure: time and trust are arguments.
"""
from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import base45
import cbor2

from ..model import EXPIRED, INVALID, LATEST, REVIEW_STATUS, VALID, Declaration
from . import cose, dccschema
from .trust import Signer, TrustList

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13; read by mypy only

PREFIX = "HC1:"
FORMAT = "eu-dcc"
# A real DCC inflates to under 2 kB; a hostile one must not make us allocate more than this.
MAX_INFLATED = 16 * 1024
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_HCERT = 1, 4, 6, -260
# Extended key usage OIDs of DSCs (hcert_spec): which certificate types a DSC may sign.
# Early DSCs (and the EU test vectors) carry the draft arc with an extra ".0" after
# "1.3.6.1.4.1"; both are in use and both are honoured.
EKU_TYPES = {}
for _arc in ("1.3.6.1.4.1.1847.2021.1", "1.3.6.1.4.1.0.1847.2021.1"):
    EKU_TYPES.update({f"{_arc}.1": "t", f"{_arc}.2": "v", f"{_arc}.3": "r"})
TYPE_NAMES = {"v": "vaccination", "t": "test", "r": "recovery"}
# Value sets (ehn-dcc-valuesets): test types and results.
TEST_NAAT, TEST_RAT = "LP6464-4", "LP217198-3"
RESULT_NOT_DETECTED = "260415000"


@dataclass(frozen=True)
class CertificateRules:
    """Entry rules for DCCs; defaults are what a Vietnamese workplace would use."""
    vaccination_min_days: int = 14
    pcr_max_hours: float = 72.0
    rat_max_hours: float = 24.0
    recovery_max_days: int = 180
    trust_max_age: float = 7 * 86400.0

    @classmethod
    def from_settings(cls, settings) -> CertificateRules:
        return cls(settings["dcc.vaccination_min_days"], settings["dcc.pcr_max_hours"],
                   settings["dcc.rat_max_hours"], settings["dcc.recovery_max_days"],
                   settings["dcc.trust_max_age_days"] * 86400.0)


@dataclass
class Inspection:
    """What each stage of the chain found; None = the stage was not reached."""
    unprefixed: bool | None = None
    base45: bool | None = None
    decompressed: bool | None = None
    compressed_bytes: bytes | None = None
    cose_bytes: bytes | None = None
    cose: bool | None = None
    cbor: bool | None = None
    claims: dict | None = None
    hcert: dict | None = None
    kid: bytes | None = None
    alg: str | None = None
    signature: bool | None = None
    signer: Signer | None = None
    cert_type: str | None = None
    key_usage: bool | None = None
    in_time: bool | None = None
    schema_errors: list[str] | None = None
    reasons: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> Inspection:
        self.reasons.append(reason)
        return self


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_INFLATED)
    if inflater.unconsumed_tail:
        raise ValueError("inflates past the bound")
    if not inflater.eof:
        raise ValueError("truncated zlib stream")
    return out


def _plain(obj):
    """cbor2 6 gives frozendicts, tuples and (for tagged dates) datetimes: make JSON-like
    data, dates as the ISO text the schema uses."""
    if isinstance(obj, datetime):
        text = obj.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return text
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, dict) or (hasattr(obj, "items") and not isinstance(obj, (bytes, str))):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def inspect(text: str, trust: TrustList, at: float) -> Inspection:
    r = Inspection()
    if not text.startswith(PREFIX):
        r.unprefixed = False
        return r.fail("not_hc1")
    r.unprefixed = True
    try:
        compressed = base45.b45decode(text[len(PREFIX):])
    except (ValueError, TypeError):
        r.base45 = False
        return r.fail("malformed_base45")
    r.base45 = True
    r.compressed_bytes = compressed
    try:
        raw = _inflate(compressed)
    except (zlib.error, ValueError):
        r.decompressed = False
        return r.fail("malformed_compression")
    r.decompressed = True
    r.cose_bytes = raw
    try:
        msg = cose.decode_sign1(raw)
    except cose.CoseError:
        r.cose = False
        return r.fail("malformed_cose")
    r.cose = True
    r.kid, r.alg = msg.kid, cose.ALG_NAMES.get(msg.alg) if msg.alg is not None else None
    try:
        claims = cbor2.loads(msg.payload)
        hcert = claims[CLAIM_HCERT][1]
        if not hasattr(hcert, "items"):
            raise TypeError("hcert is not a map")
        r.claims, r.hcert = _plain(claims), _plain(hcert)
    except Exception:  # cbor2 raises many types on hostile input
        r.cbor = False
        return r.fail("malformed_claims")
    r.cbor = True
    types = [k for k in ("v", "t", "r") if r.hcert.get(k)]
    r.cert_type = types[0] if len(types) == 1 else None

    signers = trust.signers(msg.kid)
    r.signer = next((c for c in signers if cose.verify_signature(msg, c.public_key)), None)
    r.signature = r.signer is not None
    if not signers:
        r.fail("unknown_signer")
    elif r.signer is None:
        r.fail("bad_signature")
    else:
        r.key_usage = key_usage_allows(r.signer, r.cert_type)
        if not r.key_usage:
            r.fail("wrong_key_usage")
        if not _within_certificate(r.signer, r.claims):
            r.fail("outside_signer_validity")
    # Checked on every decoded certificate (the test vectors judge it on its own), reported
    # after the signature: a forged code's first reason is the forgery.
    r.schema_errors = dccschema.errors(r.hcert)
    r.reasons.extend(r.schema_errors)
    r.in_time = _in_time(r.claims, at, r)
    return r


def schema_ok(hcert: dict | None) -> bool:
    """Whether the hcert has the structure, types and lengths of the DCC schema (1.3.3)."""
    return not dccschema.errors(hcert)


def key_usage_allows(signer: Signer, cert_type: str | None) -> bool:
    """A DSC with any of the hcert EKUs may only sign those types; without them, any type."""
    allowed = {EKU_TYPES[oid] for oid in signer.key_usages if oid in EKU_TYPES}
    return not allowed or cert_type in allowed


def _within_certificate(signer: Signer, claims: dict) -> bool:
    iat, exp = claims.get(CLAIM_IAT), claims.get(CLAIM_EXP)
    return all(signer.not_before <= t <= signer.not_after for t in (iat, exp) if isinstance(t, (int, float)))


# Times outside years 1970..9999 cannot be shown or stored: a hostile code's, not an issuer's.
def _sane_time(t: object) -> TypeIs[int | float]:
    return isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= LATEST


def _in_time(claims: dict, at: float, r: Inspection) -> bool:
    iat, exp = claims.get(CLAIM_IAT), claims.get(CLAIM_EXP)
    if not _sane_time(exp) or not _sane_time(iat):
        r.fail("malformed_claims")
        return False
    if at < iat:
        r.fail("not_yet_valid")
        return False
    if at > exp:
        r.fail("expired")
        return False
    return True


def _day(value: str) -> float:
    """A DCC date or date-time (ISO 8601) as UNIX seconds (dates at 00:00 UTC)."""
    value = str(value)
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC).timestamp()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rule_reasons(hcert: dict, cert_type: str | None, at: float, rules: CertificateRules) -> list[str]:
    """The site's entry rules; each failing rule is a named reason."""
    if cert_type is None:
        return ["not_one_certificate"]
    entry = hcert[cert_type][0]
    reasons = []
    try:
        if cert_type == "v":
            if int(entry["dn"]) < int(entry["sd"]):
                reasons.append("vaccination_incomplete")
            if at - _day(entry["dt"]) < rules.vaccination_min_days * 86400:
                reasons.append("vaccination_too_recent")
        elif cert_type == "t":
            if entry.get("tr") != RESULT_NOT_DETECTED:
                reasons.append("test_not_negative")
            limit = {TEST_NAAT: rules.pcr_max_hours, TEST_RAT: rules.rat_max_hours}.get(entry.get("tt"))
            if limit is None:
                reasons.append("test_type_unknown")
            elif at - _day(entry["sc"]) > limit * 3600:
                reasons.append("test_too_old")
        else:
            if at - _day(entry["fr"]) > rules.recovery_max_days * 86400:
                reasons.append("recovery_too_old")
            if "df" in entry and at < _day(entry["df"]):
                reasons.append("recovery_not_yet_valid")
            if "du" in entry and at > _day(entry["du"]) + 86400:
                reasons.append("recovery_expired")
    except (KeyError, ValueError, TypeError, IndexError):
        reasons.append("malformed_certificate")
    return reasons


def holder(hcert: dict | None) -> tuple[str | None, str | None]:
    """(name as people write it, date of birth) from the hcert."""
    if not isinstance(hcert, dict):
        return None, None
    nam = hcert.get("nam")
    nam = nam if isinstance(nam, dict) else {}

    def text(key):
        value = nam.get(key)
        return value if isinstance(value, str) and len(value) <= dccschema.MAX_TEXT else None
    parts = [text("fn") or text("fnt"), text("gn") or text("gnt")]
    name = " ".join(p for p in parts if p) or None
    dob = hcert.get("dob")
    return name, dob if isinstance(dob, str) and len(dob) <= dccschema.MAX_TEXT else None


def verify(text: str, trust: TrustList, at: float,
           rules: CertificateRules = CertificateRules()) -> tuple[Declaration, Inspection]:
    r = inspect(text, trust, at)
    details = {"kind": TYPE_NAMES.get(r.cert_type) if r.cert_type is not None else None, "alg": r.alg,
               "kid": base64.b64encode(r.kid).decode() if r.kid else None}
    if not r.signature:
        return Declaration(FORMAT, INVALID, tuple(r.reasons), details=details), r
    # A signature is checked only once the claims were decoded.
    assert r.claims is not None and r.hcert is not None
    name, dob = holder(r.hcert)
    details["dob"] = dob
    expires = r.claims.get(CLAIM_EXP)
    expires = float(expires) if _sane_time(expires) else None
    if r.reasons:
        status = EXPIRED if r.reasons == ["expired"] else INVALID
        return Declaration(FORMAT, status, tuple(r.reasons), name, expires, details=details), r
    reasons = rule_reasons(r.hcert, r.cert_type, at, rules)
    if reasons:
        return Declaration(FORMAT, INVALID, tuple(reasons), name, expires, details=details), r
    age = trust.age(at)
    if age is not None and age > rules.trust_max_age:
        return Declaration(FORMAT, REVIEW_STATUS, ("trust_list_out_of_date",), name, expires,
                           details=details), r
    return Declaration(FORMAT, VALID, (), name, expires, details=details), r

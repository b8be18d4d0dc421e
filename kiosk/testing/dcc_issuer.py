"""A test issuer of EU DCCs: our own document signer certificates and certificates,
built with `cryptography` by the hcert recipe, so the project's tests and bench/verify.py
stand without the shared test vectors."""
from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime

import base45
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from kiosk.declarations import cose
from kiosk.declarations.trust import cert_kid

__all__ = ["DAY", "EKU", "b64", "dsc", "issue", "lab_test", "recovery", "vaccination"]

EKU = {"t": "1.3.6.1.4.1.1847.2021.1.1", "v": "1.3.6.1.4.1.1847.2021.1.2", "r": "1.3.6.1.4.1.1847.2021.1.3"}
DAY = 86400


def dsc(alg: str = "ES256", types: str = "", not_before: float = 1_700_000_000,
        not_after: float = 1_900_000_000, country: str = "VN"):
    """(private key, DER certificate) of a document signer; `types` limits it by EKU ("v", "tr"...)."""
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{country} DSC test")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(datetime.fromtimestamp(not_before, UTC))
               .not_valid_after(datetime.fromtimestamp(not_after, UTC)))
    if types:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ObjectIdentifier(EKU[t]) for t in types]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return key, cert.public_bytes(serialization.Encoding.DER)


def vaccination(dn=2, sd=2, dt="2026-10-01", fn="Nguyễn", gn="Văn An", dob="1990-01-01") -> dict:
    return {"ver": "1.3.0", "nam": {"fn": fn, "gn": gn, "fnt": "NGUYEN", "gnt": "VAN<AN"}, "dob": dob,
            "v": [{"tg": "840539006", "vp": "J07BX03", "mp": "EU/1/20/1528", "ma": "ORG-100030215",
                   "dn": dn, "sd": sd, "dt": dt, "co": "VN", "is": "Ministry of Health of Viet Nam",
                   "ci": "URN:UVCI:01:VN:TEST#1"}]}


def lab_test(sc: str, tt: str = "LP6464-4", tr: str = "260415000") -> dict:
    return {"ver": "1.3.0", "nam": {"fn": "Trần", "gn": "Thị Bình", "fnt": "TRAN", "gnt": "THI<BINH"},
            "dob": "1985-05-05", "t": [{"tg": "840539006", "tt": tt, "sc": sc, "tr": tr, "tc": "BV Bach Mai",
                                        "co": "VN", "is": "Ministry of Health of Viet Nam",
                                        "ci": "URN:UVCI:01:VN:TEST#2"}]}


def recovery(fr: str, df: str, du: str) -> dict:
    return {"ver": "1.3.0", "nam": {"fn": "Lê", "gn": "Văn Cường", "fnt": "LE", "gnt": "VAN<CUONG"},
            "dob": "1970-07-07", "r": [{"tg": "840539006", "fr": fr, "df": df, "du": du, "co": "VN",
                                        "is": "Ministry of Health of Viet Nam", "ci": "URN:UVCI:01:VN:TEST#3"}]}


def issue(hcert: dict, key, der: bytes, iat: float, exp: float, kid: bytes | None = None,
          unprotected_kid: bytes | None = None, cwt_tag: bool = False, compress: bool = True) -> str:
    """An HC1: payload, by the hcert recipe: CWT claims -> COSE_Sign1 -> zlib -> base45."""
    claims = {1: "VN", 4: int(exp), 6: int(iat), -260: {1: hcert}}
    kid = cert_kid(der) if kid is None and unprotected_kid is None else kid
    signed = cose.sign1(claims, key, kid, unprotected_kid)
    if cwt_tag:
        import cbor2
        signed = cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(signed)))
    body = zlib.compress(signed, 9) if compress else signed
    return "HC1:" + base45.b45encode(body).decode()


def b64(der: bytes) -> str:
    return base64.b64encode(der).decode()

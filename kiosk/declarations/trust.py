"""The DCC trust list: signer certificates (DSCs) by kid, with the time they were fetched.

File format (written atomically by `kiosk trust update`):
{"downloaded": "2026-11-23T01:00:00.000Z", "source": URL,
 "certificates": [{"kid": BASE64, "country": "VN", "der": BASE64 DER}, ...]}
A plain JSON list of base64 DER certificates is read too (downloaded = the file's mtime).
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ..files import write_atomically
from ..model import iso, parse_iso


def cert_kid(der: bytes) -> bytes:
    """hcert_spec 3.3.1: the kid is the first 8 bytes of SHA-256 over the DER certificate."""
    return hashlib.sha256(der).digest()[:8]


@dataclass(frozen=True)
class Signer:
    """What the kiosk needs of a document signer certificate (DSC)."""
    der: bytes
    public_key: object
    not_before: float
    not_after: float
    key_usages: frozenset[str]          # extended key usage OIDs, dotted
    country: str | None

    @classmethod
    def from_der(cls, der: bytes) -> Signer:
        # asn1crypto rather than cryptography's strict parser: DSCs in the wild break DER
        # rules (an encoded default BasicConstraints, an empty EKU sequence) and must still
        # be usable; the signature check itself is done by cryptography.
        cert = asn1_x509.Certificate.load(der)
        tbs = cert["tbs_certificate"]
        validity = tbs["validity"]
        try:
            eku = cert.extended_key_usage_value
            usages = frozenset(str(u.dotted) for u in eku) if eku is not None else frozenset()
        except (ValueError, TypeError):
            usages = frozenset()
        country = tbs["subject"].native.get("country_name")
        return cls(der, load_der_public_key(tbs["subject_public_key_info"].dump()),
                   validity["not_before"].native.timestamp(), validity["not_after"].native.timestamp(),
                   usages, country)


@dataclass
class TrustList:
    certificates: dict[bytes, list[Signer]] = field(default_factory=dict)
    downloaded: float | None = None
    source: str = ""

    @classmethod
    def from_der(cls, ders, downloaded: float | None = None, source: str = "") -> TrustList:
        trust = cls(downloaded=downloaded, source=source)
        for der in ders:
            trust.add(der)
        return trust

    def add(self, der: bytes, kid: bytes | None = None) -> None:
        self.certificates.setdefault(kid or cert_kid(der), []).append(Signer.from_der(der))

    def __len__(self) -> int:
        return sum(len(v) for v in self.certificates.values())

    def signers(self, kid: bytes | None) -> list[Signer]:
        return self.certificates.get(kid or b"", [])

    def age(self, at: float) -> float | None:
        return None if self.downloaded is None else at - self.downloaded

    # -- the file -----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> TrustList:
        path = Path(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, list):
            return cls.from_der((base64.b64decode(d) for d in data), path.stat().st_mtime, str(path))
        trust = cls(downloaded=parse_iso(data["downloaded"]), source=data.get("source", ""))
        for item in data["certificates"]:
            trust.add(base64.b64decode(item["der"]), base64.b64decode(item["kid"]) if item.get("kid") else None)
        return trust

    def save(self, path: str | Path) -> None:
        """Write atomically: a reader sees the old list or the new one, never half of one."""
        path = Path(path)
        items = [{"kid": base64.b64encode(kid).decode(), "country": signer.country,
                  "der": base64.b64encode(signer.der).decode()}
                 for kid, signers in self.certificates.items() for signer in signers]
        body = json.dumps({"downloaded": iso(self.downloaded or 0), "source": self.source,
                           "certificates": items}, indent=1).encode()
        write_atomically(path, body)

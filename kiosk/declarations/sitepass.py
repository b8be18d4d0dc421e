"""The site's own visitor pass: `KP1:` + base45(COSE_Sign1(CBOR claims)).

The same machinery as the EU DCC (base45, COSE_Sign1, CWT claim numbers) with its own prefix
and without zlib (a pass is ~150 bytes; compression would only add an attack surface).

Claims: 1 iss (site id), 4 exp, 6 iat, 7 cti (pass id), "kp" {"n": holder name,
"r": role, "f": health answers that need a person to look, "d": declaration id}.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import base45
import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..model import EXPIRED, INVALID, LATEST, VALID, Declaration
from . import cose

PREFIX = "KP1:"
FORMAT = "sitepass"
ISS, EXP, IAT, CTI = 1, 4, 6, 7
# Passes issued by a kiosk whose clock runs a little ahead are still good.
CLOCK_SKEW = 300


def new_key():
    """A new P-256 signing key for the site's passes."""
    return ec.generate_private_key(ec.SECP256R1())


def save_key(key, path: str | Path) -> None:
    """Write the private key (0600) and its public half beside it (`.pub.pem`)."""
    path = Path(path)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path(path).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def public_path(private_path: str | Path) -> Path:
    private_path = Path(private_path)
    return private_path.with_name(private_path.stem + ".pub.pem")


def load_private_key(path: str | Path):
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def load_keys(paths: Iterable[str | Path]) -> dict[bytes, list]:
    """PEM files (public or private keys) -> {kid: [public keys]}."""
    keys: dict[bytes, list] = {}
    for path in paths:
        pem = Path(path).read_bytes()
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            key = serialization.load_pem_private_key(pem, password=None).public_key()
        keys.setdefault(cose.key_id(key), []).append(key)
    return keys


def issue(private_key, site: str, holder: str, issued: float, valid_for: float,
          role: str = "visitor", flags: Iterable[str] = (), kid: bytes | None = None,
          declaration_id: str | None = None) -> str:
    """A signed pass as the text to put in a QR code (`kid` only to forge one in tests)."""
    body = {"n": holder, "r": role, "f": list(flags)}
    if declaration_id:
        body["d"] = declaration_id
    claims = {ISS: site, IAT: int(issued), EXP: int(issued + valid_for), CTI: os.urandom(8), "kp": body}
    signed = cose.sign1(claims, private_key, kid or cose.key_id(private_key.public_key()))
    return PREFIX + base45.b45encode(signed).decode("ascii")


def verify(text: str, keys: Mapping[bytes, list], site: str, at: float) -> Declaration:
    """Check a pass's signature, site and validity at time `at`."""

    def invalid(reason: str) -> Declaration:
        return Declaration(FORMAT, INVALID, (reason,))

    try:
        raw = base45.b45decode(text[len(PREFIX):])
    except (ValueError, TypeError):
        return invalid("malformed_base45")
    try:
        msg = cose.decode_sign1(raw)
    except cose.CoseError:
        return invalid("malformed_cose")
    candidates = keys.get(msg.kid or b"", [])
    if not candidates:
        return invalid("unknown_signer")
    if not any(cose.verify_signature(msg, key) for key in candidates):
        return invalid("bad_signature")
    try:
        claims = cbor2.loads(msg.payload)
        body = claims["kp"]
        holder, flags = str(body["n"]), tuple(str(f) for f in body.get("f", ()))
        issued, expires = float(claims[IAT]), float(claims[EXP])
        issuer = claims[ISS]
        if not (0 <= issued <= LATEST and 0 <= expires <= LATEST):
            raise ValueError("time out of range")
    except Exception:  # a signed but malformed body: our own key signed garbage
        return invalid("malformed_claims")
    if issuer != site:
        return Declaration(FORMAT, INVALID, ("other_site",), holder, expires)
    if issued > at + CLOCK_SKEW:
        return Declaration(FORMAT, INVALID, ("not_yet_valid",), holder, expires)
    if expires < at:
        return Declaration(FORMAT, EXPIRED, ("expired",), holder, expires)
    return Declaration(FORMAT, VALID, (), holder, expires, flags)

"""COSE_Sign1 (RFC 8152 / RFC 9052), as the EU DCC specification (hcert_spec) uses it.

Pure: bytes in, claims or an error out. Signatures: ES256 (ECDSA P-256, signature as raw
r||s, not DER), PS256 (RSA-PSS, SHA-256, 32-byte salt) and EdDSA (Ed25519).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

# COSE header labels and algorithm identifiers (IANA COSE registry).
ALG, KID = 1, 4
ES256, PS256, EDDSA = -7, -37, -8
ALG_NAMES = {ES256: "ES256", PS256: "PS256", EDDSA: "EdDSA"}
COSE_SIGN1_TAG = 18
CWT_TAG = 61


class CoseError(ValueError):
    """The bytes are not a well-formed COSE_Sign1 message."""


@dataclass(frozen=True)
class Sign1:
    protected: bytes            # the serialized protected header, as signed
    protected_header: Mapping
    unprotected: Mapping
    payload: bytes
    signature: bytes

    @property
    def alg(self) -> int | None:
        alg = self.protected_header.get(ALG, self.unprotected.get(ALG))
        return alg if isinstance(alg, int) else None

    @property
    def kid(self) -> bytes | None:
        # hcert_spec 3.3.1: the kid is in the protected header; some issuers put it only in
        # the unprotected one. A kid of another type (hostile input) is no kid.
        kid = self.protected_header.get(KID)
        if kid is None:
            kid = self.unprotected.get(KID)
        return kid if isinstance(kid, bytes) else None

    def to_be_signed(self) -> bytes:
        return cbor2.dumps(["Signature1", self.protected, b"", self.payload])


def decode_sign1(data: bytes) -> Sign1:
    """Parse a COSE_Sign1: tagged 18, tagged 61 wrapping 18, or untagged."""
    try:
        obj = cbor2.loads(data)
    except Exception as e:  # cbor2 raises several types on hostile input
        raise CoseError(f"not CBOR: {e}") from None
    if isinstance(obj, cbor2.CBORTag) and obj.tag == CWT_TAG:
        obj = obj.value
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != COSE_SIGN1_TAG:
            raise CoseError(f"unexpected CBOR tag {obj.tag}")
        obj = obj.value
    # cbor2 6 decodes arrays inside a tag as tuples and maps as frozendicts.
    if not (isinstance(obj, (list, tuple)) and len(obj) == 4):
        raise CoseError("not a COSE_Sign1 array of four")
    protected, unprotected, payload, signature = obj
    if not isinstance(protected, bytes) or not isinstance(unprotected, Mapping) \
            or not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise CoseError("COSE_Sign1 members of the wrong type")
    try:
        header = cbor2.loads(protected) if protected else {}
    except Exception:
        raise CoseError("protected header is not CBOR") from None
    if not isinstance(header, Mapping):
        raise CoseError("protected header is not a map")
    return Sign1(protected, header, unprotected, payload, signature)


def verify_signature(msg: Sign1, public_key) -> bool:
    """True when `msg` is signed by `public_key` with the algorithm its header names."""
    data = msg.to_be_signed()
    try:
        if msg.alg == ES256 and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(msg.signature) != 64:
                return False
            r = int.from_bytes(msg.signature[:32], "big")
            s = int.from_bytes(msg.signature[32:], "big")
            public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        elif msg.alg == PS256 and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(msg.signature, data,
                              padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                              hashes.SHA256())
        elif msg.alg == EDDSA and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(msg.signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def key_id(public_key) -> bytes:
    """The first 8 bytes of SHA-256 over the key's SubjectPublicKeyInfo (as hcert uses for certificates)."""
    spki = public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:8]


def sign1(claims: dict, private_key, kid: bytes | None, unprotected_kid: bytes | None = None) -> bytes:
    """Encode `claims` as a tagged COSE_Sign1 signed by `private_key`: ES256 (P-256),
    PS256 (RSA) or EdDSA (Ed25519). The kiosk signs site passes; tests also issue DCCs."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = ES256
    elif isinstance(private_key, rsa.RSAPrivateKey):
        alg = PS256
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg = EDDSA
    else:
        raise TypeError("unsupported signing key")
    header: dict[int, int | bytes] = {ALG: alg}
    if kid is not None:
        header[KID] = kid
    protected = cbor2.dumps(header)
    payload = cbor2.dumps(claims)
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    if alg == ES256:
        r, s = decode_dss_signature(private_key.sign(tbs, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == PS256:
        signature = private_key.sign(tbs, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                                     hashes.SHA256())
    else:
        signature = private_key.sign(tbs)
    unprotected = {KID: unprotected_kid} if unprotected_kid is not None else {}
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, unprotected, payload, signature]))

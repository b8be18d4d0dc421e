"""Fetching the DCC trust list over HTTPS: the one module of kiosk.declarations that does IO
(imported only by `kiosk trust update`; the parsers and verifiers stay pure).

Accepted lists:
- a JSON array of base64 DER certificates, or of objects with "kid" and "der"/"rawData";
- the EU verifier-service's paged `.../signercertificateUpdate`: one base64 DER certificate
  per response, the next page asked for with the X-RESUME-TOKEN header of the last one,
  204 when all are fetched;
- either of the above, or {"dsc_trust_list": {"VN": {"keys": [{"kid", "x5c": [DER]}]}}},
  inside a JWS (compact serialisation) signed by the publisher: with `signer_pem` the
  signature must verify, and a signed list is refused without it.
"""
from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlparse

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .trust import TrustList

MAX_BYTES = 20 * 2**20          # a trust list of every country is a few MB
MAX_PAGES = 10_000
TIMEOUT = 30


class TrustListError(Exception):
    """The list could not be fetched or did not verify; the old one stays."""


def _get(session, url, verify, headers=None):
    try:
        response = session.get(url, headers=headers or {}, timeout=TIMEOUT, verify=verify, stream=True)
        body = response.raw.read(MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as e:
        raise TrustListError(f"cannot fetch {url}: {e}") from None
    if len(body) > MAX_BYTES:
        raise TrustListError(f"{url} is larger than {MAX_BYTES} bytes")
    return response, body


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jws(token: str, signer_pem: bytes) -> bytes:
    """The payload of a compact JWS signed ES256, RS256 or PS256 by `signer_pem`."""
    try:
        header_b64, payload_b64, signature_b64 = token.strip().split(".")
        header = json.loads(_b64url(header_b64))
        signature = _b64url(signature_b64)
    except ValueError:
        raise TrustListError("not a JWS") from None
    key = serialization.load_pem_public_key(signer_pem)
    signed = f"{header_b64}.{payload_b64}".encode()
    alg = header.get("alg")
    try:
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey) and len(signature) == 64:
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        elif alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "PS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                      salt_length=padding.PSS.DIGEST_LENGTH), hashes.SHA256())
        else:
            raise TrustListError(f"list signed with {alg!r}, which the given key cannot verify")
    except InvalidSignature:
        raise TrustListError("the list's signature does not verify") from None
    return _b64url(payload_b64)


def _certificates(data) -> list[tuple[bytes | None, bytes]]:
    """(kid or None, DER) from any accepted JSON shape."""
    out = []
    if isinstance(data, dict) and "dsc_trust_list" in data:
        for country in data["dsc_trust_list"].values():
            for key in country.get("keys", []):
                for der in key.get("x5c", [])[:1]:
                    out.append((base64.b64decode(key["kid"]) if key.get("kid") else None, base64.b64decode(der)))
        return out
    if isinstance(data, dict) and "certificates" in data:
        data = data["certificates"]
    if not isinstance(data, list):
        raise TrustListError("unrecognised list format")
    for item in data:
        if isinstance(item, str):
            out.append((None, base64.b64decode(item)))
        elif isinstance(item, dict):
            der = item.get("der") or item.get("rawData") or item.get("certificate")
            if not der:
                raise TrustListError("a list entry has no certificate")
            out.append((base64.b64decode(item["kid"]) if item.get("kid") else None, base64.b64decode(der)))
    return out


def fetch(url: str, signer_pem: bytes | None = None, verify=True, now: float | None = None) -> TrustList:
    if urlparse(url).scheme != "https":
        raise TrustListError("the trust list must come over HTTPS")
    now = time.time() if now is None else now
    pairs: list[tuple[bytes | None, bytes]] = []
    with requests.Session() as session:
        if url.rstrip("/").endswith("/signercertificateUpdate"):
            token = None
            for _ in range(MAX_PAGES):
                response, body = _get(session, url, verify, {"X-RESUME-TOKEN": token} if token else None)
                if response.status_code == 204:
                    break
                if response.status_code != 200:
                    raise TrustListError(f"{url} answered {response.status_code}")
                kid = response.headers.get("X-KID")
                pairs.append((base64.b64decode(kid) if kid else None, base64.b64decode(body.strip())))
                token = response.headers.get("X-RESUME-TOKEN")
                if not token:
                    break
            else:
                raise TrustListError(f"more than {MAX_PAGES} pages")
        else:
            response, body = _get(session, url, verify)
            if response.status_code != 200:
                raise TrustListError(f"{url} answered {response.status_code}")
            text = body.decode("utf-8", "replace").strip()
            signed = text.count(".") == 2 and not text.startswith(("[", "{"))
            if signed and signer_pem is None:
                raise TrustListError("the list is signed: give the publisher's key with --signer")
            if signer_pem is not None and not signed:
                raise TrustListError("a signer was given but the list is not signed")
            # After the two checks above a signer is given exactly when the list is signed.
            payload = verify_jws(text, signer_pem) if signer_pem is not None else body
            try:
                pairs = _certificates(json.loads(payload))
            except (ValueError, KeyError, TypeError) as e:
                raise TrustListError(f"unreadable list: {e}") from None
    if not pairs:
        raise TrustListError("the list is empty; keeping the old one")
    trust = TrustList(downloaded=now, source=url)
    for kid, der in pairs:
        try:
            trust.add(der, kid)
        except ValueError as e:
            raise TrustListError(f"a certificate in the list is unreadable: {e}") from None
    return trust

"""The sync protocol's signature, shared by the kiosk (kiosk.sync) and the central
(kiosk.central): stdlib only.

Each batch is POSTed with the kiosk's bearer token and two headers:
  X-Kiosk-Timestamp: UNIX seconds when it was sent
  X-Kiosk-Signature: hex HMAC-SHA256 over "<timestamp>\\n" + the exact body bytes
keyed with SHA-256(token) (the central keeps only that digest, never the token). An altered
body or timestamp fails the signature; a batch older than MAX_SKEW seconds, or one whose
signature was already seen, is a replay and is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

MAX_SKEW = 300          # seconds between the kiosk's and the central's clocks, and a replay's window


def key_for(token: str) -> bytes:
    return hashlib.sha256(token.encode()).hexdigest().encode()


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(key, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def signed_request(token: str, payload: dict, now: float | None = None) -> tuple[bytes, dict]:
    """(body, headers) for one batch."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = str(int(time.time() if now is None else now))
    return body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                  "X-Kiosk-Timestamp": timestamp, "X-Kiosk-Signature": signature(key_for(token), timestamp, body)}


def check(key: bytes, timestamp: str | None, given: str | None, body: bytes, now: float) -> str | None:
    """None when the batch is authentic and fresh, else why it is refused."""
    if not timestamp or not given:
        return "the batch must be signed (X-Kiosk-Timestamp, X-Kiosk-Signature)"
    # UNIX seconds have 10 digits until 2286; a longer number cannot be compared with a float.
    if len(timestamp) > 12 or not timestamp.isascii() or not timestamp.isdigit():
        return "X-Kiosk-Timestamp is not a number"
    if abs(now - int(timestamp)) > MAX_SKEW:
        return f"the batch is more than {MAX_SKEW} s old or ahead (check the kiosk's clock)"
    # compare_digest refuses text with non-ASCII characters (TypeError): hex has none.
    if not given.isascii() or not hmac.compare_digest(signature(key, timestamp, body), given):
        return "the batch's signature does not match its body"
    return None
